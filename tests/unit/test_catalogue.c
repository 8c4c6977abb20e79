/* test_catalogue.c - what the catalogue does with the hash database when files enter the
 * cache and at start-up: the event loop never waits on the database's write lock (a record
 * of a cached file waits in the indexer's queue instead, and is never lost; a Release too
 * large for the loop, or met with a busy database, is parsed by the indexer), a small
 * Release is known as soon as it is committed, and the start-up parses again the cached
 * indices whose parse did not finish; a miss adopts a cached content or an imported file,
 * and a request for an index is a sighting of it (expiry by reference). */
#include "aptdht-config.h"
#include <errno.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/url.h"

#define R "mirror.example/debian"
#define BW R "/dists/bookworm"
#define HA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HB "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

/* The daemon's pieces on a private directory: cache, loop connection, indexer, catalogue. */
struct rig {
    char dir[64], dbp[128];
    struct cache *cache;
    struct hashdb *db;
    struct indexer *ix;
    struct catalogue *cat;
};

static void rig_open(struct rig *g)
{
    char cdir[96];
    snprintf(cdir, sizeof cdir, "%s/cache", g->dir);
    snprintf(g->dbp, sizeof g->dbp, "%s/hashes.db", g->dir);
    CU_ASSERT_EQUAL_FATAL(cache_new(&g->cache, cdir, (uint64_t)1 << 30), 0);
    CU_ASSERT_FATAL(cache_scan(g->cache) >= 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&g->db, g->dbp), 0);
    CU_ASSERT_EQUAL_FATAL(indexer_new(&g->ix, g->dbp), 0);
    CU_ASSERT_EQUAL_FATAL(catalogue_new(&g->cat, g->cache, g->db, g->ix), 0);
}

static void rig_close(struct rig *g)
{
    catalogue_free(g->cat);
    indexer_free(g->ix);
    hashdb_free(g->db);
    cache_free(g->cache);
    g->cat = NULL, g->ix = NULL, g->db = NULL, g->cache = NULL;
}

static void rig_new(struct rig *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->dir, sizeof g->dir, "/tmp/aptdht-catalogue-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(g->dir));
    rig_open(g);
}

static void rig_free(struct rig *g)
{
    char cmd[128];
    rig_close(g);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g->dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void sha256(const void *data, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    EVP_DigestInit_ex(x, EVP_sha256(), NULL);
    EVP_DigestUpdate(x, data, n);
    EVP_DigestFinal_ex(x, out, &len);
    EVP_MD_CTX_free(x);
}

/* Commits data as key, as a finished download does. path receives the entry's file. */
static void commit(struct rig *g, const char *key, const void *data, size_t n, time_t mtime,
                   uint8_t sha[32], char *path, size_t path_len)
{
    char tmp[4096];
    int fd = cache_tmp_create(g->cache, tmp, sizeof tmp);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, data, n), (ssize_t)n);
    close(fd);
    sha256(data, n, sha);
    CU_ASSERT_EQUAL_FATAL(cache_commit(g->cache, tmp, key, mtime, url_classify(key) == URL_IMMUTABLE,
                                       sha), 0);
    snprintf(path, path_len, "%s/%s", cache_dir(g->cache), key);
}

static void added(struct rig *g, const char *key, const void *data, size_t n)
{
    char path[4096];
    uint8_t sha[32];
    commit(g, key, data, n, 1700000000, sha, path, sizeof path);
    catalogue_added(g->cat, key, path, sha);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool known(struct rig *g, const char *key)
{
    struct hashdb_entry e;
    return hashdb_lookup(g->db, key, &e) == 0;
}

/* Another process (an sqlite3 shell, a backup) holding the write lock. */
static sqlite3 *hold_lock(const char *dbp)
{
    sqlite3 *raw = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(dbp, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return raw;
}

static void release_lock(sqlite3 *raw)
{
    sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(raw);
}

static const char inrelease[] =
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: stable\nCodename: bookworm\n"
    "SHA256:\n " HA " 10 main/binary-amd64/Packages.xz\n " HB " 20 main/source/Sources.xz\n"
    "-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n";

/* A cached file's record, while the write lock stays taken longer than the writer's busy
 * timeout: the commit does not wait for it, and the record is written once it goes. */
static void test_record_never_lost(void)
{
    struct rig g;
    uint8_t got[32];
    uint64_t size = 0;
    const char *key = R "/pool/main/h/hello/hello_2.10-3_amd64.deb";
    rig_new(&g);
    sqlite3 *raw = hold_lock(g.dbp);
    double t0 = now_s();
    added(&g, key, "deb bytes", 9);
    double took = now_s() - t0;
    fprintf(stderr, " [commit took %.3f s with the lock held] ", took);
    CU_ASSERT(took < 1.0);
    usleep((HASHDB_WRITER_BUSY_MS + 500) * 1000);
    release_lock(raw);
    indexer_drain(g.ix);
    CU_ASSERT_EQUAL(hashdb_cached_get(g.db, key, &size, got), 0);
    CU_ASSERT_EQUAL(size, 9);
    rig_free(&g);
}

/* A small InRelease is known when catalogue_added returns (what apt asks next is checked
 * against it); with the database busy it goes to the indexer instead of waiting. */
static void test_release_on_loop(void)
{
    struct rig g;
    rig_new(&g);
    added(&g, BW "/InRelease", inrelease, strlen(inrelease));
    CU_ASSERT(known(&g, BW "/main/binary-amd64/Packages.xz"));
    indexer_drain(g.ix);
    sqlite3 *raw = hold_lock(g.dbp);
    double t0 = now_s();
    added(&g, R "/dists/trixie/InRelease", inrelease, strlen(inrelease));
    double took = now_s() - t0;
    fprintf(stderr, " [commit took %.3f s with the lock held] ", took);
    CU_ASSERT(took < 1.0);
    CU_ASSERT(!known(&g, R "/dists/trixie/main/binary-amd64/Packages.xz"));
    release_lock(raw);
    indexer_drain(g.ix);
    CU_ASSERT(known(&g, R "/dists/trixie/main/binary-amd64/Packages.xz"));
    rig_free(&g);
}

/* An InRelease over the loop's bound is the indexer's: even with the database locked the
 * commit returns at once, and its entries arrive once the lock goes. */
static void test_large_release(void)
{
    struct rig g;
    size_t cap = 2 << 20, n = 0;
    char *buf = malloc(cap), h[65];
    rig_new(&g);
    n += (size_t)snprintf(buf + n, cap - n, "Suite: stable\nSHA256:\n");
    for (unsigned i = 0; n + 200 < cap && n < (1200 << 10); i++) {
        for (int k = 0; k < 64; k++)
            h[k] = "0123456789abcdef"[(i * 2654435761u >> (k % 28)) & 15];
        h[64] = '\0';
        n += (size_t)snprintf(buf + n, cap - n, " %s %u main/binary-a%u/Packages.xz\n", h, i, i);
    }
    sqlite3 *raw = hold_lock(g.dbp);
    double t0 = now_s();
    added(&g, BW "/Release", buf, n);
    double took = now_s() - t0;
    fprintf(stderr, " [commit of a %zu KiB Release took %.3f s] ", n >> 10, took);
    CU_ASSERT(took < 1.0);
    CU_ASSERT_EQUAL(indexer_pending(g.ix), 1);
    release_lock(raw);
    indexer_drain(g.ix);
    CU_ASSERT(known(&g, BW "/main/binary-a7/Packages.xz"));
    free(buf);
    rig_free(&g);
}

static const char packages_v1[] =
    "Package: a\nFilename: pool/main/a/a_1_all.deb\nSize: 1\nSHA256: " HA "\n\n"
    "Package: b\nFilename: pool/main/b/b_1_all.deb\nSize: 2\nSHA256: " HB "\n";
static const char packages_v2[] =
    "Package: c\nFilename: pool/main/c/c_1_all.deb\nSize: 3\nSHA256: " HA "\n";

/* A cached index never parsed (the process died first) is parsed at start-up; one whose
 * parse finished is not parsed again; of two versions of one index, the newest counts. */
static void test_restore_reparses(void)
{
    struct rig g;
    char path[4096];
    uint8_t sha[32];
    rig_new(&g);
    /* the state a kill -9 leaves: files in the cache, their parse never committed */
    commit(&g, BW "/main/binary-amd64/by-hash/SHA256/" HA, packages_v1, strlen(packages_v1),
           1700000000, sha, path, sizeof path);
    commit(&g, BW "/main/binary-amd64/by-hash/SHA256/" HB, packages_v2, strlen(packages_v2),
           1700000100, sha, path, sizeof path);
    commit(&g, BW "/InRelease", inrelease, strlen(inrelease), 1700000100, sha, path, sizeof path);
    rig_close(&g);
    rig_open(&g);
    CU_ASSERT(cache_scan(g.cache) >= 0);
    size_t k, a;
    catalogue_restore(g.cat, &k, &a);
    indexer_drain(g.ix);
    CU_ASSERT(known(&g, R "/pool/main/c/c_1_all.deb"));
    CU_ASSERT(!known(&g, R "/pool/main/a/a_1_all.deb")); /* the older version */
    CU_ASSERT(known(&g, BW "/main/binary-amd64/Packages.xz"));
    /* parsed to the end now: the next start leaves it alone */
    struct hashdb_entry e = {.size = 99};
    CU_ASSERT_EQUAL(hashdb_put(g.db, R "/pool/main/c/c_1_all.deb", &e), 0);
    rig_close(&g);
    rig_open(&g);
    CU_ASSERT(cache_scan(g.cache) >= 0);
    catalogue_restore(g.cat, &k, &a); /* copies of unknown digest: hashed, then let be */
    indexer_drain(g.ix);
    CU_ASSERT_EQUAL(hashdb_lookup(g.db, R "/pool/main/c/c_1_all.deb", &e), 0);
    CU_ASSERT_EQUAL(e.size, 99);
    rig_free(&g);
}

/* A miss whose content is cached under another key becomes a link (one file, counted
 * once); a file put at the key from outside is adopted and checked against the expected
 * SHA-256 before it is served; an unknown content is no entry. */
static void test_adopt(void)
{
    struct rig g;
    uint8_t sha[32], other[32];
    char path[4096];
    const char *byhash = BW "/main/binary-amd64/by-hash/SHA256/" HA;
    const char *byname = BW "/main/binary-amd64/Packages";
    rig_new(&g);
    commit(&g, byhash, packages_v1, strlen(packages_v1), 1700000000, sha, path, sizeof path);
    uint64_t used = cache_used(g.cache);
    memset(other, 0x77, sizeof other);
    CU_ASSERT_FALSE(catalogue_adopt(g.cat, byname, other));
    CU_ASSERT_TRUE(catalogue_adopt(g.cat, byname, sha));
    CU_ASSERT(cache_has(g.cache, byname));
    CU_ASSERT_EQUAL(cache_used(g.cache), used);
    indexer_drain(g.ix); /* the by-name copy is parsed (nothing parsed this content yet) */
    CU_ASSERT(known(&g, R "/pool/main/a/a_1_all.deb"));
    /* a file put in by hand: adopted, then checked (here on this thread) */
    const char *imp = R "/pool/main/i/i_1_all.deb", *bad = R "/pool/main/j/j_1_all.deb";
    snprintf(path, sizeof path, "%s/%s", cache_dir(g.cache), imp);
    char dirp[4096];
    snprintf(dirp, sizeof dirp, "mkdir -p %s/%s/pool/main/i %s/%s/pool/main/j", cache_dir(g.cache), R,
             cache_dir(g.cache), R);
    CU_ASSERT_EQUAL_FATAL(system(dirp), 0);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("imported", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s", cache_dir(g.cache), bad);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f = fopen(path, "w"));
    fputs("not what the index says", f);
    fclose(f);
    sha256("imported", 8, sha);
    CU_ASSERT_TRUE(catalogue_adopt(g.cat, imp, sha));
    CU_ASSERT_EQUAL(cache_check(g.cache, imp, NULL, NULL, NULL, NULL), 0);
    CU_ASSERT(cache_hashed(g.cache, imp));
    CU_ASSERT_TRUE(catalogue_adopt(g.cat, bad, sha)); /* adopted, then it fails its check */
    CU_ASSERT_EQUAL(cache_check(g.cache, bad, NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_FALSE(cache_has(g.cache, bad));
    rig_free(&g);
}

/* A request for an index is a sighting of it, recorded at most once a minute. */
static void test_index_asked(void)
{
    struct rig g;
    sqlite3 *raw;
    sqlite3_stmt *st;
    int64_t seen = 0;
    rig_new(&g);
    added(&g, BW "/InRelease", inrelease, strlen(inrelease));
    indexer_drain(g.ix);
    for (int round = 0; round < 2; round++) {
        CU_ASSERT_EQUAL_FATAL(sqlite3_open(g.dbp, &raw), SQLITE_OK);
        sqlite3_busy_timeout(raw, 5000);
        CU_ASSERT_EQUAL(sqlite3_exec(raw, "UPDATE indices SET seen_s = 1", NULL, NULL, NULL), SQLITE_OK);
        catalogue_index_asked(g.cat, BW "/InRelease");
        catalogue_index_asked(g.cat, R "/pool/main/a/a_1_all.deb"); /* no index: nothing */
        indexer_drain(g.ix);
        CU_ASSERT_EQUAL(sqlite3_prepare_v2(raw, "SELECT seen_s FROM indices WHERE name = ?1", -1,
                                           &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, BW "/InRelease", -1, SQLITE_STATIC);
        CU_ASSERT_EQUAL(sqlite3_step(st), SQLITE_ROW);
        seen = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(raw);
        if (round == 0) {
            CU_ASSERT(seen > (int64_t)time(NULL) - 60); /* recorded */
        } else {
            CU_ASSERT_EQUAL(seen, 1); /* asked again within the minute: not written again */
        }
    }
    rig_free(&g);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"a cached file's record is never lost", test_record_never_lost},
        {"a small Release is parsed on the loop, never waiting", test_release_on_loop},
        {"a large Release goes to the indexer", test_large_release},
        {"start-up parses again what did not finish", test_restore_reparses},
        {"a miss adopts a cached content or an imported file", test_adopt},
        {"a request for an index is a sighting", test_index_asked},
        {NULL, NULL},
    };
    return unit_run("catalogue", cases);
}

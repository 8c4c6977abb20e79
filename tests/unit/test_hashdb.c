/* test_hashdb.c - the SQLite hash index: round trips, replacement, transactions,
 * persistence across reopen, origins, two connections at once, schema versioning, the
 * sweep of expiry by reference, the size on disk. */
#include "aptdht-config.h"
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/hashdb.h"

static char dir[64];
static char path[128];

static void tmp_db(void)
{
    snprintf(dir, sizeof(dir), "/tmp/aptdht-hashdb-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hashes.sqlite", dir);
}

static void rm_db(void)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char p[160];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

static struct hashdb_entry entry(uint64_t size, int fill256, int fill1)
{
    struct hashdb_entry e = {.size = size};
    if (fill256 >= 0) {
        e.have_sha256 = true;
        memset(e.sha256, fill256, 32);
    }
    if (fill1 >= 0) {
        e.have_sha1 = true;
        memset(e.sha1, fill1, 20);
    }
    return e;
}

static void assert_same(const struct hashdb_entry *a, const struct hashdb_entry *b)
{
    CU_ASSERT_EQUAL(a->size, b->size);
    CU_ASSERT_EQUAL(a->have_sha256, b->have_sha256);
    CU_ASSERT_EQUAL(a->have_sha1, b->have_sha1);
    if (a->have_sha256 && b->have_sha256)
        CU_ASSERT(memcmp(a->sha256, b->sha256, 32) == 0);
    if (a->have_sha1 && b->have_sha1)
        CU_ASSERT(memcmp(a->sha1, b->sha1, 20) == 0);
}

static void test_roundtrip(void)
{
    static const struct {
        const char *key;
        uint64_t size;
        int f256, f1;
    } rows[] = {
        {"mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, 0xab, -1},
        {"mirror.example/old/pool/main/a/a_1_i386.deb", 0, -1, 0x11},
        {"mirror.example/debian/dists/bookworm/main/binary-amd64/Packages.xz", 8791532, 1, 2},
        {"mirror.example:8080/x/dists/s/Release", UINT64_MAX, 0xff, -1},
        {"mirror.example/big", (uint64_t)INT64_MAX, 7, -1},
    };
    struct hashdb *db = NULL;
    struct hashdb_entry got;
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, ":memory:"), 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct hashdb_entry e = entry(rows[i].size, rows[i].f256, rows[i].f1);
        CU_ASSERT_EQUAL(hashdb_put(db, rows[i].key, &e), 0);
    }
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct hashdb_entry e = entry(rows[i].size, rows[i].f256, rows[i].f1);
        CU_ASSERT_EQUAL(hashdb_lookup(db, rows[i].key, &got), 0);
        assert_same(&got, &e);
    }
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/none", &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "", &got), -EINVAL);
    hashdb_free(db);
}

static void test_invalid(void)
{
    struct hashdb *db = NULL;
    struct hashdb_entry e = entry((uint64_t)INT64_MAX + 1, 1, -1);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, ":memory:"), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, "mirror.example/k", &e), -EINVAL);
    e.size = 1;
    CU_ASSERT_EQUAL(hashdb_put(db, "", &e), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_put(db, NULL, &e), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_forget_origin(db, ""), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_commit(db), -EIO); /* no transaction open */
    hashdb_free(db);
    hashdb_free(NULL);
    CU_ASSERT(hashdb_open(&db, "/nonexistent-dir/x/y.sqlite") < 0);
}

static void test_replace_and_tx(void)
{
    struct hashdb *db = NULL;
    struct hashdb_entry a = entry(10, 1, 2), b = entry(20, 3, -1), got;
    const char *k = "mirror.example/debian/pool/main/a/a.deb";
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, ":memory:"), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, k, &a), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, k, &b), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, k, &got), 0);
    assert_same(&got, &b); /* replaced whole: the old SHA-1 is gone too */
    CU_ASSERT_EQUAL(hashdb_begin(db), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, "mirror.example/t1", &a), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, k, &a), 0);
    CU_ASSERT_EQUAL(hashdb_rollback(db), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/t1", &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, k, &got), 0);
    assert_same(&got, &b);
    CU_ASSERT_EQUAL(hashdb_begin(db), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, "mirror.example/t2", &a), 0);
    CU_ASSERT_EQUAL(hashdb_commit(db), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/t2", &got), 0);
    hashdb_free(db);
}

static void test_origin(void)
{
    struct hashdb *db = NULL;
    struct hashdb_entry e = entry(5, 9, -1), got;
    const char *rel = "mirror.example/debian/dists/bookworm/InRelease";
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, ":memory:"), 0);
    CU_ASSERT_EQUAL(hashdb_put_origin(db, "mirror.example/debian/dists/bookworm/a", &e, rel), 0);
    CU_ASSERT_EQUAL(hashdb_put_origin(db, "mirror.example/debian/dists/bookworm/b", &e, rel), 0);
    CU_ASSERT_EQUAL(hashdb_put_origin(db, "mirror.example/debian/dists/sid/a", &e,
                                      "mirror.example/debian/dists/sid/InRelease"), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, "mirror.example/debian/pool/x.deb", &e), 0);
    CU_ASSERT_EQUAL(hashdb_forget_origin(db, rel), 2);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/dists/bookworm/a", &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/dists/sid/a", &got), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/pool/x.deb", &got), 0);
    CU_ASSERT_EQUAL(hashdb_forget_origin(db, rel), 0);
    hashdb_free(db);
}

static void test_persist(void)
{
    struct hashdb *db = NULL;
    struct hashdb_entry e = entry(1234, 0x5a, 0xa5), got;
    const char *k = "mirror.example/debian/pool/main/h/hello/hello_2.10-3.dsc";
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, k, &e), 0);
    hashdb_free(db);
    db = NULL;
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, k, &got), 0);
    assert_same(&got, &e);
    hashdb_free(db);
    rm_db();
}

/* WAL: a reader sees the last committed state while a writer's transaction is open. */
static void test_two_connections(void)
{
    struct hashdb *w = NULL, *r = NULL;
    struct hashdb_entry a = entry(1, 1, -1), b = entry(2, 2, -1), got;
    const char *k = "mirror.example/debian/pool/a.deb";
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&w, path), 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&r, path), 0);
    CU_ASSERT_EQUAL(hashdb_put(w, k, &a), 0);
    CU_ASSERT_EQUAL(hashdb_begin(w), 0);
    CU_ASSERT_EQUAL(hashdb_put(w, k, &b), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 1);
    CU_ASSERT_EQUAL(hashdb_commit(w), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 2);
    hashdb_free(w);
    hashdb_free(r);
    rm_db();
}

/* Lookups are remembered; a commit by any connection of the process, a change or a
 * rollback of the connection's own, and (for a writer the process cannot see, another
 * process) a second, each make the next lookup ask the database again. */
static void test_memo(void)
{
    struct hashdb *w = NULL, *r = NULL;
    struct hashdb_entry a = entry(1, 1, -1), b = entry(2, 2, -1), c = entry(3, 3, -1), got;
    const char *k = "mirror.example/debian/pool/m.deb";
    sqlite3 *raw = NULL;
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open_writer(&w, path), 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&r, path), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), -ENOENT); /* remembered */
    CU_ASSERT_EQUAL(hashdb_put(w, k, &a), 0);             /* the other connection commits */
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 1);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 1);
    CU_ASSERT_EQUAL(hashdb_begin(r), 0); /* its own change, then its rollback */
    CU_ASSERT_EQUAL(hashdb_put(r, k, &b), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 2);
    CU_ASSERT_EQUAL(hashdb_rollback(r), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, 1);
    /* a connection that is not hashdb's, as another process's would be */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "UPDATE files SET size = 3", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    usleep(1100 * 1000);
    CU_ASSERT_EQUAL(hashdb_lookup(r, k, &got), 0);
    CU_ASSERT_EQUAL(got.size, c.size);
    hashdb_free(w);
    hashdb_free(r);
    rm_db();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The event loop's connection never waits on another's lock: a write finds it busy at
 * once (-EBUSY) and the caller hands the write to the indexer instead. */
static void test_no_wait(void)
{
    struct hashdb *db = NULL;
    sqlite3 *raw = NULL;
    uint8_t h[32] = {1};
    struct hashdb_entry e = entry(1, 1, -1), got;
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_put(db, "mirror.example/debian/pool/a.deb", &e), 0);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    double t0 = now_s();
    CU_ASSERT_EQUAL(hashdb_begin(db), -EBUSY);
    CU_ASSERT_EQUAL(hashdb_cached_put(db, "mirror.example/debian/pool/a.deb", 1, h), -EBUSY);
    double waited = now_s() - t0;
    fprintf(stderr, " [waited %.3f s] ", waited);
    CU_ASSERT(waited < 1.0);
    /* reading is never blocked by the writer */
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/pool/a.deb", &got), 0);
    sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(raw);
    hashdb_free(db);
    rm_db();
}

/* A stage fills while another connection holds the write lock; its merge is -EBUSY then,
 * keeps the stage, and succeeds once the lock goes. The merge supersedes the index's
 * previous version and writes only what changed. */
static void test_stage(void)
{
    struct hashdb *db = NULL;
    struct hashdb_stage *st = NULL;
    struct hashdb_index ix;
    sqlite3 *raw = NULL;
    uint8_t sha[32];
    struct hashdb_entry a = entry(1, 1, -1), b = entry(2, 2, -1), got;
    const char *ka = "mirror.example/debian/pool/a.deb", *kb = "mirror.example/debian/pool/b.deb";
    const char *name = "mirror.example/debian/dists/s/main/binary-amd64/Packages";
    memset(sha, 0x5a, sizeof sha);
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_index_get(db, name, &ix), -ENOENT);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(hashdb_stage_new(db, &st), 0);
    CU_ASSERT_EQUAL(hashdb_stage_put(st, ka, &a), 0);
    CU_ASSERT_EQUAL(hashdb_stage_put(st, kb, &b), 0);
    CU_ASSERT_EQUAL(hashdb_stage_put(st, "", &b), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_stage_commit(st, name, sha, 2), -EBUSY);
    CU_ASSERT_EQUAL(hashdb_lookup(db, ka, &got), -ENOENT);
    sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(hashdb_stage_commit(st, name, sha, 2), 2);
    hashdb_stage_free(st);
    CU_ASSERT_EQUAL(hashdb_lookup(db, ka, &got), 0);
    CU_ASSERT_EQUAL(hashdb_index_get(db, name, &ix), 0);
    CU_ASSERT(ix.have_sha256 && memcmp(ix.sha256, sha, 32) == 0);
    CU_ASSERT_EQUAL(ix.rc, 0);
    CU_ASSERT_EQUAL(ix.records, 2);
    /* the next version lists b (unchanged) only: one row removed, none written */
    CU_ASSERT_EQUAL_FATAL(hashdb_stage_new(db, &st), 0);
    CU_ASSERT_EQUAL(hashdb_stage_put(st, kb, &b), 0);
    CU_ASSERT_EQUAL(hashdb_stage_commit(st, name, NULL, 1), 1);
    hashdb_stage_free(st);
    CU_ASSERT_EQUAL(hashdb_lookup(db, ka, &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, kb, &got), 0);
    /* a rejected version is recorded, the entries stay */
    CU_ASSERT_EQUAL(hashdb_index_set(db, name, sha, -EFBIG), 0);
    CU_ASSERT_EQUAL(hashdb_index_get(db, name, &ix), 0);
    CU_ASSERT_EQUAL(ix.rc, -EFBIG);
    CU_ASSERT_EQUAL(hashdb_lookup(db, kb, &got), 0);
    CU_ASSERT_EQUAL(hashdb_forget_origin(db, name), 1);
    /* the checkpoint empties the WAL and starts the next one itself (its header, synced,
     * and one page): the loop's next write finds a WAL in use and syncs nothing */
    struct hashdb *w = NULL;
    struct stat sb;
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    CU_ASSERT_EQUAL_FATAL(hashdb_open_writer(&w, path), 0);
    CU_ASSERT_EQUAL(hashdb_checkpoint(w), 0);
    CU_ASSERT_EQUAL(stat(wal, &sb), 0);
    CU_ASSERT(sb.st_size > 0 && sb.st_size < 64 * 1024);
    hashdb_free(w);
    hashdb_stage_free(NULL);
    sqlite3_close(raw);
    hashdb_free(db);
    rm_db();
}

/* A schema-2 database keeps its rows; its Release rows (origin) go at that Release's next
 * merge. */
static void test_migrate_v2(void)
{
    struct hashdb *db = NULL;
    struct hashdb_stage *st = NULL;
    struct hashdb_entry got, e = entry(5, 5, -1);
    sqlite3 *raw = NULL;
    const char *rel = "mirror.example/debian/dists/s/InRelease";
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "CREATE TABLE files (key TEXT PRIMARY KEY NOT NULL, size "
                                      "INTEGER, sha256 BLOB, sha1 BLOB, origin TEXT) WITHOUT ROWID;"
                                      "CREATE TABLE cached (key TEXT PRIMARY KEY NOT NULL, size "
                                      "INTEGER NOT NULL, sha256 BLOB NOT NULL) WITHOUT ROWID;"
                                      "INSERT INTO files VALUES ('mirror.example/debian/pool/p.deb',"
                                      " 3, NULL, NULL, NULL);"
                                      "INSERT INTO files VALUES ('mirror.example/debian/dists/s/"
                                      "main/binary-amd64/Packages.xz', 4, NULL, NULL, "
                                      "'mirror.example/debian/dists/s/InRelease');"
                                      "PRAGMA user_version = 2",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    sqlite3_close(raw);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/pool/p.deb", &got), 0);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/dists/s/main/binary-amd64/Packages.xz",
                                  &got), 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_stage_new(db, &st), 0);
    CU_ASSERT_EQUAL(hashdb_stage_put(st, "mirror.example/debian/dists/s/main/source/Sources.xz", &e), 0);
    CU_ASSERT_EQUAL(hashdb_stage_commit(st, rel, NULL, 1), 2);
    hashdb_stage_free(st);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/dists/s/main/binary-amd64/Packages.xz",
                                  &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "mirror.example/debian/pool/p.deb", &got), 0);
    hashdb_free(db);
    rm_db();
}

/* The cached table (schema 2): what this host stores, with its SHA-256; bad input refused,
 * kept across reopen, and added to a database written by schema 1. */
static void test_cached(void)
{
    struct hashdb *db = NULL;
    sqlite3 *raw = NULL;
    uint8_t h[32], got[32];
    uint64_t size = 0;
    const char *k = "mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb";
    memset(h, 0x3c, sizeof h);
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK); /* a schema-1 database */
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "CREATE TABLE files (key TEXT PRIMARY KEY NOT NULL, size "
                                      "INTEGER, sha256 BLOB, sha1 BLOB, origin TEXT) WITHOUT ROWID;"
                                      "PRAGMA user_version = 1",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    sqlite3_close(raw);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_cached_get(db, k, &size, got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_cached_put(db, k, 4096, h), 0);
    CU_ASSERT_EQUAL(hashdb_cached_put(db, "", 1, h), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_cached_put(db, NULL, 1, h), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_cached_put(db, k, UINT64_MAX, h), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_cached_get(db, "", &size, got), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_cached_del(db, NULL), -EINVAL);
    CU_ASSERT_EQUAL(hashdb_cached_del(db, "mirror.example/not/there.deb"), 0);
    hashdb_free(db);
    db = NULL;
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, path), 0);
    CU_ASSERT_EQUAL(hashdb_cached_get(db, k, &size, got), 0);
    CU_ASSERT_EQUAL(size, 4096);
    CU_ASSERT(memcmp(got, h, 32) == 0);
    CU_ASSERT_EQUAL(hashdb_cached_del(db, k), 0);
    CU_ASSERT_EQUAL(hashdb_cached_get(db, k, &size, got), -ENOENT);
    hashdb_free(db);
    rm_db();
}

static void test_newer_schema(void)
{
    sqlite3 *raw = NULL;
    struct hashdb *db = NULL;
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    CU_ASSERT_EQUAL(hashdb_open(&db, path), -ENOTSUP);
    CU_ASSERT_PTR_NULL(db);
    rm_db();
}

/* One index, name, listing keys (sizes and hashes of no matter). */
static void index_of(struct hashdb *db, const char *name, const char *const *keys, size_t n)
{
    struct hashdb_stage *st = NULL;
    struct hashdb_entry e = entry(10, 7, -1);
    CU_ASSERT_EQUAL_FATAL(hashdb_stage_new(db, &st), 0);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(hashdb_stage_put(st, keys[i], &e), 0);
    CU_ASSERT(hashdb_stage_commit(st, name, NULL, n) >= 0);
    hashdb_stage_free(st);
}

struct swept {
    char keys[8][64];
    size_t n;
};

static int on_swept(void *ud, const char *key, uint64_t size, const uint8_t sha256[32])
{
    struct swept *x = ud;
    if (x->n < 8)
        snprintf(x->keys[x->n++], sizeof x->keys[0], "%s", key);
    return 0;
}

static bool swept_has(const struct swept *x, const char *key)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->keys[i], key) == 0)
            return true;
    return false;
}

/* Expiry by reference, with the sightings set by hand (unix seconds 1000 and 2000): a
 * file listed by an index of a suite seen recently stays, and so does the suite's
 * InRelease; an unlisted file and the files of a suite unseen for keep go, and that
 * suite's index is forgotten. The clock is the latest sighting, not now. */
static void test_sweep(void)
{
    static const char *const cur[] = {"r/pool/a.deb", "r/pool/b.deb"};
    static const char *const old[] = {"q/pool/c.deb"};
    static const char *const cached[] = {"r/pool/a.deb", "r/pool/b.deb", "q/pool/c.deb",
                                         "r/pool/x.deb", "r/dists/s/InRelease",
                                         "r/dists/s/Release.gpg"};
    struct hashdb *db = NULL;
    struct hashdb_sweep_stats st;
    struct hashdb_entry got;
    struct swept x = {0};
    sqlite3 *raw = NULL;
    uint8_t sha[32];
    uint64_t dbb, walb;
    memset(sha, 3, sizeof sha);
    tmp_db();
    CU_ASSERT_EQUAL_FATAL(hashdb_open_writer(&db, path), 0);
    index_of(db, "r/dists/s/main/binary-amd64/Packages", cur, 2);
    index_of(db, "q/dists/old/main/binary-amd64/Packages", old, 1);
    CU_ASSERT_EQUAL(hashdb_index_set(db, "r/dists/s/InRelease", sha, 0), 0);
    CU_ASSERT_EQUAL(hashdb_index_set(db, "r/dists/s/Release", sha, 0), 0);
    for (size_t i = 0; i < sizeof cached / sizeof cached[0]; i++)
        CU_ASSERT_EQUAL(hashdb_cached_put(db, cached[i], 10, sha), 0);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &raw), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(raw, "UPDATE cached SET listed_s = 1000;"
                                      "UPDATE indices SET seen_s = 1000;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    /* only the InRelease seen lately: its whole suite is */
    CU_ASSERT_EQUAL(hashdb_index_seen(db, "r/dists/s/InRelease", 2000), 0);
    CU_ASSERT_EQUAL(hashdb_index_seen(db, "r/dists/s/InRelease", 1500), 0); /* never back */
    CU_ASSERT_EQUAL(hashdb_sweep(db, 5000, on_swept, &x, &st), 0); /* keep > the clock */
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_sweep(db, 500, on_swept, &x, &st), 0);
    CU_ASSERT_EQUAL(st.ref_s, 2000);
    CU_ASSERT_EQUAL(x.n, 2);
    CU_ASSERT(swept_has(&x, "r/pool/x.deb"));
    CU_ASSERT(swept_has(&x, "q/pool/c.deb"));
    CU_ASSERT_EQUAL(st.unlisted, 2);
    CU_ASSERT_EQUAL(st.indices_forgotten, 1);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "q/pool/c.deb", &got), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_lookup(db, "r/pool/a.deb", &got), 0);
    /* what stays was brought up to the suite's sighting: a wider keep finds nothing */
    x.n = 0;
    CU_ASSERT_EQUAL(hashdb_sweep(db, 1500, on_swept, &x, &st), 0);
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT_EQUAL(hashdb_disk_use(db, &dbb, &walb), 0);
    CU_ASSERT(dbb > 0);
    hashdb_free(db);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, ":memory:"), 0);
    CU_ASSERT_EQUAL(hashdb_disk_use(db, &dbb, &walb), -ENOENT);
    CU_ASSERT_EQUAL(hashdb_index_seen(db, "", 1), -EINVAL);
    hashdb_free(db);
    rm_db();
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"put and lookup", test_roundtrip},
        {"invalid arguments", test_invalid},
        {"replace and transactions", test_replace_and_tx},
        {"origin forget", test_origin},
        {"persistence across reopen", test_persist},
        {"two connections (WAL)", test_two_connections},
        {"remembered lookups and what makes them stale", test_memo},
        {"cached files (schema 2, migration)", test_cached},
        {"the loop's connection never waits", test_no_wait},
        {"stages: fill without the lock, merge, supersede", test_stage},
        {"schema 2 database upgraded", test_migrate_v2},
        {"newer schema refused", test_newer_schema},
        {"expiry by reference: the sweep", test_sweep},
        {NULL, NULL},
    };
    return unit_run("hashdb", cases);
}

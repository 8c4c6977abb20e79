/* test_cache.c - cache commit, lookup, LRU eviction, start-up scan and debris removal,
 * room reserved by downloads in progress, and the checks before an entry is served. */
#include "aptdht-config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include <openssl/evp.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/strmap.h"

static char dir[PATH_MAX];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "%s/apt-dht-test-cache-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void rm_dir(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Writes n bytes of 'x' to a new temp file of the cache and commits it as key. */
static int put(struct cache *c, const char *key, size_t n, bool immutable)
{
    char tmp[PATH_MAX];
    int fd = cache_tmp_create(c, tmp, sizeof tmp);
    if (fd < 0)
        return fd;
    char *buf = malloc(n ? n : 1);
    memset(buf, 'x', n);
    ssize_t w = write(fd, buf, n);
    free(buf);
    close(fd);
    if (w != (ssize_t)n)
        return -EIO;
    return cache_commit(c, tmp, key, 1700000000, immutable, NULL);
}

static void test_commit_open(void)
{
    struct cache *c;
    struct stat st;
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_open(c, "m.example/d/pool/a.deb", &st), -ENOENT);
    CU_ASSERT_EQUAL(put(c, "m.example/d/pool/a.deb", 1000, true), 0);
    int fd = cache_open(c, "m.example/d/pool/a.deb", &st);
    CU_ASSERT(fd >= 0);
    CU_ASSERT_EQUAL(st.st_size, 1000);
    CU_ASSERT_EQUAL(st.st_mtime, 1700000000);
    close(fd);
    CU_ASSERT_EQUAL(cache_used(c), 1000);
    /* replacing a volatile file keeps one entry with the new size */
    CU_ASSERT_EQUAL(put(c, "m.example/d/dists/b/InRelease", 10, false), 0);
    CU_ASSERT_EQUAL(put(c, "m.example/d/dists/b/InRelease", 20, false), 0);
    CU_ASSERT_EQUAL(cache_count(c), 2);
    CU_ASSERT_EQUAL(cache_used(c), 1020);
    CU_ASSERT_EQUAL(cache_remove(c, "m.example/d/pool/a.deb"), 0);
    CU_ASSERT_EQUAL(cache_used(c), 20);
    cache_free(c);
    rm_dir();
}

static void test_lru_eviction(void)
{
    struct cache *c;
    struct stat st;
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 3000), 0);
    CU_ASSERT_EQUAL(put(c, "h/d/pool/1.deb", 1000, true), 0);
    CU_ASSERT_EQUAL(put(c, "h/d/pool/2.deb", 1000, true), 0);
    CU_ASSERT_EQUAL(put(c, "h/d/dists/b/Release", 500, false), 0);
    int fd = cache_open(c, "h/d/pool/1.deb", &st); /* 1 is now more recent than 2 */
    CU_ASSERT(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(put(c, "h/d/pool/3.deb", 1000, true), 0);
    CU_ASSERT(cache_used(c) <= 3000);
    CU_ASSERT_EQUAL(cache_open(c, "h/d/pool/2.deb", &st), -ENOENT); /* evicted: LRU */
    fd = cache_open(c, "h/d/pool/1.deb", &st);
    CU_ASSERT(fd >= 0);
    close(fd);
    fd = cache_open(c, "h/d/dists/b/Release", &st); /* volatile files are not evicted */
    CU_ASSERT(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(cache_make_room(c, 5000), -ENOSPC); /* larger than the cache */
    cache_free(c);
    rm_dir();
}

static void test_scan_and_debris(void)
{
    struct cache *c;
    struct stat st;
    char path[PATH_MAX + 64];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(put(c, "h.example/d/pool/a.deb", 100, true), 0);
    CU_ASSERT_EQUAL(put(c, "h.example/d/pool/b.deb", 200, true), 0);
    char tmp[PATH_MAX];
    int fd = cache_tmp_create(c, tmp, sizeof tmp); /* an unfinished download */
    CU_ASSERT(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "part", 4), 4);
    close(fd);
    cache_free(c);
    /* a file whose name url_parse would never produce is not an entry */
    snprintf(path, sizeof path, "%s/h.example/d/pool/.hidden", dir);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    CU_ASSERT(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 2);
    CU_ASSERT_EQUAL(cache_used(c), 300);
    CU_ASSERT_EQUAL(access(tmp, F_OK), -1); /* debris gone */
    fd = cache_open(c, "h.example/d/pool/b.deb", &st);
    CU_ASSERT(fd >= 0);
    close(fd);
    cache_free(c);
    /* a smaller limit at start-up evicts down to it */
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 250), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 1);
    CU_ASSERT(cache_used(c) <= 250);
    cache_free(c);
    rm_dir();
}

static void test_sha256(void)
{
    struct cache *c;
    uint8_t h[32], got[32];
    char tmp[PATH_MAX];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    memset(h, 0xab, sizeof h);
    int fd = cache_tmp_create(c, tmp, sizeof tmp);
    close(fd);
    CU_ASSERT_EQUAL(cache_commit(c, tmp, "h/d/pool/z.deb", 0, true, h), 0);
    CU_ASSERT_TRUE(cache_sha256(c, "h/d/pool/z.deb", got));
    CU_ASSERT_EQUAL(memcmp(got, h, 32), 0);
    CU_ASSERT_FALSE(cache_sha256(c, "h/d/pool/none.deb", got));
    cache_free(c);
    rm_dir();
}

static int drops_with_sha, drops;

static void on_drop(void *ud, const char *key, const uint8_t *sha256)
{
    drops++;
    drops_with_sha += sha256 != NULL;
}

/* The same content under two keys: served by hash while either is cached, and the hash
 * is handed to on_drop (unannounce) only when the last copy goes. */
static void test_same_content_twice(void)
{
    struct cache *c;
    struct stat st;
    uint8_t h[32];
    char tmp[PATH_MAX], key[256];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    cache_on_drop(c, on_drop, NULL);
    memset(h, 0x5a, sizeof h);
    for (int i = 0; i < 2; i++) {
        int fd = cache_tmp_create(c, tmp, sizeof tmp);
        CU_ASSERT_EQUAL(write(fd, "same", 4), 4);
        close(fd);
        CU_ASSERT_EQUAL(cache_commit(c, tmp, i ? "b.example/d/pool/x.deb" : "a.example/d/pool/x.deb",
                                     0, true, h), 0);
    }
    drops = drops_with_sha = 0;
    CU_ASSERT_EQUAL(cache_remove(c, "a.example/d/pool/x.deb"), 0);
    CU_ASSERT_EQUAL(drops, 1);
    CU_ASSERT_EQUAL(drops_with_sha, 0); /* b still holds it: keep announcing */
    int fd = cache_open_sha256(c, h, &st, key, sizeof key);
    CU_ASSERT(fd >= 0);
    CU_ASSERT_STRING_EQUAL(key, "b.example/d/pool/x.deb");
    close(fd);
    CU_ASSERT_EQUAL(cache_remove(c, "b.example/d/pool/x.deb"), 0);
    CU_ASSERT_EQUAL(drops_with_sha, 1);
    CU_ASSERT_EQUAL(cache_open_sha256(c, h, &st, key, sizeof key), -ENOENT);
    cache_free(c);
    rm_dir();
}

/* A key that misses gets the file of an entry with its content: one file (one inode),
 * counted once, still there when either key goes, and found again by the next scan as
 * one file. Without an entry of that content, or over an existing entry, nothing. */
static void test_link_sha256(void)
{
    struct cache *c;
    struct stat a, b;
    uint8_t h[32], other[32];
    char tmp[PATH_MAX], pa[PATH_MAX + 64], pb[PATH_MAX + 64];
    const char *ka = "one/dists/s/main/binary-amd64/by-hash/SHA256/5a", *kb = "one/dists/s/main/binary-amd64/Packages.xz";
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    memset(h, 0x5a, sizeof h);
    memset(other, 0x11, sizeof other);
    int fd = cache_tmp_create(c, tmp, sizeof tmp);
    CU_ASSERT_EQUAL(write(fd, "index body", 10), 10);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(cache_commit(c, tmp, ka, 0, true, h), 0);
    CU_ASSERT_EQUAL(cache_link_sha256(c, other, kb), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, kb));
    CU_ASSERT_EQUAL(cache_link_sha256(c, h, ka), -EEXIST);
    CU_ASSERT_EQUAL_FATAL(cache_link_sha256(c, h, kb), 0);
    CU_ASSERT(cache_has(c, kb));
    CU_ASSERT(cache_hashed(c, kb));
    CU_ASSERT_EQUAL(cache_count(c), 2);
    CU_ASSERT_EQUAL(cache_used(c), 10); /* one file */
    snprintf(pa, sizeof pa, "%s/%s", dir, ka);
    snprintf(pb, sizeof pb, "%s/%s", dir, kb);
    CU_ASSERT_EQUAL_FATAL(stat(pa, &a), 0);
    CU_ASSERT_EQUAL_FATAL(stat(pb, &b), 0);
    CU_ASSERT_EQUAL(a.st_ino, b.st_ino);
    CU_ASSERT_EQUAL(cache_check(c, kb, NULL, NULL, NULL, NULL), 0);
    cache_free(c);
    /* a scan finds one file under two names: counted once */
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 2);
    CU_ASSERT_EQUAL(cache_used(c), 10);
    CU_ASSERT_EQUAL(cache_remove(c, ka), 0);
    CU_ASSERT_EQUAL(cache_used(c), 10); /* kb still holds the bytes */
    CU_ASSERT_EQUAL(cache_remove(c, kb), 0);
    CU_ASSERT_EQUAL(cache_used(c), 0);
    cache_free(c);
    rm_dir();
}

/* Bytes that rot under one name of a linked file are found under the other too: the
 * check that drops one name has the others hashed again. */
static void test_link_damage(void)
{
    struct cache *c;
    uint8_t h[32];
    char tmp[PATH_MAX], pa[PATH_MAX + 64];
    const char *ka = "one/pool/a.deb", *kb = "two/pool/a.deb";
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    int fd = cache_tmp_create(c, tmp, sizeof tmp);
    CU_ASSERT_EQUAL(write(fd, "good bytes", 10), 10);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(cache_commit(c, tmp, ka, 0, true, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cache_check(c, ka, NULL, NULL, NULL, NULL), 0);
    cache_free(c);
    /* the digest of "good bytes", as a record would give it */
    EVP_Digest("good bytes", 10, h, NULL, EVP_sha256(), NULL);
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 1);
    cache_set_sha256(c, ka, h);
    CU_ASSERT_EQUAL_FATAL(cache_link_sha256(c, h, kb), 0);
    CU_ASSERT_FALSE(cache_hashed(c, kb)); /* the source was not hashed in this process */
    CU_ASSERT_EQUAL(cache_check(c, kb, NULL, NULL, NULL, NULL), 0);
    CU_ASSERT(cache_hashed(c, kb));
    snprintf(pa, sizeof pa, "%s/%s", dir, ka);
    fd = open(pa, O_WRONLY);
    CU_ASSERT_EQUAL(write(fd, "BAD", 3), 3); /* the same inode: both names rot */
    close(fd);
    CU_ASSERT_EQUAL(cache_check(c, ka, NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_FALSE(cache_hashed(c, kb));
    CU_ASSERT_EQUAL(cache_check(c, kb, NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_EQUAL(cache_count(c), 0);
    CU_ASSERT_EQUAL(cache_used(c), 0);
    cache_free(c);
    rm_dir();
}

/* Room for downloads is reserved as their bytes arrive: a reservation evicts only what
 * it needs, one that cannot fit evicts nothing, and reserved bytes count against
 * max_size for every later eviction until released. */
static void test_reserve(void)
{
    struct cache *c;
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 3000), 0);
    CU_ASSERT_EQUAL(put(c, "h/d/pool/1.deb", 1000, true), 0);
    CU_ASSERT_EQUAL(put(c, "h/d/pool/2.deb", 1000, true), 0);
    CU_ASSERT_EQUAL(cache_reserve(c, 1000), 0); /* fits: nothing evicted */
    CU_ASSERT_EQUAL(cache_count(c), 2);
    CU_ASSERT_EQUAL(cache_reserved(c), 1000);
    CU_ASSERT_EQUAL(cache_reserve(c, 5000), -ENOSPC); /* can never fit: nothing evicted */
    CU_ASSERT_EQUAL(cache_count(c), 2);
    CU_ASSERT_EQUAL(cache_reserve(c, 500), 0); /* evicts the least recently used */
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/1.deb"));
    CU_ASSERT_TRUE(cache_has(c, "h/d/pool/2.deb"));
    CU_ASSERT_EQUAL(cache_reserved(c), 1500);
    /* a commit next to the reservation evicts to keep both under max_size */
    CU_ASSERT_EQUAL(put(c, "h/d/pool/3.deb", 1000, true), 0);
    CU_ASSERT(cache_used(c) + cache_reserved(c) <= 3000);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/2.deb"));
    cache_release(c, 1500);
    CU_ASSERT_EQUAL(cache_reserved(c), 0);
    cache_release(c, 10); /* more than is held: none is held */
    CU_ASSERT_EQUAL(cache_reserved(c), 0);
    cache_free(c);
    rm_dir();
}

static void sha_of(const char *data, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    CU_ASSERT_FATAL(EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1);
}

/* Commits data as key with its real SHA-256 (as a verified download would). */
static void put_hashed(struct cache *c, const char *key, const char *data, bool immutable)
{
    char tmp[PATH_MAX];
    uint8_t h[32];
    int fd = cache_tmp_create(c, tmp, sizeof tmp);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
    sha_of(data, strlen(data), h);
    CU_ASSERT_EQUAL(cache_commit(c, tmp, key, 0, immutable, h), 0);
}

static void flip_byte(const char *key)
{
    char path[PATH_MAX + 300];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, key);
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    char b;
    CU_ASSERT_EQUAL(pread(fd, &b, 1, 0), 1);
    b ^= 1;
    CU_ASSERT_EQUAL(pwrite(fd, &b, 1, 0), 1);
    close(fd);
}

/* The checks of an entry in this run: its size on disk, the index's size and hash for
 * immutable files (a volatile file that differs is only outdated), the hash computed at
 * commit compared, never recomputed. */
static void test_check_sizes_and_index(void)
{
    struct cache *c;
    struct hashdb_entry e = {.size = UINT64_MAX};
    char path[PATH_MAX + 64];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    put_hashed(c, "h/d/pool/a.deb", "alpha", true);
    put_hashed(c, "h/d/pool/b.deb", "bravo", true);
    put_hashed(c, "h/d/pool/c.deb", "charlie", true);
    put_hashed(c, "h/d/dists/s/main/binary-all/Packages", "old index", false);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/none.deb", NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/a.deb", NULL, NULL, NULL, NULL), 0);
    e.have_sha256 = true;
    sha_of("alpha", 5, e.sha256);
    e.size = 5;
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/a.deb", &e, NULL, NULL, NULL), 0);
    /* the index learnt a hash the cached bytes do not have: dropped */
    sha_of("BRAVO", 5, e.sha256);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/b.deb", &e, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/b.deb"));
    snprintf(path, sizeof path, "%s/h/d/pool/b.deb", dir);
    CU_ASSERT_EQUAL(access(path, F_OK), -1);
    /* a size the index does not give: dropped without hashing */
    sha_of("charlie", 7, e.sha256);
    e.size = 302;
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/c.deb", &e, NULL, NULL, NULL), -ENOENT);
    /* a volatile file that differs from the index is left to the policy */
    CU_ASSERT_EQUAL(cache_check(c, "h/d/dists/s/main/binary-all/Packages", &e, NULL, NULL, NULL), 0);
    /* a file whose size changed on disk */
    put_hashed(c, "h/d/pool/d.deb", "delta", true);
    snprintf(path, sizeof path, "%s/h/d/pool/d.deb", dir);
    CU_ASSERT_EQUAL(truncate(path, 2), 0);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/d.deb", NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/d.deb"));
    cache_free(c);
    rm_dir();
}

/* The same checks on the entry opened once: the fd of the file checked, or nothing left
 * open; a file gone or of the wrong size drops the entry. */
static void test_check_open(void)
{
    struct cache *c;
    struct hashdb_entry e = {.size = 5, .have_sha256 = true};
    struct stat st;
    char path[PATH_MAX + 64], buf[8];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    put_hashed(c, "h/d/pool/a.deb", "alpha", true);
    put_hashed(c, "h/d/pool/b.deb", "bravo", true);
    put_hashed(c, "h/d/pool/d.deb", "delta", true);
    sha_of("alpha", 5, e.sha256);
    CU_ASSERT_EQUAL(cache_check_open(c, "h/d/pool/none.deb", &e, NULL, NULL, NULL, &st), -ENOENT);
    int fd = cache_check_open(c, "h/d/pool/a.deb", &e, NULL, NULL, NULL, &st);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(st.st_size, 5);
    CU_ASSERT_EQUAL(pread(fd, buf, sizeof buf, 0), 5);
    CU_ASSERT(memcmp(buf, "alpha", 5) == 0);
    close(fd);
    /* another hash than the index's: dropped, nothing open */
    CU_ASSERT_EQUAL(cache_check_open(c, "h/d/pool/b.deb", &e, NULL, NULL, NULL, &st), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/b.deb"));
    /* served again: the same bytes, from the file held open */
    fd = cache_check_open(c, "h/d/pool/a.deb", &e, NULL, NULL, NULL, &st);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(pread(fd, buf, sizeof buf, 0), 5);
    CU_ASSERT(memcmp(buf, "alpha", 5) == 0);
    close(fd);
    /* replaced behind the cache's back: the file now at the path, not the one held */
    char other[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/h/d/pool/a.deb", dir);
    snprintf(other, sizeof other, "%s/h/d/pool/a.new", dir);
    FILE *f = fopen(other, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("ALPHA", f);
    fclose(f);
    CU_ASSERT_EQUAL(rename(other, path), 0);
    fd = cache_check_open(c, "h/d/pool/a.deb", &e, NULL, NULL, NULL, &st);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(pread(fd, buf, sizeof buf, 0), 5);
    CU_ASSERT(memcmp(buf, "ALPHA", 5) == 0);
    close(fd);
    /* gone behind the cache's back (while held), or cut short (while held) */
    fd = cache_check_open(c, "h/d/pool/d.deb", NULL, NULL, NULL, NULL, &st);
    CU_ASSERT(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_EQUAL(cache_check_open(c, "h/d/pool/a.deb", &e, NULL, NULL, NULL, &st), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/a.deb"));
    snprintf(path, sizeof path, "%s/h/d/pool/d.deb", dir);
    CU_ASSERT_EQUAL(truncate(path, 2), 0);
    CU_ASSERT_EQUAL(cache_check_open(c, "h/d/pool/d.deb", NULL, NULL, NULL, NULL, &st), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/d.deb"));
    cache_free(c);
    rm_dir();
}

/* After a restart: entries come from the scan with the hash recorded at store time;
 * their bytes are hashed once, on the calling thread here (no checker), and a flipped
 * byte drops the entry. Peers are served only hashed entries. */
static void test_check_after_restart(void)
{
    struct cache *c;
    struct stat st;
    uint8_t ha[32], hb[32];
    make_dir();
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    put_hashed(c, "h/d/pool/a.deb", "alpha", true);
    put_hashed(c, "h/d/pool/b.deb", "bravo", true);
    cache_free(c);
    flip_byte("h/d/pool/b.deb");
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 2);
    sha_of("alpha", 5, ha);
    sha_of("bravo", 5, hb);
    cache_set_sha256(c, "h/d/pool/a.deb", ha); /* what catalogue_restore does */
    cache_set_sha256(c, "h/d/pool/b.deb", hb);
    CU_ASSERT_FALSE(cache_hashed(c, "h/d/pool/a.deb"));
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/a.deb", NULL, NULL, NULL, NULL), 0);
    CU_ASSERT_TRUE(cache_hashed(c, "h/d/pool/a.deb"));
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/b.deb", NULL, NULL, NULL, NULL), -ENOENT);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/b.deb"));
    CU_ASSERT_EQUAL(cache_open_sha256(c, hb, &st, NULL, 0), -ENOENT);
    int fd = cache_open_sha256(c, ha, &st, NULL, 0);
    CU_ASSERT(fd >= 0);
    close(fd);
    cache_free(c);
    rm_dir();
}

static struct {
    struct loop *loop;
    int done;
    struct loop_timer guard; /* ends a slice of loop_run */
} ck;

static void on_checked(void *ud)
{
    ck.done++;
    loop_stop(ck.loop);
}

static void on_ck_guard(struct loop *l, struct loop_timer *t, void *ud)
{
    loop_stop(l);
}

/* Runs the loop in 10 ms slices until no check is pending (10 s at most). */
static void run_until_checked(struct cache *c)
{
    for (int i = 0; i < 1000 && cache_checks_pending(c) > 0; i++) {
        CU_ASSERT_EQUAL(loop_timer_start(ck.loop, &ck.guard, 10), 0);
        CU_ASSERT_EQUAL(loop_run(ck.loop), 0);
        loop_timer_stop(ck.loop, &ck.guard);
    }
    CU_ASSERT_EQUAL(cache_checks_pending(c), 0);
}

/* With the checker thread: the check answers -EINPROGRESS, calls back on the loop once
 * the hash is known, and the next check has the verdict; a cancelled wait is never
 * called; a peer asking for an unhashed entry gets -EAGAIN until it is hashed. */
static void test_check_on_thread(void)
{
    struct cache *c;
    struct cache_wait *w = NULL;
    struct stat st;
    uint8_t ha[32], hb[32];
    memset(&ck, 0, sizeof ck);
    loop_timer_init(&ck.guard, on_ck_guard, NULL);
    make_dir();
    CU_ASSERT_EQUAL_FATAL(loop_new(&ck.loop), 0);
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    put_hashed(c, "h/d/pool/a.deb", "alpha", true);
    put_hashed(c, "h/d/pool/b.deb", "bravo", true);
    put_hashed(c, "h/d/pool/p.deb", "papa", true);
    cache_free(c);
    flip_byte("h/d/pool/b.deb");
    CU_ASSERT_EQUAL_FATAL(cache_new(&c, dir, 1 << 20), 0);
    CU_ASSERT_EQUAL(cache_scan(c), 3);
    CU_ASSERT_EQUAL_FATAL(cache_start_checker(c, ck.loop), 0);
    sha_of("alpha", 5, ha);
    sha_of("bravo", 5, hb);
    cache_set_sha256(c, "h/d/pool/a.deb", ha);
    cache_set_sha256(c, "h/d/pool/b.deb", hb);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/a.deb", NULL, on_checked, NULL, &w), -EINPROGRESS);
    CU_ASSERT_PTR_NOT_NULL(w);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/b.deb", NULL, on_checked, NULL, &w), -EINPROGRESS);
    cache_wait_cancel(w); /* this one stops waiting: never called */
    run_until_checked(c);
    CU_ASSERT_EQUAL(ck.done, 1);
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/a.deb", NULL, on_checked, NULL, &w), 0);
    CU_ASSERT_FALSE(cache_has(c, "h/d/pool/b.deb")); /* dropped even though nobody waited */
    /* a peer: the index-free entry p has a record, so it is hashed before it is shared */
    uint8_t hp[32];
    sha_of("papa", 4, hp);
    cache_set_sha256(c, "h/d/pool/p.deb", hp);
    CU_ASSERT_EQUAL(cache_open_sha256(c, hp, &st, NULL, 0), -EAGAIN);
    run_until_checked(c);
    int fd = cache_open_sha256(c, hp, &st, NULL, 0);
    CU_ASSERT(fd >= 0);
    close(fd);
    /* a check in flight when the cache goes: nothing leaks, nothing is called */
    flip_byte("h/d/pool/p.deb");
    cache_set_sha256(c, "h/d/pool/p.deb", ha); /* a different record: checked again */
    CU_ASSERT_EQUAL(cache_check(c, "h/d/pool/p.deb", NULL, on_checked, NULL, &w), -EINPROGRESS);
    cache_free(c);
    CU_ASSERT_EQUAL(ck.done, 1);
    loop_free(ck.loop);
    rm_dir();
}

static void count_cb(const char *k, void *v, void *ud)
{
    (*(int *)ud)++;
}

static void test_strmap(void)
{
    struct strmap *m;
    static char keys[3000][16];
    void *old;
    int n = 0;
    CU_ASSERT_EQUAL_FATAL(strmap_new(&m), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        CU_ASSERT_EQUAL(strmap_put(m, keys[i], keys[i], &old), 0);
        CU_ASSERT_PTR_NULL(old);
    }
    CU_ASSERT_EQUAL(strmap_count(m), 3000);
    CU_ASSERT_PTR_EQUAL(strmap_get(m, "k1234"), keys[1234]);
    CU_ASSERT_EQUAL(strmap_put(m, keys[5], keys[6], &old), 0);
    CU_ASSERT_PTR_EQUAL(old, keys[5]);
    CU_ASSERT_PTR_EQUAL(strmap_del(m, "k7"), keys[7]);
    CU_ASSERT_PTR_NULL(strmap_get(m, "k7"));
    CU_ASSERT_PTR_NULL(strmap_del(m, "k7"));
    strmap_each(m, count_cb, &n);
    CU_ASSERT_EQUAL(n, 2999);
    strmap_free(m, NULL);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"commit and open", test_commit_open}, {"LRU eviction", test_lru_eviction},
        {"scan and debris", test_scan_and_debris}, {"sha256", test_sha256},
        {"strmap", test_strmap}, {"same content twice", test_same_content_twice},
        {"reserve", test_reserve}, {"check: sizes and the index", test_check_sizes_and_index},
        {"check: after a restart", test_check_after_restart},
        {"check: the entry opened once", test_check_open},
        {"check: on the checker thread", test_check_on_thread},
        {"one file per content: links", test_link_sha256},
        {"one file per content: damage under one name", test_link_damage},
        {NULL, NULL},
    };
    return unit_run("cache", cases);
}

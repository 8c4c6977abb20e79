/* test_cache.c - cache commit, lookup, LRU eviction, start-up scan and debris removal. */
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
#include "apt-dht-proxy/cache.h"
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
        {NULL, NULL},
    };
    return unit_run("cache", cases);
}

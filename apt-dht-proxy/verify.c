/* verify.c - `apt-dht-proxy verify` (see verify.h for the model).
 *
 * The cache is indexed without being changed (cache_scan_only: a running daemon's
 * unfinished downloads in .tmp/ stay), the records of what was stored come from the hash
 * index as at the daemon's start (catalogue_restore does the same), and each entry goes
 * through cache_check with what the index says of it. No checker thread is started, so
 * each check hashes on this thread, one file after another. */
#include "aptdht-config.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/url.h"
#include "apt-dht-proxy/verify.h"

struct tally {
    struct hashdb *db; /* NULL: there is no hash index yet */
    char **keys;
    size_t n, cap;
    int err;
    size_t checked, failed, unchecked;
};

static void collect(void *ud, const char *key, uint64_t size, bool immutable,
                    const uint8_t *sha256)
{
    struct tally *t = ud;
    if (t->err)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **p = realloc(t->keys, cap * sizeof *p);
        if (!p) {
            t->err = -ENOMEM;
            return;
        }
        t->keys = p;
        t->cap = cap;
    }
    if (!(t->keys[t->n] = strdup(key)))
        t->err = -ENOMEM;
    else
        t->n++;
}

/* A file that fails leaves the hash index's record of it too. */
static void on_drop(void *ud, const char *key, const uint8_t *sha256)
{
    struct tally *t = ud;
    if (t->db)
        hashdb_cached_del(t->db, key);
}

/* What the index says key must be (as the daemon's lookup: the index's entry, else the
 * hash a by-hash name carries). */
static bool expectation(struct tally *t, const char *key, struct hashdb_entry *e)
{
    memset(e, 0, sizeof *e);
    if (t->db && hashdb_lookup(t->db, key, e) == 0 && (e->have_sha256 || e->have_sha1))
        return true;
    memset(e, 0, sizeof *e);
    if (url_by_hash_sha256(key, e->sha256)) {
        e->size = UINT64_MAX;
        e->have_sha256 = true;
        return true;
    }
    return false;
}

static void check_one(struct tally *t, struct cache *c, const char *key)
{
    uint8_t h[32];
    uint64_t size;
    struct hashdb_entry e;
    struct stat st;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", cache_dir(c), key);
    bool recorded = t->db && hashdb_cached_get(t->db, key, &size, h) == 0;
    if (recorded && stat(path, &st) == 0 && (uint64_t)st.st_size != size) {
        log_warn("cache: %s has %llu bytes, not the %llu it was stored with; dropped", key,
                 (unsigned long long)st.st_size, (unsigned long long)size);
        cache_remove(c, key);
        t->failed++;
        return;
    }
    if (recorded)
        cache_set_sha256(c, key, h);
    bool known = expectation(t, key, &e);
    if (cache_check(c, key, known ? &e : NULL, NULL, NULL, NULL) == -ENOENT) {
        t->failed++; /* logged and dropped by the check */
        return;
    }
    if (cache_hashed(c, key))
        t->checked++;
    else
        t->unchecked++;
}

static int open_db(const struct config *cfg, struct hashdb **db)
{
    char path[PATH_MAX];
    struct stat st;
    *db = NULL;
    snprintf(path, sizeof path, "%s/hashes.db", cfg->state_dir);
    if (stat(path, &st) < 0) {
        log_warn("verify: no hash index at %s: only sizes can be checked", path);
        return 0;
    }
    int r = hashdb_open(db, path);
    if (r < 0)
        log_error("verify: hash index %s: %s", path, strerror(-r));
    return r;
}

long verify_cache(const struct config *cfg, FILE *out)
{
    struct cache *c = NULL;
    struct tally t = {0};
    long r = cache_new(&c, cfg->cache_dir, cfg->cache_max_size);
    if (r < 0) {
        log_error("verify: cache dir %s: %s", cfg->cache_dir, strerror((int)-r));
        goto done;
    }
    if ((r = open_db(cfg, &t.db)) < 0)
        goto done;
    if ((r = cache_scan_only(c)) < 0) {
        log_error("verify: scan of %s: %s", cfg->cache_dir, strerror((int)-r));
        goto done;
    }
    cache_on_drop(c, on_drop, &t);
    cache_each(c, collect, &t);
    if ((r = t.err) < 0)
        goto done;
    for (size_t i = 0; i < t.n; i++)
        check_one(&t, c, t.keys[i]);
    fprintf(out, "verify: %zu files in %s: %zu checked, %zu failed and dropped, %zu without a "
                 "known hash (size only)\n",
            t.n, cfg->cache_dir, t.checked, t.failed, t.unchecked);
    r = (long)t.failed;
done:
    for (size_t i = 0; i < t.n; i++)
        free(t.keys[i]);
    free(t.keys);
    cache_free(c);
    hashdb_free(t.db);
    return r;
}

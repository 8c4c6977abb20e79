/* catalogue.c - cache membership and its side effects: hash index rows, DHT announcements,
 * index parsing. See catalogue.h for the model. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/url.h"

struct catalogue {
    struct cache *cache;
    struct hashdb *db;    /* NULL: no hash knowledge */
    struct indexer *ix;   /* NULL: indices are not parsed */
    struct p2p *p2p;      /* NULL: not sharing */
};

/* A file left the cache: forget its hash and stop announcing it. */
static void on_drop(void *ud, const char *key, const uint8_t *sha256)
{
    struct catalogue *cat = ud;
    if (cat->db)
        hashdb_cached_del(cat->db, key);
    if (cat->p2p && sha256)
        p2p_unannounce(cat->p2p, sha256);
}

int catalogue_new(struct catalogue **out, struct cache *c, struct hashdb *db,
                  struct indexer *ix)
{
    struct catalogue *cat = calloc(1, sizeof *cat);
    if (!cat)
        return -ENOMEM;
    cat->cache = c;
    cat->db = db;
    cat->ix = ix;
    cache_on_drop(c, on_drop, cat);
    *out = cat;
    return 0;
}

void catalogue_set_p2p(struct catalogue *cat, struct p2p *p2p)
{
    cat->p2p = p2p;
}

void catalogue_free(struct catalogue *cat)
{
    if (!cat)
        return;
    cache_on_drop(cat->cache, NULL, NULL);
    free(cat);
}

/* What kind of index key is, by name or, for by-hash copies, by their directory. */
static enum index_kind kind_of(const char *key)
{
    enum index_kind k = index_kind_of(key);
    uint8_t h[32];
    if (k != INDEX_NONE || !url_by_hash_sha256(key, h))
        return k;
    if (strstr(key, "/source/by-hash/"))
        return INDEX_SOURCES;
    if (strstr(key, "/binary-"))
        return INDEX_PACKAGES;
    return INDEX_NONE;
}

static void parse_index(struct catalogue *cat, const char *key, const char *path)
{
    enum index_kind k = kind_of(key);
    if (k == INDEX_NONE)
        return;
    if (k == INDEX_RELEASE && cat->db) {
        /* small, and what apt asks next depends on it: parsed before the next request */
        struct index_stats is = {0};
        int r = index_parse_file(cat->db, key, k, path, &is);
        if (r < 0)
            log_warn("index %s: %s", key, strerror(-r));
        else
            log_debug("index %s: %zu records", key, is.records);
    } else if (cat->ix) {
        int r = indexer_submit(cat->ix, key, k, path);
        if (r < 0)
            log_warn("index %s: not queued: %s", key, strerror(-r));
    }
}

void catalogue_added(struct catalogue *cat, const char *key, const char *path,
                     const uint8_t sha256[32])
{
    struct stat st;
    if (cat->db && stat(path, &st) == 0)
        hashdb_cached_put(cat->db, key, (uint64_t)st.st_size, sha256);
    if (cat->p2p && url_classify(key) == URL_IMMUTABLE)
        p2p_announce(cat->p2p, sha256);
    parse_index(cat, key, path);
}

struct restore_ctx {
    struct catalogue *cat;
    size_t known, announced;
};

static void restore_entry(void *ud, const char *key, uint64_t size, bool immutable,
                          const uint8_t *sha)
{
    struct restore_ctx *x = ud;
    uint8_t h[32];
    uint64_t sz;
    if (!x->cat->db || hashdb_cached_get(x->cat->db, key, &sz, h) != 0 || sz != size)
        return;
    cache_set_sha256(x->cat->cache, key, h);
    x->known++;
    if (x->cat->p2p && immutable) {
        p2p_announce(x->cat->p2p, h);
        x->announced++;
    }
}

void catalogue_restore(struct catalogue *cat, size_t *known, size_t *announced)
{
    struct restore_ctx x = {cat, 0, 0};
    cache_each(cat->cache, restore_entry, &x);
    *known = x.known;
    *announced = x.announced;
}

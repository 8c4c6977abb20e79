/* negcache.c - recent mirror 404s in a string map, each with its expiry (see negcache.h). */
#include "aptdht-config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/negcache.h"
#include "apt-dht-proxy/strmap.h"

struct neg_entry {
    uint64_t expires_ms;
    char key[]; /* the map's key points here */
};

struct negcache {
    struct strmap *map; /* key -> struct neg_entry */
    uint32_t ttl_s;
};

int negcache_new(struct negcache **out, uint32_t ttl_s)
{
    struct negcache *n = calloc(1, sizeof *n);
    if (!n || strmap_new(&n->map) < 0) {
        free(n);
        return -ENOMEM;
    }
    n->ttl_s = ttl_s;
    *out = n;
    return 0;
}

static void free_entry(void *v)
{
    free(v);
}

void negcache_free(struct negcache *n)
{
    if (!n)
        return;
    strmap_free(n->map, free_entry);
    free(n);
}

void negcache_set_ttl(struct negcache *n, uint32_t ttl_s)
{
    n->ttl_s = ttl_s;
}

void negcache_add(struct negcache *n, const char *key, uint64_t now_ms)
{
    if (n->ttl_s == 0 || strmap_count(n->map) >= NEGCACHE_MAX)
        return;
    size_t kl = strlen(key);
    struct neg_entry *e = malloc(sizeof *e + kl + 1), *old = NULL;
    if (!e)
        return;
    memcpy(e->key, key, kl + 1);
    e->expires_ms = now_ms + (uint64_t)n->ttl_s * 1000u;
    if (strmap_put(n->map, e->key, e, (void **)&old) < 0)
        free(e);
    free(old);
}

bool negcache_has(struct negcache *n, const char *key, uint64_t now_ms)
{
    struct neg_entry *e = strmap_get(n->map, key);
    if (!e)
        return false;
    if (e->expires_ms > now_ms)
        return true;
    strmap_del(n->map, key);
    free(e);
    return false;
}

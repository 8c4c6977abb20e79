/* negcache.h - the negative cache: which keys the mirror recently answered 404 for, so
 * that apt's repeated probes (a missing Translation, an absent by-hash name) do not each
 * cost an upstream round trip. Entries expire after cache.negative_ttl seconds; the map
 * is bounded (past its size, nothing more is remembered). Times are the caller's clock,
 * in milliseconds, so tests need no real time. */
#ifndef APT_DHT_NEGCACHE_H
#define APT_DHT_NEGCACHE_H

#include <stdbool.h>
#include <stdint.h>

#define NEGCACHE_MAX 100000 /* entries */

struct negcache;

/* ttl_s 0 remembers nothing. 0 or -ENOMEM. */
int negcache_new(struct negcache **out, uint32_t ttl_s);
void negcache_free(struct negcache *n);
/* A reload: new entries live ttl_s; existing ones keep their expiry. */
void negcache_set_ttl(struct negcache *n, uint32_t ttl_s);

/* Remembers that key was not found, at now_ms. */
void negcache_add(struct negcache *n, const char *key, uint64_t now_ms);
/* True if key was not found within the TTL; an expired entry is dropped. */
bool negcache_has(struct negcache *n, const char *key, uint64_t now_ms);

#endif

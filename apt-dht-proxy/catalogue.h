/* catalogue.h - the one owner of "a file entered or left the cache".
 *
 * When a verified download is committed, the catalogue records its size and SHA-256 in
 * the hash index, announces it to the DHT when it is shareable, and hands an index file
 * to the parsers. When a file leaves the cache (eviction, replacement), it forgets the
 * record and stops announcing. At start-up it does the same for what the cache scan
 * found. So these side effects have one home, whether the daemon is running or starting. */
#ifndef APT_DHT_CATALOGUE_H
#define APT_DHT_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct catalogue;
struct hashdb;
struct indexer;
struct loop;
struct p2p;

/* db and ix may be NULL (no hash knowledge). Registers itself for the cache's drops.
 * 0 or -ENOMEM. */
int catalogue_new(struct catalogue **out, struct cache *c, struct hashdb *db,
                  struct indexer *ix);
/* Attaches the DHT node (NULL detaches it). */
void catalogue_set_p2p(struct catalogue *cat, struct p2p *p2p);
/* Unregisters from the cache and frees. Accepts NULL. */
void catalogue_free(struct catalogue *cat);

/* A verified download was committed as key; path is its file, sha256 its content's. */
void catalogue_added(struct catalogue *cat, const char *key, const char *path,
                     const uint8_t sha256[32]);

/* A request for key missed, and its content is known to be sha256: makes key a cache
 * entry if the cache holds that content under another key (one file for both, see
 * cache_link_sha256), or if a complete file was put at key from outside the daemon
 * (`apt-dht-proxy import`: it is checked against sha256 before it is served). Records it
 * as catalogue_added does; an index is parsed unless the hash index already has this
 * content of it. True when key is an entry now. */
bool catalogue_adopt(struct catalogue *cat, const char *key, const uint8_t sha256[32]);

/* apt asked for key: when it is an index, its suite is in use. Recorded in the hash
 * index (through the indexer) at most once a minute per index. */
void catalogue_index_asked(struct catalogue *cat, const char *key);

/* Expiry by reference: every keep_s / 8 (1 s to 1 h), the indexer sweeps the hash index
 * (hashdb_sweep) and the files it finds that no index seen within keep_s lists are
 * removed, logged with the space freed. keep_s 0 = never (stops it). Called at start
 * and on reload. 0 or a negative errno. */
int catalogue_set_expiry(struct catalogue *cat, struct loop *l, uint32_t keep_s);
/* Files removed and bytes freed by expiry since the catalogue was made. */
void catalogue_expiry_stats(const struct catalogue *cat, uint64_t *files, uint64_t *bytes);

/* Start-up: every cached file whose recorded size still matches gets its SHA-256 back,
 * and the shareable ones are announced; cached indices whose last parse did not finish
 * are parsed again (see catalogue.c). Counts into *known and *announced. */
void catalogue_restore(struct catalogue *cat, size_t *known, size_t *announced);

#endif

/* cache.h - the file cache: DIR/<cache key> holds complete files only.
 *
 * A download is written to a temp file in DIR/.tmp/ and becomes an entry by rename(2)
 * once it is complete (and verified where the hash is known); so an entry is never
 * partial, even after kill -9, and DIR/.tmp/ is emptied at start-up. Sizes are kept in
 * memory with an LRU list; when the total passes max_size, least recently used
 * immutable files are evicted. Keys are validated by url.h, so they are safe relative
 * paths. All calls are from the event-loop thread. */
#ifndef APT_DHT_CACHE_H
#define APT_DHT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

struct cache;

/* Creates DIR and DIR/.tmp if missing. 0 or a negative errno. */
int cache_new(struct cache **out, const char *dir, uint64_t max_size);
void cache_free(struct cache *c);

/* Empties DIR/.tmp and indexes every file under DIR (LRU order from atime), then evicts
 * down to max_size. Returns the number of entries, or a negative errno. */
long cache_scan(struct cache *c);

void cache_set_max_size(struct cache *c, uint64_t max_size);
uint64_t cache_used(const struct cache *c);
size_t cache_count(const struct cache *c);
const char *cache_dir(const struct cache *c);
uint64_t cache_max_size(const struct cache *c);
/* Entries evicted to make room since the cache was made. */
uint64_t cache_evictions(const struct cache *c);

/* Opens the entry for reading (O_RDONLY|O_CLOEXEC) and marks it used. Returns the fd,
 * -ENOENT (no such entry; a file removed behind the cache's back is forgotten), or another
 * negative errno (EMFILE...: the entry is kept). st receives its fstat. */
int cache_open(struct cache *c, const char *key, struct stat *st);

/* Creates a new temp file; writes its path into path (size >= PATH_MAX). Returns the fd
 * (O_RDWR) or a negative errno. */
int cache_tmp_create(struct cache *c, char *path, size_t pathlen);

/* Evicts LRU immutable entries until bytes more fit under max_size. Returns 0 if they
 * fit, -ENOSPC if they cannot (the file is larger than the whole cache). */
int cache_make_room(struct cache *c, uint64_t bytes);

/* Moves the complete temp file into place as key. mtime (if > 0) is set on the file (the
 * upstream Last-Modified, used for revalidation); sha256 (or NULL) is the content's
 * digest, computed while it arrived. Creates directories as needed.
 * Returns 0 or a negative errno; on failure the temp file is removed. */
int cache_commit(struct cache *c, const char *tmp_path, const char *key, time_t mtime,
                 bool immutable, const uint8_t *sha256);

/* True if key is an entry (a commit may have had to evict it again at once). */
bool cache_has(const struct cache *c, const char *key);

/* The SHA-256 of an entry's content if it was computed when it was stored (entries found
 * by the start-up scan have none until re-downloaded). true and out filled, or false. */
bool cache_sha256(const struct cache *c, const char *key, uint8_t out[32]);

/* Records the SHA-256 of an entry found by the start-up scan (from the hash index). */
void cache_set_sha256(struct cache *c, const char *key, const uint8_t sha256[32]);

/* Opens the entry whose content has this SHA-256 (for peers); like cache_open. The key is
 * copied into key_out (may be NULL). Returns the fd or -ENOENT. */
int cache_open_sha256(struct cache *c, const uint8_t sha256[32], struct stat *st, char *key_out,
                      size_t keylen);

/* Calls fn for every entry. sha256 is NULL when unknown. fn must not change the cache. */
void cache_each(struct cache *c,
                void (*fn)(void *ud, const char *key, uint64_t size, bool immutable,
                           const uint8_t *sha256),
                void *ud);

/* Called for every entry that leaves the cache (eviction, removal, replacement). */
void cache_on_drop(struct cache *c, void (*fn)(void *ud, const char *key, const uint8_t *sha256),
                   void *ud);

/* Removes an entry (file and index). 0 or -ENOENT. */
int cache_remove(struct cache *c, const char *key);

#endif

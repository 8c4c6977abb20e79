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
#include "apt-dht-proxy/hashdb.h"

struct cache;
struct cache_wait;
struct loop;

/* Creates DIR and DIR/.tmp if missing. 0 or a negative errno. */
int cache_new(struct cache **out, const char *dir, uint64_t max_size);
void cache_free(struct cache *c);

/* Empties DIR/.tmp and indexes every file under DIR (LRU order from atime), then evicts
 * down to max_size. Returns the number of entries, or a negative errno. */
long cache_scan(struct cache *c);
/* The same index without touching anything: DIR/.tmp and max_size are left alone (for
 * `apt-dht-proxy verify`, which may run beside the daemon). */
long cache_scan_only(struct cache *c);

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

/* Evicts LRU immutable entries until bytes more fit under max_size, counting what
 * downloads have reserved. Returns 0 if they fit, -ENOSPC if they cannot (nothing is
 * evicted when bytes plus the reservations exceed the whole cache). */
int cache_make_room(struct cache *c, uint64_t bytes);

/* A download in progress takes room as its bytes arrive, a chunk at a time: evicts as
 * cache_make_room does, then counts bytes as reserved until cache_release. 0, or -ENOSPC
 * with nothing reserved. cache_reserved is the total held. */
int cache_reserve(struct cache *c, uint64_t bytes);
void cache_release(struct cache *c, uint64_t bytes);
uint64_t cache_reserved(const struct cache *c);

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

/* True if this process computed the entry's SHA-256 from its bytes (at commit, or in
 * cache_check), rather than having it from a record. */
bool cache_hashed(const struct cache *c, const char *key);

/* Records the SHA-256 of an entry found by the start-up scan (from the hash index). */
void cache_set_sha256(struct cache *c, const char *key, const uint8_t sha256[32]);

/* Opens the entry whose content has this SHA-256 (for peers); like cache_open. The key is
 * copied into key_out (may be NULL). Returns the fd or -ENOENT. An entry whose bytes
 * this process has not hashed yet is not opened: its check starts in the background and
 * -EAGAIN is returned meanwhile (the peer asks another holder). */
int cache_open_sha256(struct cache *c, const uint8_t sha256[32], struct stat *st, char *key_out,
                      size_t keylen);

/* Makes key an entry with the content some entry already has (its SHA-256 is sha256): a
 * hard link to that file, counted once in cache_used. The new entry is hashed if the
 * source was. 0, -ENOENT (no entry has that content), -EEXIST (key is an entry), or
 * link(2)'s negative errno (then key is a miss, as before). */
int cache_link_sha256(struct cache *c, const uint8_t sha256[32], const char *key);

/* True if some entry has this content (the test cache_link_sha256 makes, changing nothing). */
bool cache_has_sha256(const struct cache *c, const uint8_t sha256[32]);

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

/* ---- checks before an entry is served ----
 *
 * cache_check: is the entry key still what it should be? expect (or NULL) is what the
 * hash index says of the file now; it binds immutable entries only (a volatile file that
 * differs from its index is outdated, which the policy handles). In order:
 *  - its size on disk against the size it was stored with, and against expect's size;
 *  - its SHA-256, when this process has not hashed its bytes itself (an entry found by
 *    the start-up scan) and there is a hash to compare with (the one recorded when it
 *    was stored, or expect's): hashed once, on the checker thread;
 *  - the hash it has (computed at commit or by that check) against expect's.
 * Returns 0: serve it. -ENOENT: there is no such entry, or it failed and has been dropped
 * (logged; the next decision fetches it again). -EINPROGRESS: its hash is being computed;
 * done(ud) is called on the loop when it is known (the wait and its handle *w end then)
 * and the caller asks again; cache_wait_cancel(*w) if it stops waiting first (*w may be
 * NULL without memory for a waiter: then ask again later). Another negative errno: the
 * file could not be looked at. When a hash cannot be computed (EMFILE...) the entry is
 * served unchecked for a minute and logged.
 *
 * Without cache_start_checker (the unit tests, `apt-dht-proxy verify`) the hash is
 * computed on the calling thread and -EINPROGRESS is never returned. */
int cache_check(struct cache *c, const char *key, const struct hashdb_entry *expect,
                void (*done)(void *ud), void *ud, struct cache_wait **w);
/* cache_check on the entry's file opened for serving: the fd (the caller's to close) and
 * *st when it passed, else cache_check's negative answer (nothing left open). A hit is
 * checked and served from one open. The files of the entries served last (a sixteenth
 * of the open-file limit, at most 64) stay open in the cache, and a hit on one gets a
 * duplicate of its descriptor (dup(2): it shares the file offset, so read it with
 * pread(2) or sendfile(2) with an offset only) as long as the file is still linked;
 * one removed or replaced behind the cache's back is opened by its path again. */
int cache_check_open(struct cache *c, const char *key, const struct hashdb_entry *expect,
                     void (*done)(void *ud), void *ud, struct cache_wait **w, struct stat *st);
void cache_wait_cancel(struct cache_wait *w); /* accepts NULL */

/* Starts the checker thread, its results delivered on l. 0 or a negative errno. Before
 * the loop is freed, cache_free must have run. */
int cache_start_checker(struct cache *c, struct loop *l);
/* Hashes queued or running on the checker thread. */
unsigned cache_checks_pending(const struct cache *c);

#endif

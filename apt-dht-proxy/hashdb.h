/* hashdb.h - what apt-dht knows about files it has not necessarily seen yet: for each
 * archive path, the size and hash that the signed indices say it must have. Learnt from
 * the indices that pass through the proxy (index.h), kept in SQLite in the state dir so
 * it survives restarts.
 *
 * A key is the canonical cache key of a file: "HOST[:PORT]/path/without/leading/slash",
 * e.g. "mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb" (see url.h).
 *
 * One struct hashdb is one SQLite connection and must be used by one thread at a time;
 * open one per thread (the loop reads, the indexer thread writes; WAL mode). */
#ifndef APT_DHT_HASHDB_H
#define APT_DHT_HASHDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hashdb;

struct hashdb_entry {
    uint64_t size;          /* bytes; UINT64_MAX = unknown */
    bool have_sha256;
    uint8_t sha256[32];
    bool have_sha1;         /* old archives list only SHA-1 */
    uint8_t sha1[20];
};

/* Opens (creating if needed) the database file (":memory:" = a private in-memory db).
 * 0 or a negative errno (-EIO on SQLite errors, -EBUSY if locked past the busy timeout,
 * -ENOTSUP for a schema newer than this build knows). Other functions return -EIO for
 * SQLite errors and -EBUSY for lock timeouts too. */
int hashdb_open(struct hashdb **out, const char *path);
void hashdb_free(struct hashdb *db);

/* 0 and *out filled, -ENOENT if the key is unknown, other negative errno on failure. */
int hashdb_lookup(struct hashdb *db, const char *key, struct hashdb_entry *out);

/* Inserts or replaces one entry. -EINVAL for an empty key or a size above INT64_MAX
 * (other than UINT64_MAX = unknown). */
int hashdb_put(struct hashdb *db, const char *key, const struct hashdb_entry *e);

/* Like hashdb_put, and remembers that the entry was learnt by name from the Release file
 * whose key is origin (NULL = no origin, as hashdb_put). Used by the index parsers. */
int hashdb_put_origin(struct hashdb *db, const char *key, const struct hashdb_entry *e,
                      const char *origin);

/* Forgets every entry whose origin is this Release key: a fresh parse of a Release first
 * drops what the previous version promised, so a lookup by name always answers what the
 * latest parsed Release says (or -ENOENT if it no longer lists the file). Returns the
 * number of entries removed or a negative errno. */
int hashdb_forget_origin(struct hashdb *db, const char *origin);

/* What this host's cache holds: key -> (size, SHA-256 computed when it was stored).
 * put replaces; get returns 0 or -ENOENT; del returns 0 whether or not the key was there. */
int hashdb_cached_put(struct hashdb *db, const char *key, uint64_t size, const uint8_t sha256[32]);
int hashdb_cached_get(struct hashdb *db, const char *key, uint64_t *size, uint8_t sha256[32]);
int hashdb_cached_del(struct hashdb *db, const char *key);

/* Batches: many puts between begin and commit are one transaction (fast for a Packages file). */
int hashdb_begin(struct hashdb *db);
int hashdb_commit(struct hashdb *db);
int hashdb_rollback(struct hashdb *db);

#endif

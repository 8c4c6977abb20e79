/* hashdb.h - what apt-dht knows about files it has not necessarily seen yet: for each
 * archive path, the size and hash that the signed indices say it must have. Learnt from
 * the indices that pass through the proxy (index.h), kept in SQLite in the state dir so
 * it survives restarts.
 *
 * A key is the canonical cache key of a file: "HOST[:PORT]/path/without/leading/slash",
 * e.g. "mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb" (see url.h).
 *
 * One struct hashdb is one SQLite connection and must be used by one thread at a time;
 * open one per thread. There are two kinds (WAL mode): the event loop's (hashdb_open),
 * which never waits on a lock (a busy database answers -EBUSY at once), and the writer's
 * (hashdb_open_writer, the indexer thread's), which waits up to HASHDB_WRITER_BUSY_MS and
 * keeps the WAL small (hashdb_checkpoint). Bulk writes go through the writer:
 * a loop that waited on the writer's lock would stall every client.
 *
 * An index's entries are written through a stage (a private temporary table): the parse
 * fills it without holding the database's write lock, and one short transaction merges
 * it, writing only the rows that changed and removing the rows the previous version of
 * the same index listed and this one does not. So the database holds one version of
 * each index, and a parse that fails leaves the database as it was. */
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

/* How long the writer's connection waits for a lock another connection holds (the loop's
 * short merges, a checkpoint) before it gives up with -EBUSY. */
#define HASHDB_WRITER_BUSY_MS 5000

/* Opens (creating if needed) the database file (":memory:" = a private in-memory db) as
 * the event loop's connection: once open, a lock held by another connection is -EBUSY at
 * once. Creating or upgrading the schema may wait up to HASHDB_WRITER_BUSY_MS, once.
 * 0 or a negative errno (-EIO on SQLite errors, -EBUSY if locked, -ENOTSUP for a schema
 * newer than this build knows). Other functions return -EIO for SQLite errors and
 * -EBUSY for a lock they could not get too. */
int hashdb_open(struct hashdb **out, const char *path);
/* The same as the writer's connection: waits up to HASHDB_WRITER_BUSY_MS for a lock, and
 * starts the WAL (see hashdb_checkpoint). */
int hashdb_open_writer(struct hashdb **out, const char *path);
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

/* Forgets every entry whose origin is this name: those of hashdb_put_origin, and those a
 * stage committed under the name (hashdb_stage_commit). Returns the number of entries
 * removed or a negative errno. */
int hashdb_forget_origin(struct hashdb *db, const char *origin);

/* ---- staging one index ---- */

struct hashdb_stage;

/* Starts a stage on db (at most a few per connection at a time). It holds no lock on the
 * database while it fills. 0, -ENOMEM, -EIO. */
int hashdb_stage_new(struct hashdb *db, struct hashdb_stage **out);
/* Adds (or replaces, for a repeated key) one entry; same checks as hashdb_put. */
int hashdb_stage_put(struct hashdb_stage *st, const char *key, const struct hashdb_entry *e);
/* A stage fills inside a transaction of its own connection (on its private table only).
 * pause ends it, so the connection may run other statements and transactions (another
 * stage's commit, hashdb_cached_put...); the next put opens another. 0 or -EIO. */
int hashdb_stage_pause(struct hashdb_stage *st);
/* Merges the stage as the whole content of the index called name (an index's lasting
 * name, see index_origin), in one write transaction: entries the index listed before and
 * does not list now are removed, new or changed ones written, and the index's record
 * (hashdb_index_get) set to (sha256, 0, records). sha256 is the content's digest (NULL =
 * unknown). After a success the stage may only be freed. Returns the number of rows
 * written or removed, -EBUSY when the write lock could not be had (the stage is kept:
 * commit may be tried again), or another negative errno. */
int hashdb_stage_commit(struct hashdb_stage *st, const char *name, const uint8_t *sha256,
                        uint64_t records);
/* Discards what the stage holds and frees it. Accepts NULL. */
void hashdb_stage_free(struct hashdb_stage *st);

/* ---- what was parsed ---- */

/* The last content of an index whose parse ran to its end: its SHA-256 and the result (0,
 * or the negative errno it was rejected with; hashdb_index_set). The start-up uses it to
 * parse again what a crash interrupted. */
struct hashdb_index {
    bool have_sha256;
    uint8_t sha256[32];
    int rc;
    uint64_t records;
};
/* 0 and *out filled, -ENOENT if name was never parsed, other negative errno. */
int hashdb_index_get(struct hashdb *db, const char *name, struct hashdb_index *out);
/* Records a parse that ended in rc (< 0: rejected; the entries are left as they were).
 * In a transaction of its own unless one is open. 0 or a negative errno. */
int hashdb_index_set(struct hashdb *db, const char *name, const uint8_t sha256[32], int rc);

/* Checkpoints the WAL into the database, truncates it (waits for readers as the
 * connection's busy timeout allows) and starts the next WAL with a one-page write, so
 * that the sync a new WAL costs is paid here. For the writer's connection, after each
 * parse and when hashdb_wal_pages grows large; no connection checkpoints by itself.
 * 0, -EBUSY (readers in the way: try later) or -EIO. */
int hashdb_checkpoint(struct hashdb *db);
/* The WAL's size in pages after the writer's last commit (0 for the loop's connection). */
int hashdb_wal_pages(const struct hashdb *db);

/* What this host's cache holds: key -> (size, SHA-256 computed when it was stored).
 * put replaces; get returns 0 or -ENOENT; del returns 0 whether or not the key was there. */
int hashdb_cached_put(struct hashdb *db, const char *key, uint64_t size, const uint8_t sha256[32]);
int hashdb_cached_get(struct hashdb *db, const char *key, uint64_t *size, uint8_t sha256[32]);
int hashdb_cached_del(struct hashdb *db, const char *key);
/* Calls fn for every entry whose key matches the GLOB pattern (SQLite's GLOB), until fn
 * returns a negative errno (which is returned). The count of entries, or a negative errno. */
int hashdb_each_entry(struct hashdb *db, const char *glob,
                      int (*fn)(void *ud, const char *key, const struct hashdb_entry *e), void *ud);

/* The record of from becomes to's (replacing to's); 0 whether or not from was there. */
int hashdb_cached_move(struct hashdb *db, const char *from, const char *to);

/* The database file's size and its WAL's, in bytes (the state the daemon keeps besides
 * the cache). 0, or a negative errno (-ENOENT for an in-memory database). */
int hashdb_disk_use(struct hashdb *db, uint64_t *db_bytes, uint64_t *wal_bytes);

/* ---- expiry by reference ----
 *
 * An index is seen when it is parsed or when apt asks for it (hashdb_index_seen); an
 * index counts as seen when any index of its suite ("ROOT/dists/SUITE", or a flat
 * repository's directory) is. A cached file is listed when an index seen lists it (or it
 * is an index, or a Release's signature). hashdb_sweep brings each cached file's last
 * listing up to date, hands fn every cached file last listed more than keep_s before the
 * latest sighting of any index (not before now: a proxy nobody used for a month expires
 * nothing), and forgets the indices (and their entries) of suites unseen as long. The
 * caller removes the files (the cache is the loop's), whose records go with them. */
struct hashdb_sweep_stats {
    int64_t ref_s;            /* the latest sighting of an index (unix seconds); 0 = none */
    size_t unlisted;          /* files handed to fn */
    size_t indices_forgotten; /* indices of suites unseen for keep_s, with their entries */
};
/* Records that apt asked for index name (its lasting name, index_origin) at now_s. */
int hashdb_index_seen(struct hashdb *db, const char *name, int64_t now_s);
/* One sweep, in one write transaction (for the writer's connection). fn may return a
 * negative errno to stop (the sweep is rolled back). 0 or a negative errno. */
int hashdb_sweep(struct hashdb *db, int64_t keep_s,
                 int (*fn)(void *ud, const char *key, uint64_t size, const uint8_t sha256[32]),
                 void *ud, struct hashdb_sweep_stats *out);

/* Batches: many puts between begin and commit are one transaction (fast for a Packages file). */
int hashdb_begin(struct hashdb *db);
int hashdb_commit(struct hashdb *db);
int hashdb_rollback(struct hashdb *db);

#endif

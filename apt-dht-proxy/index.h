/* index.h - parsers for the Debian archive's index files, feeding hashdb.
 *
 * InRelease / Release: the SHA256 (else SHA1) section gives size and hash of every index
 * of the suite, keyed ROOT/dists/SUITE/<listed path>; with "Acquire-By-Hash: yes" the
 * by-hash names of those indices are recorded too (ROOT/dists/SUITE/<dir>/by-hash/SHA256/<hex>).
 * Packages: Filename + Size + SHA256 (else SHA1) per stanza, keyed ROOT/<Filename>.
 * Sources: Directory + Checksums-Sha256 (else Checksums-Sha1) lines, keyed ROOT/<Directory>/<name>.
 * ROOT is the part of the index's own key before its first "/dists/" (no "/dists/":
 * -EINVAL). Listed paths are checked (relative, no "." / ".." / empty components, no
 * control bytes, spaces or backslashes) and keys are at most 4095 bytes.
 * Each index has a lasting name (index_origin): a Release its own key, a Packages or
 * Sources its directory's, whatever its compression or by-hash name. A parse replaces
 * everything the previous version of that index listed (hashdb_stage_commit): entries it
 * no longer lists are gone, by-hash names of a Release included (a by-hash URL carries
 * its own SHA-256, so such a file is still verified; only its size is no longer known).
 * An InRelease is parsed between its OpenPGP armor lines (the signature itself is apt's
 * business), and one without a signature block is -EBADMSG, as is a Release that lists
 * no SHA256 or SHA1 section.
 * Plain, .gz and .xz files are read; the compression is chosen by the key's suffix
 * (.bz2/.lzma/.zst/.lz4 -> -ENOTSUP); for by-hash keys (.../by-hash/SHA256/<hex>), whose
 * kind the caller passes, it is sniffed from the magic bytes.
 * Every parser is bounded: lines over 64 KiB, bad hex, bad numbers are skipped (counted),
 * never trusted; the decompressed size (zread.h), the number of entries and the CPU time
 * of one parse are bounded too, and a parse past a bound is rejected whole. */
#ifndef APT_DHT_INDEX_H
#define APT_DHT_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/hashdb.h"

enum index_kind {
    INDEX_NONE = 0,  /* not an index file apt-dht learns from */
    INDEX_RELEASE,   /* InRelease or Release */
    INDEX_PACKAGES,  /* Packages, Packages.gz, Packages.xz (also by-hash copies, see below) */
    INDEX_SOURCES,   /* Sources, Sources.gz, Sources.xz */
};

/* Kind of index from a canonical key's file name. */
enum index_kind index_kind_of(const char *key);

/* The lasting name of the index key is a version of (see above) into out (n bytes, at
 * least INDEX_KEY_MAX). kind INDEX_NONE = from the key. 0, -EINVAL (no index, no
 * "/dists/"), -ENAMETOOLONG. */
#define INDEX_KEY_MAX 4096 /* bytes, with the NUL */
int index_origin(const char *key, enum index_kind kind, char *out, size_t n);

/* Bounds of one parse, besides the decompressed size (ZREAD_RATIO, ZREAD_OUT_MAX):
 * - entries: at most INDEX_RECORDS_MAX, and for an input of known size at most
 *   INDEX_RECORDS_SLACK + size / INDEX_BYTES_PER_RECORD (-EOVERFLOW). Every real entry
 *   carries a hash of fresh entropy (32 bytes of SHA-256, 20 of SHA-1) that no
 *   compressor shrinks, so an index listing more entries than its bytes could hold hashes
 *   for is repeating itself to fill the database (Debian's largest Packages.xz spends
 *   about 140 bytes per entry);
 * - CPU: INDEX_CPU_MAX_MS of the parsing thread's CPU time (-ETIME); Debian's largest
 *   Packages takes about 2 s on a small machine. */
#define INDEX_RECORDS_MAX 1000000
#define INDEX_BYTES_PER_RECORD 16
#define INDEX_RECORDS_SLACK 4096
#define INDEX_CPU_MAX_MS 20000
/* Decompressed bytes between two calls of index_opts.tick. */
#define INDEX_TICK_BYTES (256 * 1024)

struct index_opts {
    const uint8_t *sha256; /* the content's SHA-256, recorded with the index; NULL =
                            * computed while it is read */
    uint64_t records_max;  /* 0 = the bound above; a larger value is ignored */
    uint64_t out_max;      /* decompressed bytes; 0 = zread's bound; larger is ignored */
    uint64_t cpu_ms;       /* 0 = INDEX_CPU_MAX_MS; larger is ignored */
    unsigned busy_retries; /* further merge attempts after -EBUSY, each after a tick */
    /* Called every INDEX_TICK_BYTES of input and between merge attempts, with db outside
     * any transaction: the caller may use db meanwhile (the indexer writes its queued
     * records). A negative return ends the parse with that code. Its CPU time is not
     * counted against cpu_ms. NULL = none. */
    int (*tick)(void *ud);
    void *ud;
};

struct index_stats {
    size_t records;   /* entries the index listed and the db now holds */
    size_t skipped;   /* malformed stanzas/lines ignored */
    size_t changed;   /* rows written or removed (a new version: what differed) */
    bool already;     /* this very content was parsed to its end before: nothing done */
};

/* Parses what fd holds, read from its current position and not closed (the complete,
 * verified content of key), as the given kind (INDEX_NONE = decide from key), and merges
 * what it learns into db in one write transaction (hashdb_stage_commit). Content that
 * the database names as the last complete parse of its index (hashdb_index_get) is not
 * parsed again: the result is what that parse's was (stats->already). Without
 * opts->sha256 the file is read once more first, to learn its SHA-256. opts may be NULL
 * (the defaults). Returns 0, -EINVAL for an unknown kind or a key without "/dists/",
 * -EIO for unreadable/corrupt compression, -EFBIG (decompressed size), -EOVERFLOW
 * (entries), -ETIME (CPU), -EBUSY (the write lock was taken: nothing was written), the
 * tick's code, or another negative errno; on every error the db is left as it was.
 * stats may be NULL. */
int index_parse(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                const struct index_opts *opts, struct index_stats *stats);

/* index_parse with the defaults, over a descriptor or a file by name. */
int index_parse_fd(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                   struct index_stats *stats);
int index_parse_file(struct hashdb *db, const char *key, enum index_kind kind,
                     const char *file_path, struct index_stats *stats);

/* The same over a plain (already decompressed) buffer; for unit tests and fuzzing. */
int index_parse_buffer(struct hashdb *db, const char *key, enum index_kind kind,
                       const char *buf, size_t len, struct index_stats *stats);

/* Why a parse was rejected, for the log: index_parse's codes in words. */
const char *index_strerror(int rc);

/* The indexer: one background thread, the database's one writer, so that neither a
 * 60k-stanza Packages.xz nor a wait on SQLite's write lock ever stalls the event loop. It
 * opens its own (writer's) hashdb connection. Its work, in this order:
 * - records of what the cache holds (indexer_cached_put/_del): written in batches, and
 *   never dropped: a batch the database refuses (-EBUSY after the writer's busy timeout,
 *   a full disk) is kept and tried again a second later;
 * - Release files, which the loop hands over when they are large or when the database was
 *   busy (catalogue.c parses small ones on the loop: what apt asks next depends on them);
 * - Packages and Sources, parsed in stages: every INDEX_TICK_BYTES the worker writes the
 *   records and Releases that arrived meanwhile, so they wait for a tick, not for a
 *   whole parse.
 * After each parse, and when records have grown the WAL, the WAL is checkpointed and
 * truncated (hashdb_checkpoint). */
struct indexer;

/* Starts the thread. db_path is the SQLite file (shared with the loop's hashdb). */
int indexer_new(struct indexer **out, const char *db_path);

/* Queues a parse of file_path's current content. The file is opened here, before the
 * call returns, and the job reads that open descriptor: the caller may unlink the file or
 * rename another over it right after (what the cache does); only rewriting it in place
 * would change what gets parsed. Nothing is read here, so the loop never waits on it.
 * kind as in index_parse_file; sha256 is the content's digest (NULL: computed by the
 * job). Returns 0, -EAGAIN when the queue is full (bounded), -EINVAL for a key that is
 * no index (kind INDEX_NONE), or open(2)'s negative errno. */
int indexer_submit(struct indexer *ix, const char *key, enum index_kind kind,
                   const char *file_path, const uint8_t *sha256);
/* The same over a descriptor open for reading, which the indexer takes (and closes, on
 * error too). */
int indexer_submit_fd(struct indexer *ix, const char *key, enum index_kind kind, int fd,
                      const uint8_t *sha256);

/* Queues hashdb_cached_put / hashdb_cached_del for the writer. 0, -EINVAL (as
 * hashdb_cached_put would say), -ENOMEM, -ESHUTDOWN. */
int indexer_cached_put(struct indexer *ix, const char *key, uint64_t size,
                       const uint8_t sha256[32]);
int indexer_cached_del(struct indexer *ix, const char *key);
/* apt asked for the index whose lasting name (index_origin) is name, at now_s (unix
 * seconds): queued like a record, for expiry by reference (hashdb_index_seen). */
int indexer_index_seen(struct indexer *ix, const char *name, int64_t now_s);

/* Expiry by reference: asks the worker for one hashdb_sweep with keep_s (> 0), run when
 * nothing else waits. 0, -EINVAL, -ESHUTDOWN. */
int indexer_sweep(struct indexer *ix, int64_t keep_s);
/* A cached file the last sweep found unlisted (its record's size and SHA-256). */
struct indexer_expired {
    struct indexer_expired *next;
    uint64_t size;
    uint8_t sha256[32];
    char key[];
};
/* True once per finished sweep: *list (the caller frees it with indexer_expired_free;
 * NULL = none) and *st are its result. */
bool indexer_sweep_result(struct indexer *ix, struct indexer_expired **list,
                          struct hashdb_sweep_stats *st);
/* True while a sweep is asked for or running. */
bool indexer_sweeping(struct indexer *ix);
void indexer_expired_free(struct indexer_expired *list);

/* An eventfd that becomes readable after each finished parse (read it to reset), so the
 * event loop can wake requests that wait for the hash knowledge of a queued index. */
int indexer_event_fd(const struct indexer *ix);

/* Parses queued or running (records are not counted: nothing waits for them). */
size_t indexer_pending(struct indexer *ix);

/* True while a parse of key is queued or running: a newer version of it must queue
 * behind it, not be parsed elsewhere first. */
bool indexer_queued(struct indexer *ix, const char *key);

/* Blocks until every parse queued so far is done and every record written (so for as
 * long as the database refuses writes; tests and orderly shutdown). */
void indexer_drain(struct indexer *ix);

/* Stops the thread (a parse in progress stops at its next tick; parses still queued are
 * dropped: the start-up parses them again, see catalogue_restore), writes the records
 * still queued, frees everything. Accepts NULL. */
void indexer_free(struct indexer *ix);

#endif

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
 * A Release first retracts the by-name entries its previous version gave (see
 * hashdb_forget_origin); an InRelease is parsed between its OpenPGP armor lines (the
 * signature itself is apt's business), and one without a signature block is -EBADMSG,
 * as is a Release that lists no SHA256 or SHA1 section.
 * Plain, .gz and .xz files are read; the compression is chosen by the key's suffix
 * (.bz2/.lzma/.zst/.lz4 -> -ENOTSUP); for by-hash keys (.../by-hash/SHA256/<hex>), whose
 * kind the caller passes, it is sniffed from the magic bytes.
 * Every parser is bounded: lines over 64 KiB, bad hex, bad numbers are skipped (counted),
 * never trusted. */
#ifndef APT_DHT_INDEX_H
#define APT_DHT_INDEX_H

#include <stddef.h>
#include "apt-dht-proxy/hashdb.h"

enum index_kind {
    INDEX_NONE = 0,  /* not an index file apt-dht learns from */
    INDEX_RELEASE,   /* InRelease or Release */
    INDEX_PACKAGES,  /* Packages, Packages.gz, Packages.xz (also by-hash copies, see below) */
    INDEX_SOURCES,   /* Sources, Sources.gz, Sources.xz */
};

/* Kind of index from a canonical key's file name. */
enum index_kind index_kind_of(const char *key);

struct index_stats {
    size_t records;   /* entries written to the db */
    size_t skipped;   /* malformed stanzas/lines ignored */
};

/* Parses the file at file_path (the complete, verified content of key) as the given kind
 * (INDEX_NONE = decide from key) and writes what it learns into db in one transaction.
 * Returns 0, -EINVAL for an unknown kind, -EIO for unreadable/corrupt compression, or
 * another negative errno. stats may be NULL. */
int index_parse_file(struct hashdb *db, const char *key, enum index_kind kind,
                     const char *file_path, struct index_stats *stats);

/* The same over an open descriptor, read from its current position and not closed
 * (compression still chosen from key). */
int index_parse_fd(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                   struct index_stats *stats);

/* The same over a plain (already decompressed) buffer; for unit tests and fuzzing. */
int index_parse_buffer(struct hashdb *db, const char *key, enum index_kind kind,
                       const char *buf, size_t len, struct index_stats *stats);

/* The indexer: one background thread that parses files queued from the event loop so a
 * 60k-stanza Packages.xz never stalls a request. It opens its own hashdb connection. */
struct indexer;

/* Starts the thread. db_path is the SQLite file (shared with the loop's hashdb). */
int indexer_new(struct indexer **out, const char *db_path);

/* Queues a parse of file_path's current content. The file is opened here, before the
 * call returns, and the job reads that open descriptor: the caller may unlink the file or
 * rename another over it right after (what the cache does); only rewriting it in place
 * would change what gets parsed. Nothing is read here, so the loop never waits on it.
 * kind as in index_parse_file. Returns 0, -EAGAIN when the queue is full (bounded),
 * -EINVAL for a key that is no index (kind INDEX_NONE), or open(2)'s negative errno. */
int indexer_submit(struct indexer *ix, const char *key, enum index_kind kind, const char *file_path);

/* An eventfd that becomes readable after each finished job (read it to reset), so the
 * event loop can wake requests that wait for the hash knowledge of a queued index. */
int indexer_event_fd(const struct indexer *ix);

/* Jobs queued or running. */
size_t indexer_pending(struct indexer *ix);

/* Blocks until every job queued so far is done (tests and orderly shutdown). */
void indexer_drain(struct indexer *ix);

/* Stops the thread after the current job (jobs still queued are dropped); frees
 * everything. Accepts NULL. */
void indexer_free(struct indexer *ix);

#endif

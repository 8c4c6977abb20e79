/* index-int.h - what index.c and index-release.c share; nothing else includes it.
 *
 * The index module is two files along one seam:
 *   index.c          the parse context and its bounds (entries, CPU time, the stage that
 *                    is merged only when the parse reached its end), the bounded field
 *                    decoders, the streaming Packages/Sources paragraph loop, and the
 *                    entry points that open, sniff, hash and decompress an input;
 *   index-release.c  a Release or InRelease, held whole in memory: the signed body of a
 *                    clearsigned file, its SHA256 (else SHA1) list, and the by-hash names
 *                    Acquire-By-Hash adds.
 * index-release.c opens no file and owns no stage: it reads a buffer, writes through
 * ictx_put() and ends with ictx_commit(), like the paragraph loop does. */
#ifndef APT_DHT_INDEX_INT_H
#define APT_DHT_INDEX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"

struct zread;

/* One parse of one index, from ctx_init() to finish() in index.c. */
struct ictx {
    struct hashdb *db;
    const char *key; /* the index's own key */
    size_t root_len; /* ROOT = key[0..root_len) */
    enum index_kind kind;
    const struct index_opts *o; /* never NULL */
    struct hashdb_stage *stage;
    struct zread *z;       /* streaming input, or NULL for a buffer */
    uint64_t records_max;  /* entries this input may list */
    uint64_t cpu_max_ns, cpu_start_ns, cpu_other_ns; /* other: spent in o->tick */
    uint64_t out, next_tick; /* decompressed bytes read; where the next tick falls */
    bool have_sha;
    uint8_t sha[32]; /* the input's SHA-256 when have_sha */
    char name[INDEX_KEY_MAX]; /* index_origin */
    struct index_stats st;
};

/* ---- the context (index.c) -------------------------------------------------------- */

/* The CPU bound (-ETIME past it), then the caller's o->tick with the stage paused;
 * 0, or the first negative code. */
int ictx_tick(struct ictx *c);
/* Stages one entry; -EOVERFLOW past c->records_max, else hashdb_stage_put's code. */
int ictx_put(struct ictx *c, const char *key, const struct hashdb_entry *e);
/* The parse reached its end: merges the stage (retrying -EBUSY o->busy_retries times,
 * with a tick between); 0 or a negative code. */
int ictx_commit(struct ictx *c);

/* ---- bounded decoders (index.c) ----------------------------------------------------- */

/* A relative archive path of n bytes (< INDEX_KEY_MAX): non-empty components, none "."
 * or "..", no control bytes, spaces, DEL or backslashes; with allow_slash false, a
 * single component. */
bool index_path_ok(const char *s, size_t n, bool allow_slash);
/* " HEX SIZE PATH" as in Release and Sources checksum lists: exactly 2*hash_len hex
 * digits and a decimal size <= INT64_MAX; *path points into s. */
bool index_checksum_line(const char *s, size_t n, uint8_t *hash, size_t hash_len,
                         uint64_t *size, const char **path, size_t *path_len);
/* out (INDEX_KEY_MAX bytes) = a "/" b ["/" c, when cn > 0]; 0 or -ENAMETOOLONG. */
int index_join_key(char *out, const char *a, size_t an, const char *b, size_t bn,
                   const char *c, size_t cn);
/* key names a flat repository's file (no /dists/, no /pool/): its directory is ROOT. */
bool index_is_flat(const char *key);

/* ---- Release / InRelease (index-release.c) ---------------------------------------- */

/* Parses a whole Release or InRelease (c->kind == INDEX_RELEASE) and commits it.
 * -EINVAL when c->key does not sit in ROOT/dists/SUITE/ (or a flat root), -EBADMSG for
 * a broken clearsigned armor or no SHA256/SHA1 list, else ictx_tick/ictx_put/
 * ictx_commit's codes. Bad checksum lines are counted in c->st.skipped. */
int index_release_parse(struct ictx *c, const char *buf, size_t len);

#endif

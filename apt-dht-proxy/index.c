/* index.c - what the Debian archive's indices teach apt-dht about the files they list.
 *
 * Model: an index is a stream of deb822 paragraphs (deb822.h) pulled through a
 * decompressing reader (zread.h), so a 60k-stanza Packages.xz is parsed while it is
 * inflated, with memory bounded by one line buffer and one paragraph's worth of fields.
 * Each paragraph is judged whole: the fields we need are decoded as their lines pass
 * (hex of exact length, sizes without overflow, paths without traversal), any bad line in
 * the paragraph spoils it, and only a complete, clean paragraph becomes hashdb entries.
 * Packages and Sources go through one paragraph loop; a struct para_kind holds what
 * differs (which fields each reads, how a paragraph becomes entries).
 * A whole file is one stage (hashdb.h): the entries collect in a private table while the
 * file is read, and only a parse that reached the end is merged, in one short write
 * transaction that also retracts what the previous version of the same index listed. An
 * I/O or decompression error, or a bound passed, discards the stage, so a truncated
 * download or a bomb never leaves half of its knowledge behind.
 *
 * Bounds: zread.h bounds the decompressed size against the compressed one; ictx_put()
 * bounds the entries against the input's size (each real entry carries incompressible hash
 * bytes); ictx_tick() bounds this thread's CPU time and lets the caller run its own work
 * while the stage is paused.
 *
 * This file holds the parse context, the field decoders, Packages and Sources, and the
 * entry points; a Release, read whole into memory (at most INDEX_RELEASE_MAX bytes), is
 * handed to index-release.c. index-int.h is what the two files share. */
#include "aptdht-config.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/index-int.h"
#include "apt-dht-proxy/url.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apt-dht-proxy/deb822.h"
#include "apt-dht-proxy/zread.h"

#define INDEX_RELEASE_MAX ((size_t)32 << 20) /* decompressed bytes */
#define SRC_FILES_MAX 64                     /* files per Sources paragraph (a few in practice) */
#define SRC_NAME_MAX 256                     /* bytes of a Sources file name, with the NUL */

/* ---- bounded field decoders ------------------------------------------------------ */

/* Exactly 2*outn hex digits -> outn bytes. */
static bool hex_exact(const char *s, size_t n, uint8_t *out, size_t outn)
{
    if (n != 2 * outn)
        return false;
    for (size_t i = 0; i < outn; i++) {
        int hi = hex_digit((unsigned char)s[2 * i]), lo = hex_digit((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Decimal digits only, at most INT64_MAX (what SQLite can hold). 19 digits cannot
 * overflow uint64_t, so the bound is checked once at the end. */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = v;
    return true;
}

/* A relative archive path: non-empty components, none "." or "..", no control bytes,
 * spaces, DEL or backslashes; with allow_slash false, a single component. */
bool index_path_ok(const char *s, size_t n, bool allow_slash)
{
    size_t comp = 0;
    if (n == 0 || n >= INDEX_KEY_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t len = i - comp;
            if (len == 0 || (len == 1 && s[comp] == '.') ||
                (len == 2 && s[comp] == '.' && s[comp + 1] == '.'))
                return false;
            if (i < n && !allow_slash)
                return false;
            comp = i + 1;
        } else if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '\\') {
            return false;
        }
    }
    return true;
}

/* Splits on blanks; returns the word count, or max + 1 if there are more. */
static size_t split_words(const char *s, size_t n, const char **w, size_t *wl, size_t max)
{
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (k == max)
            return max + 1;
        w[k] = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        wl[k] = (size_t)(s + i - w[k]);
        k++;
    }
    return k;
}

/* " HEX SIZE PATH" as in Release and Sources checksum lists. */
bool index_checksum_line(const char *s, size_t n, uint8_t *hash, size_t hash_len,
                         uint64_t *size, const char **path, size_t *path_len)
{
    const char *w[3];
    size_t wl[3];
    if (split_words(s, n, w, wl, 3) != 3 || !hex_exact(w[0], wl[0], hash, hash_len) ||
        !parse_size(w[1], wl[1], size))
        return false;
    *path = w[2];
    *path_len = wl[2];
    return true;
}

/* out = a "/" b ["/" c]; -ENAMETOOLONG past INDEX_KEY_MAX. Parts are shorter than a line. */
int index_join_key(char *out, const char *a, size_t an, const char *b, size_t bn,
                   const char *c, size_t cn)
{
    int k = snprintf(out, INDEX_KEY_MAX, "%.*s/%.*s%s%.*s", (int)an, a, (int)bn, b,
                     cn ? "/" : "", (int)cn, c ? c : "");
    return (k < 0 || k >= INDEX_KEY_MAX) ? -ENAMETOOLONG : 0;
}

/* ---- index kinds, roots, compression ---------------------------------------------- */

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

static bool named(const char *base, const char *stem)
{
    size_t n = strlen(stem);
    return strncmp(base, stem, n) == 0 &&
           (base[n] == '\0' || strcmp(base + n, ".gz") == 0 || strcmp(base + n, ".xz") == 0);
}

/* dists/SUITE/COMPONENT/binary-ARCH/Release (and .../source/Release) describe one
 * directory and list no hashes; only the suite's own Release teaches anything. */
static bool per_arch_release(const char *key, const char *base)
{
    const char *dir_end = base - 1, *dir = dir_end;
    while (dir > key && dir[-1] != '/')
        dir--;
    size_t n = (size_t)(dir_end - dir);
    return (n > 7 && strncmp(dir, "binary-", 7) == 0) || (n == 6 && strncmp(dir, "source", 6) == 0);
}

/* A flat repository ("deb URI ./", made by dpkg-scanpackages or apt-ftparchive): its
 * Release and Packages sit in one directory with no dists/ above them, and that
 * directory is the root its Filename fields are relative to. */
bool index_is_flat(const char *key)
{
    return !strstr(key, "/dists/") && !strstr(key, "/pool/");
}

enum index_kind index_kind_of(const char *key)
{
    if (!key || strstr(key, "/by-hash/") || !strchr(key, '/'))
        return INDEX_NONE;
    bool flat = index_is_flat(key);
    if (!flat && !strstr(key, "/dists/"))
        return INDEX_NONE;
    const char *base = base_name(key);
    if (strcmp(base, "InRelease") == 0 || strcmp(base, "Release") == 0)
        return !flat && per_arch_release(key, base) ? INDEX_NONE : INDEX_RELEASE;
    if (named(base, "Packages"))
        return INDEX_PACKAGES;
    if (named(base, "Sources"))
        return INDEX_SOURCES;
    return INDEX_NONE;
}

static int format_of(const char *key, enum zread_format *fmt)
{
    static const char *const unsupported[] = {".bz2", ".lzma", ".zst", ".lz4", ".Z"};
    const char *dot = strrchr(base_name(key), '.');
    *fmt = ZREAD_PLAIN;
    if (strstr(key, "/by-hash/"))
        *fmt = ZREAD_SNIFF;
    else if (dot && strcmp(dot, ".gz") == 0)
        *fmt = ZREAD_GZIP;
    else if (dot && strcmp(dot, ".xz") == 0)
        *fmt = ZREAD_XZ;
    else
        for (size_t i = 0; dot && i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
            if (strcmp(dot, unsupported[i]) == 0)
                return -ENOTSUP;
    return 0;
}

/* The dir of a Packages/Sources key, without a trailing "/by-hash/ALGO/HEX": the
 * by-hash copies of an index are versions of the by-name one. */
static size_t index_dir_len(const char *key)
{
    const char *base = base_name(key);
    size_t n = (size_t)(base - key);
    while (n > 0 && key[n - 1] == '/')
        n--;
    const char *algo = memrchr(key, '/', n);
    if (algo && (size_t)(algo - key) >= 8 && memcmp(algo - 8, "/by-hash", 8) == 0)
        n = (size_t)(algo - key) - 8;
    return n;
}

int index_origin(const char *key, enum index_kind kind, char *out, size_t n)
{
    if (!key || n == 0 || !strchr(key, '/') || (!strstr(key, "/dists/") && !index_is_flat(key)))
        return -EINVAL;
    if (kind == INDEX_NONE)
        kind = index_kind_of(key);
    if (kind != INDEX_RELEASE && kind != INDEX_PACKAGES && kind != INDEX_SOURCES)
        return -EINVAL;
    int k = kind == INDEX_RELEASE
                ? snprintf(out, n, "%s", key)
                : snprintf(out, n, "%.*s/%s", (int)index_dir_len(key), key,
                           kind == INDEX_PACKAGES ? "Packages" : "Sources");
    return (k < 0 || (size_t)k >= n) ? -ENAMETOOLONG : 0;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Entries an input of in_size bytes (0 = unknown) may list. */
static uint64_t records_bound(uint64_t in_size, uint64_t asked)
{
    uint64_t max = INDEX_RECORDS_MAX;
    if (in_size > 0 && in_size / INDEX_BYTES_PER_RECORD + INDEX_RECORDS_SLACK < max)
        max = in_size / INDEX_BYTES_PER_RECORD + INDEX_RECORDS_SLACK;
    return asked > 0 && asked < max ? asked : max;
}

static int ctx_init(struct ictx *c, struct hashdb *db, const char *key, enum index_kind kind,
                    const struct index_opts *o)
{
    static const struct index_opts defaults;
    memset(c, 0, sizeof(*c));
    c->o = o ? o : &defaults;
    if (!db || !key || strlen(key) >= INDEX_KEY_MAX)
        return -EINVAL;
    c->kind = kind == INDEX_NONE ? index_kind_of(key) : kind;
    int rc = index_origin(key, c->kind, c->name, sizeof c->name);
    if (rc < 0)
        return rc == -ENAMETOOLONG ? -EINVAL : rc;
    const char *dists = strstr(key, "/dists/");
    if (dists == key)
        return -EINVAL;
    c->db = db;
    c->key = key;
    c->root_len = dists ? (size_t)(dists - key) : (size_t)(base_name(key) - 1 - key);
    uint64_t ms = c->o->cpu_ms > 0 && c->o->cpu_ms < INDEX_CPU_MAX_MS ? c->o->cpu_ms
                                                                       : INDEX_CPU_MAX_MS;
    c->cpu_max_ns = ms * 1000000u;
    c->cpu_start_ns = cpu_ns();
    c->next_tick = INDEX_TICK_BYTES;
    return hashdb_stage_new(db, &c->stage);
}

static void ctx_done(struct ictx *c)
{
    hashdb_stage_free(c->stage);
    c->stage = NULL;
}

/* The CPU bound, and the caller's turn: its work runs with the stage paused, so the
 * connection is free, and its CPU time is its own. */
int ictx_tick(struct ictx *c)
{
    if (cpu_ns() - c->cpu_start_ns - c->cpu_other_ns > c->cpu_max_ns)
        return -ETIME;
    if (!c->o->tick)
        return 0;
    int rc = hashdb_stage_pause(c->stage);
    if (rc < 0)
        return rc;
    uint64_t t0 = cpu_ns();
    rc = c->o->tick(c->o->ud);
    c->cpu_other_ns += cpu_ns() - t0;
    return rc;
}

int ictx_put(struct ictx *c, const char *key, const struct hashdb_entry *e)
{
    if (c->st.records >= c->records_max)
        return -EOVERFLOW;
    int rc = hashdb_stage_put(c->stage, key, e);
    if (rc == 0)
        c->st.records++;
    return rc;
}

/* The parse reached its end: the stage becomes the index's content. */
int ictx_commit(struct ictx *c)
{
    const uint8_t *sha = c->o->sha256 ? c->o->sha256 : c->have_sha ? c->sha : NULL;
    for (unsigned tries = 0;; tries++) {
        int n = hashdb_stage_commit(c->stage, c->name, sha, c->st.records);
        if (n >= 0) {
            c->st.changed = (size_t)n;
            return 0;
        }
        if (n != -EBUSY || tries >= c->o->busy_retries)
            return n;
        int rc = c->o->tick ? c->o->tick(c->o->ud) : 0;
        if (rc < 0)
            return rc;
    }
}

/* ---- Packages and Sources: one paragraph loop --------------------------------------- */

/* The state every paragraph kind starts with. */
struct para {
    bool any; /* a field this kind uses was seen */
    bool bad; /* a bad line or value spoiled the paragraph */
};

/* What tells a Packages paragraph from a Sources one. The state (size bytes, beginning
 * with struct para) is allocated once per file; after each paragraph its first reset
 * bytes are zeroed: the path buffers behind them are written before they are read. */
struct para_kind {
    size_t size, reset;
    void (*field)(struct para *s, const struct deb822 *p);
    void (*cont)(struct ictx *c, struct para *s, const struct deb822 *p);
    /* A clean paragraph that has our fields: its entries, or one skip if it lacks some. */
    int (*write)(struct ictx *c, struct para *s);
};

/* Copies the path s (n bytes) into out (INDEX_KEY_MAX bytes) without its "." segments:
 * a flat repository writes "Filename: ./x.deb", which apt asks for as URI/./x.deb and
 * the proxy stores as URI/x.deb. Returns the new length, or 0 when nothing is left or it
 * does not fit. */
static size_t drop_dots(const char *s, size_t n, char *out)
{
    size_t o = 0, i = 0;
    bool first = true; /* empty segments are kept, for path_ok to refuse */
    while (i <= n) {
        const char *slash = memchr(s + i, '/', n - i);
        size_t len = slash ? (size_t)(slash - (s + i)) : n - i;
        if (!(len == 1 && s[i] == '.')) {
            if (o + !first + len >= INDEX_KEY_MAX)
                return 0;
            if (!first)
                out[o++] = '/';
            memcpy(out + o, s + i, len);
            o += len;
            first = false;
        }
        if (!slash)
            break;
        i += len + 1;
    }
    return o;
}

/* A path field (Filename, Directory): once per paragraph, a relative path as path_ok
 * means it, "." segments dropped. Copied into dst (INDEX_KEY_MAX bytes) only when good;
 * false when not. */
static bool take_path(const struct deb822 *p, bool *have, char *dst, size_t *dst_len)
{
    char tmp[INDEX_KEY_MAX];
    size_t n = p->value_len < INDEX_KEY_MAX ? drop_dots(p->value, p->value_len, tmp) : 0;
    bool ok = !*have && n > 0 && index_path_ok(tmp, n, true);
    if (ok) {
        memcpy(dst, tmp, n);
        *dst_len = n;
    }
    *have = true;
    return ok;
}

/* A paragraph ended: a clean, complete one becomes entries; a paragraph none of whose
 * fields we use (e.g. only comments) is no error. */
static int para_end(struct ictx *c, const struct para_kind *k, struct para *s)
{
    int rc = 0;
    if (s->bad)
        c->st.skipped++;
    else if (s->any)
        rc = k->write(c, s);
    memset(s, 0, k->reset);
    return rc;
}

static int parse_paragraphs(struct ictx *c, const struct para_kind *k, struct deb822 *p)
{
    int rc = -ENOMEM;
    struct para *s = calloc(1, k->size);
    if (!s)
        return rc;
    for (;;) {
        int tok = deb822_next(p);
        if (tok <= 0) {
            rc = tok;
            break;
        }
        if (tok == DEB822_FIELD)
            k->field(s, p);
        else if (tok == DEB822_CONT)
            k->cont(c, s, p);
        else if (tok == DEB822_BAD)
            s->bad = true;
        else if (tok == DEB822_END && (rc = para_end(c, k, s)) < 0)
            break;
    }
    free(s);
    return rc;
}

/* ---- Packages --------------------------------------------------------------------- */

struct pkg {
    struct para h;
    bool last_ours; /* a continuation line now would extend one of our fields */
    bool have_name, have_size;
    size_t name_len;
    struct hashdb_entry e;
    char name[INDEX_KEY_MAX];
};

static void pkg_field(struct para *h, const struct deb822 *p)
{
    struct pkg *s = (struct pkg *)h;
    bool ok;
    if (deb822_is(p, "Filename")) {
        ok = take_path(p, &s->have_name, s->name, &s->name_len);
    } else if (deb822_is(p, "Size")) {
        ok = !s->have_size && parse_size(p->value, p->value_len, &s->e.size);
        s->have_size = true;
    } else if (deb822_is(p, "SHA256")) {
        ok = !s->e.have_sha256 && hex_exact(p->value, p->value_len, s->e.sha256, 32);
        s->e.have_sha256 = true;
    } else if (deb822_is(p, "SHA1")) {
        ok = !s->e.have_sha1 && hex_exact(p->value, p->value_len, s->e.sha1, 20);
        s->e.have_sha1 = true;
    } else {
        s->last_ours = false;
        return;
    }
    s->h.any = s->last_ours = true;
    s->h.bad |= !ok;
}

/* Our fields are single-line: a continuation of one of them is malformed. */
static void pkg_cont(struct ictx *c, struct para *h, const struct deb822 *p)
{
    (void)c;
    (void)p;
    h->bad |= ((struct pkg *)h)->last_ours;
}

static int pkg_write(struct ictx *c, struct para *h)
{
    struct pkg *s = (struct pkg *)h;
    char key[INDEX_KEY_MAX];
    if (!s->have_name || !s->have_size || !(s->e.have_sha256 || s->e.have_sha1) ||
        index_join_key(key, c->key, c->root_len, s->name, s->name_len, NULL, 0) < 0) {
        c->st.skipped++;
        return 0;
    }
    return ictx_put(c, key, &s->e);
}

static const struct para_kind packages = {
    sizeof(struct pkg), offsetof(struct pkg, name), pkg_field, pkg_cont, pkg_write,
};

/* ---- Sources ---------------------------------------------------------------------- */

struct src_file {
    uint64_t size;
    bool h256, h1;
    uint8_t sha256[32], sha1[20];
    char name[SRC_NAME_MAX];
};

enum src_section { SEC_NONE, SEC_SHA256, SEC_SHA1 };

struct src {
    struct para h;
    bool have_dir, saw256, saw1;
    enum src_section sec;
    size_t dir_len, n;
    char dir[INDEX_KEY_MAX];
    struct src_file files[SRC_FILES_MAX];
};

/* Merges one checksum line into the paragraph's file list (by name). A SHA-1 line whose
 * size disagrees with the SHA-256 line of the same name is dropped (false). */
static bool src_add(struct src *s, bool is256, const uint8_t *hash, uint64_t size,
                    const char *name, size_t name_len)
{
    struct src_file *f = NULL;
    for (size_t i = 0; i < s->n && !f; i++)
        if (strlen(s->files[i].name) == name_len && memcmp(s->files[i].name, name, name_len) == 0)
            f = &s->files[i];
    if (!f) {
        if (s->n == SRC_FILES_MAX)
            return false;
        f = &s->files[s->n++];
        memset(f, 0, sizeof(*f));
        memcpy(f->name, name, name_len);
        f->size = size;
    } else if (f->size != size) {
        if (!is256)
            return false;
        f->size = size;
        f->h1 = false;
    }
    if (is256)
        memcpy(f->sha256, hash, 32);
    else
        memcpy(f->sha1, hash, 20);
    *(is256 ? &f->h256 : &f->h1) = true;
    return true;
}

/* A checksum line of the list the last field opened (if it opened one). */
static void src_cont(struct ictx *c, struct para *h, const struct deb822 *p)
{
    struct src *s = (struct src *)h;
    uint8_t hash[32];
    uint64_t size;
    const char *name;
    size_t name_len;
    bool is256 = s->sec == SEC_SHA256;
    if (s->sec == SEC_NONE)
        return;
    if (!index_checksum_line(p->value, p->value_len, hash, is256 ? 32 : 20, &size, &name,
                             &name_len) ||
        !index_path_ok(name, name_len, false) || name_len >= SRC_NAME_MAX ||
        !src_add(s, is256, hash, size, name, name_len))
        c->st.skipped++;
}

static void src_field(struct para *h, const struct deb822 *p)
{
    struct src *s = (struct src *)h;
    s->sec = SEC_NONE;
    if (deb822_is(p, "Directory")) {
        s->h.bad |= !take_path(p, &s->have_dir, s->dir, &s->dir_len);
        s->h.any = true;
    } else if (deb822_is(p, "Checksums-Sha256") || deb822_is(p, "Checksums-Sha1")) {
        bool is256 = deb822_is(p, "Checksums-Sha256");
        bool *seen = is256 ? &s->saw256 : &s->saw1;
        /* The list starts on the next line; a value here or a repeated field is malformed. */
        s->h.bad |= *seen || p->value_len > 0;
        *seen = s->h.any = true;
        s->sec = is256 ? SEC_SHA256 : SEC_SHA1;
    }
}

static int src_write(struct ictx *c, struct para *h)
{
    struct src *s = (struct src *)h;
    char key[INDEX_KEY_MAX];
    int rc = 0;
    if (!s->have_dir || !(s->saw256 || s->saw1)) {
        c->st.skipped++;
        return 0;
    }
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        struct src_file *f = &s->files[i];
        struct hashdb_entry e = {.size = f->size, .have_sha256 = f->h256, .have_sha1 = f->h1};
        if (s->saw256 ? !f->h256 : !f->h1)
            continue; /* a SHA-1-only name when the paragraph has SHA-256: not trusted */
        memcpy(e.sha256, f->sha256, 32);
        memcpy(e.sha1, f->sha1, 20);
        if (index_join_key(key, c->key, c->root_len, s->dir, s->dir_len, f->name,
                           strlen(f->name)) < 0)
            c->st.skipped++;
        else
            rc = ictx_put(c, key, &e);
    }
    return rc;
}

static const struct para_kind sources = {
    sizeof(struct src), offsetof(struct src, dir), src_field, src_cont, src_write,
};

/* ---- entry points ----------------------------------------------------------------- */

/* Packages or Sources from a tokenizer, in one stage. */
static int parse_stream(struct ictx *c, struct deb822 *p)
{
    int rc = parse_paragraphs(c, c->kind == INDEX_PACKAGES ? &packages : &sources, p);
    return rc < 0 ? rc : ictx_commit(c);
}

/* The content was parsed to its end before, and nothing was merged for its index since:
 * the database already says what it says (1, with its result in *rc). */
static int parsed_before(struct ictx *c, int *rc)
{
    struct hashdb_index ix;
    const uint8_t *sha = c->o->sha256 ? c->o->sha256 : c->have_sha ? c->sha : NULL;
    if (!sha || hashdb_index_get(c->db, c->name, &ix) != 0 || !ix.have_sha256 ||
        memcmp(ix.sha256, sha, 32) != 0)
        return 0;
    c->st.records = ix.records;
    c->st.already = true;
    *rc = ix.rc;
    return 1;
}

/* SHA-256 of what fd holds from its position on; the position is restored. */
static int hash_fd(int fd, struct ictx *c)
{
    unsigned char buf[64 * 1024];
    unsigned n = 32;
    ssize_t got;
    off_t start = lseek(fd, 0, SEEK_CUR);
    if (start < 0)
        return -errno; /* a pipe, say: it can be read once only */
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    int rc = (x && EVP_DigestInit_ex(x, EVP_sha256(), NULL)) ? 0 : -ENOMEM;
    while (rc == 0 && (got = read(fd, buf, sizeof buf)) != 0) {
        if (got < 0 && errno != EINTR)
            rc = -errno;
        else if (got > 0 && !EVP_DigestUpdate(x, buf, (size_t)got))
            rc = -ENOMEM;
    }
    if (rc == 0 && (!EVP_DigestFinal_ex(x, c->sha, &n) || n != 32))
        rc = -ENOMEM;
    if (lseek(fd, start, SEEK_SET) != start && rc == 0)
        rc = -errno;
    EVP_MD_CTX_free(x);
    c->have_sha = rc == 0;
    return rc;
}

static void finish(struct ictx *c, int rc, struct index_stats *stats)
{
    ctx_done(c);
    if (!stats)
        return;
    *stats = c->st;
    if (rc < 0)
        stats->records = stats->changed = 0; /* discarded, or refused before: nothing written */
}

static void sha256_of(const char *buf, size_t len, struct ictx *c)
{
    unsigned n = 32;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    c->have_sha = x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) &&
                  EVP_DigestUpdate(x, buf, len) && EVP_DigestFinal_ex(x, c->sha, &n) && n == 32;
    EVP_MD_CTX_free(x);
}

int index_parse_buffer(struct hashdb *db, const char *key, enum index_kind kind,
                       const char *buf, size_t len, struct index_stats *stats)
{
    struct ictx c;
    struct deb822 p;
    int rc = ctx_init(&c, db, key, kind, NULL);
    if (rc == 0) {
        c.records_max = records_bound(len, 0);
        sha256_of(buf, len, &c);
    }
    if (rc == 0 && parsed_before(&c, &rc)) {
        /* nothing to do */
    } else if (rc == 0 && c.kind == INDEX_RELEASE) {
        rc = index_release_parse(&c, buf, len);
    } else if (rc == 0) {
        deb822_init_mem(&p, buf, len);
        rc = parse_stream(&c, &p);
    }
    finish(&c, rc, stats);
    return rc;
}

/* The tokenizer's input: zread's output, with a tick every INDEX_TICK_BYTES. */
static ssize_t zread_cb(void *ctx, void *buf, size_t n)
{
    struct ictx *c = ctx;
    if (c->out >= c->next_tick) {
        int rc = ictx_tick(c);
        if (rc < 0)
            return rc;
        c->next_tick = c->out + INDEX_TICK_BYTES;
    }
    ssize_t got = zread_read(c->z, buf, n);
    if (got > 0)
        c->out += (uint64_t)got;
    return got;
}

/* Reads a whole (small) Release into memory, at most INDEX_RELEASE_MAX bytes. */
static int slurp(struct zread *z, char **out, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap), *grown;
    ssize_t got;
    if (!buf)
        return -ENOMEM;
    while ((got = zread_read(z, buf + n, cap - n)) > 0) {
        n += (size_t)got;
        if (n < cap)
            continue;
        if (cap >= INDEX_RELEASE_MAX || !(grown = realloc(buf, cap * 2))) {
            free(buf);
            return cap >= INDEX_RELEASE_MAX ? -EFBIG : -ENOMEM;
        }
        buf = grown;
        cap *= 2;
    }
    if (got < 0) {
        free(buf);
        return (int)got;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int parse_from(struct ictx *c)
{
    struct deb822 p;
    char *buf = NULL;
    size_t len = 0;
    int rc;
    if (c->kind == INDEX_RELEASE) {
        if ((rc = slurp(c->z, &buf, &len)) == 0)
            rc = index_release_parse(c, buf, len);
        free(buf);
        return rc;
    }
    if ((rc = deb822_init_reader(&p, zread_cb, c)) == 0)
        rc = parse_stream(c, &p);
    deb822_done(&p);
    return rc;
}

int index_parse(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                const struct index_opts *opts, struct index_stats *stats)
{
    struct ictx c;
    enum zread_format fmt;
    int rc = ctx_init(&c, db, key, kind, opts);
    if (rc == 0 && !c.o->sha256 && hash_fd(fd, &c) < 0)
        rc = 0; /* not seekable, say: parsed without knowing its identity */
    if (rc == 0 && parsed_before(&c, &rc)) {
        /* nothing to do */
    } else if (rc == 0 && (rc = format_of(key, &fmt)) == 0 &&
               (rc = zread_open_fd(&c.z, fd, fmt)) == 0) {
        if (c.o->out_max > 0)
            zread_set_limit(c.z, c.o->out_max);
        c.records_max = records_bound(zread_in_size(c.z), c.o->records_max);
        rc = parse_from(&c);
    }
    zread_free(c.z);
    c.z = NULL;
    finish(&c, rc, stats);
    return rc;
}

int index_parse_fd(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                   struct index_stats *stats)
{
    return index_parse(db, key, kind, fd, NULL, stats);
}

int index_parse_file(struct hashdb *db, const char *key, enum index_kind kind,
                     const char *file_path, struct index_stats *stats)
{
    int fd = open(file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (stats)
            *stats = (struct index_stats){0};
        return rc;
    }
    int rc = index_parse_fd(db, key, kind, fd, stats);
    close(fd);
    return rc;
}

const char *index_strerror(int rc)
{
    switch (rc) {
    case -EFBIG: /* the bounds of zread.h, and INDEX_RELEASE_MAX */
        return "its content is larger than an index may be (64 times its compressed size, "
               "1 GiB at most, 32 MiB for a Release)";
    case -EOVERFLOW:
        return "it lists more entries than its size can hold hashes for";
    case -ETIME:
        return "its parse ran past the CPU time one index may take";
    case -EBADMSG:
        return "not a signed Release, or no SHA256/SHA1 list in it";
    case -EIO:
        return "corrupt or truncated compressed data";
    case -ENOTSUP:
        return "a compression apt-dht does not read";
    case -EBUSY:
        return "the hash database stayed locked";
    default:
        return strerror(-rc);
    }
}

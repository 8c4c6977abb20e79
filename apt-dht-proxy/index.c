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
 * A whole file is one transaction: an I/O or decompression error rolls everything back,
 * so a truncated download never leaves half of its knowledge behind.
 *
 * Release files are small (< 1 MiB in practice, capped at INDEX_RELEASE_MAX) and are
 * parsed from memory in two passes: the first finds out whether a SHA256 section exists
 * and whether Acquire-By-Hash is on (either may follow the other), the second writes. */
#include "aptdht-config.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/url.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apt-dht-proxy/deb822.h"
#include "apt-dht-proxy/zread.h"

#define INDEX_KEY_MAX 4096                   /* bytes, with the NUL */
#define INDEX_RELEASE_MAX ((size_t)32 << 20) /* decompressed bytes */
#define SRC_FILES_MAX 64                     /* files per Sources paragraph (a few in practice) */
#define SRC_NAME_MAX 256                     /* bytes of a Sources file name, with the NUL */

struct ictx {
    struct hashdb *db;
    const char *key; /* the index's own key; origin of Release entries */
    size_t root_len; /* ROOT = key[0..root_len) */
    struct index_stats st;
};

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
static bool path_ok(const char *s, size_t n, bool allow_slash)
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
static bool checksum_line(const char *s, size_t n, uint8_t *hash, size_t hash_len,
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
static int join_key(char *out, const char *a, size_t an, const char *b, size_t bn,
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

enum index_kind index_kind_of(const char *key)
{
    if (!key || !strstr(key, "/dists/") || strstr(key, "/by-hash/"))
        return INDEX_NONE;
    const char *base = base_name(key);
    if (strcmp(base, "InRelease") == 0 || strcmp(base, "Release") == 0)
        return per_arch_release(key, base) ? INDEX_NONE : INDEX_RELEASE;
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

static int ctx_init(struct ictx *c, struct hashdb *db, const char *key, enum index_kind *kind)
{
    memset(c, 0, sizeof(*c));
    if (!db || !key || strlen(key) >= INDEX_KEY_MAX)
        return -EINVAL;
    if (*kind == INDEX_NONE)
        *kind = index_kind_of(key);
    if (*kind != INDEX_RELEASE && *kind != INDEX_PACKAGES && *kind != INDEX_SOURCES)
        return -EINVAL;
    const char *dists = strstr(key, "/dists/");
    if (!dists || dists == key)
        return -EINVAL;
    c->db = db;
    c->key = key;
    c->root_len = (size_t)(dists - key);
    return 0;
}

static int put(struct ictx *c, const char *key, const struct hashdb_entry *e, const char *origin)
{
    int rc = hashdb_put_origin(c->db, key, e, origin);
    if (rc == 0)
        c->st.records++;
    return rc;
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

/* A path field (Filename, Directory): once per paragraph, a relative path as path_ok
 * means it. Copied into dst (INDEX_KEY_MAX bytes) only when good; false when not. */
static bool take_path(const struct deb822 *p, bool *have, char *dst, size_t *dst_len)
{
    bool ok = !*have && path_ok(p->value, p->value_len, true);
    if (ok) {
        memcpy(dst, p->value, p->value_len);
        *dst_len = p->value_len;
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
        join_key(key, c->key, c->root_len, s->name, s->name_len, NULL, 0) < 0) {
        c->st.skipped++;
        return 0;
    }
    return put(c, key, &s->e, NULL);
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
    if (!checksum_line(p->value, p->value_len, hash, is256 ? 32 : 20, &size, &name, &name_len) ||
        !path_ok(name, name_len, false) || name_len >= SRC_NAME_MAX ||
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
        if (join_key(key, c->key, c->root_len, s->dir, s->dir_len, f->name, strlen(f->name)) < 0)
            c->st.skipped++;
        else
            rc = put(c, key, &e, NULL);
    }
    return rc;
}

static const struct para_kind sources = {
    sizeof(struct src), offsetof(struct src, dir), src_field, src_cont, src_write,
};

/* ---- Release / InRelease ---------------------------------------------------------- */

static bool line_is(const char *l, size_t n, const char *text)
{
    size_t t = strlen(text);
    while (n > t && (l[n - 1] == ' ' || l[n - 1] == '\t'))
        n--;
    return n == t && memcmp(l, text, t) == 0;
}

/* Finds the signed text of a clearsigned InRelease: after the armor headers' blank line,
 * up to the signature. A plain Release is its own body. 0 or -EBADMSG. */
static int release_body(const char *buf, size_t len, const char **body, size_t *blen,
                        bool *armored)
{
    struct deb822 p;
    const char *l;
    size_t n;
    deb822_init_mem(&p, buf, len);
    *body = buf;
    *blen = len;
    *armored = false;
    if (deb822_line(&p, &l, &n) != 1 || !line_is(l, n, "-----BEGIN PGP SIGNED MESSAGE-----"))
        return 0;
    *armored = true;
    int rc;
    while ((rc = deb822_line(&p, &l, &n)) != 0 && !(rc == 1 && n == 0))
        ; /* armor headers ("Hash: SHA512") end at an empty line */
    if (rc == 0)
        return -EBADMSG;
    *body = buf + p.mem_pos;
    while ((rc = deb822_line(&p, &l, &n)) != 0)
        if (rc == 1 && line_is(l, n, "-----BEGIN PGP SIGNATURE-----")) {
            *blen = (size_t)(l - *body);
            return 0;
        }
    return -EBADMSG;
}

struct rel {
    const char *dir; /* ROOT/dists/SUITE: the Release's own directory */
    size_t dir_len;
    bool by_hash, saw256, saw1;
};

/* Pass 1: which sections exist, and is Acquire-By-Hash on. First paragraph only. */
static void release_scan(struct rel *r, const char *body, size_t len, bool armored)
{
    struct deb822 p;
    int tok;
    deb822_init_mem(&p, body, len);
    p.dash_escaped = armored;
    while ((tok = deb822_next(&p)) > 0 && tok != DEB822_END) {
        if (tok != DEB822_FIELD)
            continue;
        if (deb822_is(&p, "Acquire-By-Hash"))
            r->by_hash = p.value_len == 3 && strncasecmp(p.value, "yes", 3) == 0;
        r->saw256 |= deb822_is(&p, "SHA256");
        r->saw1 |= deb822_is(&p, "SHA1");
    }
}

/* ROOT/dists/SUITE/<dir of path>/by-hash/<ALGO>/<hex> */
static int by_hash_key(char *out, const struct rel *r, const char *path, size_t path_len,
                       const char *algo, const char *hex)
{
    const char *slash = memrchr(path, '/', path_len);
    size_t dn = slash ? (size_t)(slash - path) + 1 : 0;
    int k = snprintf(out, INDEX_KEY_MAX, "%.*s/%.*sby-hash/%s/%s", (int)r->dir_len, r->dir,
                     (int)dn, path, algo, hex);
    return (k < 0 || k >= INDEX_KEY_MAX) ? -ENAMETOOLONG : 0;
}

static int release_line(struct ictx *c, const struct rel *r, const char *s, size_t n)
{
    char key[INDEX_KEY_MAX], hex[65];
    const char *path;
    size_t path_len, hl = r->saw256 ? 32 : 20;
    struct hashdb_entry e = {0};
    uint8_t *hash = r->saw256 ? e.sha256 : e.sha1;
    if (!checksum_line(s, n, hash, hl, &e.size, &path, &path_len) ||
        !path_ok(path, path_len, true) ||
        join_key(key, r->dir, r->dir_len, path, path_len, NULL, 0) < 0) {
        c->st.skipped++;
        return 0;
    }
    *(r->saw256 ? &e.have_sha256 : &e.have_sha1) = true;
    int rc = put(c, key, &e, c->key);
    if (rc < 0 || !r->by_hash)
        return rc;
    hex_encode(hash, hl, hex);
    if (by_hash_key(key, r, path, path_len, r->saw256 ? "SHA256" : "SHA1", hex) < 0) {
        c->st.skipped++;
        return 0;
    }
    return put(c, key, &e, NULL);
}

/* Pass 2: the chosen section's lines become entries. */
static int release_write(struct ictx *c, const struct rel *r, const char *body, size_t len,
                         bool armored)
{
    struct deb822 p;
    bool in_sec = false;
    int tok, rc = hashdb_forget_origin(c->db, c->key);
    deb822_init_mem(&p, body, len);
    p.dash_escaped = armored;
    while (rc >= 0 && (tok = deb822_next(&p)) > 0 && tok != DEB822_END) {
        if (tok == DEB822_FIELD)
            in_sec = deb822_is(&p, r->saw256 ? "SHA256" : "SHA1");
        else if (tok == DEB822_BAD)
            c->st.skipped++;
        else if (tok == DEB822_CONT && in_sec)
            rc = release_line(c, r, p.value, p.value_len);
    }
    return rc < 0 ? rc : 0;
}

static int parse_release(struct ictx *c, const char *buf, size_t len)
{
    struct rel r = {.dir = c->key};
    const char *body;
    size_t blen;
    bool armored;
    const char *slash = strrchr(c->key, '/');
    r.dir_len = (size_t)(slash - c->key);
    /* The Release must sit in ROOT/dists/SUITE/, SUITE non-empty. */
    if (r.dir_len <= c->root_len + strlen("/dists/"))
        return -EINVAL;
    int rc = release_body(buf, len, &body, &blen, &armored);
    if (rc < 0)
        return rc;
    release_scan(&r, body, blen, armored);
    if (!r.saw256 && !r.saw1)
        return -EBADMSG;
    if ((rc = hashdb_begin(c->db)) < 0)
        return rc;
    if ((rc = release_write(c, &r, body, blen, armored)) < 0 ||
        (rc = hashdb_commit(c->db)) < 0) {
        hashdb_rollback(c->db);
        return rc;
    }
    return 0;
}

/* ---- entry points ----------------------------------------------------------------- */

/* Packages or Sources from a tokenizer, in one transaction. */
static int parse_stream(struct ictx *c, enum index_kind kind, struct deb822 *p)
{
    int rc = hashdb_begin(c->db);
    if (rc < 0)
        return rc;
    rc = parse_paragraphs(c, kind == INDEX_PACKAGES ? &packages : &sources, p);
    if (rc < 0 || (rc = hashdb_commit(c->db)) < 0) {
        hashdb_rollback(c->db);
        return rc;
    }
    return 0;
}

static void finish(struct ictx *c, int rc, struct index_stats *stats)
{
    if (!stats)
        return;
    *stats = c->st;
    if (rc < 0)
        stats->records = 0; /* rolled back: nothing was written */
}

int index_parse_buffer(struct hashdb *db, const char *key, enum index_kind kind,
                       const char *buf, size_t len, struct index_stats *stats)
{
    struct ictx c;
    struct deb822 p;
    int rc = ctx_init(&c, db, key, &kind);
    if (rc == 0 && kind == INDEX_RELEASE) {
        rc = parse_release(&c, buf, len);
    } else if (rc == 0) {
        deb822_init_mem(&p, buf, len);
        rc = parse_stream(&c, kind, &p);
    }
    finish(&c, rc, stats);
    return rc;
}

static ssize_t zread_cb(void *ctx, void *buf, size_t n)
{
    return zread_read(ctx, buf, n);
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

static int parse_from(struct ictx *c, enum index_kind kind, struct zread *z)
{
    struct deb822 p;
    char *buf = NULL;
    size_t len = 0;
    int rc;
    if (kind == INDEX_RELEASE) {
        if ((rc = slurp(z, &buf, &len)) == 0)
            rc = parse_release(c, buf, len);
        free(buf);
        return rc;
    }
    if ((rc = deb822_init_reader(&p, zread_cb, z)) == 0)
        rc = parse_stream(c, kind, &p);
    deb822_done(&p);
    return rc;
}

int index_parse_fd(struct hashdb *db, const char *key, enum index_kind kind, int fd,
                   struct index_stats *stats)
{
    struct ictx c;
    struct zread *z = NULL;
    enum zread_format fmt;
    int rc = ctx_init(&c, db, key, &kind);
    if (rc == 0 && (rc = format_of(key, &fmt)) == 0 && (rc = zread_open_fd(&z, fd, fmt)) == 0)
        rc = parse_from(&c, kind, z);
    zread_free(z);
    finish(&c, rc, stats);
    return rc;
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

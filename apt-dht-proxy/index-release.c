/* index-release.c - a Release or InRelease file: the hashes of the indices it signs.
 *
 * Model: a suite's Release is one deb822 paragraph whose SHA256 (and older SHA1) field
 * opens a list of " HEX SIZE PATH" lines, PATH relative to the Release's own directory
 * (ROOT/dists/SUITE, or a flat repository's ROOT). Each valid line becomes one hashdb
 * entry, and with Acquire-By-Hash: yes a second one under DIR/by-hash/ALGO/HEX, the name
 * apt fetches the same bytes by. An InRelease is the same text clearsigned: only the
 * signed body between the armor headers and the signature is read, dash-escaping undone.
 *
 * Release files are small (< 1 MiB in practice, capped at INDEX_RELEASE_MAX by index.c)
 * and are parsed from memory in two passes: the first finds out whether a SHA256 section
 * exists and whether Acquire-By-Hash is on (either may follow the other), the second
 * writes from SHA256 if there is one, else from SHA1. A bad line is skipped and counted;
 * it does not spoil the others, because each line stands alone. */
#include "aptdht-config.h"
#include "apt-dht-proxy/index-int.h"
#include "apt-dht-proxy/url.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "apt-dht-proxy/deb822.h"

#define RELEASE_TICK_LINES 4096 /* Release lines between two ticks */

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
    if (!index_checksum_line(s, n, hash, hl, &e.size, &path, &path_len) ||
        !index_path_ok(path, path_len, true) ||
        index_join_key(key, r->dir, r->dir_len, path, path_len, NULL, 0) < 0) {
        c->st.skipped++;
        return 0;
    }
    *(r->saw256 ? &e.have_sha256 : &e.have_sha1) = true;
    int rc = ictx_put(c, key, &e);
    if (rc < 0 || !r->by_hash)
        return rc;
    hex_encode(hash, hl, hex);
    if (by_hash_key(key, r, path, path_len, r->saw256 ? "SHA256" : "SHA1", hex) < 0) {
        c->st.skipped++;
        return 0;
    }
    return ictx_put(c, key, &e);
}

/* Pass 2: the chosen section's lines become entries. */
static int release_write(struct ictx *c, const struct rel *r, const char *body, size_t len,
                         bool armored)
{
    struct deb822 p;
    bool in_sec = false;
    int tok, rc = 0;
    size_t lines = 0;
    deb822_init_mem(&p, body, len);
    p.dash_escaped = armored;
    while (rc >= 0 && (tok = deb822_next(&p)) > 0 && tok != DEB822_END) {
        if (++lines % RELEASE_TICK_LINES == 0 && (rc = ictx_tick(c)) < 0)
            break;
        if (tok == DEB822_FIELD)
            in_sec = deb822_is(&p, r->saw256 ? "SHA256" : "SHA1");
        else if (tok == DEB822_BAD)
            c->st.skipped++;
        else if (tok == DEB822_CONT && in_sec)
            rc = release_line(c, r, p.value, p.value_len);
    }
    return rc < 0 ? rc : 0;
}

int index_release_parse(struct ictx *c, const char *buf, size_t len)
{
    struct rel r = {.dir = c->key};
    const char *body;
    size_t blen;
    bool armored;
    const char *slash = strrchr(c->key, '/');
    r.dir_len = (size_t)(slash - c->key);
    /* The Release must sit in ROOT/dists/SUITE/, SUITE non-empty; a flat repository's in
     * its root. */
    if (r.dir_len <= c->root_len + strlen("/dists/") &&
        !(index_is_flat(c->key) && r.dir_len == c->root_len))
        return -EINVAL;
    int rc = release_body(buf, len, &body, &blen, &armored);
    if (rc < 0)
        return rc;
    release_scan(&r, body, blen, armored);
    if (!r.saw256 && !r.saw1)
        return -EBADMSG;
    if ((rc = release_write(c, &r, body, blen, armored)) < 0)
        return rc;
    return ictx_commit(c);
}

/* url.c - one bounded pass over a raw request target.
 *
 * The target is read once, left to right, with a cursor that never passes its limit.
 * Percent escapes are decoded exactly once, and every decoded segment must be a plain
 * file name: no '.', '..', empty or dot-led segments, no '/' hidden as %2F, no control
 * bytes, backslashes or non-ASCII. That makes the decoded path safe to use as a
 * relative path under the cache dir, and its re-encoding for the upstream is canonical,
 * so every spelling of one file reaches one cache entry. */
#include "aptdht-config.h"
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include "apt-dht-proxy/url.h"

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_decode(const char *hex, size_t n_bytes, uint8_t *out)
{
    for (size_t i = 0; i < n_bytes; i++) {
        int hi = hex_digit((unsigned char)hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit((unsigned char)hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * n_bytes] == '\0' ? 0 : -EINVAL;
}

/* A decoded byte allowed in a path segment. A decoded '%' is refused too: Debian file
 * names never hold one, and a "%2e" that survives one decoding would mean something else
 * to any component that decodes again. */
static bool safe_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '\\' && c != '/' && c != '?' && c != '#' && c != '%';
}

/* Decodes the path part of a target (which starts at '/') into out. */
static int decode_path(const char *p, char *out, size_t outsz)
{
    size_t o = 0, seg_start = 0;
    if (*p != '/')
        return -EINVAL;
    for (;;) {
        int c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            if (o > 0) { /* close the segment just written */
                size_t len = o - seg_start;
                if (len == 1 && out[seg_start] == '.') {
                    o = seg_start - 1; /* "." (a flat repository's "./"): dropped */
                } else if (len == 0 || out[seg_start] == '.') {
                    return -EINVAL; /* empty, "..", or hidden segment */
                }
            }
            if (c == '\0')
                break;
            if (o + 1 >= outsz)
                return -ENAMETOOLONG;
            out[o++] = '/';
            seg_start = o;
            p++;
            continue;
        }
        if (c == '%') {
            int hi = hex_digit((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : hex_digit((unsigned char)p[2]);
            if (lo < 0)
                return -EINVAL;
            c = hi << 4 | lo;
            p += 3;
        } else {
            p++;
        }
        if (!safe_byte((unsigned char)c))
            return -EINVAL;
        if (o + 1 >= outsz)
            return -ENAMETOOLONG;
        out[o++] = (char)c;
    }
    if (o < 2)
        return -EINVAL; /* "/" alone names no file */
    out[o] = '\0';
    return 0;
}

static bool host_byte(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* Parses "host[:port]" of length n into out (lower case, default port dropped). */
static int parse_authority(const char *a, size_t n, bool https, char *out)
{
    size_t i = 0, h0, h1;
    if (n == 0 || n > URL_MAX_HOST)
        return -EINVAL;
    if (a[0] == '[') {
        h0 = 0;
        while (i < n && a[i] != ']') {
            unsigned char c = (unsigned char)a[i];
            if (i > 0 && !isxdigit(c) && c != ':' && c != '.')
                return -EINVAL;
            i++;
        }
        if (i == n || i < 3)
            return -EINVAL;
        h1 = ++i;
    } else {
        h0 = 0;
        while (i < n && a[i] != ':') {
            if (!host_byte((unsigned char)a[i]))
                return -EINVAL;
            i++;
        }
        h1 = i;
        if (h1 == 0 || a[0] == '.' || a[0] == '-' || a[h1 - 1] == '.')
            return -EINVAL;
    }
    unsigned long port = 0;
    if (i < n) {
        if (a[i] != ':' || i + 1 == n || n - i - 1 > 5)
            return -EINVAL;
        for (size_t j = i + 1; j < n; j++) {
            if (!isdigit((unsigned char)a[j]))
                return -EINVAL;
            port = port * 10 + (unsigned long)(a[j] - '0');
        }
        if (port == 0 || port > 65535)
            return -EINVAL;
    }
    size_t o = 0;
    for (size_t j = h0; j < h1; j++)
        out[o++] = (char)tolower((unsigned char)a[j]);
    if (port && port != (https ? 443u : 80u)) {
        char num[8];
        size_t k = 0;
        for (unsigned long p = port; p; p /= 10)
            num[k++] = (char)('0' + p % 10);
        out[o++] = ':';
        while (k)
            out[o++] = num[--k];
    }
    out[o] = '\0';
    return 0;
}

static int parse_absolute(const char *raw, struct url_target *out)
{
    const char *sep = strstr(raw, "://");
    size_t slen = (size_t)(sep - raw);
    if (slen == 4 && strncasecmp(raw, "http", 4) == 0)
        out->https = false;
    else if (slen == 5 && strncasecmp(raw, "https", 5) == 0)
        out->https = true;
    else
        return -EPROTONOSUPPORT;
    const char *auth = sep + 3;
    const char *slash = strchr(auth, '/');
    size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
    if (memchr(auth, '@', alen))
        return -EINVAL; /* user info has no place in an archive URL */
    int r = parse_authority(auth, alen, out->https, out->host);
    if (r < 0)
        return r;
    out->form = URL_ABSOLUTE;
    return slash ? decode_path(slash, out->path, sizeof out->path) : -EINVAL;
}

/* apt-cacher-ng's rewrite-mode spelling of an https mirror, "/HTTPS///HOST/PATH", so
 * that its users' sources work as they are (no other target has empty segments).
 * Returns where the rest ("/HOST/PATH") starts, or raw itself. The other spelling,
 * "/HOST:443/PATH", is told by its port (parse_origin). */
static const char *https_prefix(const char *raw, bool *https)
{
    if (strncasecmp(raw, "/https///", 9) == 0) {
        *https = true;
        return raw + 8;
    }
    return raw;
}

static int parse_origin(const char *raw, struct url_target *out)
{
    char tmp[URL_MAX_PATH + URL_MAX_HOST + 2];
    bool https = false;
    raw = https_prefix(raw, &https);
    int r = decode_path(raw, tmp, sizeof tmp);
    if (r < 0)
        return r;
    const char *first = tmp + 1;
    const char *rest = strchr(first, '/');
    if (strncmp(first, "~/", 2) == 0 || strcmp(first, "~") == 0) {
        out->form = URL_PEER;
        if (!rest || strncmp(rest, "/sha256/", 8) != 0 || strlen(rest + 8) != 64)
            return -EINVAL;
        memcpy(out->path, rest, 8 + 64 + 1); /* length checked just above */
        return hex_decode(rest + 8, 32, out->sha256);
    }
    if (!rest || rest[1] == '\0')
        return -EINVAL;
    size_t hlen = (size_t)(rest - first);
    if (strlen(rest) > URL_MAX_PATH)
        return -ENAMETOOLONG;
    r = parse_authority(first, hlen, https, out->host);
    if (r < 0)
        return r;
    /* "/HOST:443/PATH": an https mirror in rewrite mode (nobody serves plain http there);
     * the host keeps its ":443", so the target still names one host in one spelling */
    size_t ol = strlen(out->host);
    if (!https && ol > 4 && strcmp(out->host + ol - 4, ":443") == 0)
        https = true;
    if (https && !url_host_is_hostname(out->host))
        return -EINVAL; /* a backend name is not a host to reach over https */
    memcpy(out->path, rest, strlen(rest) + 1);
    out->form = URL_ORIGIN;
    out->https = https;
    return 0;
}

int url_parse(const char *raw, struct url_target *out)
{
    memset(out, 0, sizeof *out);
    if (!raw || !*raw)
        return -EINVAL;
    if (strnlen(raw, URL_MAX_TARGET + 1) > URL_MAX_TARGET)
        return -ENAMETOOLONG;
    if (raw[0] == '/')
        return parse_origin(raw, out);
    if (strstr(raw, "://"))
        return parse_absolute(raw, out);
    return -EINVAL;
}

bool url_host_is_hostname(const char *host)
{
    return strchr(host, '.') || strchr(host, ':') || host[0] == '[' ||
           strcmp(host, "localhost") == 0;
}

static const char *basename_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static bool has_segment(const char *path, const char *seg)
{
    size_t n = strlen(seg);
    for (const char *p = path; (p = strstr(p, seg)) != NULL; p += n)
        if (p > path && p[-1] == '/' && p[n] == '/')
            return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const char *const package_suffixes[] = {
    ".deb", ".udeb", ".ddeb", ".dsc", ".changes", ".buildinfo", ".diff.gz",
    ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.lzma", ".tar.zst", ".tar.gz.asc",
    ".tar.xz.asc", ".tar.bz2.asc", NULL,
};

static bool is_package_name(const char *base)
{
    for (size_t i = 0; package_suffixes[i]; i++)
        if (ends_with(base, package_suffixes[i]))
            return true;
    return false;
}

/* Index names as they appear in flat repositories ("deb URL ./") too. */
static bool is_index_name(const char *base)
{
    static const char *const exact[] = {"InRelease", "Release", "Release.gpg", NULL};
    static const char *const prefix[] = {"Packages", "Sources", "Translation-", "Contents-",
                                         "Components-", "icons-", NULL};
    for (size_t i = 0; exact[i]; i++)
        if (strcmp(base, exact[i]) == 0)
            return true;
    for (size_t i = 0; prefix[i]; i++)
        if (strncmp(base, prefix[i], strlen(prefix[i])) == 0)
            return true;
    return false;
}

bool url_is_archive_path(const char *path)
{
    const char *base = basename_of(path);
    if (has_segment(path, "dists") || has_segment(path, "pool") || has_segment(path, "by-hash"))
        return true;
    return is_index_name(base) || is_package_name(base);
}

enum url_class url_classify(const char *path)
{
    if (has_segment(path, "pool") || has_segment(path, "by-hash") ||
        is_package_name(basename_of(path)))
        return URL_IMMUTABLE;
    return URL_VOLATILE;
}

bool url_by_hash_sha256(const char *path, uint8_t out[32])
{
    const char *p = strstr(path, "/by-hash/SHA256/");
    if (!p)
        return false;
    p += strlen("/by-hash/SHA256/");
    return strlen(p) == 64 && hex_decode(p, 32, out) == 0;
}

int url_encode_path(const char *path, char *out, size_t outlen)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        bool keep = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '/';
        size_t need = keep ? 1 : 3;
        if (o + need >= outlen)
            return -ENAMETOOLONG;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = digits[*p >> 4];
            out[o++] = digits[*p & 15];
        }
    }
    if (o >= outlen)
        return -ENAMETOOLONG;
    out[o] = '\0';
    return (int)o;
}

int url_join(const char *base, const char *path, char *out, size_t outlen)
{
    size_t bl = strlen(base);
    char enc[URL_MAX_PATH * 3 + 1];
    int n = url_encode_path(path, enc, sizeof enc);
    if (n < 0)
        return n;
    if (bl + (size_t)n + 1 > outlen)
        return -ENAMETOOLONG;
    memcpy(out, base, bl);
    memcpy(out + bl, enc, (size_t)n + 1);
    return (int)(bl + (size_t)n);
}

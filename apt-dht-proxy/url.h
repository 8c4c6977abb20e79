/* url.h - request targets: parsing, validation and normalisation.
 *
 * apt reaches the proxy in three forms (doc/ARCHITECTURE.md): the absolute URI of proxy mode
 * ("http://mirror.example/debian/pool/..."), the rewrite form ("/mirror.example/debian/...")
 * and a backend name ("/debian/..."); peers use "/~/sha256/<64 hex>". url_parse reads the
 * raw target (still percent-encoded) once, with hard limits, and yields a decoded path
 * made only of safe segments. Which of "rewrite" and "backend" a leading segment means is
 * decided by the router, which knows the configured backends.
 *
 * The cache key of a file is "HOST[:PORT]/PATH-WITHOUT-LEADING-SLASH" of its canonical
 * upstream; it is also its relative path under the cache dir, which is why segments are
 * validated so strictly here. */
#ifndef APT_DHT_URL_H
#define APT_DHT_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_MAX_TARGET 4096 /* raw request target, bytes */
#define URL_MAX_PATH 2048   /* decoded path, bytes */
#define URL_MAX_HOST 262    /* "host:port" */
#define URL_MAX_KEY (URL_MAX_HOST + URL_MAX_PATH + 2)

enum url_form {
    URL_ABSOLUTE, /* http://host[:port]/path: host and path set */
    URL_ORIGIN,   /* /first/rest: host = first segment (a host or a backend name), path = /rest */
    URL_PEER,     /* /~/sha256/<hex>: sha256 set */
};

enum url_class {
    URL_IMMUTABLE, /* pool/..., by-hash/..., package files: same name, same bytes, forever */
    URL_VOLATILE,  /* InRelease, Release, indices by name: revalidated with the mirror */
};

struct url_target {
    enum url_form form;
    bool https;                 /* an https:// target, or the rewrite spellings
                                   /HOST:443/PATH and /HTTPS///HOST/PATH */
    char host[URL_MAX_HOST + 1]; /* lower case; ":port" kept only when not the default */
    char path[URL_MAX_PATH + 1]; /* decoded, begins with '/', safe segments only */
    uint8_t sha256[32];          /* URL_PEER */
};

/* Parses a raw request target. Returns 0, or:
 *  -ENAMETOOLONG  target or path over the limits (answer 414)
 *  -EINVAL        malformed: bad escape, encoded '/', NUL or control byte, backslash,
 *                 "." or ".." or empty segment, bad host or port (answer 400)
 *  -EPROTONOSUPPORT a scheme other than http/https (answer 400) */
int url_parse(const char *raw, struct url_target *out);

/* True if host looks like a host name or address literal rather than a backend name:
 * it has a dot, a port, is an IPv6 literal, or is "localhost". */
bool url_host_is_hostname(const char *host);

/* True if the path is archive-shaped (under dists/ or pool/, a by-hash name, or an
 * index / package file name); anything else is refused so the proxy is never open. */
bool url_is_archive_path(const char *path);

enum url_class url_classify(const char *path);

/* If path ends in ".../by-hash/SHA256/<64 hex>", writes the digest and returns true. */
bool url_by_hash_sha256(const char *path, uint8_t out[32]);

/* Percent-encodes a decoded path for an upstream request: keeps [A-Za-z0-9-._/] and
 * encodes every other byte (so '+', '~' and ':' are sent as %2B, %7E, %3A, as apt does).
 * Returns the length, or -ENAMETOOLONG if it does not fit in outlen. */
int url_encode_path(const char *path, char *out, size_t outlen);

/* Joins base (an upstream URL without trailing '/') and an encoded path. */
int url_join(const char *base, const char *path, char *out, size_t outlen);

/* Hex helpers (lower case). hex_digit: the value of one hex digit (either case), or -1.
 * hex_decode returns 0 or -EINVAL. */
int hex_digit(int c);
void hex_encode(const uint8_t *in, size_t n, char *out);
int hex_decode(const char *hex, size_t n_bytes, uint8_t *out);

#endif

/* router.h - which upstream, which cache key, which class: the routing of apt's requests.
 *
 * A router is built from the configuration (the backends and their mirrors) and the port
 * the proxy listens on (so that it can refuse to fetch from itself). It is immutable: a
 * reload builds a new one and swaps it in whole, and routes already handed out own their
 * strings, so they outlive the router that made them.
 *
 * All three request forms (proxy, rewrite, backend name) of one file map to one route:
 * the same cache key and the same ordered list of upstream URLs (mirror failover). */
#ifndef APT_DHT_ROUTER_H
#define APT_DHT_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/url.h"

#define ROUTE_MAX_URLS 8

struct config;
struct router;

/* Where a request's file comes from and goes to. Every string is heap-allocated and owned
 * by the route (route_done frees them), so a route costs what its paths cost. */
struct route {
    char *key;                   /* cache key: "BACKEND/PATH", or "HOST/PATH" (router.c) */
    char *path;                  /* the path as the mirror knows it (for by-hash) */
    char *urls[ROUTE_MAX_URLS];  /* upstream URLs in the order to try */
    size_t n_urls;
    size_t root_len;             /* length of key's part that prefixes path */
    enum url_class cls;
};

/* Builds a router for cfg's backends; own_port is the port the proxy answers on.
 * Unusable mirror URLs are skipped with a warning. 0 or -ENOMEM. */
int router_new(struct router **out, const struct config *cfg, uint16_t own_port);
void router_free(struct router *r);

/* Maps a parsed apt request (not the peer form) to *out. Returns 0, or an HTTP status
 * (403, 414) with *why set to a one-line reason; *out then holds nothing to free. */
unsigned router_resolve(const struct router *r, const struct url_target *t, struct route *out,
                        const char **why);

/* The by-hash sibling of an index route: same root and mirrors, path
 * DIR/by-hash/SHA256/HEX. 0 or -ENAMETOOLONG / -ENOMEM / -EINVAL. */
int route_by_hash(const struct route *from, const uint8_t sha256[32], struct route *out);

/* True if host ("HOST[:PORT]", as in a key's first segment) is a mirror of some backend. */
bool router_is_mirror_host(const struct router *r, const char *host);

/* The key a file cached as old_key (a host's key: "HOST/PATH") has under this router: a
 * file of a mirror of some backend belongs under the backend's name. Writes it into out
 * (n bytes) and returns 1 when it differs, 0 when old_key stays (no backend serves it, or
 * it is not a key a request makes), -ENAMETOOLONG. */
int router_rekey(const struct router *r, const char *old_key, char *out, size_t n);
/* True if ip (numeric IPv4 or IPv6, as a socket reports it) and port are this proxy:
 * its port and an address of this host. A mirror transfer that connected there was sent
 * back to us by a name that resolves to this host. Accepts r NULL (false). */
bool router_is_self_addr(const struct router *r, const char *ip, unsigned port);

/* Frees what the route owns and zeroes it; accepts a zeroed route. */
void route_done(struct route *rt);

#endif

/* router.c - routes of apt's requests: backends, mirrors, self-detection.
 *
 * A backend (approx style) is a name and an ordered list of mirrors. A request in proxy
 * or rewrite form for a host+path that one of a backend's mirrors serves is routed to that
 * backend, so every form shares its cache entries and its failover list. A request for any
 * other host goes to that host alone, over http unless the request named https (the
 * /HOST:443/ and /HTTPS/// spellings) or the host is one of upstream.https_hosts (the
 * proxy then fetches https://HOST/PATH for apt's http://HOST/PATH; the cache key is the
 * same either way). Only archive-shaped paths are routed: the proxy is never an open
 * proxy.
 *
 * Cache keys: a backend's files are keyed by the backend's name ("NAME/PATH"), so
 * reordering, adding or replacing its mirrors keeps every cached file; a host of its own
 * is keyed "HOST[:PORT]/PATH". A host spelt like a backend name is keyed "HOST:80/PATH"
 * (a port that the canonical host never carries), so the two never share a key. Caches
 * from before backend-name keys (keyed by the first mirror's host and prefix) are moved
 * at start-up (rekey.c), with router_rekey naming each file's new key. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/router.h"

struct mirror {
    char *base;   /* "http://mirror.example/debian" */
    char *host;   /* "mirror.example" (":port" when not the default) */
    char *prefix; /* "/debian" ("" for a mirror at the root) */
};

struct backend {
    char *name;
    struct mirror mirrors[ROUTE_MAX_URLS];
    size_t n;
};

#define ROUTER_MAX_LOCAL 64

struct local_addr {
    int family;
    uint8_t addr[16];
};

struct router {
    struct backend *backends;
    size_t n_backends;
    uint16_t own_port;
    struct local_addr local[ROUTER_MAX_LOCAL]; /* this host's interface addresses */
    size_t n_local;
    char **https_hosts; /* upstream.https_hosts, lower-case */
    size_t n_https_hosts;
};

static void read_local_addrs(struct router *r);

/* ---- building ---- */

/* Parses "BASE/x" so that a mirror at the root parses too. */
static int mirror_init(struct mirror *m, const char *base)
{
    struct url_target t;
    char probe[URL_MAX_TARGET + 4];
    int w = snprintf(probe, sizeof probe, "%s/x", base);
    if (w < 0 || (size_t)w >= sizeof probe || url_parse(probe, &t) != 0 ||
        t.form != URL_ABSOLUTE)
        return -EINVAL;
    t.path[strlen(t.path) - 2] = '\0'; /* drop "/x" */
    m->base = strdup(base);
    m->host = strdup(t.host);
    m->prefix = strdup(t.path);
    return m->base && m->host && m->prefix ? 0 : -ENOMEM;
}

static void mirror_done(struct mirror *m)
{
    free(m->base);
    free(m->host);
    free(m->prefix);
}

static int backend_init(struct backend *b, const struct config_backend *cb)
{
    if (!(b->name = strdup(cb->name)))
        return -ENOMEM;
    for (size_t j = 0; j < cb->n_mirrors && b->n < ROUTE_MAX_URLS; j++) {
        int r = mirror_init(&b->mirrors[b->n], cb->mirrors[j]);
        if (r == -ENOMEM) {
            mirror_done(&b->mirrors[b->n]);
            return r;
        }
        if (r < 0) {
            mirror_done(&b->mirrors[b->n]);
            memset(&b->mirrors[b->n], 0, sizeof b->mirrors[0]);
            log_warn("backend %s: ignoring mirror %s (not a usable URL)", cb->name,
                     cb->mirrors[j]);
            continue;
        }
        b->n++;
    }
    return 0;
}

int router_new(struct router **out, const struct config *cfg, uint16_t own_port)
{
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->own_port = own_port;
    read_local_addrs(r);
    r->backends = calloc(cfg->n_backends ? cfg->n_backends : 1, sizeof *r->backends);
    r->https_hosts = calloc(cfg->n_https_hosts ? cfg->n_https_hosts : 1, sizeof(char *));
    if (!r->backends || !r->https_hosts)
        goto fail;
    for (; r->n_https_hosts < cfg->n_https_hosts; r->n_https_hosts++)
        if (!(r->https_hosts[r->n_https_hosts] = strdup(cfg->https_hosts[r->n_https_hosts])))
            goto fail;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        r->n_backends++;
        if (backend_init(&r->backends[i], &cfg->backends[i]) < 0)
            goto fail;
    }
    *out = r;
    return 0;
fail:
    router_free(r);
    return -ENOMEM;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_backends; i++) {
        for (size_t j = 0; j < r->backends[i].n; j++)
            mirror_done(&r->backends[i].mirrors[j]);
        free(r->backends[i].name);
    }
    free(r->backends);
    for (size_t i = 0; i < r->n_https_hosts; i++)
        free(r->https_hosts[i]);
    free(r->https_hosts);
    free(r);
}

/* ---- resolving ---- */

static const struct backend *find_backend(const struct router *r, const char *name)
{
    for (size_t i = 0; i < r->n_backends; i++)
        if (strcmp(r->backends[i].name, name) == 0)
            return &r->backends[i];
    return NULL;
}

/* A mirror of some backend that serves host+path; *rel receives the path past its prefix. */
static const struct backend *backend_for(const struct router *r, const char *host,
                                         const char *path, const char **rel)
{
    for (size_t i = 0; i < r->n_backends; i++) {
        for (size_t j = 0; j < r->backends[i].n; j++) {
            const struct mirror *m = &r->backends[i].mirrors[j];
            size_t pl = strlen(m->prefix);
            if (strcmp(m->host, host) == 0 && strncmp(path, m->prefix, pl) == 0 &&
                path[pl] == '/') {
                *rel = path + pl;
                return &r->backends[i];
            }
        }
    }
    return NULL;
}

/* One heap string of "a" followed by "b". */
static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 1);
    if (p) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb + 1);
    }
    return p;
}

/* Appends the upstream URL base + path. */
static int add_url(struct route *rt, const char *base, const char *path)
{
    char buf[URL_MAX_TARGET + URL_MAX_PATH * 3];
    if (rt->n_urls == ROUTE_MAX_URLS)
        return -ENOSPC;
    if (url_join(base, path, buf, sizeof buf) < 0)
        return -ENAMETOOLONG;
    if (!(rt->urls[rt->n_urls] = strdup(buf)))
        return -ENOMEM;
    rt->n_urls++;
    return 0;
}

/* Fills key, path and root_len: key = root + path. */
static int route_names(struct route *rt, const char *root, const char *path)
{
    if (strlen(root) + strlen(path) + 1 > URL_MAX_KEY)
        return -ENAMETOOLONG;
    rt->key = concat(root, path);
    rt->path = strdup(path);
    rt->root_len = strlen(root);
    return rt->key && rt->path ? 0 : -ENOMEM;
}

static int route_backend(struct route *rt, const struct backend *b, const char *rel)
{
    int r = route_names(rt, b->name, rel);
    for (size_t i = 0; r == 0 && i < b->n; i++)
        r = add_url(rt, b->mirrors[i].base, rel);
    return r;
}

/* upstream.https_hosts: apt asked for http://HOST/..., the mirror is fetched over https.
 * An entry is HOST or HOST:PORT and matches the request's host exactly (a bare HOST
 * entry does not upgrade a request that names a port). */
static bool upgrade_to_https(const struct router *r, const char *host)
{
    for (size_t i = 0; i < r->n_https_hosts; i++)
        if (strcasecmp(r->https_hosts[i], host) == 0)
            return true;
    return false;
}

/* The key root of a host of its own: the host, or "HOST:80" when a backend has its name. */
static void host_root(const struct router *r, const char *host, char *out, size_t n)
{
    bool clash = strchr(host, ':') == NULL && find_backend(r, host) != NULL;
    snprintf(out, n, clash ? "%s:80" : "%s", host);
}

static int route_host(const struct router *rr, struct route *rt, const char *host,
                      const char *path, bool https)
{
    char base[URL_MAX_HOST + 16], root[URL_MAX_HOST + 4];
    snprintf(base, sizeof base, "%s://%s", https ? "https" : "http", host);
    host_root(rr, host, root, sizeof root);
    int r = route_names(rt, root, path);
    return r < 0 ? r : add_url(rt, base, path);
}

/* Splits "host[:port]" ("[v6]:port" too) into the bare host and the port (80 when none). */
static int split_hostport(const char *hp, char *host, size_t n, unsigned *port)
{
    const char *end, *colon = NULL;
    if (hp[0] == '[') {
        if (!(end = strchr(++hp, ']')) || (end[1] && end[1] != ':'))
            return -EINVAL;
        colon = end[1] ? end + 1 : NULL;
    } else {
        colon = strchr(hp, ':');
        end = colon ? colon : hp + strlen(hp);
    }
    *port = 80;
    if (colon) {
        char *stop;
        unsigned long v = strtoul(colon + 1, &stop, 10);
        if (*stop || v == 0 || v > 65535)
            return -EINVAL;
        *port = (unsigned)v;
    }
    if ((size_t)(end - hp) >= n)
        return -ENAMETOOLONG;
    memcpy(host, hp, (size_t)(end - hp));
    host[end - hp] = '\0';
    return 0;
}

/* An address of this host: loopback, unspecified, or one of its interfaces. */
static bool addr_is_local(const struct router *r, int family, const void *a)
{
    if (family == AF_INET) {
        uint32_t v = ntohl(*(const uint32_t *)a);
        if ((v >> 24) == 127 || v == 0)
            return true;
    } else {
        const struct in6_addr *v6 = a;
        if (IN6_IS_ADDR_LOOPBACK(v6) || IN6_IS_ADDR_UNSPECIFIED(v6))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(v6))
            return addr_is_local(r, AF_INET, &v6->s6_addr[12]);
    }
    for (size_t i = 0; i < r->n_local; i++)
        if (r->local[i].family == family &&
            memcmp(r->local[i].addr, a, family == AF_INET ? 4 : 16) == 0)
            return true;
    return false;
}

/* True if host[:port] names this proxy: the port it listens on, and an address of this
 * host in any spelling the resolver accepts ("127.1", "0x7f000001", "2130706433",
 * "[::ffff:127.0.0.1]") or a name of loopback ("localhost", "*.localhost"). Names that
 * resolve through DNS are not looked up here (that would block the loop). */
static bool is_self(const struct router *r, const char *hostport)
{
    char host[URL_MAX_HOST + 1];
    unsigned port;
    struct in_addr v4;
    struct in6_addr v6;
    if (split_hostport(hostport, host, sizeof host, &port) < 0 || port != r->own_port)
        return false;
    size_t n = strlen(host);
    if (strcmp(host, "localhost") == 0 || (n > 10 && strcmp(host + n - 10, ".localhost") == 0))
        return true;
    if (inet_aton(host, &v4)) /* accepts the short, hex and decimal forms */
        return addr_is_local(r, AF_INET, &v4);
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return addr_is_local(r, AF_INET6, &v6);
    return false;
}

bool router_is_self_addr(const struct router *r, const char *ip, unsigned port)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (!r || port != r->own_port)
        return false;
    if (inet_pton(AF_INET, ip, &v4) == 1)
        return addr_is_local(r, AF_INET, &v4);
    if (inet_pton(AF_INET6, ip, &v6) == 1)
        return addr_is_local(r, AF_INET6, &v6);
    return false;
}

/* The host's interface addresses, once, when the router is built. */
static void read_local_addrs(struct router *r)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) < 0)
        return;
    for (i = ifs; i && r->n_local < ROUTER_MAX_LOCAL; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct local_addr *l = &r->local[r->n_local++];
        l->family = i->ifa_addr->sa_family;
        if (l->family == AF_INET)
            memcpy(l->addr, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
        else
            memcpy(l->addr, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
    }
    freeifaddrs(ifs);
}

/* Which backend a request belongs to (NULL: the host alone), and the path past the
 * backend's root; or an HTTP status with *why. */
static unsigned pick_backend(const struct router *r, const struct url_target *t,
                             const struct backend **b, const char **rel, const char **why)
{
    *rel = t->path;
    if (t->form == URL_ORIGIN && (*b = find_backend(r, t->host)) != NULL)
        return 0;
    if (t->form == URL_ORIGIN && !url_host_is_hostname(t->host)) {
        *why = "unknown backend name";
        return 403;
    }
    if (is_self(r, t->host)) {
        *why = "refusing to fetch from this proxy itself";
        return 403;
    }
    *b = backend_for(r, t->host, t->path, rel);
    return 0;
}

unsigned router_resolve(const struct router *r, const struct url_target *t, struct route *out,
                        const char **why)
{
    const struct backend *b = NULL;
    const char *rel;
    memset(out, 0, sizeof *out);
    unsigned st = pick_backend(r, t, &b, &rel, why);
    if (st)
        return st;
    if (!url_is_archive_path(rel)) {
        *why = "not a Debian archive path; this proxy serves only dists/, pool/ and index files";
        return 403;
    }
    int e = b ? route_backend(out, b, rel)
              : route_host(r, out, t->host, t->path, t->https || upgrade_to_https(r, t->host));
    if (e < 0) {
        route_done(out);
        *why = e == -ENOMEM ? "out of memory" : "request path too long";
        return e == -ENOMEM ? 500 : 414;
    }
    out->cls = url_classify(out->key);
    return 0;
}

bool router_is_mirror_host(const struct router *r, const char *host)
{
    for (size_t i = 0; i < r->n_backends; i++)
        for (size_t j = 0; j < r->backends[i].n; j++)
            if (strcmp(r->backends[i].mirrors[j].host, host) == 0)
                return true;
    return false;
}

int router_rekey(const struct router *r, const char *old_key, char *out, size_t n)
{
    char probe[URL_MAX_TARGET + 8];
    struct url_target t;
    const char *rel;
    int w = snprintf(probe, sizeof probe, "http://%s", old_key);
    if (w < 0 || (size_t)w >= sizeof probe || url_parse(probe, &t) != 0 || t.form != URL_ABSOLUTE)
        return 0;
    const struct backend *b = backend_for(r, t.host, t.path, &rel);
    if (!b || !url_is_archive_path(rel))
        return 0;
    w = snprintf(out, n, "%s%s", b->name, rel);
    if (w < 0 || (size_t)w >= n || (size_t)w + 1 > URL_MAX_KEY)
        return -ENAMETOOLONG;
    return strcmp(out, old_key) != 0;
}

/* ---- derived routes ---- */

int route_by_hash(const struct route *from, const uint8_t sha256[32], struct route *out)
{
    char hex[65], rel[URL_MAX_PATH + 1], root[URL_MAX_KEY], enc[URL_MAX_PATH * 3 + 1];
    const char *slash = strrchr(from->path, '/');
    memset(out, 0, sizeof *out);
    if (!slash || from->root_len >= sizeof root)
        return -EINVAL;
    hex_encode(sha256, 32, hex);
    int w = snprintf(rel, sizeof rel, "%.*s/by-hash/SHA256/%s", (int)(slash - from->path),
                     from->path, hex);
    int el = url_encode_path(from->path, enc, sizeof enc);
    if (w < 0 || (size_t)w >= sizeof rel || el < 0)
        return -ENAMETOOLONG;
    snprintf(root, sizeof root, "%.*s", (int)from->root_len, from->key);
    int r = route_names(out, root, rel);
    for (size_t i = 0; r == 0 && i < from->n_urls; i++) {
        /* each URL ends with the encoded path: swap it for the by-hash one */
        char base[URL_MAX_TARGET + URL_MAX_PATH * 3];
        size_t ul = strlen(from->urls[i]);
        if ((size_t)el > ul || ul - (size_t)el >= sizeof base) {
            r = -ENAMETOOLONG;
            break;
        }
        snprintf(base, sizeof base, "%.*s", (int)(ul - (size_t)el), from->urls[i]);
        r = add_url(out, base, rel);
    }
    if (r < 0)
        route_done(out);
    else
        out->cls = url_classify(out->key);
    return r;
}

void route_done(struct route *rt)
{
    free(rt->key);
    free(rt->path);
    for (size_t i = 0; i < rt->n_urls; i++)
        free(rt->urls[i]);
    memset(rt, 0, sizeof *rt);
}

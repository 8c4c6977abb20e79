/* test_router.c - routing of apt's requests: the three request forms of one file share one
 * cache key and one ordered list of mirror URLs; paths that are not archive-shaped, fetches
 * from the proxy itself, unknown backend names and over-long routes are refused; by-hash
 * siblings keep the root and swap the path in every mirror's URL.
 *
 * The router is built the way main.c builds it: from a config loaded from YAML (here a
 * buffer), which is freed before the router is used (the router owns copies). Each table
 * row that fails prints its index and request. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/router.h"

#define OWN_PORT 9977

static const char two_backends[] =
    "backends:\n"
    "  debian: [http://mirror.example/debian, \"http://backup.mirror.example:8080/debian/\"]\n"
    "  security: [http://security.mirror.example/debian-security]\n";

/* A router from yaml; the config is gone once it returns. */
static struct router *router_from(const char *yaml, uint16_t port)
{
    struct config c;
    struct router *r = NULL;
    char err[512];
    if (config_init_defaults(&c) != 0)
        return NULL;
    int rc = config_load_buffer(&c, "t.yaml", yaml, strlen(yaml), err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  config: %s\n", err);
    if (rc == 0 && router_new(&r, &c, port) != 0)
        r = NULL;
    config_done(&c);
    return r;
}

/* Parses raw and resolves it; the status (or 400 when raw does not parse). */
static unsigned resolve(const struct router *r, const char *raw, struct route *rt,
                        const char **why)
{
    struct url_target t;
    *why = NULL;
    memset(rt, 0xa5, sizeof *rt); /* resolve must set every field, whatever the answer */
    if (url_parse(raw, &t) != 0) {
        memset(rt, 0, sizeof *rt);
        *why = "does not parse";
        return 400;
    }
    return router_resolve(r, &t, rt, why);
}

static bool route_is_zero(const struct route *rt)
{
    static const struct route zero;
    return memcmp(rt, &zero, sizeof zero) == 0;
}

/* ---- one file, every form ---- */

#define HELLO "/pool/main/h/hello/hello_2.10-3_amd64.deb"
#define LIBX_RAW "/pool/main/l/libx/libx_1%3a2.0%2b1_amd64.deb"
#define LIBX_DEC "/pool/main/l/libx/libx_1:2.0+1_amd64.deb"
#define LIBX_ENC "/pool/main/l/libx/libx_1%3A2.0%2B1_amd64.deb"
#define INREL "/dists/bookworm/InRelease"
#define SEC_INREL "/dists/bookworm-security/InRelease"

struct resolve_case {
    const char *raw;
    const char *key;
    const char *path; /* as the mirror knows it */
    const char *urls[3];
    enum url_class cls;
};

static const struct resolve_case resolve_cases[] = {
    /* the debian backend: its name is the key's root, both mirrors in order */
#define DEB_ROUTE(p, e, cls)                                                                  \
    "debian" p, p,                                                             \
        {"http://mirror.example/debian" e, "http://backup.mirror.example:8080/debian" e}, cls
    {"http://mirror.example/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"/mirror.example/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"/Debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)}, /* first segment: any case */
    {"HTTP://Mirror.Example:80/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"http://backup.mirror.example:8080/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"/backup.mirror.example:8080/debian" HELLO, DEB_ROUTE(HELLO, HELLO, URL_IMMUTABLE)},
    {"http://mirror.example/debian" LIBX_RAW, DEB_ROUTE(LIBX_DEC, LIBX_ENC, URL_IMMUTABLE)},
    {"/mirror.example/debian" LIBX_RAW, DEB_ROUTE(LIBX_DEC, LIBX_ENC, URL_IMMUTABLE)},
    {"/debian" LIBX_RAW, DEB_ROUTE(LIBX_DEC, LIBX_ENC, URL_IMMUTABLE)},
    {"http://mirror.example/debian" INREL, DEB_ROUTE(INREL, INREL, URL_VOLATILE)},
    {"/mirror.example/debian" INREL, DEB_ROUTE(INREL, INREL, URL_VOLATILE)},
    {"/debian" INREL, DEB_ROUTE(INREL, INREL, URL_VOLATILE)},
#undef DEB_ROUTE
    /* the security backend: one mirror */
#define SEC_ROUTE(p)                                                                          \
    "security" p, p,                                                                          \
        {"http://security.mirror.example/debian-security" p}, URL_VOLATILE
    {"http://security.mirror.example/debian-security" SEC_INREL, SEC_ROUTE(SEC_INREL)},
    {"/security.mirror.example/debian-security" SEC_INREL, SEC_ROUTE(SEC_INREL)},
    {"/security" SEC_INREL, SEC_ROUTE(SEC_INREL)},
#undef SEC_ROUTE
    /* a host no backend names: that host alone, under its own key */
    {"http://other.example/ubuntu/pool/a.deb", "other.example/ubuntu/pool/a.deb",
     "/ubuntu/pool/a.deb", {"http://other.example/ubuntu/pool/a.deb"}, URL_IMMUTABLE},
    {"/other.example/ubuntu/pool/a.deb", "other.example/ubuntu/pool/a.deb", "/ubuntu/pool/a.deb",
     {"http://other.example/ubuntu/pool/a.deb"}, URL_IMMUTABLE},
    {"https://other.example/ubuntu/pool/a.deb", "other.example/ubuntu/pool/a.deb",
     "/ubuntu/pool/a.deb", {"https://other.example/ubuntu/pool/a.deb"}, URL_IMMUTABLE},
    /* a backend's host but outside its prefix ("/debianx" is not under "/debian") */
    {"http://mirror.example/ubuntu/dists/noble/Release", "mirror.example/ubuntu/dists/noble/Release",
     "/ubuntu/dists/noble/Release", {"http://mirror.example/ubuntu/dists/noble/Release"},
     URL_VOLATILE},
    {"http://mirror.example/debianx/pool/a.deb", "mirror.example/debianx/pool/a.deb",
     "/debianx/pool/a.deb", {"http://mirror.example/debianx/pool/a.deb"}, URL_IMMUTABLE},
    /* loopback on another port is a mirror like any other (the test fixture is one) */
    {"http://127.0.0.1:8000/debian/pool/a.deb", "127.0.0.1:8000/debian/pool/a.deb",
     "/debian/pool/a.deb", {"http://127.0.0.1:8000/debian/pool/a.deb"}, URL_IMMUTABLE},
    {"/127.0.0.1:8000/debian/pool/a.deb", "127.0.0.1:8000/debian/pool/a.deb",
     "/debian/pool/a.deb", {"http://127.0.0.1:8000/debian/pool/a.deb"}, URL_IMMUTABLE},
};

/* Compares rt with c; prints what differs. */
static bool route_is(size_t i, const struct route *rt, const struct resolve_case *c)
{
    bool ok = strcmp(rt->key, c->key) == 0 && strcmp(rt->path, c->path) == 0 && rt->cls == c->cls &&
              strncmp(rt->key + rt->root_len, rt->path, strlen(rt->path) + 1) == 0;
    size_t n = 0;
    while (n < 3 && c->urls[n])
        n++;
    ok = ok && rt->n_urls == n;
    for (size_t j = 0; ok && j < n; j++)
        ok = strcmp(rt->urls[j], c->urls[j]) == 0;
    if (!ok) {
        fprintf(stderr, "\n  row %zu (%s): key %s path %s root_len %zu cls %d urls", i, c->raw,
                rt->key, rt->path, rt->root_len, (int)rt->cls);
        for (size_t j = 0; j < rt->n_urls; j++)
            fprintf(stderr, " %s", rt->urls[j]);
    }
    return ok;
}

static void test_forms(void)
{
    struct router *r = router_from(two_backends, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof resolve_cases / sizeof resolve_cases[0]; i++) {
        struct route rt;
        const char *why;
        unsigned st = resolve(r, resolve_cases[i].raw, &rt, &why);
        if (st != 0) {
            fprintf(stderr, "\n  row %zu (%s): status %u (%s)", i, resolve_cases[i].raw, st, why);
            CU_FAIL("resolve refused a routable request");
            continue;
        }
        CU_ASSERT(route_is(i, &rt, &resolve_cases[i]));
        route_done(&rt);
        CU_ASSERT(route_is_zero(&rt));
    }
    router_free(r);
}

/* ---- refusals ---- */

struct refuse_case {
    const char *raw;
    unsigned status;
};

static const struct refuse_case refuse_cases[] = {
    /* not archive-shaped: never an open proxy */
    {"http://mirror.example/debian/index.html", 403},
    {"/mirror.example/debian/index.html", 403},
    {"/debian/index.html", 403},
    {"/debian/README", 403},
    {"http://other.example/etc/passwd", 403},
    {"/other.example/cgi-bin/x", 403},
    /* the proxy itself, under each loopback name */
    {"http://127.0.0.1:9977/debian/pool/a.deb", 403},
    {"/127.0.0.1:9977/debian/pool/a.deb", 403},
    {"http://localhost:9977/debian/pool/a.deb", 403},
    {"/localhost:9977/debian/dists/bookworm/InRelease", 403},
    {"http://[::1]:9977/debian/pool/a.deb", 403},
    {"/[::1]:9977/debian/pool/a.deb", 403},
    /* ... and under every other spelling of a local address the resolver accepts */
    {"http://127.1:9977/debian/pool/a.deb", 403},
    {"http://0x7f000001:9977/debian/pool/a.deb", 403},
    {"http://2130706433:9977/debian/pool/a.deb", 403},
    {"http://[::ffff:127.0.0.1]:9977/debian/pool/a.deb", 403},
    {"/127.0.0.2:9977/debian/pool/a.deb", 403},
    {"http://0.0.0.0:9977/debian/pool/a.deb", 403},
    {"http://[::]:9977/debian/pool/a.deb", 403},
    {"http://0177.0.0.1:9977/debian/pool/a.deb", 403},
    {"http://apt.localhost:9977/debian/pool/a.deb", 403},
    /* a first segment that is neither a backend nor a host name */
    {"/nosuch/pool/main/h/hello/hello_2.10-3_amd64.deb", 403},
    {"/debian-security/pool/a.deb", 403},
    {"/securit/dists/bookworm-security/InRelease", 403},
};

static void test_refusals(void)
{
    struct router *r = router_from(two_backends, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof refuse_cases / sizeof refuse_cases[0]; i++) {
        struct route rt;
        const char *why;
        unsigned st = resolve(r, refuse_cases[i].raw, &rt, &why);
        bool ok = st == refuse_cases[i].status && why && why[0] && route_is_zero(&rt);
        if (!ok)
            fprintf(stderr, "\n  row %zu (%s): status %u (%s), want %u", i, refuse_cases[i].raw,
                    st, why ? why : "no reason", refuse_cases[i].status);
        CU_ASSERT(ok);
        route_done(&rt); /* a refused route holds nothing; done on it is harmless */
    }
    router_free(r);
}

/* On port 80 the bare loopback names are the proxy too. */
/* An https mirror named in rewrite mode (both spellings) or in proxy mode is fetched over
 * https, under the same cache key as its http spelling. */
static void test_https(void)
{
    static const char *const forms[] = {"/HTTPS///other.example/deb/pool/a.deb",
                                        "https://other.example/deb/pool/a.deb"};
    struct router *r = router_from(two_backends, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct route rt;
        const char *why;
        CU_ASSERT_EQUAL_FATAL(resolve(r, forms[i], &rt, &why), 0);
        CU_ASSERT_EQUAL(rt.n_urls, 1);
        CU_ASSERT_STRING_EQUAL(rt.urls[0], "https://other.example/deb/pool/a.deb");
        CU_ASSERT_STRING_EQUAL(rt.key, "other.example/deb/pool/a.deb");
        route_done(&rt);
    }
    /* "/HOST:443/PATH" keeps the port in its key */
    struct route rt;
    const char *why;
    CU_ASSERT_EQUAL_FATAL(resolve(r, "/other.example:443/deb/pool/a.deb", &rt, &why), 0);
    CU_ASSERT_STRING_EQUAL(rt.urls[0], "https://other.example:443/deb/pool/a.deb");
    route_done(&rt);
    router_free(r);
}

/* upstream.https_hosts: apt's http://HOST/PATH (proxy and rewrite form) is fetched as
 * https://HOST/PATH under the key of the http spelling; other hosts, and HOST with a
 * port, keep http. */
static void test_https_hosts(void)
{
    static const struct {
        const char *raw, *url, *key;
    } rows[] = {
        {"http://deb.example/debian/pool/a.deb", "https://deb.example/debian/pool/a.deb",
         "deb.example/debian/pool/a.deb"},
        {"/deb.example/debian/pool/a.deb", "https://deb.example/debian/pool/a.deb",
         "deb.example/debian/pool/a.deb"},
        {"http://DEB.example/debian/dists/s/InRelease", "https://deb.example/debian/dists/s/InRelease",
         "deb.example/debian/dists/s/InRelease"},
        {"http://other.example/debian/pool/a.deb", "http://other.example/debian/pool/a.deb",
         "other.example/debian/pool/a.deb"},
        {"http://deb.example:8080/debian/pool/a.deb", "http://deb.example:8080/debian/pool/a.deb",
         "deb.example:8080/debian/pool/a.deb"},
        {"http://127.0.0.1:8443/debian/pool/a.deb", "https://127.0.0.1:8443/debian/pool/a.deb",
         "127.0.0.1:8443/debian/pool/a.deb"},
    };
    struct router *r =
        router_from("upstream: {https_hosts: [Deb.Example, \"127.0.0.1:8443\"]}\n", OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct route rt;
        const char *why;
        unsigned st = resolve(r, rows[i].raw, &rt, &why);
        if (st || strcmp(rt.urls[0], rows[i].url) != 0)
            fprintf(stderr, "\n  row %zu: %s -> %u %s", i, rows[i].raw, st, st ? why : rt.urls[0]);
        CU_ASSERT_EQUAL_FATAL(st, 0);
        CU_ASSERT_EQUAL(rt.n_urls, 1);
        CU_ASSERT_STRING_EQUAL(rt.urls[0], rows[i].url);
        CU_ASSERT_STRING_EQUAL(rt.key, rows[i].key);
        route_done(&rt);
    }
    router_free(r);
}

/* Where a mirror transfer connected: this proxy is its port on a local address. */
static void test_self_addr(void)
{
    struct router *r = router_from("", OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_TRUE(router_is_self_addr(r, "127.0.0.1", OWN_PORT));
    CU_ASSERT_TRUE(router_is_self_addr(r, "127.0.1.1", OWN_PORT));
    CU_ASSERT_TRUE(router_is_self_addr(r, "::1", OWN_PORT));
    CU_ASSERT_TRUE(router_is_self_addr(r, "::ffff:127.0.0.1", OWN_PORT));
    CU_ASSERT_FALSE(router_is_self_addr(r, "127.0.0.1", OWN_PORT + 1));
    CU_ASSERT_FALSE(router_is_self_addr(r, "192.0.2.1", OWN_PORT)); /* TEST-NET: not ours */
    CU_ASSERT_FALSE(router_is_self_addr(r, "not-an-ip", OWN_PORT));
    CU_ASSERT_FALSE(router_is_self_addr(NULL, "127.0.0.1", OWN_PORT));
    router_free(r);
}

static void test_self_port_80(void)
{
    static const char *const self[] = {"http://localhost/debian/pool/a.deb",
                                       "http://127.0.0.1/debian/pool/a.deb",
                                       "http://[::1]/debian/pool/a.deb", "/localhost/pool/a.deb"};
    struct router *r = router_from(two_backends, 80);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof self / sizeof self[0]; i++) {
        struct route rt;
        const char *why;
        unsigned st = resolve(r, self[i], &rt, &why);
        if (st != 403)
            fprintf(stderr, "\n  %s: status %u", self[i], st);
        CU_ASSERT_EQUAL(st, 403);
    }
    struct route rt;
    const char *why;
    CU_ASSERT_EQUAL(resolve(r, "http://localhost:9977/debian/pool/a.deb", &rt, &why), 0);
    route_done(&rt);
    router_free(r);
}

/* The key is the backend's name plus the path: a long first-mirror prefix and a long path
 * that once made a key over URL_MAX_KEY now route, under the short name. */
static void test_too_long(void)
{
    size_t plen = 1500, nlen = 1000;
    char *yaml = malloc(plen + 256), *raw = malloc(nlen + 256), *key = malloc(nlen + 64);
    char *prefix = malloc(plen + 1), *name = malloc(nlen + 1);
    CU_ASSERT_FATAL(yaml && raw && key && prefix && name);
    memset(prefix, 'p', plen);
    prefix[plen] = '\0';
    memset(name, 'a', nlen);
    name[nlen] = '\0';
    snprintf(yaml, plen + 256, "backends:\n  long: [http://mirror.example/%s, http://short.example/s]\n",
             prefix);
    snprintf(key, nlen + 64, "long/pool/%s.deb", name);
    struct router *r = router_from(yaml, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);

    static const char *const forms[] = {"/long/pool/", "http://short.example/s/pool/",
                                        "/short.example/s/pool/"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct route rt;
        const char *why;
        snprintf(raw, nlen + 256, "%s%s.deb", forms[i], name);
        unsigned st = resolve(r, raw, &rt, &why);
        if (st != 0)
            fprintf(stderr, "\n  form %zu: status %u (%s)", i, st, why ? why : "");
        CU_ASSERT_EQUAL_FATAL(st, 0);
        CU_ASSERT_STRING_EQUAL(rt.key, key);
        CU_ASSERT_EQUAL(rt.n_urls, 2);
        route_done(&rt);
    }
    router_free(r);
    free(yaml);
    free(raw);
    free(key);
    free(prefix);
    free(name);
}

/* ---- by-hash siblings ---- */

#define PKGS "/dists/bookworm/main/binary-amd64"
#define PLUS "/dists/bookworm+1/main/binary-amd64"

struct by_hash_case {
    const char *raw;  /* the by-name index */
    const char *key;  /* the by-hash route's key, without the hex */
    const char *path; /* its path, without the hex */
    const char *urls[3];
};

static const struct by_hash_case by_hash_cases[] = {
    {"/debian" PKGS "/Packages.xz", "debian" PKGS "/by-hash/SHA256/",
     PKGS "/by-hash/SHA256/",
     {"http://mirror.example/debian" PKGS "/by-hash/SHA256/",
      "http://backup.mirror.example:8080/debian" PKGS "/by-hash/SHA256/"}},
    {"http://backup.mirror.example:8080/debian" PKGS "/Packages.xz",
     "debian" PKGS "/by-hash/SHA256/", PKGS "/by-hash/SHA256/",
     {"http://mirror.example/debian" PKGS "/by-hash/SHA256/",
      "http://backup.mirror.example:8080/debian" PKGS "/by-hash/SHA256/"}},
    /* a '+' is sent encoded: the swap must strip the encoded path, not the decoded one */
    {"/debian" PLUS "/Packages.gz", "debian" PLUS "/by-hash/SHA256/",
     PLUS "/by-hash/SHA256/",
     {"http://mirror.example/debian/dists/bookworm%2B1/main/binary-amd64/by-hash/SHA256/",
      "http://backup.mirror.example:8080/debian/dists/bookworm%2B1/main/binary-amd64/by-hash/"
      "SHA256/"}},
    {"/security/dists/bookworm-security/main/i18n/Translation-en.bz2",
     "security/dists/bookworm-security/main/i18n/by-hash/SHA256/",
     "/dists/bookworm-security/main/i18n/by-hash/SHA256/",
     {"http://security.mirror.example/debian-security/dists/bookworm-security/main/i18n/"
      "by-hash/SHA256/"}},
    {"http://other.example/ubuntu/dists/noble/main/binary-amd64/Packages.gz",
     "other.example/ubuntu/dists/noble/main/binary-amd64/by-hash/SHA256/",
     "/ubuntu/dists/noble/main/binary-amd64/by-hash/SHA256/",
     {"http://other.example/ubuntu/dists/noble/main/binary-amd64/by-hash/SHA256/"}},
};

/* s == prefix followed by hex. */
static bool is_with_hex(const char *s, const char *prefix, const char *hex)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 && strcmp(s + n, hex) == 0;
}

static bool by_hash_is(size_t i, const struct route *from, const struct route *bh,
                       const struct by_hash_case *c, const char *hex)
{
    size_t n = 0;
    while (n < 3 && c->urls[n])
        n++;
    bool ok = is_with_hex(bh->key, c->key, hex) && is_with_hex(bh->path, c->path, hex) &&
              bh->root_len == from->root_len && strncmp(bh->key, from->key, from->root_len) == 0 &&
              strcmp(bh->key + bh->root_len, bh->path) == 0 && bh->cls == URL_IMMUTABLE &&
              bh->n_urls == n && from->n_urls == n;
    for (size_t j = 0; ok && j < n; j++)
        ok = is_with_hex(bh->urls[j], c->urls[j], hex);
    if (!ok) {
        fprintf(stderr, "\n  row %zu (%s): key %s path %s root_len %zu cls %d urls", i, c->raw,
                bh->key, bh->path, bh->root_len, (int)bh->cls);
        for (size_t j = 0; j < bh->n_urls; j++)
            fprintf(stderr, " %s", bh->urls[j]);
    }
    return ok;
}

static void test_by_hash(void)
{
    uint8_t sha[32], back[32];
    char hex[65];
    for (size_t k = 0; k < 32; k++)
        sha[k] = (uint8_t)(k * 37 + 5);
    hex_encode(sha, 32, hex);
    struct router *r = router_from(two_backends, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof by_hash_cases / sizeof by_hash_cases[0]; i++) {
        const struct by_hash_case *c = &by_hash_cases[i];
        struct route from, bh, direct;
        const char *why;
        if (resolve(r, c->raw, &from, &why) != 0) {
            fprintf(stderr, "\n  row %zu (%s): %s", i, c->raw, why);
            CU_FAIL("the by-name index does not route");
            continue;
        }
        memset(&bh, 0xa5, sizeof bh);
        CU_ASSERT_EQUAL(route_by_hash(&from, sha, &bh), 0);
        CU_ASSERT(by_hash_is(i, &from, &bh, c, hex));
        CU_ASSERT(url_by_hash_sha256(bh.key, back) && memcmp(back, sha, 32) == 0);
        /* the same route as asking for the by-hash name directly (backend form) */
        const char *raw = bh.urls[0];
        if (resolve(r, raw, &direct, &why) == 0) {
            CU_ASSERT_STRING_EQUAL(direct.key, bh.key);
            CU_ASSERT_EQUAL(direct.n_urls, bh.n_urls);
            for (size_t j = 0; j < direct.n_urls && j < bh.n_urls; j++)
                CU_ASSERT_STRING_EQUAL(direct.urls[j], bh.urls[j]);
            route_done(&direct);
        } else {
            fprintf(stderr, "\n  row %zu: %s does not route", i, raw);
            CU_FAIL("the by-hash name does not route");
        }
        route_done(&bh);
        route_done(&from);
    }
    router_free(r);
}

/* A path with no directory part (a route made by hand) is refused, and so is a root
 * that does not fit. */
static void test_by_hash_bad(void)
{
    uint8_t sha[32] = {0};
    char key[] = "mirror.example/x", path[] = "x", rooted[] = "/x";
    struct route from = {.key = key, .path = path, .root_len = 15};
    struct route out;
    memset(&out, 0xa5, sizeof out);
    CU_ASSERT_EQUAL(route_by_hash(&from, sha, &out), -EINVAL);
    CU_ASSERT(route_is_zero(&out));
    from.path = rooted;
    from.root_len = URL_MAX_KEY;
    CU_ASSERT_EQUAL(route_by_hash(&from, sha, &out), -EINVAL);
    CU_ASSERT(route_is_zero(&out));
}

/* ---- lifetimes ---- */

static void test_route_done(void)
{
    struct route rt;
    memset(&rt, 0, sizeof rt);
    route_done(&rt);
    CU_ASSERT(route_is_zero(&rt));
    route_done(&rt);
    CU_ASSERT(route_is_zero(&rt));
    /* a route outlives its router */
    struct router *r = router_from(two_backends, OWN_PORT);
    const char *why;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL_FATAL(resolve(r, "/debian" HELLO, &rt, &why), 0);
    router_free(r);
    CU_ASSERT_STRING_EQUAL(rt.urls[1], "http://backup.mirror.example:8080/debian" HELLO);
    route_done(&rt);
    CU_ASSERT(route_is_zero(&rt));
    router_free(NULL);
}

/* The key does not depend on the mirrors: reordered or replaced, every form of a file has
 * the key it had; a host spelt like a backend name gets a key of its own. */
static void test_key_by_name(void)
{
    static const char *const configs[] = {
        two_backends,
        "backends:\n  debian: [\"http://backup.mirror.example:8080/debian/\", "
        "http://mirror.example/debian]\n",
        "backends:\n  debian: [http://new.mirror.example/debian]\n",
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        struct router *r = router_from(configs[i], OWN_PORT);
        struct route rt;
        const char *why;
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL_FATAL(resolve(r, "/debian" HELLO, &rt, &why), 0);
        CU_ASSERT_STRING_EQUAL(rt.key, "debian" HELLO);
        route_done(&rt);
        CU_ASSERT_EQUAL_FATAL(resolve(r, "http://debian" HELLO, &rt, &why), 0);
        CU_ASSERT_STRING_EQUAL(rt.key, "debian:80" HELLO);
        CU_ASSERT_STRING_EQUAL(rt.urls[0], "http://debian" HELLO);
        route_done(&rt);
        router_free(r);
    }
}

/* router_rekey: an old key (the first mirror's host and prefix) and the new one. */
struct rekey_case {
    const char *old_key;
    int rc;
    const char *new_key;
};

static void test_rekey(void)
{
    static const struct rekey_case cases[] = {
        {"mirror.example/debian" HELLO, 1, "debian" HELLO},
        {"backup.mirror.example:8080/debian" INREL, 1, "debian" INREL},
        {"security.mirror.example/debian-security" SEC_INREL, 1, "security" SEC_INREL},
        {"debian" HELLO, 0, NULL},                          /* already a backend's key */
        {"other.example/ubuntu/pool/a.deb", 0, NULL},       /* a host of its own */
        {"mirror.example/debianx/pool/a.deb", 0, NULL},     /* outside the prefix */
        {"mirror.example/debian/index.html", 0, NULL},      /* not an archive path */
        {"not a key", 0, NULL},
    };
    struct router *r = router_from(two_backends, OWN_PORT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[URL_MAX_KEY];
        int rc = router_rekey(r, cases[i].old_key, out, sizeof out);
        bool ok = rc == cases[i].rc && (rc != 1 || strcmp(out, cases[i].new_key) == 0);
        if (!ok)
            fprintf(stderr, "\n  row %zu (%s): rc %d", i, cases[i].old_key, rc);
        CU_ASSERT(ok);
    }
    char small[8];
    CU_ASSERT_EQUAL(router_rekey(r, "mirror.example/debian" HELLO, small, sizeof small),
                    -ENAMETOOLONG);
    CU_ASSERT(router_is_mirror_host(r, "backup.mirror.example:8080"));
    CU_ASSERT(router_is_mirror_host(r, "security.mirror.example"));
    CU_ASSERT_FALSE(router_is_mirror_host(r, "debian"));
    CU_ASSERT_FALSE(router_is_mirror_host(r, "other.example"));
    router_free(r);
}

/* No backends at all: every request goes to its own host. */
static void test_no_backends(void)
{
    struct router *r = router_from("log: {level: error}\n", OWN_PORT);
    struct route rt;
    const char *why;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(resolve(r, "/debian" HELLO, &rt, &why), 403);
    CU_ASSERT_EQUAL(resolve(r, "http://mirror.example/debian" HELLO, &rt, &why), 0);
    CU_ASSERT_EQUAL(rt.n_urls, 1);
    route_done(&rt);
    router_free(r);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"one file, every form, one route", test_forms},
        {"refusals: 403 with a reason, nothing to free", test_refusals},
        {"self on port 80", test_self_port_80},
        {"upstream.https_hosts", test_https_hosts},
        {"router_is_self_addr", test_self_addr},
        {"https mirrors in rewrite and proxy mode", test_https},
        {"a long mirror prefix is no part of the key", test_too_long},
        {"by-hash siblings", test_by_hash},
        {"by-hash of a malformed route", test_by_hash_bad},
        {"route_done and lifetimes", test_route_done},
        {"no backends", test_no_backends},
        {"keys by backend name, whatever the mirrors", test_key_by_name},
        {"rekey of caches keyed by the first mirror", test_rekey},
        {NULL, NULL},
    };
    return unit_run("router", cases);
}

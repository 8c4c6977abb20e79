/* config.c - apt-dht-proxy's configuration loader.
 *
 * Model: libyaml loads the whole file (at most CONFIG_MAX_FILE bytes) into a node tree;
 * config-yaml.c holds that generic half (the document, the FILE:LINE messages, readers of
 * single values and of a mapping's pairs), this file apt-dht's own half. A table of known
 * keys (dotted paths such as "cache.max_size", each with a kind and the field it fills)
 * drives a walk of that tree; anything the table does not name is an error that points
 * at the file, the line and the key. Values go into a private deep copy
 * of the caller's config, which replaces the caller's only once the whole file is valid,
 * so a SIGHUP reload with a broken file leaves the running configuration untouched.
 *
 * Every value is bounded: scalars at CONFIG_MAX_STRING bytes, lists at CONFIG_MAX_LIST
 * items, backends at CONFIG_MAX_BACKENDS. The walk follows the schema, never the tree's
 * own shape, so its depth is fixed and YAML aliases cannot multiply work. */
#include "aptdht-config.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/config-yaml.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_MAX_LIST 1024 /* items in one list */
#define CONFIG_MAX_BACKENDS 256
#define CONFIG_MAX_BACKEND_NAME 64
#define CONFIG_MAX_HOSTNAME 253

/* ---- small helpers ---------------------------------------------------------------- */

static int str_dup(char **dst, const char *src)
{
    char *s = NULL;
    if (src) {
        size_t n = strlen(src) + 1;
        s = malloc(n);
        if (!s)
            return -ENOMEM;
        memcpy(s, src, n);
    }
    free(*dst);
    *dst = s;
    return 0;
}

static void str_list_free(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

static void backends_free(struct config_backend *b, size_t n)
{
    for (size_t i = 0; b && i < n; i++) {
        free(b[i].name);
        str_list_free(b[i].mirrors, b[i].n_mirrors);
    }
    free(b);
}

/* ---- public value parsers ----------------------------------------------------------- */

int config_parse_size(const char *s, uint64_t *out)
{
    if (!s || !out)
        return -EINVAL;
    size_t len = strlen(s);
    /* K, M, G, T in either case: 2^10, 2^20, 2^30, 2^40. */
    static const char suffixes[] = "KMGT";
    char last = len ? (char)(s[len - 1] & ~0x20) : 0;
    const char *p = last ? strchr(suffixes, last) : NULL;
    unsigned shift = p ? 10u * (unsigned)(p - suffixes + 1) : 0;
    if (shift)
        len--;
    uint64_t v;
    if (cy_decimal(s, len, UINT64_MAX >> shift, &v) < 0)
        return -EINVAL;
    *out = v << shift;
    return 0;
}

/* ---- defaults, copy, done ------------------------------------------------------------ */

static const char *const default_allowed[] = {"127.0.0.0/8", "::1/128"};
static const char *const default_status[] = {"127.0.0.0/8", "::1/128"};
static const char *const default_peers[] = {"10.0.0.0/8",     "172.16.0.0/12", "192.168.0.0/16",
                                            "169.254.0.0/16", "127.0.0.0/8",   "fc00::/7",
                                            "fe80::/10",      "::1/128"};

static int cidrs_from_strings(struct cidr **out, size_t *n, const char *const *s, size_t count)
{
    struct cidr *c = calloc(count, sizeof(*c));
    if (!c)
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        if (cidr_parse(s[i], &c[i]) < 0) {
            free(c);
            return -EINVAL;
        }
    }
    *out = c;
    *n = count;
    return 0;
}

int config_init_defaults(struct config *cfg)
{
    int rc;
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_port = 9977;
    cfg->max_connections = 1000;
    cfg->max_per_client = 64;
    cfg->header_timeout_s = 15;
    cfg->idle_timeout_s = 60;
    cfg->cache_max_size = (uint64_t)10 << 30;
    cfg->cache_max_object = (uint64_t)4 << 30;
    cfg->cache_max_index = (uint64_t)256 << 20;
    cfg->negative_ttl_s = 60;
    cfg->keep_unreferenced_s = 4 * 86400;
    cfg->connect_timeout_s = 10;
    cfg->stall_timeout_s = 30;
    cfg->dht_mode = DHT_MODE_APTDHT;
    cfg->dht_lan_discovery = true;
    cfg->peer_budget_ms = 1000;
    cfg->peer_max_uploads = 32;
    cfg->log_level = LOG_LEVEL_INFO;
    rc = cidrs_from_strings(&cfg->allowed_clients, &cfg->n_allowed_clients, default_allowed,
                            sizeof(default_allowed) / sizeof(default_allowed[0]));
    if (rc < 0)
        goto fail;
    rc = cidrs_from_strings(&cfg->peer_clients, &cfg->n_peer_clients, default_peers,
                            sizeof(default_peers) / sizeof(default_peers[0]));
    if (rc < 0)
        goto fail;
    rc = cidrs_from_strings(&cfg->status_clients, &cfg->n_status_clients, default_status,
                            sizeof(default_status) / sizeof(default_status[0]));
    if (rc < 0)
        goto fail;
    if ((rc = str_dup(&cfg->cache_dir, "/var/cache/apt-dht")) < 0 ||
        (rc = str_dup(&cfg->state_dir, "/var/lib/apt-dht")) < 0)
        goto fail;
    return 0;
fail:
    config_done(cfg);
    return rc;
}

void config_done(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->listen_address);
    str_list_free(cfg->listen_addresses, cfg->n_listen_addresses);
    free(cfg->upstream_proxy);
    free(cfg->upstream_ca_file);
    str_list_free(cfg->upstream_no_proxy, cfg->n_upstream_no_proxy);
    str_list_free(cfg->https_hosts, cfg->n_https_hosts);
    free(cfg->allowed_clients);
    free(cfg->peer_clients);
    free(cfg->status_clients);
    free(cfg->cache_dir);
    free(cfg->state_dir);
    backends_free(cfg->backends, cfg->n_backends);
    str_list_free(cfg->dht_bootstrap, cfg->n_dht_bootstrap);
    memset(cfg, 0, sizeof(*cfg));
}

static int cidrs_copy(struct cidr **dst, size_t *dn, const struct cidr *src, size_t n)
{
    if (n == 0)
        return 0;
    *dst = malloc(n * sizeof(*src));
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, src, n * sizeof(*src));
    *dn = n;
    return 0;
}

static int str_list_copy(char ***dst, size_t *dn, char *const *src, size_t n)
{
    if (n == 0)
        return 0;
    *dst = calloc(n, sizeof(char *));
    if (!*dst)
        return -ENOMEM;
    for (; *dn < n; (*dn)++) {
        if (str_dup(&(*dst)[*dn], src[*dn]) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int backends_copy(struct config *dst, const struct config *src)
{
    if (src->n_backends == 0)
        return 0;
    dst->backends = calloc(src->n_backends, sizeof(*dst->backends));
    if (!dst->backends)
        return -ENOMEM;
    for (; dst->n_backends < src->n_backends; dst->n_backends++) {
        struct config_backend *d = &dst->backends[dst->n_backends];
        const struct config_backend *s = &src->backends[dst->n_backends];
        if (str_dup(&d->name, s->name) < 0 ||
            str_list_copy(&d->mirrors, &d->n_mirrors, s->mirrors, s->n_mirrors) < 0) {
            dst->n_backends++; /* so config_done frees the partial entry */
            return -ENOMEM;
        }
    }
    return 0;
}

/* Deep copy: dst owns fresh copies of every string and array. On failure dst is freed. */
static int config_copy(struct config *dst, const struct config *src)
{
    *dst = *src;
    dst->listen_address = dst->cache_dir = dst->state_dir = NULL;
    dst->allowed_clients = dst->peer_clients = dst->status_clients = NULL;
    dst->n_allowed_clients = dst->n_peer_clients = dst->n_status_clients = 0;
    dst->backends = NULL;
    dst->n_backends = 0;
    dst->dht_bootstrap = NULL;
    dst->n_dht_bootstrap = 0;
    dst->listen_addresses = dst->upstream_no_proxy = dst->https_hosts = NULL;
    dst->n_listen_addresses = dst->n_upstream_no_proxy = dst->n_https_hosts = 0;
    dst->upstream_proxy = dst->upstream_ca_file = NULL;
    if (str_dup(&dst->listen_address, src->listen_address) < 0 ||
        str_list_copy(&dst->listen_addresses, &dst->n_listen_addresses, src->listen_addresses,
                      src->n_listen_addresses) < 0 ||
        str_dup(&dst->upstream_proxy, src->upstream_proxy) < 0 ||
        str_dup(&dst->upstream_ca_file, src->upstream_ca_file) < 0 ||
        str_list_copy(&dst->upstream_no_proxy, &dst->n_upstream_no_proxy, src->upstream_no_proxy,
                      src->n_upstream_no_proxy) < 0 ||
        str_list_copy(&dst->https_hosts, &dst->n_https_hosts, src->https_hosts,
                      src->n_https_hosts) < 0 ||
        str_dup(&dst->cache_dir, src->cache_dir) < 0 ||
        str_dup(&dst->state_dir, src->state_dir) < 0 ||
        cidrs_copy(&dst->allowed_clients, &dst->n_allowed_clients, src->allowed_clients,
                   src->n_allowed_clients) < 0 ||
        cidrs_copy(&dst->peer_clients, &dst->n_peer_clients, src->peer_clients,
                   src->n_peer_clients) < 0 ||
        cidrs_copy(&dst->status_clients, &dst->n_status_clients, src->status_clients,
                   src->n_status_clients) < 0 ||
        backends_copy(dst, src) < 0 ||
        str_list_copy(&dst->dht_bootstrap, &dst->n_dht_bootstrap, src->dht_bootstrap,
                      src->n_dht_bootstrap) < 0)
        goto fail;
    return 0;
fail:
    config_done(dst);
    return -ENOMEM;
}

/* ---- the loader ---------------------------------------------------------------------- */

/* The document being read and the working copy it fills. */
struct loader {
    struct cy y;
    struct config *cfg;
};

/* ---- value checkers: text in, 0 or a static reason out ---------------------------------- */

static const char *check_address(const char *s)
{
    unsigned char tmp[16];
    if (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1)
        return NULL;
    return "is not a numeric IPv4 or IPv6 address";
}

static const char *check_path(const char *s)
{
    return s[0] == '/' ? NULL : "is not an absolute path";
}

static bool is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > CONFIG_MAX_HOSTNAME || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* "host:port" or "[v6 address]:port", port 1..65535. */
static const char *check_hostport(const char *s)
{
    static const char *const bad = "is not HOST:PORT or [IPV6]:PORT";
    const char *host = s, *colon;
    size_t hlen;
    uint64_t port;
    if (s[0] == '[') {
        char addr[INET6_ADDRSTRLEN];
        unsigned char tmp[16];
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(addr))
            return bad;
        memcpy(addr, s + 1, (size_t)(end - s - 1));
        addr[end - s - 1] = '\0';
        if (inet_pton(AF_INET6, addr, tmp) != 1)
            return bad;
        colon = end + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return bad;
        hlen = (size_t)(colon - host);
        if (!is_hostname(host, hlen))
            return bad;
    }
    if (cy_decimal(colon + 1, strlen(colon + 1), 65535, &port) < 0 || port == 0)
        return bad;
    return NULL;
}

/* A host as apt writes it in a source line: a name or a numeric address (a no_proxy
 * entry may also be ".domain" for every name under it, or "*" for every host). */
static const char *check_host(const char *s, bool domains)
{
    unsigned char tmp[16];
    size_t len = strlen(s);
    if (domains && (strcmp(s, "*") == 0 || (s[0] == '.' && is_hostname(s + 1, len - 1))))
        return NULL;
    if (is_hostname(s, len) || inet_pton(AF_INET6, s, tmp) == 1)
        return NULL;
    return domains ? "is not a host name, .domain, address or *" : "is not a host name or address";
}

static const char *check_no_proxy_text(char *s)
{
    return check_host(s, true);
}

/* upstream.https_hosts: HOST or HOST:PORT as apt writes it in a source line (an IPv6
 * address in brackets), lower-cased, as the router compares request hosts. */
static const char *check_https_host_text(char *s)
{
    unsigned char tmp[16];
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    size_t len = strlen(s);
    if (is_hostname(s, len) || check_hostport(s) == NULL)
        return NULL;
    if (s[0] == '[' && len > 2 && s[len - 1] == ']' && len - 2 < INET6_ADDRSTRLEN) {
        char addr[INET6_ADDRSTRLEN];
        memcpy(addr, s + 1, len - 2);
        addr[len - 2] = '\0';
        if (inet_pton(AF_INET6, addr, tmp) == 1)
            return NULL;
    }
    return "is not HOST or HOST:PORT";
}

/* upstream.proxy: "http://HOST[:PORT]" with nothing after it (no user, no path); curl
 * would take other forms, but a proxy that needs more is not one this daemon knows. */
static const char *check_proxy_url(const char *s)
{
    static const char *const bad = "is not http://HOST[:PORT]";
    if (strncasecmp(s, "http://", 7) != 0)
        return bad;
    const char *h = s + 7, *colon = NULL;
    if (h[0] == '[') {
        const char *end = strchr(h, ']');
        char addr[INET6_ADDRSTRLEN];
        unsigned char tmp[16];
        if (!end || (size_t)(end - h - 1) >= sizeof addr)
            return bad;
        memcpy(addr, h + 1, (size_t)(end - h - 1));
        addr[end - h - 1] = '\0';
        if (inet_pton(AF_INET6, addr, tmp) != 1 || (end[1] && end[1] != ':'))
            return bad;
        colon = end[1] ? end + 1 : NULL;
    } else {
        colon = strchr(h, ':');
        if (!is_hostname(h, colon ? (size_t)(colon - h) : strlen(h)))
            return bad;
    }
    uint64_t port;
    if (colon && (cy_decimal(colon + 1, strlen(colon + 1), 65535, &port) < 0 || port == 0))
        return bad;
    return NULL;
}

static const char *check_backend_name(const char *s)
{
    size_t len = strlen(s);
    if (s[0] == '~')
        return "collides with the peer prefix '~'";
    if (len > CONFIG_MAX_BACKEND_NAME)
        return "is too long for a backend name";
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return "is not a backend name ([a-z0-9][a-z0-9._-]*)";
    }
    return NULL;
}

/* Validates a mirror base URL in place: lower-cases the scheme and drops trailing '/'. */
static const char *fix_mirror_url(char *s)
{
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return "does not start with http:// or https://";
    for (size_t i = 0; i < skip - 3; i++)
        s[i] = (char)(s[i] | 0x20);
    for (const char *p = s; *p; p++) {
        if (*p == '?' || *p == '#')
            return "has a query or fragment";
        if (*p == ' ' || *p == '\t' || *p == '\\')
            return "has a space or backslash";
    }
    size_t len = strlen(s);
    while (len > skip && s[len - 1] == '/')
        s[--len] = '\0';
    char h = s[skip];
    if (!((h >= 'a' && h <= 'z') || (h >= 'A' && h <= 'Z') || (h >= '0' && h <= '9') || h == '['))
        return "has no host";
    return NULL;
}

/* ---- the schema ------------------------------------------------------------------------ */

enum kind {
    K_SECTION,   /* a mapping of further keys */
    K_PORT,      /* uint16_t, min..max */
    K_NUMBER,    /* uint32_t, min..max */
    K_SIZE,      /* uint64_t bytes */
    K_BOOL,      /* bool */
    K_ADDRESS,   /* char *, numeric address; null = default */
    K_ADDRESSES, /* listen.address: one numeric address or a list of them */
    K_PATH,      /* char *, absolute path */
    K_FILE,      /* char *, absolute path; null = unset */
    K_PROXY,     /* char *, http://HOST[:PORT]; null = unset */
    K_HOSTS,     /* char ** + size_t count: host names (check per key) */
    K_CIDRS,     /* struct cidr * + size_t count */
    K_HOSTPORTS, /* char ** + size_t count */
    K_BACKENDS,  /* the backends mapping */
    K_DHT_MODE,
    K_LOG_LEVEL,
};

struct key {
    const char *path; /* dotted, as in error messages */
    enum kind kind;
    size_t off;   /* field in struct config */
    size_t off_n; /* count field for lists */
    uint32_t min, max;
};

#define F(field) offsetof(struct config, field)
static const struct key keys[] = {
    {"listen", K_SECTION, 0, 0, 0, 0},
    {"listen.address", K_ADDRESSES, F(listen_addresses), F(n_listen_addresses), 0, 0},
    {"listen.port", K_PORT, F(listen_port), 0, 1, 65535},
    {"listen.max_connections", K_NUMBER, F(max_connections), 0, 4, 100000},
    {"listen.max_per_client", K_NUMBER, F(max_per_client), 0, 1, 100000},
    {"listen.header_timeout", K_NUMBER, F(header_timeout_s), 0, 1, 3600},
    {"listen.idle_timeout", K_NUMBER, F(idle_timeout_s), 0, 1, 86400},
    {"allowed_clients", K_CIDRS, F(allowed_clients), F(n_allowed_clients), 0, 0},
    {"peer_clients", K_CIDRS, F(peer_clients), F(n_peer_clients), 0, 0},
    {"status_clients", K_CIDRS, F(status_clients), F(n_status_clients), 0, 0},
    {"cache", K_SECTION, 0, 0, 0, 0},
    {"cache.dir", K_PATH, F(cache_dir), 0, 0, 0},
    {"cache.max_size", K_SIZE, F(cache_max_size), 0, 0, 0},
    {"cache.max_object", K_SIZE, F(cache_max_object), 0, 0, 0},
    {"cache.max_index", K_SIZE, F(cache_max_index), 0, 0, 0},
    {"cache.negative_ttl", K_NUMBER, F(negative_ttl_s), 0, 0, 86400},
    {"cache.keep_unreferenced", K_NUMBER, F(keep_unreferenced_s), 0, 0, 365 * 86400},
    {"state_dir", K_PATH, F(state_dir), 0, 0, 0},
    {"upstream", K_SECTION, 0, 0, 0, 0},
    {"upstream.connect_timeout", K_NUMBER, F(connect_timeout_s), 0, 1, 3600},
    {"upstream.stall_timeout", K_NUMBER, F(stall_timeout_s), 0, 1, 86400},
    {"upstream.proxy", K_PROXY, F(upstream_proxy), 0, 0, 0},
    {"upstream.no_proxy", K_HOSTS, F(upstream_no_proxy), F(n_upstream_no_proxy), 0, 0},
    {"upstream.ca_file", K_FILE, F(upstream_ca_file), 0, 0, 0},
    {"upstream.https_hosts", K_HOSTS, F(https_hosts), F(n_https_hosts), 0, 0},
    {"backends", K_BACKENDS, 0, 0, 0, 0},
    {"dht", K_SECTION, 0, 0, 0, 0},
    {"dht.mode", K_DHT_MODE, 0, 0, 0, 0},
    {"dht.port", K_PORT, F(dht_port), 0, 0, 65535},
    {"dht.bootstrap", K_HOSTPORTS, F(dht_bootstrap), F(n_dht_bootstrap), 0, 0},
    {"dht.lan_discovery", K_BOOL, F(dht_lan_discovery), 0, 0, 0},
    {"dht.resolve_only", K_BOOL, F(dht_resolve_only), 0, 0, 0},
    {"dht.ttl", K_NUMBER, F(dht_ttl_s), 0, 0, 7 * 86400},
    {"peers", K_SECTION, 0, 0, 0, 0},
    {"peers.budget", K_NUMBER, F(peer_budget_ms), 0, 0, 60000},
    {"peers.max_uploads", K_NUMBER, F(peer_max_uploads), 0, 1, 10000},
    {"peers.upload_rate", K_NUMBER, F(peer_upload_kib_s), 0, 0, 10000000},
    {"log", K_SECTION, 0, 0, 0, 0},
    {"log.level", K_LOG_LEVEL, 0, 0, 0, 0},
};
#undef F

static const struct key *find_key(const char *path)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    }
    return NULL;
}

static void *field(struct loader *ld, size_t off)
{
    return (char *)ld->cfg + off;
}

/* Collects the scalar items of a list node into a fresh array of item texts, checking
 * each with check (which may rewrite the text in place). */
static int get_string_list(struct cy *y, const yaml_node_t *n, const char *key,
                           const char *(*check)(char *), char ***out, size_t *n_out)
{
    char buf[CONFIG_MAX_STRING + 1];
    char **list = NULL;
    size_t count = 0;
    int rc;
    if (n->type != YAML_SEQUENCE_NODE)
        return cy_fail(y, n, key, -EINVAL, "expected a list, found %s%s", cy_type_name(n),
                       cy_is_null(n) ? " (write [] for an empty list)" : "");
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (total > CONFIG_MAX_LIST)
        return cy_fail(y, n, key, -E2BIG, "more than %d items", CONFIG_MAX_LIST);
    list = calloc(total ? total : 1, sizeof(char *));
    if (!list)
        return -ENOMEM;
    for (; count < total; count++) {
        const yaml_node_t *item = cy_node(y, n->data.sequence.items.start[count]);
        if (!item) {
            rc = cy_fail(y, n, key, -EINVAL, "malformed list");
            goto fail;
        }
        if ((rc = cy_text(y, item, key, buf)) < 0)
            goto fail;
        const char *why = check(buf);
        if (why) {
            rc = cy_fail(y, item, key, -EINVAL, "'%.*s' %s", CONFIG_SHOW, buf, why);
            goto fail;
        }
        if ((rc = str_dup(&list[count], buf)) < 0)
            goto fail;
    }
    *out = list;
    *n_out = count;
    return 0;
fail:
    str_list_free(list, count);
    return rc;
}

static const char *check_cidr_text(char *s)
{
    struct cidr c;
    return cidr_parse(s, &c) < 0 ? "is not an address block (ADDRESS or ADDRESS/PREFIX)" : NULL;
}

static const char *check_hostport_text(char *s)
{
    return check_hostport(s);
}

static int set_cidrs(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    char **texts = NULL;
    size_t n = 0;
    int rc = get_string_list(&ld->y, vn, k->path, check_cidr_text, &texts, &n);
    if (rc < 0)
        return rc;
    struct cidr *c = calloc(n ? n : 1, sizeof(*c));
    if (!c) {
        str_list_free(texts, n);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        cidr_parse(texts[i], &c[i]); /* already checked */
    str_list_free(texts, n);
    struct cidr **dst = field(ld, k->off);
    free(*dst);
    *dst = c;
    *(size_t *)field(ld, k->off_n) = n;
    return 0;
}

static const char *check_address_text(char *s)
{
    return check_address(s);
}

/* A list key's items; hosts lists check by key (no_proxy accepts .domains and *). */
static int set_hostports(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    char **list = NULL;
    size_t n = 0;
    const char *(*check)(char *) = k->kind == K_HOSTPORTS ? check_hostport_text
                                   : k->kind == K_ADDRESSES ? check_address_text
                                   : k->off == offsetof(struct config, upstream_no_proxy)
                                       ? check_no_proxy_text
                                       : check_https_host_text;
    int rc = get_string_list(&ld->y, vn, k->path, check, &list, &n);
    if (rc < 0)
        return rc;
    char ***dst = field(ld, k->off);
    size_t *dn = field(ld, k->off_n);
    str_list_free(*dst, *dn);
    *dst = list;
    *dn = n;
    return 0;
}

struct backend_list {
    struct config_backend *items; /* CONFIG_MAX_BACKENDS slots */
    size_t n;
};

/* One backends entry: name -> non-empty list of mirror URLs. */
static int backend_pair(struct cy *y, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg)
{
    struct backend_list *list = arg;
    char key[CONFIG_KEY_SHOWN];
    cy_key_path(key, prefix, name);
    if (list->n >= CONFIG_MAX_BACKENDS)
        return cy_fail(y, kn, prefix, -E2BIG, "more than %d backends", CONFIG_MAX_BACKENDS);
    const char *why = check_backend_name(name);
    if (why)
        return cy_fail(y, kn, key, -EINVAL, "'%.*s' %s", CONFIG_SHOW, name, why);
    struct config_backend b = {NULL, NULL, 0};
    int rc = get_string_list(y, vn, key, fix_mirror_url, &b.mirrors, &b.n_mirrors);
    if (rc < 0)
        return rc;
    if (b.n_mirrors == 0) {
        free(b.mirrors);
        return cy_fail(y, vn, key, -EINVAL, "a backend needs at least one mirror URL");
    }
    if (str_dup(&b.name, name) < 0) {
        str_list_free(b.mirrors, b.n_mirrors);
        return -ENOMEM;
    }
    list->items[list->n++] = b;
    return 0;
}

static int set_backends(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    if (cy_is_null(vn)) {
        backends_free(ld->cfg->backends, ld->cfg->n_backends);
        ld->cfg->backends = NULL;
        ld->cfg->n_backends = 0;
        return 0;
    }
    if (vn->type != YAML_MAPPING_NODE)
        return cy_fail(&ld->y, vn, k->path, -EINVAL,
                       "expected a mapping of names to mirror lists, "
                       "found %s",
                       cy_type_name(vn));
    size_t pairs = (size_t)(vn->data.mapping.pairs.top - vn->data.mapping.pairs.start);
    struct backend_list list = {NULL, 0};
    list.items =
        calloc(pairs < CONFIG_MAX_BACKENDS ? pairs + 1 : CONFIG_MAX_BACKENDS, sizeof(*list.items));
    if (!list.items)
        return -ENOMEM;
    int rc = cy_walk(&ld->y, vn, k->path, backend_pair, &list);
    if (rc < 0) {
        backends_free(list.items, list.n);
        return rc;
    }
    backends_free(ld->cfg->backends, ld->cfg->n_backends);
    ld->cfg->backends = list.items;
    ld->cfg->n_backends = list.n;
    return 0;
}

static int set_string(struct loader *ld, const struct key *k, const yaml_node_t *vn);

/* listen.address: null (the default by dht mode), one address, or a list of them; the
 * first is also kept as listen_address. */
static int set_addresses(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    struct config *c = ld->cfg;
    char *one = NULL;
    int rc;
    if (vn->type == YAML_SEQUENCE_NODE) {
        size_t items = (size_t)(vn->data.sequence.items.top - vn->data.sequence.items.start);
        if (items > CONFIG_MAX_LISTEN)
            return cy_fail(&ld->y, vn, k->path, -E2BIG, "more than %d addresses",
                           CONFIG_MAX_LISTEN);
        if ((rc = set_hostports(ld, k, vn)) < 0)
            return rc;
    } else {
        struct key single = {k->path, K_ADDRESS, offsetof(struct config, listen_address), 0, 0, 0};
        if ((rc = set_string(ld, &single, vn)) < 0)
            return rc;
        str_list_free(c->listen_addresses, c->n_listen_addresses);
        c->listen_addresses = NULL;
        c->n_listen_addresses = 0;
        if (c->listen_address &&
            (rc = str_list_copy(&c->listen_addresses, &c->n_listen_addresses,
                                &c->listen_address, 1)) < 0)
            return rc;
    }
    if (c->n_listen_addresses && !(one = strdup(c->listen_addresses[0])))
        return -ENOMEM;
    free(c->listen_address);
    c->listen_address = one;
    return 0;
}

static const char *check_string(enum kind kind, const char *s)
{
    switch (kind) {
    case K_ADDRESS: return check_address(s);
    case K_PROXY: return check_proxy_url(s);
    case K_FILE:
        if (check_path(s))
            return check_path(s);
        return access(s, R_OK) == 0 ? NULL : "cannot be read";
    default: return check_path(s);
    }
}

static int set_string(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    char buf[CONFIG_MAX_STRING + 1];
    char **dst = field(ld, k->off);
    if (k->kind != K_PATH && cy_is_null(vn))
        return str_dup(dst, NULL);
    int rc = cy_text(&ld->y, vn, k->path, buf);
    if (rc < 0)
        return rc;
    const char *why = check_string(k->kind, buf);
    if (why)
        return cy_fail(&ld->y, vn, k->path, -EINVAL, "'%.*s' %s", CONFIG_SHOW, buf, why);
    return str_dup(dst, buf);
}

static int set_scalar(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    static const char *const modes[] = {"apt-dht", "bep5", "off"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char buf[CONFIG_MAX_STRING + 1];
    uint32_t v;
    int rc;
    switch (k->kind) {
    case K_PORT:
        if ((rc = cy_number(&ld->y, vn, k->path, k->min, k->max, &v)) < 0)
            return rc;
        *(uint16_t *)field(ld, k->off) = (uint16_t)v;
        return 0;
    case K_NUMBER:
        return cy_number(&ld->y, vn, k->path, k->min, k->max, field(ld, k->off));
    case K_BOOL:
        return cy_bool(&ld->y, vn, k->path, field(ld, k->off));
    case K_SIZE:
        if ((rc = cy_text(&ld->y, vn, k->path, buf)) < 0)
            return rc;
        if (config_parse_size(buf, field(ld, k->off)) < 0 || *(uint64_t *)field(ld, k->off) == 0)
            return cy_fail(&ld->y, vn, k->path, -EINVAL,
                           "'%.*s' is not a size (a number > 0 with an optional K, M, G or T)",
                           CONFIG_SHOW, buf);
        return 0;
    case K_DHT_MODE:
        if ((rc = cy_enum(&ld->y, vn, k->path, modes, 3, "apt-dht, bep5, off")) < 0)
            return rc;
        ld->cfg->dht_mode = (enum dht_mode_cfg)rc;
        return 0;
    case K_LOG_LEVEL:
        if ((rc = cy_enum(&ld->y, vn, k->path, levels, 4, "error, warn, info, debug")) < 0)
            return rc;
        ld->cfg->log_level = (enum log_level)rc;
        return 0;
    default:
        return -EINVAL;
    }
}

static int section_pair(struct cy *y, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg);

static int set_value(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    switch (k->kind) {
    case K_SECTION:
        if (cy_is_null(vn))
            return 0; /* every key commented out: keep what is there */
        if (vn->type != YAML_MAPPING_NODE)
            return cy_fail(&ld->y, vn, k->path, -EINVAL, "expected a mapping, found %s",
                           cy_type_name(vn));
        return cy_walk(&ld->y, vn, k->path, section_pair, ld);
    case K_ADDRESS:
    case K_PATH:
    case K_FILE:
    case K_PROXY:
        return set_string(ld, k, vn);
    case K_ADDRESSES:
        return set_addresses(ld, k, vn);
    case K_CIDRS:
        return set_cidrs(ld, k, vn);
    case K_HOSTS:
    case K_HOSTPORTS:
        return set_hostports(ld, k, vn);
    case K_BACKENDS:
        return set_backends(ld, k, vn);
    default:
        return set_scalar(ld, k, vn);
    }
}

/* One key of the file: found in the table by its dotted path, then set; arg is the loader. */
static int section_pair(struct cy *y, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg)
{
    char path[CONFIG_KEY_SHOWN];
    cy_key_path(path, prefix, name);
    /* A dotted name ("listen.port: 1" at the top) must not reach a nested key. */
    const struct key *k = strchr(name, '.') ? NULL : find_key(path);
    if (!k || strlen(name) > CONFIG_SHOW)
        return cy_fail(y, kn, path, -EINVAL, "unknown key");
    return set_value(arg, k, vn);
}

static int walk_root(struct loader *ld)
{
    const yaml_node_t *root = cy_root(&ld->y);
    if (!root || cy_is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return cy_fail(&ld->y, root, NULL, -EINVAL,
                       "the top level must be a mapping of keys, found %s", cy_type_name(root));
    return cy_walk(&ld->y, root, NULL, section_pair, ld);
}

int config_load_buffer(struct config *cfg, const char *name, const char *buf, size_t len, char *err,
                       size_t errlen)
{
    struct config work;
    struct loader ld = {.cfg = &work};
    bool work_ok = false;
    int rc;
    cy_error(err, errlen, "%s", "");
    if (!cfg || (!buf && len))
        return -EINVAL;
    if ((rc = cy_load(&ld.y, name ? name : "(config)", buf, len, err, errlen)) < 0 ||
        (rc = config_copy(&work, cfg)) < 0)
        goto fail;
    work_ok = true;
    if ((rc = walk_root(&ld)) < 0)
        goto fail;
    config_done(cfg);
    *cfg = work;
    work_ok = false;
fail:
    if (rc == -ENOMEM && err && errlen && !err[0])
        cy_error(err, errlen, "%s: out of memory", ld.y.name);
    if (work_ok)
        config_done(&work);
    cy_done(&ld.y);
    return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    if (!cfg || !path)
        return -EINVAL;
    int rc = cy_read_file(path, &buf, &len);
    if (rc < 0) {
        if (rc == -EFBIG)
            cy_error(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
        else
            cy_error(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = config_load_buffer(cfg, path, buf, len, err, errlen);
    free(buf);
    return rc;
}

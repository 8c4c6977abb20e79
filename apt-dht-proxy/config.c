/* config.c - apt-dht-proxy's configuration loader.
 *
 * Model: libyaml loads the whole file (at most CONFIG_MAX_FILE bytes) into a node tree.
 * A table of known keys (dotted paths such as "cache.max_size", each with a kind and the
 * field it fills) drives a walk of that tree; anything the table does not name is an
 * error that points at the file, the line and the key. Values go into a private deep copy
 * of the caller's config, which replaces the caller's only once the whole file is valid,
 * so a SIGHUP reload with a broken file leaves the running configuration untouched.
 *
 * Every value is bounded: scalars at CONFIG_MAX_STRING bytes, lists at CONFIG_MAX_LIST
 * items, backends at CONFIG_MAX_BACKENDS. The walk follows the schema, never the tree's
 * own shape, so its depth is fixed and YAML aliases cannot multiply work. */
#include "aptdht-config.h"
#include "apt-dht-proxy/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define CONFIG_MAX_FILE (1024 * 1024) /* bytes of YAML */
#define CONFIG_MAX_STRING 4096        /* bytes in one scalar value */
#define CONFIG_MAX_LIST 1024          /* items in one list */
#define CONFIG_MAX_BACKENDS 256
#define CONFIG_MAX_BACKEND_NAME 64
#define CONFIG_MAX_HOSTNAME 253
#define CONFIG_SHOW 64 /* bytes of a bad value quoted back in an error */

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

/* Parses a plain decimal number: digits only, no sign, no leading zero (YAML 1.1 would
 * read 0644 as octal), at most max. Returns 0 or -EINVAL (also for overflow). */
static int parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
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
    if (parse_decimal(s, len, UINT64_MAX >> shift, &v) < 0)
        return -EINVAL;
    *out = v << shift;
    return 0;
}

/* ---- defaults, copy, done ------------------------------------------------------------ */

static const char *const default_allowed[] = {"127.0.0.0/8", "::1/128"};
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
    cfg->cache_max_size = (uint64_t)10 << 30;
    cfg->negative_ttl_s = 60;
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
    free(cfg->allowed_clients);
    free(cfg->peer_clients);
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
    dst->allowed_clients = dst->peer_clients = NULL;
    dst->n_allowed_clients = dst->n_peer_clients = 0;
    dst->backends = NULL;
    dst->n_backends = 0;
    dst->dht_bootstrap = NULL;
    dst->n_dht_bootstrap = 0;
    if (str_dup(&dst->listen_address, src->listen_address) < 0 ||
        str_dup(&dst->cache_dir, src->cache_dir) < 0 ||
        str_dup(&dst->state_dir, src->state_dir) < 0 ||
        cidrs_copy(&dst->allowed_clients, &dst->n_allowed_clients, src->allowed_clients,
                   src->n_allowed_clients) < 0 ||
        cidrs_copy(&dst->peer_clients, &dst->n_peer_clients, src->peer_clients,
                   src->n_peer_clients) < 0 ||
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

struct loader {
    yaml_document_t *doc;
    const char *name; /* file name for messages */
    char *err;        /* may be NULL */
    size_t errlen;
    struct config *cfg; /* the working copy */
};

/* Writes one line into the caller's buffer; control bytes become '?' so neither a file
 * name nor a quoted value can split the line. */
static void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}

/* Reports "NAME:LINE: key 'KEY': MESSAGE" for node and returns rc. */
static int fail_at(struct loader *ld, const yaml_node_t *node, const char *key, int rc,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(struct loader *ld, const yaml_node_t *node, const char *key, int rc,
                   const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned long line = node ? (unsigned long)node->start_mark.line + 1 : 1;
    if (key)
        set_error(ld->err, ld->errlen, "%s:%lu: key '%s': %s", ld->name, line, key, msg);
    else
        set_error(ld->err, ld->errlen, "%s:%lu: %s", ld->name, line, msg);
    return rc;
}

static yaml_node_t *node_at(struct loader *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a single value";
    }
}

/* A plain (unquoted) empty, "~" or "null" scalar, or an explicit !!null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

/* Checks that n is a usable text scalar and returns it NUL-terminated in buf
 * (CONFIG_MAX_STRING + 1 bytes). Control bytes (CR, LF, NUL, ...) are refused since the
 * values end up in paths, URLs and log lines. */
static int get_text(struct loader *ld, const yaml_node_t *n, const char *key, char *buf)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(ld, n, key, -EINVAL, "expected a single value, found %s", type_name(n));
    if (is_null(n))
        return fail_at(ld, n, key, -EINVAL, "missing value");
    size_t len = n->data.scalar.length;
    const unsigned char *v = n->data.scalar.value;
    if (len > CONFIG_MAX_STRING)
        return fail_at(ld, n, key, -EINVAL, "value longer than %d bytes", CONFIG_MAX_STRING);
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] == 0x7f)
            return fail_at(ld, n, key, -EINVAL, "control character in value");
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (len == 0)
        return fail_at(ld, n, key, -EINVAL, "empty value");
    return 0;
}

static int get_number(struct loader *ld, const yaml_node_t *n, const char *key, uint32_t min,
                      uint32_t max, uint32_t *out)
{
    char buf[CONFIG_MAX_STRING + 1];
    uint64_t v;
    int rc = get_text(ld, n, key, buf);
    if (rc < 0)
        return rc;
    if (parse_decimal(buf, strlen(buf), UINT64_MAX, &v) < 0)
        return fail_at(ld, n, key, -EINVAL, "'%.*s' is not a plain decimal number", CONFIG_SHOW,
                       buf);
    if (v < min || v > max)
        return fail_at(ld, n, key, -ERANGE, "%llu is out of range (%lu..%lu)",
                       (unsigned long long)v, (unsigned long)min, (unsigned long)max);
    *out = (uint32_t)v;
    return 0;
}

static int get_bool(struct loader *ld, const yaml_node_t *n, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "yes"}, *const no[] = {"false", "no"};
    char buf[CONFIG_MAX_STRING + 1];
    int rc = get_text(ld, n, key, buf);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < 2; i++) {
        if (strcasecmp(buf, yes[i]) == 0 || strcasecmp(buf, no[i]) == 0) {
            *out = strcasecmp(buf, yes[i]) == 0;
            return 0;
        }
    }
    return fail_at(ld, n, key, -EINVAL, "'%.*s' is not a boolean (true, false, yes, no)",
                   CONFIG_SHOW, buf);
}

/* Returns the index of the value in names, or a negative errno after reporting. */
static int get_enum(struct loader *ld, const yaml_node_t *n, const char *key,
                    const char *const *names, size_t count, const char *expected)
{
    char buf[CONFIG_MAX_STRING + 1];
    int rc = get_text(ld, n, key, buf);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(buf, names[i]) == 0)
            return (int)i;
    }
    return fail_at(ld, n, key, -EINVAL, "'%.*s' is not one of %s", CONFIG_SHOW, buf, expected);
}

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
    if (parse_decimal(colon + 1, strlen(colon + 1), 65535, &port) < 0 || port == 0)
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
    K_PATH,      /* char *, absolute path */
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
    {"listen.address", K_ADDRESS, F(listen_address), 0, 0, 0},
    {"listen.port", K_PORT, F(listen_port), 0, 1, 65535},
    {"allowed_clients", K_CIDRS, F(allowed_clients), F(n_allowed_clients), 0, 0},
    {"peer_clients", K_CIDRS, F(peer_clients), F(n_peer_clients), 0, 0},
    {"cache", K_SECTION, 0, 0, 0, 0},
    {"cache.dir", K_PATH, F(cache_dir), 0, 0, 0},
    {"cache.max_size", K_SIZE, F(cache_max_size), 0, 0, 0},
    {"cache.negative_ttl", K_NUMBER, F(negative_ttl_s), 0, 0, 86400},
    {"state_dir", K_PATH, F(state_dir), 0, 0, 0},
    {"upstream", K_SECTION, 0, 0, 0, 0},
    {"upstream.connect_timeout", K_NUMBER, F(connect_timeout_s), 0, 1, 3600},
    {"upstream.stall_timeout", K_NUMBER, F(stall_timeout_s), 0, 1, 86400},
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

/* Walks a mapping node, calling fn for each (key text, key node, value node). Keys must
 * be non-empty scalars and appear once. */
typedef int (*pair_fn)(struct loader *ld, const char *prefix, const char *name,
                       const yaml_node_t *kn, const yaml_node_t *vn, void *arg);

static int walk_mapping(struct loader *ld, const yaml_node_t *map, const char *prefix, pair_fn fn,
                        void *arg)
{
    const yaml_node_pair_t *start = map->data.mapping.pairs.start;
    const yaml_node_pair_t *top = map->data.mapping.pairs.top;
    char name[CONFIG_MAX_STRING + 1], path[CONFIG_SHOW * 2 + 2];
    for (const yaml_node_pair_t *p = start; p < top; p++) {
        const yaml_node_t *kn = node_at(ld, p->key), *vn = node_at(ld, p->value);
        if (!kn || !vn)
            return fail_at(ld, NULL, prefix, -EINVAL, "malformed mapping");
        if (kn->type != YAML_SCALAR_NODE || is_null(kn))
            return fail_at(ld, kn, prefix, -EINVAL, "a key must be a name, found %s",
                           is_null(kn) ? "an empty key" : type_name(kn));
        int rc = get_text(ld, kn, prefix, name);
        if (rc < 0)
            return rc;
        snprintf(path, sizeof(path), "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "",
                 CONFIG_SHOW, name);
        for (const yaml_node_pair_t *q = start; q < p; q++) {
            const yaml_node_t *qk = node_at(ld, q->key);
            if (qk && qk->type == YAML_SCALAR_NODE && qk->data.scalar.length == strlen(name) &&
                memcmp(qk->data.scalar.value, name, strlen(name)) == 0)
                return fail_at(ld, kn, path, -EINVAL, "duplicate key (first at line %lu)",
                               (unsigned long)qk->start_mark.line + 1);
        }
        rc = fn(ld, prefix, name, kn, vn, arg);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Collects the scalar items of a list node into a fresh array of item texts, checking
 * each with check (which may rewrite the text in place). */
static int get_string_list(struct loader *ld, const yaml_node_t *n, const char *key,
                           const char *(*check)(char *), char ***out, size_t *n_out)
{
    char buf[CONFIG_MAX_STRING + 1];
    char **list = NULL;
    size_t count = 0;
    int rc;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(ld, n, key, -EINVAL, "expected a list, found %s%s", type_name(n),
                       is_null(n) ? " (write [] for an empty list)" : "");
    size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (total > CONFIG_MAX_LIST)
        return fail_at(ld, n, key, -E2BIG, "more than %d items", CONFIG_MAX_LIST);
    list = calloc(total ? total : 1, sizeof(char *));
    if (!list)
        return -ENOMEM;
    for (; count < total; count++) {
        const yaml_node_t *item = node_at(ld, n->data.sequence.items.start[count]);
        if (!item) {
            rc = fail_at(ld, n, key, -EINVAL, "malformed list");
            goto fail;
        }
        if ((rc = get_text(ld, item, key, buf)) < 0)
            goto fail;
        const char *why = check(buf);
        if (why) {
            rc = fail_at(ld, item, key, -EINVAL, "'%.*s' %s", CONFIG_SHOW, buf, why);
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
    int rc = get_string_list(ld, vn, k->path, check_cidr_text, &texts, &n);
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

static int set_hostports(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    char **list = NULL;
    size_t n = 0;
    int rc = get_string_list(ld, vn, k->path, check_hostport_text, &list, &n);
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
static int backend_pair(struct loader *ld, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg)
{
    struct backend_list *list = arg;
    char key[CONFIG_SHOW * 2 + 2];
    snprintf(key, sizeof(key), "%s.%.*s", prefix, CONFIG_SHOW, name);
    if (list->n >= CONFIG_MAX_BACKENDS)
        return fail_at(ld, kn, prefix, -E2BIG, "more than %d backends", CONFIG_MAX_BACKENDS);
    const char *why = check_backend_name(name);
    if (why)
        return fail_at(ld, kn, key, -EINVAL, "'%.*s' %s", CONFIG_SHOW, name, why);
    struct config_backend b = {NULL, NULL, 0};
    int rc = get_string_list(ld, vn, key, fix_mirror_url, &b.mirrors, &b.n_mirrors);
    if (rc < 0)
        return rc;
    if (b.n_mirrors == 0) {
        free(b.mirrors);
        return fail_at(ld, vn, key, -EINVAL, "a backend needs at least one mirror URL");
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
    if (is_null(vn)) {
        backends_free(ld->cfg->backends, ld->cfg->n_backends);
        ld->cfg->backends = NULL;
        ld->cfg->n_backends = 0;
        return 0;
    }
    if (vn->type != YAML_MAPPING_NODE)
        return fail_at(ld, vn, k->path, -EINVAL,
                       "expected a mapping of names to mirror lists, "
                       "found %s",
                       type_name(vn));
    size_t pairs = (size_t)(vn->data.mapping.pairs.top - vn->data.mapping.pairs.start);
    struct backend_list list = {NULL, 0};
    list.items =
        calloc(pairs < CONFIG_MAX_BACKENDS ? pairs + 1 : CONFIG_MAX_BACKENDS, sizeof(*list.items));
    if (!list.items)
        return -ENOMEM;
    int rc = walk_mapping(ld, vn, k->path, backend_pair, &list);
    if (rc < 0) {
        backends_free(list.items, list.n);
        return rc;
    }
    backends_free(ld->cfg->backends, ld->cfg->n_backends);
    ld->cfg->backends = list.items;
    ld->cfg->n_backends = list.n;
    return 0;
}

static int set_string(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    char buf[CONFIG_MAX_STRING + 1];
    char **dst = field(ld, k->off);
    if (k->kind == K_ADDRESS && is_null(vn))
        return str_dup(dst, NULL);
    int rc = get_text(ld, vn, k->path, buf);
    if (rc < 0)
        return rc;
    const char *why = k->kind == K_ADDRESS ? check_address(buf) : check_path(buf);
    if (why)
        return fail_at(ld, vn, k->path, -EINVAL, "'%.*s' %s", CONFIG_SHOW, buf, why);
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
        if ((rc = get_number(ld, vn, k->path, k->min, k->max, &v)) < 0)
            return rc;
        *(uint16_t *)field(ld, k->off) = (uint16_t)v;
        return 0;
    case K_NUMBER:
        return get_number(ld, vn, k->path, k->min, k->max, field(ld, k->off));
    case K_BOOL:
        return get_bool(ld, vn, k->path, field(ld, k->off));
    case K_SIZE:
        if ((rc = get_text(ld, vn, k->path, buf)) < 0)
            return rc;
        if (config_parse_size(buf, field(ld, k->off)) < 0 || *(uint64_t *)field(ld, k->off) == 0)
            return fail_at(ld, vn, k->path, -EINVAL,
                           "'%.*s' is not a size (a number > 0 with an optional K, M, G or T)",
                           CONFIG_SHOW, buf);
        return 0;
    case K_DHT_MODE:
        if ((rc = get_enum(ld, vn, k->path, modes, 3, "apt-dht, bep5, off")) < 0)
            return rc;
        ld->cfg->dht_mode = (enum dht_mode_cfg)rc;
        return 0;
    case K_LOG_LEVEL:
        if ((rc = get_enum(ld, vn, k->path, levels, 4, "error, warn, info, debug")) < 0)
            return rc;
        ld->cfg->log_level = (enum log_level)rc;
        return 0;
    default:
        return -EINVAL;
    }
}

static int section_pair(struct loader *ld, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg);

static int set_value(struct loader *ld, const struct key *k, const yaml_node_t *vn)
{
    switch (k->kind) {
    case K_SECTION:
        if (is_null(vn))
            return 0; /* every key commented out: keep what is there */
        if (vn->type != YAML_MAPPING_NODE)
            return fail_at(ld, vn, k->path, -EINVAL, "expected a mapping, found %s", type_name(vn));
        return walk_mapping(ld, vn, k->path, section_pair, NULL);
    case K_ADDRESS:
    case K_PATH:
        return set_string(ld, k, vn);
    case K_CIDRS:
        return set_cidrs(ld, k, vn);
    case K_HOSTPORTS:
        return set_hostports(ld, k, vn);
    case K_BACKENDS:
        return set_backends(ld, k, vn);
    default:
        return set_scalar(ld, k, vn);
    }
}

static int section_pair(struct loader *ld, const char *prefix, const char *name,
                        const yaml_node_t *kn, const yaml_node_t *vn, void *arg)
{
    char path[CONFIG_SHOW * 2 + 2];
    snprintf(path, sizeof(path), "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "", CONFIG_SHOW,
             name);
    /* A dotted name ("listen.port: 1" at the top) must not reach a nested key. */
    const struct key *k = strchr(name, '.') ? NULL : find_key(path);
    if (!k || strlen(name) > CONFIG_SHOW)
        return fail_at(ld, kn, path, -EINVAL, "unknown key");
    return set_value(ld, k, vn);
}

/* Counts lines up to a byte offset: reader errors (bad UTF-8, control bytes) carry only
 * an offset. */
static unsigned long line_of(const char *buf, size_t len, size_t offset)
{
    unsigned long line = 1;
    for (size_t i = 0; i < offset && i < len; i++)
        line += buf[i] == '\n';
    return line;
}

static int yaml_failure(struct loader *ld, const yaml_parser_t *p, const char *buf, size_t len)
{
    unsigned long line;
    if (p->error == YAML_MEMORY_ERROR)
        return -ENOMEM;
    if (p->error == YAML_READER_ERROR)
        line = line_of(buf, len, p->problem_offset);
    else
        line = (unsigned long)p->problem_mark.line + 1;
    if (p->context)
        set_error(ld->err, ld->errlen, "%s:%lu: YAML: %s %s", ld->name, line, p->problem,
                  p->context);
    else
        set_error(ld->err, ld->errlen, "%s:%lu: YAML: %s", ld->name, line,
                  p->problem ? p->problem : "syntax error");
    return -EINVAL;
}

/* After the first document: makes sure no second one follows. */
static int check_single_document(struct loader *ld, yaml_parser_t *parser, const char *buf,
                                 size_t len)
{
    yaml_document_t extra;
    if (!yaml_document_get_root_node(ld->doc))
        return 0;
    if (!yaml_parser_load(parser, &extra))
        return yaml_failure(ld, parser, buf, len);
    bool more = yaml_document_get_root_node(&extra) != NULL;
    unsigned long line = (unsigned long)extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (more) {
        set_error(ld->err, ld->errlen, "%s:%lu: only one YAML document is allowed", ld->name, line);
        return -EINVAL;
    }
    return 0;
}

int config_load_buffer(struct config *cfg, const char *name, const char *buf, size_t len, char *err,
                       size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    struct config work;
    struct loader ld = {
        .doc = &doc, .name = name ? name : "(config)", .err = err, .errlen = errlen, .cfg = &work};
    bool parser_ok = false, doc_ok = false, work_ok = false;
    int rc;
    set_error(err, errlen, "%s", "");
    if (!cfg || (!buf && len))
        return -EINVAL;
    if (len > CONFIG_MAX_FILE) {
        set_error(err, errlen, "%s: larger than %d bytes", ld.name, CONFIG_MAX_FILE);
        return -EFBIG;
    }
    rc = -ENOMEM;
    if (!yaml_parser_initialize(&parser))
        goto fail;
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_failure(&ld, &parser, buf, len);
        goto fail;
    }
    doc_ok = true;
    if ((rc = check_single_document(&ld, &parser, buf, len)) < 0)
        goto fail;
    if ((rc = config_copy(&work, cfg)) < 0)
        goto fail;
    work_ok = true;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null(root)) {
        rc = -EINVAL;
        if (root->type != YAML_MAPPING_NODE) {
            fail_at(&ld, root, NULL, rc, "the top level must be a mapping of keys, found %s",
                    type_name(root));
            goto fail;
        }
        if ((rc = walk_mapping(&ld, root, NULL, section_pair, NULL)) < 0)
            goto fail;
    }
    config_done(cfg);
    *cfg = work;
    work_ok = false;
    rc = 0;
fail:
    if (rc == -ENOMEM && err && errlen && !err[0])
        set_error(err, errlen, "%s: out of memory", ld.name);
    if (work_ok)
        config_done(&work);
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    return rc;
}

/* Reads at most CONFIG_MAX_FILE + 1 bytes, so a too-large file is noticed. */
static int read_file(const char *path, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (;;) {
        if (n == cap || !buf) {
            if (buf)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > CONFIG_MAX_FILE) {
            rc = -EFBIG;
            goto fail;
        }
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
fail:
    close(fd);
    free(buf);
    return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    if (!cfg || !path)
        return -EINVAL;
    int rc = read_file(path, &buf, &len);
    if (rc < 0) {
        if (rc == -EFBIG)
            set_error(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_FILE);
        else
            set_error(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = config_load_buffer(cfg, path, buf, len, err, errlen);
    free(buf);
    return rc;
}

/* test_config.c - the configuration loader: defaults, the shipped apt-dht.conf, every key,
 * every class of bad input (with the exact FILE:LINE: key message), CIDR lists and sizes
 * (test_cidr.c tests the blocks themselves).
 * Most cases are rows of tables; a failing row names itself through its CU_ASSERT line
 * and the message printed beside it. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/config.h"

#define ERRLEN 512

static int load(struct config *cfg, const char *yaml, char *err)
{
    return config_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), err, ERRLEN);
}

static bool cidr_equal(const struct cidr *a, size_t na, const struct cidr *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (a[i].family != b[i].family || a[i].prefix != b[i].prefix ||
            memcmp(a[i].addr, b[i].addr, 16) != 0)
            return false;
    }
    return true;
}

static bool str_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool str_list_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (!str_equal(a[i], b[i]))
            return false;
    }
    return true;
}

static bool config_equal(const struct config *a, const struct config *b)
{
    if (!str_equal(a->listen_address, b->listen_address) || a->listen_port != b->listen_port ||
        a->max_connections != b->max_connections || a->max_per_client != b->max_per_client ||
        a->header_timeout_s != b->header_timeout_s || a->idle_timeout_s != b->idle_timeout_s ||
        !cidr_equal(a->allowed_clients, a->n_allowed_clients, b->allowed_clients,
                    b->n_allowed_clients) ||
        !cidr_equal(a->peer_clients, a->n_peer_clients, b->peer_clients, b->n_peer_clients) ||
        !cidr_equal(a->status_clients, a->n_status_clients, b->status_clients,
                    b->n_status_clients) ||
        !str_equal(a->cache_dir, b->cache_dir) || a->cache_max_size != b->cache_max_size ||
        a->cache_max_object != b->cache_max_object || a->cache_max_index != b->cache_max_index ||
        a->negative_ttl_s != b->negative_ttl_s || !str_equal(a->state_dir, b->state_dir) ||
        a->keep_unreferenced_s != b->keep_unreferenced_s ||
        a->connect_timeout_s != b->connect_timeout_s || a->stall_timeout_s != b->stall_timeout_s ||
        a->dht_mode != b->dht_mode || a->dht_port != b->dht_port ||
        !str_list_equal(a->dht_bootstrap, a->n_dht_bootstrap, b->dht_bootstrap,
                        b->n_dht_bootstrap) ||
        a->dht_lan_discovery != b->dht_lan_discovery ||
        a->dht_resolve_only != b->dht_resolve_only || a->dht_ttl_s != b->dht_ttl_s ||
        a->log_level != b->log_level || a->n_backends != b->n_backends ||
        !str_list_equal(a->listen_addresses, a->n_listen_addresses, b->listen_addresses,
                        b->n_listen_addresses) ||
        !str_equal(a->upstream_proxy, b->upstream_proxy) ||
        !str_equal(a->upstream_ca_file, b->upstream_ca_file) ||
        !str_list_equal(a->upstream_no_proxy, a->n_upstream_no_proxy, b->upstream_no_proxy,
                        b->n_upstream_no_proxy) ||
        !str_list_equal(a->https_hosts, a->n_https_hosts, b->https_hosts, b->n_https_hosts))
        return false;
    for (size_t i = 0; i < a->n_backends; i++) {
        if (!str_equal(a->backends[i].name, b->backends[i].name) ||
            !str_list_equal(a->backends[i].mirrors, a->backends[i].n_mirrors,
                            b->backends[i].mirrors, b->backends[i].n_mirrors))
            return false;
    }
    return true;
}

/* True if the block list holds exactly the CIDRs in texts (NULL-terminated), in order. */
static bool cidrs_are(const struct cidr *blocks, size_t n, const char *const *texts)
{
    size_t i = 0;
    for (; texts[i]; i++) {
        struct cidr c;
        if (i >= n || cidr_parse(texts[i], &c) < 0 || !cidr_equal(&blocks[i], 1, &c, 1))
            return false;
    }
    return i == n;
}

/* ---- defaults and the shipped file ---------------------------------------------------- */

static void test_defaults(void)
{
    static const char *const allowed[] = {"127.0.0.0/8", "::1/128", NULL};
    static const char *const peers[] = {"10.0.0.0/8",     "172.16.0.0/12", "192.168.0.0/16",
                                        "169.254.0.0/16", "127.0.0.0/8",   "fc00::/7",
                                        "fe80::/10",      "::1/128",       NULL};
    struct config c;
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    CU_ASSERT_PTR_NULL(c.listen_address);
    CU_ASSERT_EQUAL(c.listen_port, 9977);
    CU_ASSERT_EQUAL(c.max_connections, 1000);
    CU_ASSERT_EQUAL(c.max_per_client, 64);
    CU_ASSERT_EQUAL(c.header_timeout_s, 15);
    CU_ASSERT_EQUAL(c.idle_timeout_s, 60);
    CU_ASSERT(cidrs_are(c.allowed_clients, c.n_allowed_clients, allowed));
    CU_ASSERT(cidrs_are(c.peer_clients, c.n_peer_clients, peers));
    CU_ASSERT(cidrs_are(c.status_clients, c.n_status_clients, allowed));
    CU_ASSERT_STRING_EQUAL(c.cache_dir, "/var/cache/apt-dht");
    CU_ASSERT_EQUAL(c.cache_max_size, 10ULL << 30);
    CU_ASSERT_EQUAL(c.cache_max_object, 4ULL << 30);
    CU_ASSERT_EQUAL(c.cache_max_index, 256ULL << 20);
    CU_ASSERT_EQUAL(c.negative_ttl_s, 60);
    CU_ASSERT_EQUAL(c.keep_unreferenced_s, 4 * 86400);
    CU_ASSERT_STRING_EQUAL(c.state_dir, "/var/lib/apt-dht");
    CU_ASSERT_EQUAL(c.n_backends, 0);
    CU_ASSERT_EQUAL(c.connect_timeout_s, 10);
    CU_ASSERT_EQUAL(c.stall_timeout_s, 30);
    CU_ASSERT_EQUAL(c.dht_mode, DHT_MODE_APTDHT);
    CU_ASSERT_EQUAL(c.dht_port, 0);
    CU_ASSERT_EQUAL(c.n_dht_bootstrap, 0);
    CU_ASSERT_TRUE(c.dht_lan_discovery);
    CU_ASSERT_FALSE(c.dht_resolve_only);
    CU_ASSERT_EQUAL(c.dht_ttl_s, 0);
    CU_ASSERT_EQUAL(c.log_level, LOG_LEVEL_INFO);
    CU_ASSERT_EQUAL(c.n_listen_addresses, 0);
    CU_ASSERT_PTR_NULL(c.upstream_proxy);
    CU_ASSERT_PTR_NULL(c.upstream_ca_file);
    CU_ASSERT_EQUAL(c.n_upstream_no_proxy, 0);
    CU_ASSERT_EQUAL(c.n_https_hosts, 0);
    config_done(&c);
}

static void test_shipped_conf(void)
{
    const char *top = getenv("top_srcdir");
    char path[4096], err[ERRLEN];
    struct config d, c;
    snprintf(path, sizeof(path), "%s/apt-dht.conf", top ? top : ".");
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&d), 0);
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    /* Start from a config that differs everywhere, so the file must set each value. */
    CU_ASSERT_EQUAL(load(&c,
                         "listen: {port: 1}\nallowed_clients: []\npeer_clients: []\n"
                         "cache: {dir: /x, max_size: 1, max_object: 1, max_index: 1, negative_ttl: 1}\n"
                         "state_dir: /y\n"
                         "upstream: {connect_timeout: 1, stall_timeout: 1, proxy: \"http://p.example\","
                         " no_proxy: [x.example], ca_file: /dev/null, https_hosts: [h.example]}\n"
                         "backends: {x: [http://mirror.example]}\n"
                         "dht: {mode: off, port: 5, bootstrap: [\"node.example:1\"],"
                         " lan_discovery: no, resolve_only: yes, ttl: 5}\n"
                         "log: {level: debug}\n",
                         err),
                    0);
    int rc = config_load_file(&c, path, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_TRUE(config_equal(&c, &d));
    config_done(&c);
    config_done(&d);
}

static void test_empty_inputs(void)
{
    static const char *const inputs[] = {"",
                                         "\n\n",
                                         "# only a comment\n",
                                         "---\n",
                                         "---\n...\n",
                                         "~\n",
                                         "cache:\nlog:\n# all commented out\n"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct config d, c;
        char err[ERRLEN];
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&d), 0);
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
        CU_ASSERT_EQUAL(load(&c, inputs[i], err), 0);
        CU_ASSERT_TRUE(config_equal(&c, &d));
        config_done(&c);
        config_done(&d);
    }
}

/* ---- every key set -------------------------------------------------------------------- */

static const char full_yaml[] =
    "listen:\n"
    "  address: \"::\"\n"
    "  port: 8080\n"
    "  max_connections: 4000\n"
    "  max_per_client: 16\n"
    "  header_timeout: 5\n"
    "  idle_timeout: 30\n"
    "allowed_clients: [10.1.0.0/16, \"2001:db8::/32\", 192.0.2.7]\n"
    "peer_clients:\n"
    "  - 10.0.0.0/8\n"
    "  - \"fd00::/8\"\n"
    "status_clients: [192.0.2.0/24]\n"
    "cache:\n"
    "  dir: /srv/cache\n"
    "  max_size: 500M\n"
    "  max_object: 2G\n"
    "  max_index: 64M\n"
    "  negative_ttl: 0\n"
    "  keep_unreferenced: 0\n"
    "state_dir: /srv/state\n"
    "upstream:\n"
    "  connect_timeout: 5\n"
    "  stall_timeout: 120\n"
    "  proxy: \"http://proxy.example:3128\"\n"
    "  no_proxy: [.lan.example, 192.0.2.5, \"*\"]\n"
    "  ca_file: /dev/null\n"
    "  https_hosts: [Deb.Example, \"mirror2.example:8443\", \"[2001:db8::2]\"]\n"
    "backends:\n"
    "  debian: [http://mirror.example/debian/, HTTPS://mirror2.example/debian]\n"
    "  debian-security:\n"
    "    - http://mirror.example/debian-security\n"
    "  ubuntu_2.x: ['http://mirror.example:8080/ubuntu//']\n"
    "dht:\n"
    "  mode: bep5\n"
    "  port: 6881\n"
    "  bootstrap: [\"node.example:9977\", \"[2001:db8::1]:9977\", 192.0.2.1:1]\n"
    "  lan_discovery: no\n"
    "  resolve_only: true\n"
    "  ttl: 3600\n"
    "peers: {budget: 250, max_uploads: 4, upload_rate: 2048}\n"
    "log:\n"
    "  level: debug\n";

static void check_full(const struct config *c)
{
    static const char *const allowed[] = {"10.1.0.0/16", "2001:db8::/32", "192.0.2.7/32", NULL};
    static const char *const peers[] = {"10.0.0.0/8", "fd00::/8", NULL};
    static const char *const status[] = {"192.0.2.0/24", NULL};
    CU_ASSERT_STRING_EQUAL(c->listen_address, "::");
    CU_ASSERT_EQUAL(c->listen_port, 8080);
    CU_ASSERT_EQUAL(c->max_connections, 4000);
    CU_ASSERT_EQUAL(c->max_per_client, 16);
    CU_ASSERT_EQUAL(c->header_timeout_s, 5);
    CU_ASSERT_EQUAL(c->idle_timeout_s, 30);
    CU_ASSERT(cidrs_are(c->allowed_clients, c->n_allowed_clients, allowed));
    CU_ASSERT(cidrs_are(c->peer_clients, c->n_peer_clients, peers));
    CU_ASSERT(cidrs_are(c->status_clients, c->n_status_clients, status));
    CU_ASSERT_STRING_EQUAL(c->cache_dir, "/srv/cache");
    CU_ASSERT_EQUAL(c->cache_max_size, 500ULL << 20);
    CU_ASSERT_EQUAL(c->cache_max_object, 2ULL << 30);
    CU_ASSERT_EQUAL(c->cache_max_index, 64ULL << 20);
    CU_ASSERT_EQUAL(c->negative_ttl_s, 0);
    CU_ASSERT_EQUAL(c->keep_unreferenced_s, 0);
    CU_ASSERT_STRING_EQUAL(c->state_dir, "/srv/state");
    CU_ASSERT_EQUAL(c->connect_timeout_s, 5);
    CU_ASSERT_EQUAL(c->stall_timeout_s, 120);
    CU_ASSERT_STRING_EQUAL(c->upstream_proxy, "http://proxy.example:3128");
    CU_ASSERT_EQUAL_FATAL(c->n_upstream_no_proxy, 3);
    CU_ASSERT_STRING_EQUAL(c->upstream_no_proxy[0], ".lan.example");
    CU_ASSERT_STRING_EQUAL(c->upstream_no_proxy[2], "*");
    CU_ASSERT_STRING_EQUAL(c->upstream_ca_file, "/dev/null");
    CU_ASSERT_EQUAL_FATAL(c->n_https_hosts, 3);
    CU_ASSERT_STRING_EQUAL(c->https_hosts[1], "mirror2.example:8443");
    CU_ASSERT_STRING_EQUAL(c->https_hosts[0], "deb.example");
    CU_ASSERT_EQUAL_FATAL(c->n_listen_addresses, 1);
    CU_ASSERT_STRING_EQUAL(c->listen_addresses[0], "::");
    CU_ASSERT_EQUAL_FATAL(c->n_backends, 3);
    CU_ASSERT_STRING_EQUAL(c->backends[0].name, "debian");
    CU_ASSERT_EQUAL_FATAL(c->backends[0].n_mirrors, 2);
    CU_ASSERT_STRING_EQUAL(c->backends[0].mirrors[0], "http://mirror.example/debian");
    CU_ASSERT_STRING_EQUAL(c->backends[0].mirrors[1], "https://mirror2.example/debian");
    CU_ASSERT_STRING_EQUAL(c->backends[1].name, "debian-security");
    CU_ASSERT_EQUAL_FATAL(c->backends[1].n_mirrors, 1);
    CU_ASSERT_STRING_EQUAL(c->backends[1].mirrors[0], "http://mirror.example/debian-security");
    CU_ASSERT_STRING_EQUAL(c->backends[2].name, "ubuntu_2.x");
    CU_ASSERT_EQUAL_FATAL(c->backends[2].n_mirrors, 1);
    CU_ASSERT_STRING_EQUAL(c->backends[2].mirrors[0], "http://mirror.example:8080/ubuntu");
    CU_ASSERT_EQUAL(c->dht_mode, DHT_MODE_BEP5);
    CU_ASSERT_EQUAL(c->dht_port, 6881);
    CU_ASSERT_EQUAL_FATAL(c->n_dht_bootstrap, 3);
    CU_ASSERT_STRING_EQUAL(c->dht_bootstrap[0], "node.example:9977");
    CU_ASSERT_STRING_EQUAL(c->dht_bootstrap[1], "[2001:db8::1]:9977");
    CU_ASSERT_STRING_EQUAL(c->dht_bootstrap[2], "192.0.2.1:1");
    CU_ASSERT_FALSE(c->dht_lan_discovery);
    CU_ASSERT_TRUE(c->dht_resolve_only);
    CU_ASSERT_EQUAL(c->dht_ttl_s, 3600);
    CU_ASSERT_EQUAL(c->peer_budget_ms, 250);
    CU_ASSERT_EQUAL(c->peer_max_uploads, 4);
    CU_ASSERT_EQUAL(c->peer_upload_kib_s, 2048);
    CU_ASSERT_EQUAL(c->log_level, LOG_LEVEL_DEBUG);
}

static void test_every_key(void)
{
    struct config c;
    char err[ERRLEN];
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    int rc = load(&c, full_yaml, err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    check_full(&c);
    config_done(&c);
}

/* Single values in every accepted spelling. */
static void test_value_forms(void)
{
    static const struct {
        const char *yaml;
        int mode, level, lan;
        const char *address;
    } rows[] = {
        {"dht: {mode: \"off\", lan_discovery: Yes}\nlog: {level: error}", DHT_MODE_OFF, LOG_LEVEL_ERROR,
         1, NULL},
        {"dht: {mode: apt-dht, lan_discovery: FALSE}\nlog: {level: warn}", DHT_MODE_APTDHT,
         LOG_LEVEL_WARN, 0, NULL},
        {"listen: {address: 10.0.0.1}\ndht: {lan_discovery: true}", DHT_MODE_APTDHT, LOG_LEVEL_INFO, 1,
         "10.0.0.1"},
        {"listen: {address: ~}", DHT_MODE_APTDHT, LOG_LEVEL_INFO, 1, NULL},
        {"listen: {address: [127.0.0.1, \"::1\"]}", DHT_MODE_APTDHT, LOG_LEVEL_INFO, 1, "127.0.0.1"},
        {"listen: {address: []}", DHT_MODE_APTDHT, LOG_LEVEL_INFO, 1, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct config c;
        char err[ERRLEN];
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
        CU_ASSERT_EQUAL(load(&c, "listen: {address: 192.0.2.9}", err), 0);
        CU_ASSERT_EQUAL(load(&c, rows[i].yaml, err), 0);
        CU_ASSERT_EQUAL((int)c.dht_mode, rows[i].mode);
        CU_ASSERT_EQUAL((int)c.log_level, rows[i].level);
        CU_ASSERT_EQUAL((int)c.dht_lan_discovery, rows[i].lan);
        const char *want = i < 2 ? "192.0.2.9" : rows[i].address; /* untouched by rows 0, 1 */
        CU_ASSERT_TRUE(str_equal(c.listen_address, want));
        /* the list holds the same first address (and both of row 4's) */
        CU_ASSERT_EQUAL(c.n_listen_addresses, i == 4 ? 2u : want ? 1u : 0u);
        if (c.n_listen_addresses)
            CU_ASSERT_STRING_EQUAL(c.listen_addresses[0], want);
        if (i == 4 && c.n_listen_addresses == 2)
            CU_ASSERT_STRING_EQUAL(c.listen_addresses[1], "::1");
        config_done(&c);
    }
}

/* ---- bad input ------------------------------------------------------------------------ */

struct bad_case {
    const char *yaml;
    int rc;
    const char *msg; /* the exact error line */
};

static const struct bad_case bad_cases[] = {
    /* unknown and duplicate keys */
    {"bogus: 1\n", -EINVAL, "t.yaml:1: key 'bogus': unknown key"},
    {"peers:\n  max_uploads: 0\n", -ERANGE, "t.yaml:2: key 'peers.max_uploads': 0 is out of range (1..10000)"},
    {"listen:\n  max_connections: 3\n", -ERANGE,
     "t.yaml:2: key 'listen.max_connections': 3 is out of range (4..100000)"},
    {"listen: {max_per_client: 0}\n", -ERANGE,
     "t.yaml:1: key 'listen.max_per_client': 0 is out of range (1..100000)"},
    {"listen: {header_timeout: 0}\n", -ERANGE,
     "t.yaml:1: key 'listen.header_timeout': 0 is out of range (1..3600)"},
    {"peers:\n  budget: 60001\n", -ERANGE, "t.yaml:2: key 'peers.budget': 60001 is out of range (0..60000)"},
    {"cache:\n  dir: /x\n  maxsize: 1G\n", -EINVAL, "t.yaml:3: key 'cache.maxsize': unknown key"},
    {"listen.port: 80\n", -EINVAL, "t.yaml:1: key 'listen.port': unknown key"},
    {"log:\n  level: info\n  log:\n    level: info\n", -EINVAL,
     "t.yaml:3: key 'log.log': unknown key"},
    {"dht: {mode: off, Mode: off}\n", -EINVAL, "t.yaml:1: key 'dht.Mode': unknown key"},
    {"log:\n  level: info\n  level: debug\n", -EINVAL,
     "t.yaml:3: key 'log.level': duplicate key (first at line 2)"},
    {"log: {}\n\nlog: {}\n", -EINVAL, "t.yaml:3: key 'log': duplicate key (first at line 1)"},
    {"backends:\n  debian: [http://mirror.example/a]\n  debian: [http://mirror.example/b]\n",
     -EINVAL, "t.yaml:3: key 'backends.debian': duplicate key (first at line 2)"},
    {"? [a]\n: b\n", -EINVAL, "t.yaml:1: a key must be a name, found a list"},
    {"cache:\n  ? {a: b}\n  : c\n", -EINVAL,
     "t.yaml:2: key 'cache': a key must be a name, found a mapping"},
    /* wrong types */
    {"- listen\n", -EINVAL, "t.yaml:1: the top level must be a mapping of keys, found a list"},
    {"just text\n", -EINVAL,
     "t.yaml:1: the top level must be a mapping of keys, found a single value"},
    {"listen:\n  port: [1]\n", -EINVAL,
     "t.yaml:2: key 'listen.port': expected a single value, found a list"},
    {"cache: big\n", -EINVAL, "t.yaml:1: key 'cache': expected a mapping, found a single value"},
    {"log: [info]\n", -EINVAL, "t.yaml:1: key 'log': expected a mapping, found a list"},
    {"allowed_clients:\n  a: b\n", -EINVAL,
     "t.yaml:2: key 'allowed_clients': expected a list, found a mapping"},
    {"allowed_clients: 127.0.0.1\n", -EINVAL,
     "t.yaml:1: key 'allowed_clients': expected a list, found a single value"},
    {"allowed_clients:\nlog: {}\n", -EINVAL,
     "t.yaml:1: key 'allowed_clients': expected a list, found a single value "
     "(write [] for an empty list)"},
    {"allowed_clients: [[127.0.0.1]]\n", -EINVAL,
     "t.yaml:1: key 'allowed_clients': expected a single value, found a list"},
    {"backends: [debian]\n", -EINVAL,
     "t.yaml:1: key 'backends': expected a mapping of names to mirror lists, found a list"},
    {"backends:\n  debian: http://mirror.example/debian\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': expected a list, found a single value"},
    {"dht:\n  bootstrap: {a: 1}\n", -EINVAL,
     "t.yaml:2: key 'dht.bootstrap': expected a list, found a mapping"},
    {"log:\n  level: {a: b}\n", -EINVAL,
     "t.yaml:2: key 'log.level': expected a single value, found a mapping"},
    {"state_dir:\n", -EINVAL, "t.yaml:1: key 'state_dir': missing value"},
    {"state_dir: \"\"\n", -EINVAL, "t.yaml:1: key 'state_dir': empty value"},
    /* numbers */
    {"listen:\n  port: 0\n", -ERANGE, "t.yaml:2: key 'listen.port': 0 is out of range (1..65535)"},
    {"listen:\n  port: 65536\n", -ERANGE,
     "t.yaml:2: key 'listen.port': 65536 is out of range (1..65535)"},
    {"listen: {port: 1e3}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '1e3' is not a plain decimal number"},
    {"listen: {port: -1}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '-1' is not a plain decimal number"},
    {"listen: {port: +80}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '+80' is not a plain decimal number"},
    {"listen: {port: 0977}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '0977' is not a plain decimal number"},
    {"listen: {port: 0x50}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '0x50' is not a plain decimal number"},
    {"listen: {port: 80.0}\n", -EINVAL,
     "t.yaml:1: key 'listen.port': '80.0' is not a plain decimal number"},
    {"upstream: {stall_timeout: 99999999999999999999999}\n", -EINVAL,
     "t.yaml:1: key 'upstream.stall_timeout': '99999999999999999999999' is not a plain "
     "decimal number"},
    {"upstream: {stall_timeout: 18446744073709551615}\n", -ERANGE,
     "t.yaml:1: key 'upstream.stall_timeout': 18446744073709551615 is out of range (1..86400)"},
    {"upstream: {connect_timeout: 0}\n", -ERANGE,
     "t.yaml:1: key 'upstream.connect_timeout': 0 is out of range (1..3600)"},
    {"cache: {negative_ttl: 86401}\n", -ERANGE,
     "t.yaml:1: key 'cache.negative_ttl': 86401 is out of range (0..86400)"},
    {"cache: {keep_unreferenced: 31536001}\n", -ERANGE,
     "t.yaml:1: key 'cache.keep_unreferenced': 31536001 is out of range (0..31536000)"},
    {"cache: {keep_unreferenced: 4d}\n", -EINVAL,
     "t.yaml:1: key 'cache.keep_unreferenced': '4d' is not a plain decimal number"},
    {"dht: {port: 70000}\n", -ERANGE, "t.yaml:1: key 'dht.port': 70000 is out of range (0..65535)"},
    {"dht: {ttl: 604801}\n", -ERANGE,
     "t.yaml:1: key 'dht.ttl': 604801 is out of range (0..604800)"},
    /* sizes */
    {"cache:\n  max_size: 10GB\n", -EINVAL,
     "t.yaml:2: key 'cache.max_size': '10GB' is not a size (a number > 0 with an optional K, M, "
     "G or T)"},
    {"cache: {max_size: 0}\n", -EINVAL,
     "t.yaml:1: key 'cache.max_size': '0' is not a size (a number > 0 with an optional K, M, G "
     "or T)"},
    {"cache: {max_size: 20000000T}\n", -EINVAL,
     "t.yaml:1: key 'cache.max_size': '20000000T' is not a size (a number > 0 with an optional "
     "K, M, G or T)"},
    {"cache: {max_object: 0}\n", -EINVAL,
     "t.yaml:1: key 'cache.max_object': '0' is not a size (a number > 0 with an optional K, M, "
     "G or T)"},
    {"cache: {max_index: 1.5G}\n", -EINVAL,
     "t.yaml:1: key 'cache.max_index': '1.5G' is not a size (a number > 0 with an optional K, M, "
     "G or T)"},
    /* booleans and enumerations */
    {"dht:\n  lan_discovery: maybe\n", -EINVAL,
     "t.yaml:2: key 'dht.lan_discovery': 'maybe' is not a boolean (true, false, yes, no)"},
    {"dht: {resolve_only: 1}\n", -EINVAL,
     "t.yaml:1: key 'dht.resolve_only': '1' is not a boolean (true, false, yes, no)"},
    {"dht:\n  mode: kad\n", -EINVAL,
     "t.yaml:2: key 'dht.mode': 'kad' is not one of apt-dht, bep5, off"},
    {"dht: {mode: BEP5}\n", -EINVAL,
     "t.yaml:1: key 'dht.mode': 'BEP5' is not one of apt-dht, bep5, off"},
    {"log: {level: trace}\n", -EINVAL,
     "t.yaml:1: key 'log.level': 'trace' is not one of error, warn, info, debug"},
    /* addresses and blocks */
    {"allowed_clients: [127.0.0.0/8, 10.0.0.0/33]\n", -EINVAL,
     "t.yaml:1: key 'allowed_clients': '10.0.0.0/33' is not an address block (ADDRESS or "
     "ADDRESS/PREFIX)"},
    {"peer_clients:\n  - 10.0.0.0/8\n  - \"fe80::/129\"\n", -EINVAL,
     "t.yaml:3: key 'peer_clients': 'fe80::/129' is not an address block (ADDRESS or "
     "ADDRESS/PREFIX)"},
    {"peer_clients:\n  - 10.0.0/8\n", -EINVAL,
     "t.yaml:2: key 'peer_clients': '10.0.0/8' is not an address block (ADDRESS or "
     "ADDRESS/PREFIX)"},
    {"listen:\n  address: [127.0.0.1, localhost]\n", -EINVAL,
     "t.yaml:2: key 'listen.address': 'localhost' is not a numeric IPv4 or IPv6 address"},
    {"listen: {address: [1.1.1.1, 1.1.1.2, 1.1.1.3, 1.1.1.4, 1.1.1.5, 1.1.1.6, 1.1.1.7, 1.1.1.8, "
     "1.1.1.9]}\n", -E2BIG, "t.yaml:1: key 'listen.address': more than 8 addresses"},
    {"upstream: {proxy: \"proxy.example:3128\"}\n", -EINVAL,
     "t.yaml:1: key 'upstream.proxy': 'proxy.example:3128' is not http://HOST[:PORT]"},
    {"upstream: {proxy: \"http://proxy.example:0\"}\n", -EINVAL,
     "t.yaml:1: key 'upstream.proxy': 'http://proxy.example:0' is not http://HOST[:PORT]"},
    {"upstream: {proxy: \"http://proxy.example/path\"}\n", -EINVAL,
     "t.yaml:1: key 'upstream.proxy': 'http://proxy.example/path' is not http://HOST[:PORT]"},
    {"upstream: {proxy: \"http://u:p@proxy.example\"}\n", -EINVAL,
     "t.yaml:1: key 'upstream.proxy': 'http://u:p@proxy.example' is not http://HOST[:PORT]"},
    {"upstream: {no_proxy: \"x.example\"}\n", -EINVAL,
     "t.yaml:1: key 'upstream.no_proxy': expected a list, found a single value"},
    {"upstream: {no_proxy: [\"x y\"]}\n", -EINVAL,
     "t.yaml:1: key 'upstream.no_proxy': 'x y' is not a host name, .domain, address or *"},
    {"upstream: {https_hosts: [\"*\"]}\n", -EINVAL,
     "t.yaml:1: key 'upstream.https_hosts': '*' is not HOST or HOST:PORT"},
    {"upstream: {https_hosts: [\"http://deb.example\"]}\n", -EINVAL,
     "t.yaml:1: key 'upstream.https_hosts': 'http://deb.example' is not HOST or HOST:PORT"},
    {"upstream: {https_hosts: [\"2001:db8::1\"]}\n", -EINVAL,
     "t.yaml:1: key 'upstream.https_hosts': '2001:db8::1' is not HOST or HOST:PORT"},
    {"upstream: {ca_file: certs/ca.pem}\n", -EINVAL,
     "t.yaml:1: key 'upstream.ca_file': 'certs/ca.pem' is not an absolute path"},
    {"upstream: {ca_file: /nonexistent/ca.pem}\n", -EINVAL,
     "t.yaml:1: key 'upstream.ca_file': '/nonexistent/ca.pem' cannot be read"},
    {"listen:\n  address: localhost\n", -EINVAL,
     "t.yaml:2: key 'listen.address': 'localhost' is not a numeric IPv4 or IPv6 address"},
    {"dht:\n  bootstrap:\n    - node.example:9977\n    - node.example\n", -EINVAL,
     "t.yaml:4: key 'dht.bootstrap': 'node.example' is not HOST:PORT or [IPV6]:PORT"},
    {"dht: {bootstrap: [\"2001:db8::1:9977\"]}\n", -EINVAL,
     "t.yaml:1: key 'dht.bootstrap': '2001:db8::1:9977' is not HOST:PORT or [IPV6]:PORT"},
    {"dht: {bootstrap: [\"[2001:db8::1]\"]}\n", -EINVAL,
     "t.yaml:1: key 'dht.bootstrap': '[2001:db8::1]' is not HOST:PORT or [IPV6]:PORT"},
    {"dht: {bootstrap: [\"node.example:0\"]}\n", -EINVAL,
     "t.yaml:1: key 'dht.bootstrap': 'node.example:0' is not HOST:PORT or [IPV6]:PORT"},
    {"dht: {bootstrap: [\"node_x.example:1\"]}\n", -EINVAL,
     "t.yaml:1: key 'dht.bootstrap': 'node_x.example:1' is not HOST:PORT or [IPV6]:PORT"},
    /* paths and strings */
    {"cache:\n  dir: var/cache\n", -EINVAL,
     "t.yaml:2: key 'cache.dir': 'var/cache' is not an absolute path"},
    {"state_dir: \"/var/lib/a\\nb\"\n", -EINVAL,
     "t.yaml:1: key 'state_dir': control character in value"},
    {"state_dir: \"/var/lib/a\\0b\"\n", -EINVAL,
     "t.yaml:1: key 'state_dir': control character in value"},
    /* backends */
    {"backends:\n  Debian: [http://mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.Debian': 'Debian' is not a backend name ([a-z0-9][a-z0-9._-]*)"},
    {"backends:\n  -debian: [http://mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.-debian': '-debian' is not a backend name ([a-z0-9][a-z0-9._-]*)"},
    {"backends:\n  deb/ian: [http://mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.deb/ian': 'deb/ian' is not a backend name ([a-z0-9][a-z0-9._-]*)"},
    {"backends:\n  \"~\": [http://mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.~': '~' collides with the peer prefix '~'"},
    {"backends:\n  ~peers: [http://mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.~peers': '~peers' collides with the peer prefix '~'"},
    {"backends:\n  debian:\n    - http://mirror.example/debian\n    - ftp://mirror.example/d\n",
     -EINVAL,
     "t.yaml:4: key 'backends.debian': 'ftp://mirror.example/d' does not start with http:// or "
     "https://"},
    {"backends:\n  debian: [mirror.example/debian]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'mirror.example/debian' does not start with http:// or "
     "https://"},
    {"backends:\n  debian: [\"http://mirror.example/debian?x=1\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http://mirror.example/debian?x=1' has a query or "
     "fragment"},
    {"backends:\n  debian: [\"http://mirror.example/debian#top\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http://mirror.example/debian#top' has a query or "
     "fragment"},
    {"backends:\n  debian: [\"http://mirror.example/deb ian\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http://mirror.example/deb ian' has a space or "
     "backslash"},
    {"backends:\n  debian: [\"http://mirror.example/debian\\r\\nX-Evil: 1\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': control character in value"},
    {"backends:\n  debian: [\"http:///debian\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http:///debian' has no host"},
    {"backends:\n  debian: [\"https://:8080/debian\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'https://:8080/debian' has no host"},
    {"backends:\n  debian: [\"http://\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http://' has no host"},
    {"backends:\n  debian: [\"http://\\\\mirror.example\"]\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': 'http://\\mirror.example' has a space or backslash"},
    {"backends:\n  debian: []\n", -EINVAL,
     "t.yaml:2: key 'backends.debian': a backend needs at least one mirror URL"},
    /* documents */
    {"log: {}\n---\nlog: {}\n", -EINVAL, "t.yaml:2: only one YAML document is allowed"},
    {NULL, 0, NULL},
};

static void test_bad_input(void)
{
    for (const struct bad_case *b = bad_cases; b->yaml; b++) {
        struct config c;
        char err[ERRLEN];
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
        int rc = load(&c, b->yaml, err);
        if (rc != b->rc || strcmp(err, b->msg) != 0)
            fprintf(stderr, "\n  input: %s\n  want %d '%s'\n  got  %d '%s'\n", b->yaml, b->rc,
                    b->msg, rc, err);
        CU_ASSERT_EQUAL(rc, b->rc);
        CU_ASSERT_STRING_EQUAL(err, b->msg);
        config_done(&c);
    }
}

/* YAML syntax and encoding errors carry libyaml's own wording after "FILE:LINE: YAML: ". */
static void test_yaml_errors(void)
{
    static const struct {
        const char *yaml;
        size_t len; /* 0 = strlen */
        const char *prefix;
    } rows[] = {
        {"listen:\n  port: 1\n   bad: 2\n", 0, "t.yaml:3: YAML: "},
        {"a: b\n  c: d\n", 0, "t.yaml:2: YAML: mapping values are not allowed"},
        {"allowed_clients: [127.0.0.1\n", 0, "t.yaml:2: YAML: "},
        {"log:\n\tlevel: info\n", 0, "t.yaml:2: YAML: "},
        {"log: {level: \"info}\n", 0, "t.yaml:2: YAML: "},
        {"log: *nothing\n", 0, "t.yaml:1: YAML: "},
        {"log: {}\n\nstate_dir: /a\xff\n", 0, "t.yaml:3: YAML: invalid "},
        {"log: {}\nx\0y: 1\n", 12, "t.yaml:2: YAML: control characters are not allowed"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct config c, d;
        char err[ERRLEN];
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].yaml);
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
        CU_ASSERT_EQUAL_FATAL(config_init_defaults(&d), 0);
        int rc = config_load_buffer(&c, "t.yaml", rows[i].yaml, len, err, sizeof(err));
        if (rc != -EINVAL || strncmp(err, rows[i].prefix, strlen(rows[i].prefix)) != 0)
            fprintf(stderr, "\n  row %zu: got %d '%s'\n", i, rc, err);
        CU_ASSERT_EQUAL(rc, -EINVAL);
        CU_ASSERT_NSTRING_EQUAL(err, rows[i].prefix, strlen(rows[i].prefix));
        CU_ASSERT_PTR_NULL(strchr(err, '\n'));
        CU_ASSERT_TRUE(config_equal(&c, &d));
        config_done(&c);
        config_done(&d);
    }
}

/* Ceilings: long strings, long lists, many backends, a huge file. */
static void test_limits(void)
{
    size_t cap = 1100 * 16 + 64;
    char *y = malloc(cap), err[ERRLEN];
    struct config c;
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);

    size_t n = (size_t)snprintf(y, cap, "state_dir: /");
    memset(y + n, 'a', 4096);
    y[n + 4096] = '\0';
    CU_ASSERT_EQUAL(load(&c, y, err), -EINVAL);
    CU_ASSERT_STRING_EQUAL(err, "t.yaml:1: key 'state_dir': value longer than 4096 bytes");
    y[n + 4095] = '\0'; /* exactly 4096 bytes */
    CU_ASSERT_EQUAL(load(&c, y, err), 0);
    CU_ASSERT_EQUAL(strlen(c.state_dir), 4096);

    n = (size_t)snprintf(y, cap, "allowed_clients: [");
    for (int i = 0; i < 1025; i++)
        n += (size_t)snprintf(y + n, cap - n, "%s10.0.%d.%d", i ? "," : "", i / 256, i % 256);
    snprintf(y + n, cap - n, "]\n");
    CU_ASSERT_EQUAL(load(&c, y, err), -E2BIG);
    CU_ASSERT_STRING_EQUAL(err, "t.yaml:1: key 'allowed_clients': more than 1024 items");

    n = (size_t)snprintf(y, cap, "backends:\n");
    for (int i = 0; i < 257; i++)
        n += (size_t)snprintf(y + n, cap - n, "  b%d: [http://m.example]\n", i);
    CU_ASSERT_EQUAL(load(&c, y, err), -E2BIG);
    CU_ASSERT_STRING_EQUAL(err, "t.yaml:258: key 'backends': more than 256 backends");

    free(y);
    size_t big = 1024 * 1024 + 1;
    y = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    memset(y, '#', big);
    CU_ASSERT_EQUAL(config_load_buffer(&c, "t.yaml", y, big, err, sizeof(err)), -EFBIG);
    CU_ASSERT_STRING_EQUAL(err, "t.yaml: larger than 1048576 bytes");
    free(y);
    config_done(&c);
}

/* A failed load leaves the config as it was; no error buffer is fine. */
static void test_failure_keeps_config(void)
{
    struct config c;
    char err[ERRLEN];
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    CU_ASSERT_EQUAL_FATAL(load(&c, full_yaml, err), 0);
    CU_ASSERT_EQUAL(
        load(&c, "listen: {port: 1}\nstate_dir: /new\nbackends: {}\nlog: {level: x}", err),
        -EINVAL);
    check_full(&c);
    CU_ASSERT_EQUAL(config_load_buffer(&c, "t.yaml", "bogus: 1", 8, NULL, 0), -EINVAL);
    CU_ASSERT_EQUAL(config_load_buffer(&c, "t.yaml", "bogus: 1", 8, err, 1), -EINVAL);
    CU_ASSERT_EQUAL(err[0], '\0');
    check_full(&c);
    config_done(&c);
}

static void test_load_file(void)
{
    struct config c, d;
    char err[ERRLEN], path[] = "/tmp/apt-dht-test-config-XXXXXX";
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    CU_ASSERT_EQUAL(config_load_file(&c, "/nonexistent/apt-dht.conf", err, sizeof(err)), -ENOENT);
    CU_ASSERT_STRING_EQUAL(err, "/nonexistent/apt-dht.conf: No such file or directory");

    int fd = mkstemp(path);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("log:\n  level: debug\ncache:\n  max_size: 1Q\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(config_load_file(&c, path, err, sizeof(err)), -EINVAL);
    char want[ERRLEN];
    snprintf(want, sizeof(want),
             "%s:4: key 'cache.max_size': '1Q' is not a size (a number > 0 with an optional K, "
             "M, G or T)",
             path);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&d), 0);
    CU_ASSERT_TRUE(config_equal(&c, &d));
    unlink(path);
    config_done(&c);
    config_done(&d);
}

/* ---- lifetime --------------------------------------------------------------------------- */

static void test_load_twice(void)
{
    struct config c;
    char err[ERRLEN];
    CU_ASSERT_EQUAL_FATAL(config_init_defaults(&c), 0);
    CU_ASSERT_EQUAL(load(&c, full_yaml, err), 0);
    CU_ASSERT_EQUAL(load(&c, full_yaml, err), 0);
    check_full(&c);
    /* Lists and strings given again replace the old ones (ASan reports a leak otherwise). */
    CU_ASSERT_EQUAL(load(&c,
                         "listen: {address: 127.0.0.1}\nallowed_clients: []\n"
                         "backends: {x: [\"http://mirror.example\"]}\n"
                         "dht: {bootstrap: [\"node.example:1\"]}\nstate_dir: /s\n",
                         err),
                    0);
    CU_ASSERT_STRING_EQUAL(c.listen_address, "127.0.0.1");
    CU_ASSERT_EQUAL(c.n_allowed_clients, 0);
    CU_ASSERT_EQUAL_FATAL(c.n_backends, 1);
    CU_ASSERT_STRING_EQUAL(c.backends[0].mirrors[0], "http://mirror.example");
    CU_ASSERT_EQUAL(c.n_dht_bootstrap, 1);
    CU_ASSERT_STRING_EQUAL(c.state_dir, "/s");
    CU_ASSERT_STRING_EQUAL(c.cache_dir, "/srv/cache"); /* not in the second file: kept */
    CU_ASSERT_EQUAL(load(&c, "backends:\nlisten: {address: null}\n", err), 0);
    CU_ASSERT_EQUAL(c.n_backends, 0);
    CU_ASSERT_PTR_NULL(c.listen_address);
    config_done(&c);
}

static void test_done_half_filled(void)
{
    struct config c;
    memset(&c, 0, sizeof(c));
    config_done(&c);
    config_done(NULL);
    c.cache_dir = malloc(4);
    c.backends = calloc(2, sizeof(*c.backends));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.backends);
    c.n_backends = 2; /* the second entry never got its name or mirrors */
    c.backends[0].name = malloc(3);
    c.backends[0].mirrors = calloc(2, sizeof(char *));
    c.backends[0].n_mirrors = 2; /* only the first mirror was filled */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.backends[0].mirrors);
    c.backends[0].mirrors[0] = malloc(5);
    c.dht_bootstrap = calloc(1, sizeof(char *));
    c.n_dht_bootstrap = 1;
    config_done(&c);
    CU_ASSERT_PTR_NULL(c.cache_dir);
    CU_ASSERT_EQUAL(c.n_backends, 0);
    config_done(&c); /* twice is fine */
}

/* ---- sizes ---------------------------------------------------------------------------- */

static void test_sizes(void)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t value;
    } rows[] = {
        {"0", 0, 0},
        {"123", 0, 123},
        {"1K", 0, 1024},
        {"1k", 0, 1024},
        {"500M", 0, 500ULL << 20},
        {"10G", 0, 10ULL << 30},
        {"10g", 0, 10ULL << 30},
        {"1T", 0, 1ULL << 40},
        {"16777215T", 0, 16777215ULL << 40},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -EINVAL, 0},
        {"16777216T", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"G", -EINVAL, 0},
        {"10GB", -EINVAL, 0},
        {"10 G", -EINVAL, 0},
        {" 10G", -EINVAL, 0},
        {"-1", -EINVAL, 0},
        {"+1", -EINVAL, 0},
        {"1.5G", -EINVAL, 0},
        {"1e3", -EINVAL, 0},
        {"010", -EINVAL, 0},
        {"10P", -EINVAL, 0},
        {"0x10", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t v = 7;
        int rc = config_parse_size(rows[i].text, &v);
        if (rc != rows[i].rc)
            fprintf(stderr, "\n  size '%s': got %d\n", rows[i].text, rc);
        CU_ASSERT_EQUAL(rc, rows[i].rc);
        CU_ASSERT_EQUAL(v, rows[i].rc == 0 ? rows[i].value : 7);
    }
    CU_ASSERT_EQUAL(config_parse_size(NULL, NULL), -EINVAL);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"defaults", test_defaults},
        {"shipped apt-dht.conf equals the defaults", test_shipped_conf},
        {"empty inputs give the defaults", test_empty_inputs},
        {"every key set", test_every_key},
        {"value forms", test_value_forms},
        {"bad input: exact FILE:LINE: key messages", test_bad_input},
        {"YAML syntax and encoding errors", test_yaml_errors},
        {"limits", test_limits},
        {"a failed load keeps the config", test_failure_keeps_config},
        {"config_load_file", test_load_file},
        {"load twice over the same struct", test_load_twice},
        {"config_done on a half-filled struct", test_done_half_filled},
        {"config_parse_size", test_sizes},
        {NULL, NULL},
    };
    return unit_run("config", cases);
}

/* test_dht_node.c - whole nodes on the in-memory network: lookups in both dialects and
 * over IPv6, joined and cancelled lookups, re-announcement and expiry, resolve-only
 * nodes, the state file, lifecycle states, rate limiting, answer size bounds and LAN
 * discovery datagrams. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include "tests/unit/dht_net.h"
#include "dht/dht-int.h"

struct seen {
    int calls, done, found;
    struct sockaddr_storage want;
};

static void on_peers(void *ud, const struct dht_lookup_result *r)
{
    struct seen *s = ud;
    s->calls++;
    for (size_t i = 0; i < r->n; i++)
        s->found += memcmp(&r->peers[i], &s->want, sizeof(s->want)) == 0;
    s->done += r->done;
}

static int stored_rounds, stored_last;

static void on_stored(void *ud, const uint8_t *key, int stored)
{
    stored_rounds++;
    stored_last = stored;
}

/* Builds an n-node network, settled; cfg_mod may adjust each node's config. */
static void build(struct net *net, int n, int v6, enum dht_dialect d, int ttl_s)
{
    CU_ASSERT_FATAL(net_init(net, n, v6, 99) == 0);
    for (int i = 0; i < n; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.dialect = d;
        cfg.seed = 500 + (uint64_t)i;
        cfg.port = 6881;
        cfg.value_ttl_s = (uint32_t)ttl_s;
        CU_ASSERT_FATAL(net_start(net, i, &cfg, i ? 0 : -1) == 0);
        net_run(net, net->now + 50, 10);
    }
    net_run(net, net->now + 20000, 10);
}

static void announce_and_find(int v6, enum dht_dialect d)
{
    struct net net;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0x5a, sizeof(key));
    build(&net, 40, v6, d, 0);
    for (int i = 0; i < 40; i++)
        CU_ASSERT_EQUAL(dht_state(net.nodes[i].dht), DHT_ACTIVE);
    stored_rounds = 0;
    CU_ASSERT_EQUAL(dht_announce(net.nodes[3].dht, key, 0, on_stored, NULL), 0);
    net.nodes[3].next_ms = net.now;
    net_run(&net, net.now + 10000, 10);
    CU_ASSERT_EQUAL(stored_rounds, 1);
    CU_ASSERT(stored_last >= 1);
    struct seen s = {0};
    net_addr(&net, 3, &s.want);
    CU_ASSERT(dht_lookup(net.nodes[30].dht, key, on_peers, &s) > 0);
    net.nodes[30].next_ms = net.now;
    net_run(&net, net.now + 10000, 10);
    CU_ASSERT_EQUAL(s.done, 1);
    CU_ASSERT_EQUAL(s.found, 1);
    net_done(&net);
}

static void test_apt_v4(void)
{
    announce_and_find(0, DHT_DIALECT_APT);
}

static void test_bep5_v4(void)
{
    announce_and_find(0, DHT_DIALECT_BEP5);
}

static void test_bep5_v6(void)
{
    announce_and_find(1, DHT_DIALECT_BEP5);
}

static void test_join_cancel_reannounce(void)
{
    struct net net;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0x33, sizeof(key));
    build(&net, 30, 0, DHT_DIALECT_APT, 60);
    stored_rounds = 0;
    CU_ASSERT_EQUAL(dht_announce(net.nodes[5].dht, key, 0, on_stored, NULL), 0);
    net.nodes[5].next_ms = net.now;
    net_run(&net, net.now + 5000, 10);
    struct seen a = {0}, b = {0}, c = {0};
    net_addr(&net, 5, &a.want);
    b.want = c.want = a.want;
    struct dht *n = net.nodes[20].dht;
    int ha = dht_lookup(n, key, on_peers, &a);
    int hb = dht_lookup(n, key, on_peers, &b);
    int hc = dht_lookup(n, key, on_peers, &c);
    CU_ASSERT(ha > 0 && hb > 0 && hc > 0 && ha != hb);
    struct dht_stats st;
    dht_get_stats(n, &st);
    CU_ASSERT_EQUAL(st.lookups_active, 1); /* the second and third joined the first */
    CU_ASSERT_EQUAL(dht_cancel(n, hc), 0);
    CU_ASSERT_EQUAL(dht_cancel(n, hc), -ENOENT);
    net.nodes[20].next_ms = net.now;
    net_run(&net, net.now + 10000, 10);
    CU_ASSERT(a.done == 1 && a.found == 1);
    CU_ASSERT(b.done == 1 && b.found == 1);
    CU_ASSERT_EQUAL(c.calls, 0);
    CU_ASSERT_EQUAL(dht_cancel(n, ha), -ENOENT); /* finished handles are gone */
    /* TTL 60 s: re-announced every 30 s. */
    net_run(&net, net.now + 65000, 10);
    CU_ASSERT(stored_rounds >= 3);
    /* Unannounced, the value expires everywhere after the TTL. */
    CU_ASSERT_EQUAL(dht_unannounce(net.nodes[5].dht, key), 0);
    CU_ASSERT_EQUAL(dht_unannounce(net.nodes[5].dht, key), -ENOENT);
    net_run(&net, net.now + 130000, 50);
    unsigned total = 0;
    for (int i = 0; i < 30; i++) {
        dht_get_stats(net.nodes[i].dht, &st);
        total += st.values_stored;
    }
    CU_ASSERT_EQUAL(total, 0);
    net_done(&net);
}

static void test_resolve_only(void)
{
    struct net net;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0x77, sizeof(key));
    CU_ASSERT_FATAL(net_init(&net, 25, 0, 5) == 0);
    for (int i = 0; i < 25; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.seed = 900 + (uint64_t)i;
        cfg.port = 6881;
        cfg.resolve_only = i == 24;
        CU_ASSERT_FATAL(net_start(&net, i, &cfg, i ? 0 : -1) == 0);
        net_run(&net, net.now + 50, 10);
    }
    net_run(&net, net.now + 10000, 10);
    struct dht *ro = net.nodes[24].dht;
    uint8_t key2[DHT_ID_LEN];
    memset(key2, 0x78, sizeof(key2));
    CU_ASSERT_EQUAL(dht_announce(ro, key2, 0, NULL, NULL), 0); /* stored by others */
    CU_ASSERT_EQUAL(dht_announce(net.nodes[2].dht, key, 0, NULL, NULL), 0);
    net.nodes[2].next_ms = net.now;
    net.nodes[24].next_ms = net.now;
    net_run(&net, net.now + 5000, 10);
    struct seen s2 = {0};
    net_addr(&net, 24, &s2.want);
    CU_ASSERT(dht_lookup(net.nodes[7].dht, key2, on_peers, &s2) > 0);
    net.nodes[7].next_ms = net.now;
    net_run(&net, net.now + 5000, 10);
    CU_ASSERT_EQUAL(s2.found, 1);
    struct seen s = {0};
    net_addr(&net, 2, &s.want);
    CU_ASSERT(dht_lookup(ro, key, on_peers, &s) > 0);
    net.nodes[24].next_ms = net.now;
    net_run(&net, net.now + 5000, 10);
    CU_ASSERT_EQUAL(s.found, 1);
    /* Nobody put the resolve-only node in a routing table. */
    struct dht_node_info info[64];
    int listed = 0;
    for (int i = 0; i < 24; i++) {
        int cnt = dht_get_nodes(net.nodes[i].dht, info, 64);
        for (int j = 0; j < cnt; j++)
            listed += memcmp(info[j].id, dht_id(ro), DHT_ID_LEN) == 0;
    }
    CU_ASSERT_EQUAL(listed, 0);
    struct dht_stats st;
    dht_get_stats(ro, &st);
    CU_ASSERT_EQUAL(st.replies_sent, 0);
    CU_ASSERT_EQUAL(st.values_stored, 0);
    net_done(&net);
}

static void test_state_file(void)
{
    struct net net;
    char buf[8192], path[] = "/tmp/test_dht_stateXXXXXX";
    build(&net, 20, 0, DHT_DIALECT_APT, 0);
    struct dht *n = net.nodes[7].dht;
    int len = dht_save_buf(n, buf, sizeof(buf));
    CU_ASSERT(len > 0);
    CU_ASSERT_EQUAL(dht_save_buf(n, buf, 10), -ENOBUFS);
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(dht_save(n, path), len);
    struct dht_config cfg;
    struct dht *fresh = NULL;
    dht_config_init(&cfg);
    cfg.send = net_send;
    cfg.ud = &net.nodes[7];
    cfg.seed = 4242;
    CU_ASSERT_FATAL(dht_new(&cfg, net.now, &fresh) == 0);
    CU_ASSERT(memcmp(dht_id(fresh), dht_id(n), DHT_ID_LEN) != 0);
    int loaded = dht_load(fresh, path);
    CU_ASSERT(loaded > 0);
    CU_ASSERT_EQUAL(memcmp(dht_id(fresh), dht_id(n), DHT_ID_LEN), 0); /* the id survives */
    CU_ASSERT_EQUAL(dht_load(fresh, path), -EBUSY);
    struct dht_stats st;
    dht_get_stats(fresh, &st);
    CU_ASSERT_EQUAL(st.nodes_questionable, (unsigned)loaded);
    unlink(path);
    dht_free(fresh);
    static const char *const bad[] = {"", "apt-dht-state 2\n", "apt-dht-state 1\nid 12\n",
                                      "apt-dht-state 1\nid 0000000000000000000000000000000000000000\n"
                                      "node zz 1.2.3.4 5\n",
                                      "apt-dht-state 1\nid 0000000000000000000000000000000000000000\n"
                                      "node 1111111111111111111111111111111111111111 1.2.3.4 0\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_FATAL(dht_new(&cfg, net.now, &fresh) == 0);
        CU_ASSERT_EQUAL(dht_load_buf(fresh, bad[i], strlen(bad[i])), -EINVAL);
        dht_free(fresh);
    }
    net_done(&net);
}

static int fail_with;
static enum dht_state last_state;

static int failing_send(void *ud, const void *b, size_t l, const struct sockaddr *to,
                        socklen_t tl)
{
    return fail_with;
}

static void on_state(void *ud, enum dht_state o, enum dht_state s)
{
    last_state = s;
}

static void test_lifecycle(void)
{
    static const struct {
        int err;
        enum dht_state want;
    } cases[] = {{0, DHT_ALONE}, {-ENETUNREACH, DHT_NO_NETWORK}, {-EBADF, DHT_FAULTED}};
    for (size_t i = 0; i < 3; i++) {
        struct dht_config cfg;
        struct dht *n = NULL;
        uint64_t next = 0;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6881)};
        a.sin_addr.s_addr = htonl(0x7f000001);
        dht_config_init(&cfg);
        cfg.send = failing_send;
        cfg.on_state = on_state;
        cfg.seed = 1;
        fail_with = cases[i].err;
        last_state = DHT_ALONE;
        CU_ASSERT_FATAL(dht_new(&cfg, 1000, &n) == 0);
        CU_ASSERT_EQUAL(dht_state(n), DHT_ALONE);
        CU_ASSERT_EQUAL(dht_add_bootstrap(n, (struct sockaddr *)&a, sizeof(a)), 0);
        CU_ASSERT_EQUAL(dht_add_bootstrap(n, (struct sockaddr *)&a, sizeof(a)), -EEXIST);
        dht_periodic(n, 2000, &next);
        CU_ASSERT_EQUAL(dht_state(n), cases[i].want);
        CU_ASSERT_EQUAL(last_state, cases[i].want);
        /* Bootstrap backs off: the next attempt is later each time. */
        uint64_t t = 2000, prev_gap = 0;
        struct dht_stats st;
        for (int k = 0; k < 4 && cases[i].err == 0; k++) {
            dht_get_stats(n, &st);
            uint64_t sent = st.queries_sent;
            uint64_t gap = 0;
            while (gap < 600000) {
                t += 100;
                gap += 100;
                dht_periodic(n, t, &next);
                dht_get_stats(n, &st);
                if (st.queries_sent > sent)
                    break;
            }
            CU_ASSERT(gap >= prev_gap);
            prev_gap = gap;
        }
        dht_free(n);
    }
}

/* A provider that answers only from its third call on, with the address of node 0. */
struct prov_ctx {
    struct net *net;
    int calls;
    uint64_t call_ms[8];
};

static void provide(struct dht *d, void *ctx)
{
    struct prov_ctx *x = ctx;
    if (x->calls < 8)
        x->call_ms[x->calls] = x->net->now;
    if (++x->calls >= 3) {
        struct sockaddr_storage ss;
        net_addr(x->net, 0, &ss);
        dht_add_bootstrap(d, (struct sockaddr *)&ss, sizeof(ss));
    }
}

static void test_providers(void)
{
    struct net net;
    struct prov_ctx x = {.net = &net};
    struct dht_bootstrap_provider p = {"test", provide, &x};
    CU_ASSERT_FATAL(net_init(&net, 6, 0, 11) == 0);
    for (int i = 0; i < 5; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.seed = 300 + (uint64_t)i;
        CU_ASSERT_FATAL(net_start(&net, i, &cfg, i ? 0 : -1) == 0);
        net_run(&net, net.now + 50, 10);
    }
    net_run(&net, net.now + 3000, 10);
    struct dht_config cfg;
    dht_config_init(&cfg);
    cfg.seed = 999;
    CU_ASSERT_FATAL(net_start(&net, 5, &cfg, -1) == 0); /* no bootstrap address at all */
    struct dht *n = net.nodes[5].dht;
    CU_ASSERT_EQUAL(dht_add_provider(n, NULL), -EINVAL);
    CU_ASSERT_EQUAL(dht_add_provider(n, &p), 0);
    net_run(&net, net.now + 20000, 10);
    /* asked at once, then at growing intervals, until it answered and the node joined */
    CU_ASSERT(x.calls >= 3);
    CU_ASSERT(x.call_ms[2] - x.call_ms[1] > x.call_ms[1] - x.call_ms[0]);
    CU_ASSERT_EQUAL(dht_state(n), DHT_ACTIVE);
    int calls = x.calls;
    net_run(&net, net.now + 600000, 100);
    CU_ASSERT_EQUAL(x.calls, calls); /* not asked while ACTIVE */
    for (int i = 0; i < DHT_MAX_PROVIDERS - 1; i++)
        CU_ASSERT_EQUAL(dht_add_provider(n, &p), 0);
    CU_ASSERT_EQUAL(dht_add_provider(n, &p), -ENOSPC);
    net_done(&net);
}

static void test_rate_limit_and_size(void)
{
    struct net net;
    build(&net, 12, 0, DHT_DIALECT_APT, 0);
    struct dht *n = net.nodes[1].dht;
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(7000)};
    from.sin_addr.s_addr = htonl(0x7f000001);
    const char *ping = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:xx1:y1:qe";
    int refused = 0;
    for (int i = 0; i < 100; i++)
        refused += dht_input(n, ping, strlen(ping), (struct sockaddr *)&from, sizeof(from),
                             net.now) == -EACCES;
    CU_ASSERT(refused >= 50);
    /* Blacklisted for a while even at a slow pace. */
    CU_ASSERT_EQUAL(dht_input(n, ping, strlen(ping), (struct sockaddr *)&from, sizeof(from),
                              net.now + 5000), -EACCES);
    CU_ASSERT_EQUAL(dht_input(n, ping, strlen(ping), (struct sockaddr *)&from, sizeof(from),
                              net.now + 70000), 0);
    net_done(&net);
}

static void test_lan(void)
{
    struct dht_config cfg;
    struct dht *a = NULL, *b = NULL, *c = NULL;
    char buf[512];
    dht_config_init(&cfg);
    cfg.send = failing_send;
    fail_with = 0;
    cfg.port = 9977;
    cfg.seed = 11;
    CU_ASSERT_FATAL(dht_new(&cfg, 0, &a) == 0);
    cfg.seed = 12;
    CU_ASSERT_FATAL(dht_new(&cfg, 0, &b) == 0);
    cfg.seed = 13;
    cfg.dialect = DHT_DIALECT_BEP5;
    CU_ASSERT_FATAL(dht_new(&cfg, 0, &c) == 0);
    int len = dht_lan_build(a, DHT_FAMILY_V4, buf, sizeof(buf));
    CU_ASSERT(len > 0);
    CU_ASSERT(strstr(buf, "Host: " DHT_LAN_GROUP4 ":6772\r\n") != NULL);
    CU_ASSERT(strstr(buf, "Port: 9977\r\n") != NULL);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(40000)};
    from.sin_addr.s_addr = htonl(0x7f000001);
    CU_ASSERT_EQUAL(dht_lan_input(b, buf, (size_t)len, (struct sockaddr *)&from, sizeof(from)), 1);
    CU_ASSERT_EQUAL(dht_lan_input(a, buf, (size_t)len, (struct sockaddr *)&from, sizeof(from)), 0);
    CU_ASSERT_EQUAL(dht_lan_input(c, buf, (size_t)len, (struct sockaddr *)&from, sizeof(from)), 0);
    CU_ASSERT_EQUAL(dht_lan_input(b, "BT-SEARCH * HTTP/1.1\r\n\r\n", 24, (struct sockaddr *)&from,
                                  sizeof(from)), -EINVAL);
    /* Short datagrams, exactly as long as they say (heap copies, so ASan sees any read
     * past the end): a 20- and a 21-byte prefix of the start line were once read as 22. */
    for (size_t n = 0; n < 23; n++) {
        char *p = malloc(n ? n : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, "BT-SEARCH * HTTP/1.1\r\n", n);
        CU_ASSERT_EQUAL(dht_lan_input(b, p, n, (struct sockaddr *)&from, sizeof(from)), -EINVAL);
        free(p);
    }
    /* A full bootstrap list never shuts out a new LAN node: the oldest address gives way. */
    for (int i = 0; i < 40; i++) {
        struct sockaddr_in x = {.sin_family = AF_INET, .sin_port = htons(7000)};
        x.sin_addr.s_addr = htonl(0x0a010000u + (uint32_t)i);
        CU_ASSERT_EQUAL(dht_add_bootstrap(b, (struct sockaddr *)&x, sizeof(x)), 0);
    }
    {
        struct dht *d2;
        struct dht_config c2;
        dht_config_init(&c2);
        c2.send = failing_send;
        c2.port = 9977;
        c2.seed = 4242;
        CU_ASSERT_FATAL(dht_new(&c2, 1000, &d2) == 0);
        len = dht_lan_build(d2, DHT_FAMILY_V4, buf, sizeof(buf));
        struct sockaddr_in from2 = {.sin_family = AF_INET, .sin_port = htons(9000)};
        from2.sin_addr.s_addr = htonl(0x0a020001u);
        CU_ASSERT_EQUAL(dht_lan_input(b, buf, (size_t)len, (struct sockaddr *)&from2, sizeof(from2)), 1);
        dht_free(d2);
    }
    len = dht_lan_build(a, DHT_FAMILY_V6, buf, sizeof(buf));
    CU_ASSERT(len > 0 && strstr(buf, "[" DHT_LAN_GROUP6 "]") != NULL);
    CU_ASSERT_EQUAL(dht_lan_build(a, DHT_FAMILY_V6, buf, 20), -ENOBUFS);
    dht_free(a);
    dht_free(b);
    dht_free(c);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"apt-dht over IPv4", test_apt_v4},
        {"bep5 over IPv4", test_bep5_v4},
        {"bep5 over IPv6", test_bep5_v6},
        {"join, cancel, re-announce, expiry", test_join_cancel_reannounce},
        {"resolve-only", test_resolve_only},
        {"bootstrap providers", test_providers},
        {"state file", test_state_file},
        {"lifecycle", test_lifecycle},
        {"rate limit", test_rate_limit_and_size},
        {"lan discovery", test_lan},
        {NULL, NULL},
    };
    return unit_run("dht_node", cases);
}

/* test_dht_sim.c - a deterministic simulation of SIM_N nodes in one process (in-memory
 * network, fake clock): nodes join one after another through a random earlier node,
 * every node announces a key, every node looks up another node's key and must find it;
 * then a quarter of the nodes vanish at once and the survivors must still find >= 99%
 * of the keys. Prints lookup cost (median and p95 queries and rounds), success rates
 * and heap per node. SIM_N can be overridden by the environment (DHT_SIM_N).
 *
 * Then abuse, each case printing its figure: one address flooding a node's value
 * store (do other addresses' announcements still get stored?), one address querying
 * from 500 source ports (how many answered?), clusters of 40 fake nodes placed next to
 * keys, on one /24 each (apt-dht) or on 40 public /24s with ids that BEP 42 refuses
 * (bep5) (how many lookups still find the keys?), and the largest answer/query size
 * ratio over every query type of both dialects. */
#include "aptdht-config.h"
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "tests/unit/dht_net.h"
#include "dht/dht-int.h"

#define SIM_N_DEFAULT 1000

struct probe {
    int want;                       /* index of the node whose key is sought */
    int found, done;
    unsigned queries, rounds;
    struct net *net;
};

static struct net sim;
static uint8_t (*keys)[DHT_ID_LEN];
static int sim_n;

static void on_lookup(void *ud, const struct dht_lookup_result *r)
{
    struct probe *p = ud;
    struct sockaddr_storage want;
    net_addr(p->net, p->want, &want);
    for (size_t i = 0; i < r->n; i++)
        if (memcmp(&r->peers[i], &want, sizeof(want)) == 0)
            p->found = 1;
    if (r->done) {
        p->done = 1;
        p->queries = r->queries;
        p->rounds = r->rounds;
    }
}

static int cmp_u(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, struct probe *p, int n, int *found_out)
{
    unsigned *q = calloc((size_t)n, sizeof(*q)), *r = calloc((size_t)n, sizeof(*r));
    int found = 0, done = 0, m = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].want < 0)
            continue;
        found += p[i].found;
        done += p[i].done;
        q[m] = p[i].queries;
        r[m++] = p[i].rounds;
    }
    qsort(q, (size_t)m, sizeof(*q), cmp_u);
    qsort(r, (size_t)m, sizeof(*r), cmp_u);
    printf("\n%s: %d lookups, %d done, %d found (%.2f%%); queries median %u p95 %u; rounds "
           "median %u p95 %u\n", what, m, done, found, m ? 100.0 * found / m : 0.0,
           m ? q[m / 2] : 0, m ? q[m * 95 / 100] : 0, m ? r[m / 2] : 0,
           m ? r[m * 95 / 100] : 0);
    *found_out = m ? found * 10000 / m : 0; /* hundredths of a percent */
    free(q);
    free(r);
}

static void run_lookups(struct probe *p, const char *what, int *rate)
{
    for (int i = 0; i < sim_n; i++) {
        p[i].net = &sim;
        p[i].want = -1;
        if (sim.nodes[i].dead)
            continue;
        int w = (int)((uint64_t)i * 7919 + 13) % sim_n;
        if (w == i)
            w = (w + 1) % sim_n;
        p[i].want = w;
        int h = dht_lookup(sim.nodes[i].dht, keys[w], on_lookup, &p[i]);
        CU_ASSERT(h > 0);
        sim.nodes[i].next_ms = sim.now;
    }
    net_run(&sim, sim.now + 60000, 10);
    report(what, p, sim_n, rate);
}

static void test_simulation(void)
{
    const char *env = getenv("DHT_SIM_N");
    sim_n = env ? (int)strtol(env, NULL, 10) : SIM_N_DEFAULT;
    if (sim_n < 16)
        sim_n = 16;
    CU_ASSERT_FATAL(net_init(&sim, sim_n, 0, 12345) == 0);
    keys = calloc((size_t)sim_n, DHT_ID_LEN);
    struct probe *p = calloc((size_t)sim_n, sizeof(*p));
    CU_ASSERT_FATAL(keys && p);
    /* Join: one node every 20 ms, each through a random earlier node. */
    for (int i = 0; i < sim_n; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.seed = 1000 + (uint64_t)i;
        cfg.port = 6881; /* peers announce their DHT address itself: easy to check */
        int boot = i ? (int)(net_rand(&sim) % (uint64_t)i) : -1;
        CU_ASSERT_FATAL(net_start(&sim, i, &cfg, boot) == 0);
        net_run(&sim, sim.now + 20, 10);
    }
    net_run(&sim, sim.now + 30000, 10);
    /* Every node announces its own key. */
    for (int i = 0; i < sim_n; i++) {
        for (int b = 0; b < DHT_ID_LEN; b += 8) {
            uint64_t r = net_rand(&sim);
            memcpy(keys[i] + b, &r, DHT_ID_LEN - b < 8 ? (size_t)(DHT_ID_LEN - b) : 8);
        }
        CU_ASSERT(dht_announce(sim.nodes[i].dht, keys[i], 0, NULL, NULL) == 0);
        sim.nodes[i].next_ms = sim.now;
    }
    net_run(&sim, sim.now + 30000, 10);
    size_t mem = 0;
    unsigned values = 0, good = 0;
    for (int i = 0; i < sim_n; i++) {
        struct dht_stats st;
        dht_get_stats(sim.nodes[i].dht, &st);
        mem += st.mem_bytes;
        values += st.values_stored;
        good += st.nodes_good;
        CU_ASSERT_EQUAL(dht_state(sim.nodes[i].dht), DHT_ACTIVE);
    }
    printf("\nN=%d: heap per node %zu bytes, good nodes per table %.1f, values stored per "
           "key %.1f, packets %llu\n", sim_n, mem / (size_t)sim_n, (double)good / sim_n,
           (double)values / sim_n, (unsigned long long)sim.delivered);
    int rate;
    run_lookups(p, "no churn", &rate);
    CU_ASSERT_EQUAL(rate, 10000); /* every lookup finds its key */
    /* A quarter of the nodes vanish at once, without a word. */
    int killed = 0;
    while (killed < sim_n / 4) {
        int v = (int)(net_rand(&sim) % (uint64_t)sim_n);
        if (!sim.nodes[v].dead) {
            sim.nodes[v].dead = 1;
            killed++;
        }
    }
    run_lookups(p, "after 25% vanished", &rate);
    CU_ASSERT(rate >= 9900);
    free(p);
    free(keys);
    net_done(&sim);
}

/* ---- abuse ---- */

/* What a node sent to addresses outside the network (the hostile hosts below are
 * outside: their datagrams are handed to dht_input directly, answers land here). */
static struct {
    struct sockaddr_storage want; /* record only answers to this address */
    int any;                      /* ...or to any address in want's IP */
    unsigned replies, errors;     /* 'r' and 'e' answers seen */
    size_t last_len;              /* length of the last answer, 0 = none since reset */
    uint8_t last[DHT_MAX_PACKET];
    enum dht_dialect d;
} cap;

static void on_outside(struct net *net, int from, const struct sockaddr *to, const uint8_t *buf,
                       size_t len)
{
    struct krpc_msg m;
    if (cap.any ? !(to->sa_family == AF_INET && cap.want.ss_family == AF_INET &&
                    ((const struct sockaddr_in *)to)->sin_addr.s_addr ==
                        ((const struct sockaddr_in *)&cap.want)->sin_addr.s_addr)
                : !net_same_addr(&cap.want, to))
        return;
    if (krpc_parse(buf, len, cap.d, &m) < 0 || m.y == 'q')
        return;
    cap.replies += m.y == 'r';
    cap.errors += m.y == 'e';
    cap.last_len = len;
    memcpy(cap.last, buf, len);
}

static struct sockaddr_storage ip4(uint32_t ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(ip);
    s->sin_port = htons(port);
    return ss;
}

static void fill_id(struct net *net, uint8_t *id)
{
    for (int b = 0; b < DHT_ID_LEN; b += 8) {
        uint64_t r = net_rand(net);
        memcpy(id + b, &r, DHT_ID_LEN - b < 8 ? (size_t)(DHT_ID_LEN - b) : 8);
    }
}

/* Sends one query from an outside address to dht at net->now and returns the length of
 * its answer (0 = none). q->id is filled in when NULL. */
static size_t ask(struct net *net, struct dht *dht, enum dht_dialect d,
                  const struct sockaddr_storage *from, struct krpc_query *q, size_t *qlen)
{
    uint8_t buf[DHT_MAX_PACKET], id[DHT_ID_LEN];
    static const uint8_t t[1] = {'x'};
    if (!q->id) {
        fill_id(net, id);
        q->id = id;
    }
    q->t = t;
    q->tlen = 1;
    int len = krpc_encode_query(d, q, buf, sizeof(buf));
    CU_ASSERT_FATAL(len > 0);
    cap.want = *from;
    cap.any = 0;
    cap.d = d;
    cap.last_len = 0;
    dht_input(dht, buf, (size_t)len, (const struct sockaddr *)from, sizeof(*from), net->now);
    if (qlen)
        *qlen = (size_t)len;
    return cap.last_len;
}

/* The token of a get answer just captured (krpc_parse points into cap.last). */
static int last_token(enum dht_dialect d, uint8_t *tok, size_t *tlen)
{
    struct krpc_msg m;
    if (!cap.last_len || krpc_parse(cap.last, cap.last_len, d, &m) < 0 || !m.token ||
        m.token_len > 32)
        return -1;
    memcpy(tok, m.token, m.token_len);
    *tlen = m.token_len;
    return 0;
}

/* A get then a store of key from `from`, announcing `port`. Returns 1 if stored. */
static int announce_from(struct net *net, struct dht *dht, enum dht_dialect d,
                         const struct sockaddr_storage *from, const uint8_t *key, int port)
{
    uint8_t tok[32];
    size_t tlen;
    struct krpc_query g = {.method = KM_GET, .target = key, .port = -1};
    ask(net, dht, d, from, &g, NULL);
    if (last_token(d, tok, &tlen) < 0)
        return 0;
    struct krpc_query st = {.method = KM_STORE, .target = key, .port = port,
                            .token = tok, .token_len = tlen};
    unsigned before = cap.replies;
    ask(net, dht, d, from, &st, NULL);
    return cap.replies > before;
}

/* Whether a get of key answered with the value from address `who` (its IP). */
static int holds(struct net *net, struct dht *dht, enum dht_dialect d, const uint8_t *key,
                 uint32_t who)
{
    struct sockaddr_storage probe = ip4(0x0a580001u, 6881);
    struct krpc_query g = {.method = KM_GET, .target = key, .port = -1};
    struct krpc_msg m;
    if (!ask(net, dht, d, &probe, &g, NULL) || krpc_parse(cap.last, cap.last_len, d, &m) < 0)
        return 0;
    for (size_t i = 0; i < m.nvalues; i++) {
        uint32_t ip;
        if (m.value_len[i] == 6) {
            memcpy(&ip, m.values[i], 4);
            if (ntohl(ip) == who)
                return 1;
        }
    }
    return 0;
}

/* A settled network of n nodes joining through node 0; node 0 gets rate_per_s. */
static void build_net(struct net *net, int n, int total, enum dht_dialect d, int shift,
                      uint32_t base4, uint32_t rate0, const uint8_t (*ids)[DHT_ID_LEN])
{
    CU_ASSERT_FATAL(net_init(net, total, 0, 4242) == 0);
    net->shift = shift;
    net->base4 = base4;
    net->outside = on_outside;
    for (int i = 0; i < n; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.dialect = d;
        cfg.seed = 9000 + (uint64_t)i;
        cfg.port = 6881;
        cfg.id = ids ? ids[i] : NULL;
        cfg.rate_per_s = i == 0 ? rate0 : 0;
        CU_ASSERT_FATAL(net_start(net, i, &cfg, i ? 0 : -1) == 0);
        net_run(net, net->now + 50, 10);
    }
    net_run(net, net->now + 20000, 10);
}

static void make_key(int i, uint8_t *key)
{
    uint8_t seed[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    CU_ASSERT_FATAL(dht_sha1(seed, sizeof(seed), "key", 3, key) == 0);
}

/* One address announces 20000 keys from 500 source ports, then 100 other addresses
 * announce one key each. Before: the flood filled the store and every later
 * announcement was refused. The rate limit is lifted on the node under test, so only
 * the store's own rules are at work. */
static void test_store_flood(void)
{
    struct net net;
    build_net(&net, 8, 8, DHT_DIALECT_APT, 0, 0x0a000000u, 1000000, NULL);
    struct dht *t = net.nodes[0].dht;
    uint8_t key[DHT_ID_LEN];
    int flood = 0, others = 0, found = 0;
    for (int i = 0; i < 20000; i++) {
        struct sockaddr_storage from = ip4(0x0a420001u, (uint16_t)(20000 + i % 500));
        make_key(i, key);
        flood += announce_from(&net, t, DHT_DIALECT_APT, &from, key, 20000 + i % 500);
    }
    struct dht_stats st;
    dht_get_stats(t, &st);
    unsigned full = st.values_stored;
    for (int i = 0; i < 100; i++) {
        uint32_t ip = 0x0a4d0001u + (uint32_t)i;
        struct sockaddr_storage from = ip4(ip, 6881);
        make_key(100000 + i, key);
        others += announce_from(&net, t, DHT_DIALECT_APT, &from, key, 6881);
        found += holds(&net, t, DHT_DIALECT_APT, key, ip);
    }
    dht_get_stats(t, &st);
    printf("\nstore flood: one address stored %d of 20000 (store then held %u values); then "
           "%d of 100 other addresses' announcements were stored, %d found; store holds %u\n",
           flood, full, others, found, st.values_stored);
    CU_ASSERT_EQUAL(others, 100);
    CU_ASSERT_EQUAL(found, 100);
    CU_ASSERT(st.values_stored <= 16384);
    net_done(&net);
}

/* One address pings from 500 source ports, 4 pings each, over 2 s. Before: every
 * port had a bucket of its own and all 2000 were answered. */
static void test_many_ports(void)
{
    struct net net;
    build_net(&net, 8, 8, DHT_DIALECT_APT, 0, 0x0a000000u, 0, NULL);
    struct dht *t = net.nodes[0].dht;
    unsigned answered = 0;
    uint64_t start = net.now;
    for (int r = 0; r < 4; r++) {
        for (int p = 0; p < 500; p++) {
            struct sockaddr_storage from = ip4(0x0a420002u, (uint16_t)(30000 + p));
            struct krpc_query q = {.method = KM_PING, .port = -1};
            net.now = start + (uint64_t)(r * 500 + p);
            answered += ask(&net, t, DHT_DIALECT_APT, &from, &q, NULL) > 0;
        }
    }
    /* another address is not held back by the first one's excess */
    struct sockaddr_storage other = ip4(0x0a420003u, 6881);
    struct krpc_query q = {.method = KM_PING, .port = -1};
    int other_ok = ask(&net, t, DHT_DIALECT_APT, &other, &q, NULL) > 0;
    /* loopback: every local process shares 127.0.0.1, so the port tells them apart */
    unsigned local = 0;
    for (int p = 0; p < 10; p++) {
        struct sockaddr_storage from = ip4(0x7f000001u, (uint16_t)(40000 + p));
        for (int r = 0; r < 4; r++) {
            struct krpc_query lq = {.method = KM_PING, .port = -1};
            local += ask(&net, t, DHT_DIALECT_APT, &from, &lq, NULL) > 0;
        }
    }
    printf("\n500 source ports of one address: %u of 2000 pings answered (rate 20/s, burst "
           "40); another address answered: %d; 10 loopback ports: %u of 40\n",
           answered, other_ok, local);
    CU_ASSERT(answered <= 2 * 20 + 2 * 20); /* the burst plus 2 s of refill, at most */
    CU_ASSERT(other_ok);
    CU_ASSERT_EQUAL(local, 40);
    net_done(&net);
}

/* ---- fake clusters ---- */

#define HONEST 64
#define FAKE_KEYS 4
#define FAKES 40

struct cluster {
    enum dht_dialect d;
    uint8_t keys[FAKE_KEYS][DHT_ID_LEN];
    uint8_t ids[FAKE_KEYS * FAKES][DHT_ID_LEN];   /* fake node j of key k: k * FAKES + j */
};

/* A fake node: answers everything at once, names only the fakes of its own cluster
 * closest to the target, accepts stores and keeps nothing. */
static void fake_node(struct net *net, int self, int from, const uint8_t *buf, size_t len)
{
    struct cluster *c = net->ud;
    int f = self - HONEST, k = f / FAKES;
    struct krpc_msg m;
    if (krpc_parse(buf, len, c->d, &m) < 0 || m.y != 'q' || m.error)
        return;
    uint8_t nodes[DHT_K * 26];
    size_t nlen = 0;
    if (m.target) {
        int used[FAKES] = {0};
        for (int n = 0; n < DHT_K; n++) {
            int best = -1;
            for (int j = 0; j < FAKES; j++)
                if (!used[j] && (best < 0 || dht_xor_cmp(m.target, c->ids[k * FAKES + j],
                                                         c->ids[k * FAKES + best]) < 0))
                    best = j;
            used[best] = 1;
            struct sockaddr_storage ss;
            net_addr(net, HONEST + k * FAKES + best, &ss);
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            memcpy(nodes + nlen, c->ids[k * FAKES + best], DHT_ID_LEN);
            memcpy(nodes + nlen + 20, &in->sin_addr, 4);
            memcpy(nodes + nlen + 24, &in->sin_port, 2);
            nlen += 26;
        }
    }
    struct krpc_reply r = {.t = m.t, .tlen = m.tlen, .id = c->ids[f], .port = -1};
    if (m.method == KM_FIND_NODE || m.method == KM_GET) {
        r.nodes = nodes;
        r.nodes_len = nlen;
    }
    if (m.method == KM_GET) {
        r.token = (const uint8_t *)"fakefake";
        r.token_len = 8;
    }
    uint8_t out[DHT_MAX_PACKET];
    int olen = krpc_encode_reply(&r, out, sizeof(out));
    if (olen > 0)
        net_send_from(net, self, from, out, (size_t)olen);
}

static int cluster_found;

static void on_cluster_lookup(void *ud, const struct dht_lookup_result *r)
{
    struct probe *p = ud;
    struct sockaddr_storage want;
    net_addr(p->net, p->want, &want);
    for (size_t i = 0; i < r->n; i++)
        p->found |= memcmp(&r->peers[i], &want, sizeof(want)) == 0;
    if (r->done) {
        p->done = 1;
        cluster_found += p->found;
    }
}

/* FAKES fake nodes next to each of FAKE_KEYS keys, at fake_addr(k, j); each pings
 * every honest node, so the tables around the keys learn them. */
static void cluster_arrive(struct net *net, struct cluster *c, uint32_t (*fake_addr)(int, int))
{
    for (int k = 0; k < FAKE_KEYS; k++) {
        fill_id(net, c->keys[k]);
        for (int j = 0; j < FAKES; j++) {
            int f = k * FAKES + j;
            fill_id(net, c->ids[f]);
            memcpy(c->ids[f], c->keys[k], 8); /* 64 bits in common with the key */
            struct sockaddr_storage ss = ip4(fake_addr(k, j), 6881);
            CU_ASSERT_FATAL(net_set_addr(net, HONEST + f, &ss) == 0);
            net->nodes[HONEST + f].handler = fake_node;
        }
    }
    for (int f = 0; f < FAKE_KEYS * FAKES; f++) {
        for (int h = 0; h < HONEST; h++) {
            uint8_t buf[128];
            static const uint8_t t[2] = {'f', 'p'};
            struct krpc_query q = {.method = KM_PING, .t = t, .tlen = 2, .id = c->ids[f],
                                   .port = -1};
            int len = krpc_encode_query(c->d, &q, buf, sizeof(buf));
            net_send_from(net, HONEST + f, h, buf, (size_t)len);
        }
        net_run(net, net->now + 10, 10);
    }
    net_run(net, net->now + 20000, 10);
}

/* Each key is announced by one honest node, then looked up by three others. Returns
 * the lookups that found the announcer. */
static int cluster_lookups(struct net *net, struct cluster *c)
{
    struct probe p[FAKE_KEYS * 3];
    for (int k = 0; k < FAKE_KEYS; k++) {
        int a = (k * 17 + 3) % HONEST;
        CU_ASSERT(dht_announce(net->nodes[a].dht, c->keys[k], 0, NULL, NULL) == 0);
        net->nodes[a].next_ms = net->now;
    }
    net_run(net, net->now + 20000, 10);
    cluster_found = 0;
    for (int k = 0; k < FAKE_KEYS; k++) {
        for (int s = 0; s < 3; s++) {
            int who = (k * 17 + 3 + 11 * (s + 1)) % HONEST;
            struct probe *pr = &p[k * 3 + s];
            memset(pr, 0, sizeof(*pr));
            pr->net = net;
            pr->want = (k * 17 + 3) % HONEST;
            CU_ASSERT(dht_lookup(net->nodes[who].dht, c->keys[k], on_cluster_lookup, pr) > 0);
            net->nodes[who].next_ms = net->now;
        }
    }
    net_run(net, net->now + 30000, 10);
    int done = 0;
    for (int i = 0; i < FAKE_KEYS * 3; i++)
        done += p[i].done;
    CU_ASSERT_EQUAL(done, FAKE_KEYS * 3);
    return cluster_found;
}

/* HONEST honest nodes, each on a /24 of its own (addresses from base4, ids from ids or
 * random), then the fake clusters, then the lookups. */
static int run_cluster(enum dht_dialect d, uint32_t base4, const uint8_t (*ids)[DHT_ID_LEN],
                       uint32_t (*fake_addr)(int k, int j))
{
    static struct cluster c;
    struct net net;
    c.d = d;
    build_net(&net, HONEST, HONEST + FAKE_KEYS * FAKES, d, 8, base4, 0, ids);
    net.ud = &c;
    cluster_arrive(&net, &c, fake_addr);
    int found = cluster_lookups(&net, &c);
    net_done(&net);
    return found;
}

static uint32_t fake_on_one_24(int k, int j)
{
    return 0x0ac80000u + ((uint32_t)k << 8) + (uint32_t)j + 1; /* 10.200.k.j+1 */
}

static void test_cluster_subnet(void)
{
    int found = run_cluster(DHT_DIALECT_APT, 0x0a000000u, NULL, fake_on_one_24);
    printf("\nfake clusters (40 nodes on one /24 next to each of %d keys): %d of %d lookups "
           "found the key\n", FAKE_KEYS, found, FAKE_KEYS * 3);
    CU_ASSERT_EQUAL(found, FAKE_KEYS * 3);
}

/* BEP 42, written out here independently of the library so the test checks it. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t crc = ~0u;
    while (n--) {
        crc ^= *p++;
        for (int i = 0; i < 8; i++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static void bep42_id_ref(uint32_t ip, const uint8_t *rnd, uint8_t *id)
{
    uint8_t b[4] = {(uint8_t)((ip >> 24) & 0x03), (uint8_t)((ip >> 16) & 0x0f),
                    (uint8_t)((ip >> 8) & 0x3f), (uint8_t)ip};
    b[0] |= (uint8_t)((rnd[19] & 7) << 5);
    uint32_t crc = crc32c_ref(b, 4);
    memcpy(id, rnd, DHT_ID_LEN);
    id[0] = (uint8_t)(crc >> 24);
    id[1] = (uint8_t)(crc >> 16);
    id[2] = (uint8_t)(((crc >> 8) & 0xf8) | (rnd[2] & 7));
}

static uint32_t fake_public_24s(int k, int j)
{
    return 0x1e000000u + ((uint32_t)k << 16) + ((uint32_t)j << 8) + 1; /* 30.k.j.1 */
}

static void test_cluster_bep42(void)
{
    static uint8_t ids[HONEST][DHT_ID_LEN];
    struct net tmp = {.rng = 777};
    for (int i = 0; i < HONEST; i++) {
        uint8_t rnd[DHT_ID_LEN];
        fill_id(&tmp, rnd);
        bep42_id_ref(0x14000000u + ((uint32_t)(i + 1) << 8) + 1, rnd, ids[i]); /* 20.0.i+1.1 */
    }
    int found = run_cluster(DHT_DIALECT_BEP5, 0x14000000u, ids, fake_public_24s);
    printf("\nfake clusters (40 nodes on 40 public /24s, ids BEP 42 refuses, next to each of "
           "%d keys): %d of %d lookups found the key\n", FAKE_KEYS, found, FAKE_KEYS * 3);
    CU_ASSERT_EQUAL(found, FAKE_KEYS * 3);
}

/* ---- amplification ---- */

static double amp_max;

static void amp_note(const char *what, size_t qlen, size_t alen)
{
    double r = (double)alen / (double)qlen;
    printf("  %-40s query %4zu answer %4zu ratio %.2f\n", what, qlen, alen, r);
    if (r > amp_max)
        amp_max = r;
}

/* Sends raw bytes from a fresh outside address; notes the ratio of the answer. */
static void amp_raw(struct net *net, struct dht *t, enum dht_dialect d, const char *what,
                    const char *raw, uint32_t *next_ip)
{
    struct sockaddr_storage from = ip4((*next_ip)++, 6881);
    cap.want = from;
    cap.any = 0;
    cap.d = d;
    cap.last_len = 0;
    dht_input(t, raw, strlen(raw), (const struct sockaddr *)&from, sizeof(from), net->now);
    amp_note(what, strlen(raw), cap.last_len);
}

static void amp_query(struct net *net, struct dht *t, enum dht_dialect d, const char *what,
                      struct krpc_query q, uint32_t *next_ip)
{
    struct sockaddr_storage from = ip4((*next_ip)++, 6881);
    size_t qlen = 0;
    size_t alen = ask(net, t, d, &from, &q, &qlen);
    amp_note(what, qlen, alen);
}

/* The target node's tables and store made as big as they get: a full IPv6 table as
 * well as the IPv4 one, and 200 values under key. */
static void amp_fill(struct net *net, struct dht *t, enum dht_dialect d, const uint8_t *key)
{
    for (int i = 0; i < 40; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr.s6_addr[0] = 0x20;
        s6->sin6_addr.s6_addr[1] = 0x01;
        s6->sin6_addr.s6_addr[5] = (uint8_t)i;
        s6->sin6_addr.s6_addr[15] = 1;
        s6->sin6_port = htons(6881);
        struct krpc_query q = {.method = KM_PING, .port = -1};
        ask(net, t, d, &ss, &q, NULL);
    }
    for (int i = 0; i < 200; i++) {
        struct sockaddr_storage from = ip4(0x0b000001u + (uint32_t)i, 6881);
        announce_from(net, t, d, &from, key, 6881);
    }
}

static const struct {
    const char *what;
    int method, on_key, want, apt_only;
} amp_queries[] = {
    {"ping", KM_PING, 0, 0, 0},
    {"join", KM_JOIN, 0, 0, 1},
    {"find_node", KM_FIND_NODE, 1, 0, 0},
    {"find_node want n4", KM_FIND_NODE, 1, KRPC_WANT4, 0},
    {"find_node want n4 n6", KM_FIND_NODE, 1, KRPC_WANT4 | KRPC_WANT6, 0},
    {"get, no values", KM_GET, 0, 0, 0},
    {"get, 200 values", KM_GET, 1, 0, 0},
    {"get, 200 values, want n4 n6", KM_GET, 1, KRPC_WANT4 | KRPC_WANT6, 0},
};

static const struct {
    const char *what, *raw;
} amp_raws[] = {
    {"no type", "d1:t1:xe"},
    {"no method", "d1:t1:x1:y1:qe"},
    {"unknown method", "d1:q1:z1:t1:x1:y1:qe"},
    {"no arguments", "d1:q4:ping1:t1:x1:y1:qe"},
    {"bad id", "d1:ad2:id1:xe1:q4:ping1:t1:x1:y1:qe"},
    {"find_node, bad target", "d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t1:x1:y1:qe"},
};

/* Stores: with the token the sender got, and with a wrong one (an error answer). */
static void amp_stores(struct net *net, struct dht *t, enum dht_dialect d, const uint8_t *key,
                       uint32_t *ip)
{
    uint8_t tok[32];
    size_t tlen = 0, qlen = 0;
    struct sockaddr_storage from = ip4((*ip)++, 6881);
    struct krpc_query g = {.method = KM_GET, .target = key, .port = -1};
    ask(net, t, d, &from, &g, NULL);
    CU_ASSERT(last_token(d, tok, &tlen) == 0);
    struct krpc_query st = {.method = KM_STORE, .target = key, .port = 6881, .token = tok,
                            .token_len = tlen};
    size_t alen = ask(net, t, d, &from, &st, &qlen);
    amp_note("store", qlen, alen);
    amp_query(net, t, d, "store, bad token",
              (struct krpc_query){.method = KM_STORE, .target = key, .port = 6881,
                                  .token = (const uint8_t *)"12345678", .token_len = 8}, ip);
}

static void amp_dialect(enum dht_dialect d)
{
    struct net net;
    build_net(&net, 40, 40, d, 0, 0x0a000000u, 1000000, NULL);
    struct dht *t = net.nodes[0].dht;
    uint8_t key[DHT_ID_LEN], empty[DHT_ID_LEN];
    make_key(1, key);
    make_key(2, empty);
    amp_fill(&net, t, d, key);
    uint32_t ip = 0x0c000001u;
    printf("\n%s:\n", d == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht");
    for (size_t i = 0; i < sizeof(amp_queries) / sizeof(amp_queries[0]); i++) {
        if (amp_queries[i].apt_only && d != DHT_DIALECT_APT)
            continue;
        struct krpc_query q = {.method = amp_queries[i].method, .port = -1,
                               .target = amp_queries[i].on_key ? key : empty,
                               .want = amp_queries[i].want};
        amp_query(&net, t, d, amp_queries[i].what, q, &ip);
    }
    amp_stores(&net, t, d, empty, &ip);
    for (size_t i = 0; i < sizeof(amp_raws) / sizeof(amp_raws[0]); i++)
        amp_raw(&net, t, d, amp_raws[i].what, amp_raws[i].raw, &ip);
    net_done(&net);
}

/* Every query type, at its smallest, to a node with full tables and a key holding many
 * values. Before: the bound was 8x and errors were not bounded at all. */
static void test_amplification(void)
{
    amp_max = 0;
    amp_dialect(DHT_DIALECT_APT);
    amp_dialect(DHT_DIALECT_BEP5);
    printf("largest answer/query ratio: %.2f\n", amp_max);
    CU_ASSERT(amp_max <= 3.0);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"simulation", test_simulation},
        {"store flood from one address", test_store_flood},
        {"500 source ports of one address", test_many_ports},
        {"fake cluster on one /24 (apt-dht)", test_cluster_subnet},
        {"fake cluster with bad BEP 42 ids (bep5)", test_cluster_bep42},
        {"amplification of every query", test_amplification},
        {NULL, NULL},
    };
    return unit_run("dht_sim", cases);
}

/* test_dht_sim.c - a deterministic simulation of SIM_N nodes in one process (in-memory
 * network, fake clock): nodes join one after another through a random earlier node,
 * every node announces a key, every node looks up another node's key and must find it;
 * then a quarter of the nodes vanish at once and the survivors must still find >= 99%
 * of the keys. Prints lookup cost (median and p95 queries and rounds), success rates
 * and heap per node. SIM_N can be overridden by the environment (DHT_SIM_N). */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "tests/unit/dht_net.h"

#define SIM_N_DEFAULT 1000

struct probe {
    int want;                       /* index of the node whose key is sought */
    int found, done;
    unsigned queries, rounds;
    struct net *net;
};

static struct net net;
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
        p[i].net = &net;
        p[i].want = -1;
        if (net.nodes[i].dead)
            continue;
        int w = (int)((uint64_t)i * 7919 + 13) % sim_n;
        if (w == i)
            w = (w + 1) % sim_n;
        p[i].want = w;
        int h = dht_lookup(net.nodes[i].dht, keys[w], on_lookup, &p[i]);
        CU_ASSERT(h > 0);
        net.nodes[i].next_ms = net.now;
    }
    net_run(&net, net.now + 60000, 10);
    report(what, p, sim_n, rate);
}

static void test_simulation(void)
{
    const char *env = getenv("DHT_SIM_N");
    sim_n = env ? (int)strtol(env, NULL, 10) : SIM_N_DEFAULT;
    if (sim_n < 16)
        sim_n = 16;
    CU_ASSERT_FATAL(net_init(&net, sim_n, 0, 12345) == 0);
    keys = calloc((size_t)sim_n, DHT_ID_LEN);
    struct probe *p = calloc((size_t)sim_n, sizeof(*p));
    CU_ASSERT_FATAL(keys && p);
    /* Join: one node every 20 ms, each through a random earlier node. */
    for (int i = 0; i < sim_n; i++) {
        struct dht_config cfg;
        dht_config_init(&cfg);
        cfg.seed = 1000 + (uint64_t)i;
        cfg.port = 6881; /* peers announce their DHT address itself: easy to check */
        int boot = i ? (int)(net_rand(&net) % (uint64_t)i) : -1;
        CU_ASSERT_FATAL(net_start(&net, i, &cfg, boot) == 0);
        net_run(&net, net.now + 20, 10);
    }
    net_run(&net, net.now + 30000, 10);
    /* Every node announces its own key. */
    for (int i = 0; i < sim_n; i++) {
        for (int b = 0; b < DHT_ID_LEN; b += 8) {
            uint64_t r = net_rand(&net);
            memcpy(keys[i] + b, &r, DHT_ID_LEN - b < 8 ? (size_t)(DHT_ID_LEN - b) : 8);
        }
        CU_ASSERT(dht_announce(net.nodes[i].dht, keys[i], 0, NULL, NULL) == 0);
        net.nodes[i].next_ms = net.now;
    }
    net_run(&net, net.now + 30000, 10);
    size_t mem = 0;
    unsigned values = 0, good = 0;
    for (int i = 0; i < sim_n; i++) {
        struct dht_stats st;
        dht_get_stats(net.nodes[i].dht, &st);
        mem += st.mem_bytes;
        values += st.values_stored;
        good += st.nodes_good;
        CU_ASSERT_EQUAL(dht_state(net.nodes[i].dht), DHT_ACTIVE);
    }
    printf("\nN=%d: heap per node %zu bytes, good nodes per table %.1f, values stored per "
           "key %.1f, packets %llu\n", sim_n, mem / (size_t)sim_n, (double)good / sim_n,
           (double)values / sim_n, (unsigned long long)net.delivered);
    int rate;
    run_lookups(p, "no churn", &rate);
    CU_ASSERT_EQUAL(rate, 10000); /* every lookup finds its key */
    /* A quarter of the nodes vanish at once, without a word. */
    int killed = 0;
    while (killed < sim_n / 4) {
        int v = (int)(net_rand(&net) % (uint64_t)sim_n);
        if (!net.nodes[v].dead) {
            net.nodes[v].dead = 1;
            killed++;
        }
    }
    run_lookups(p, "after 25% vanished", &rate);
    CU_ASSERT(rate >= 9900);
    free(p);
    free(keys);
    net_done(&net);
}

int main(void)
{
    static const struct unit_case cases[] = {{"simulation", test_simulation}, {NULL, NULL}};
    return unit_run("dht_sim", cases);
}

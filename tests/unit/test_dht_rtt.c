/* test_dht_rtt.c - round trips, deadlines and the dead, on the in-memory network.
 *
 * A node keeps a smoothed round-trip time and variance per contact (RFC 6298) and gives
 * each query the deadline SRTT + 4 * RTTVAR, clamped between a LAN floor and the soft
 * timeout; a contact that misses its deadlines is skipped by every lookup until it is
 * heard from. The cases: the estimator against RFC 6298 worked by hand on a fixed
 * series; a network where a third of the nodes died without a word (a lookup's time is
 * a small multiple of the live round trip, not of the soft timeout, and a second lookup
 * sends nothing to the dead); a holder that answers after its deadline (its late answer
 * is still used); and a value handed to the caller inside the very dht_input() call of
 * the answer that carried it, before the lookup ends. Both dialects. Each case prints
 * its figures; time is the fake clock's, so the figures are exact and repeatable. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "tests/unit/dht_net.h"
#include "dht/node.h"

#define ONE_WAY_MS 5            /* fixed latency: every live round trip is 10 ms */

struct probe {
    struct net *net;
    int self;                   /* index of the node looking up */
    struct sockaddr_storage want;
    int found, done, calls;
    uint64_t start_ms, first_ms, done_ms;
    int first_in_input;         /* the first value came inside dht_input of an answer */
    int first_before_done;      /* ...in a call with done == 0 */
    unsigned queries;
};

static void on_lookup(void *ud, const struct dht_lookup_result *r)
{
    struct probe *p = ud;
    p->calls++;
    for (size_t i = 0; i < r->n; i++) {
        if (memcmp(&r->peers[i], &p->want, sizeof(p->want)) != 0 || p->found)
            continue;
        p->found = 1;
        p->first_ms = p->net->now;
        p->first_in_input = p->net->cur_to == p->self;
        p->first_before_done = !r->done;
    }
    if (r->done) {
        p->done = 1;
        p->done_ms = p->net->now;
        p->queries = r->queries;
    }
}

/* Node i joins through node boot (-1: none). */
static void join(struct net *net, int i, int boot, enum dht_dialect d, uint64_t seed)
{
    struct dht_config cfg;
    dht_config_init(&cfg);
    cfg.dialect = d;
    cfg.seed = seed * 1000 + (uint64_t)i;
    cfg.port = 6881;
    CU_ASSERT_FATAL(net_start(net, i, &cfg, boot) == 0);
    net_run(net, net->now + 20, 1);
}

/* n node slots at a fixed latency; the first `start` join through node 0, settled. */
static void build(struct net *net, int n, int start, enum dht_dialect d, uint64_t seed)
{
    CU_ASSERT_FATAL(net_init(net, n, 0, seed) == 0);
    net->lat_min = ONE_WAY_MS;
    net->lat_span = 0;
    for (int i = 0; i < start; i++)
        join(net, i, i ? 0 : -1, d, seed);
    net_run(net, net->now + 20000, 1);
}

/* Starts a lookup of key from node self, runs until it is done (at most 10 s) and
 * returns what the node sent to dead nodes meanwhile. */
static uint64_t lookup(struct net *net, int self, const uint8_t *key, int holder,
                       struct probe *p)
{
    memset(p, 0, sizeof(*p));
    p->net = net;
    p->self = self;
    net_addr(net, holder, &p->want);
    p->start_ms = net->now;
    uint64_t dead0 = net->nodes[self].sent_dead;
    CU_ASSERT(dht_lookup(net->nodes[self].dht, key, on_lookup, p) > 0);
    net->nodes[self].next_ms = net->now;
    uint64_t end = net->now + 10000;
    while (!p->done && net->now < end)
        net_run(net, net->now + 1, 1);
    return net->nodes[self].sent_dead - dead0;
}

static void dead_third(enum dht_dialect d)
{
    struct net net;
    const int n = 40, q = n - 1, holder = 1;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0xa7, sizeof(key));
    build(&net, n, n, d, 7 + (uint64_t)d);
    CU_ASSERT(dht_announce(net.nodes[holder].dht, key, 0, NULL, NULL) == 0);
    net.nodes[holder].next_ms = net.now;
    net_run(&net, net.now + 5000, 1);
    int killed = 0;
    for (int i = 2; i < q; i += 3, killed++)
        net.nodes[i].dead = 1; /* a third vanish without a word */
    struct probe a, b;
    uint64_t dead_a = lookup(&net, q, key, holder, &a);
    net_run(&net, net.now + 100, 1);
    uint64_t dead_b = lookup(&net, q, key, holder, &b);
    printf("\n%s, %d nodes, %d dead, live round trip %d ms: first lookup %llu ms (first "
           "value at %llu ms, %u queries, %llu to the dead); second lookup %llu ms (%u "
           "queries, %llu to the dead)\n", d == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht", n,
           killed, 2 * ONE_WAY_MS, (unsigned long long)(a.done_ms - a.start_ms),
           (unsigned long long)(a.first_ms - a.start_ms), a.queries,
           (unsigned long long)dead_a, (unsigned long long)(b.done_ms - b.start_ms),
           b.queries, (unsigned long long)dead_b);
    CU_ASSERT(a.done && a.found && b.done && b.found);
    CU_ASSERT(dead_a > 0); /* the first lookup did meet the dead */
    CU_ASSERT(a.done_ms - a.start_ms <= 20 * 2 * ONE_WAY_MS);
    CU_ASSERT_EQUAL(dead_b, 0);
    CU_ASSERT(b.done_ms - b.start_ms <= 10 * 2 * ONE_WAY_MS);
    CU_ASSERT(a.first_in_input && a.first_before_done);
    CU_ASSERT(b.first_in_input && b.first_before_done);
    net_done(&net);
}

static void test_dead_apt(void)
{
    dead_third(DHT_DIALECT_APT);
}

static void test_dead_bep5(void)
{
    dead_third(DHT_DIALECT_BEP5);
}

/* Nodes 0..4: node 0 announces (1..4 store the value), then node 5 joins (so it holds
 * no copy of its own) and measures everyone at 10 ms. Then 0, 2, 3 and 4 die and node 1
 * answers 300 ms late. Node 5's deadlines pass with nobody left to widen to, so it
 * waits, and the late answer counts. */
static void late_reply(enum dht_dialect d)
{
    struct net net;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0x3c, sizeof(key));
    build(&net, 6, 5, d, 31 + (uint64_t)d);
    CU_ASSERT(dht_announce(net.nodes[0].dht, key, 0, NULL, NULL) == 0);
    net.nodes[0].next_ms = net.now;
    net_run(&net, net.now + 5000, 1);
    join(&net, 5, 1, d, 31 + (uint64_t)d);
    net_run(&net, net.now + 5000, 1);
    for (int i = 0; i <= 4; i++)
        net.nodes[i].dead = i != 1;
    net.nodes[1].extra_ms = 150;
    struct probe a, b;
    lookup(&net, 5, key, 0, &a);
    net_run(&net, net.now + 5000, 1);
    lookup(&net, 5, key, 0, &b);
    printf("\n%s, a holder answering 300 ms late: value found %d after %llu ms; a second "
           "lookup found it %d after %llu ms\n", d == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht",
           a.found, (unsigned long long)(a.first_ms - a.start_ms), b.found,
           (unsigned long long)(b.first_ms - b.start_ms));
    CU_ASSERT(a.found && a.done);
    CU_ASSERT(a.first_ms - a.start_ms >= 300 && a.first_ms - a.start_ms < 400);
    CU_ASSERT(b.found && b.done); /* the late one was heard from: not skipped */
    net_done(&net);
}

static void test_late_apt(void)
{
    late_reply(DHT_DIALECT_APT);
}

static void test_late_bep5(void)
{
    late_reply(DHT_DIALECT_BEP5);
}

/* RFC 6298 2.2-2.4 on a fixed series, against the formulas in doubles and against
 * RTOs worked out by hand. */
static void test_estimator(void)
{
    static const uint32_t series[] = {100, 120, 80, 200, 100};
    static const uint32_t rto_ms[] = {300, 273, 250, 326, 283};
    struct dht_rtt r = {0};
    double srtt = 0, var = 0;
    CU_ASSERT_EQUAL(dht_rtt_rto_ms(&r), 0); /* never measured */
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        double x = series[i] * 1000.0;
        if (i == 0) {
            srtt = x;
            var = x / 2;
        } else {
            var = 0.75 * var + 0.25 * (srtt > x ? srtt - x : x - srtt);
            srtt = 0.875 * srtt + 0.125 * x;
        }
        dht_rtt_sample(&r, series[i]);
        printf("\n  sample %3u ms: SRTT %.3f ms RTTVAR %.3f ms RTO %u ms", series[i],
               r.srtt_us / 1000.0, r.rttvar_us / 1000.0, dht_rtt_rto_ms(&r));
        CU_ASSERT(r.srtt_us >= srtt - 4 && r.srtt_us <= srtt + 4);
        CU_ASSERT(r.rttvar_us >= var - 4 && r.rttvar_us <= var + 4);
        CU_ASSERT_EQUAL(dht_rtt_rto_ms(&r), rto_ms[i]);
    }
    printf("\n");
    /* a LAN: 0 ms samples leave the clock granularity G (1 ms) */
    struct dht_rtt lan = {0};
    for (int i = 0; i < 20; i++)
        dht_rtt_sample(&lan, 0);
    CU_ASSERT_EQUAL(dht_rtt_rto_ms(&lan), 1);
    /* an absurd sample counts as 60 s, so nothing overflows */
    struct dht_rtt big = {0};
    dht_rtt_sample(&big, UINT32_MAX);
    CU_ASSERT_EQUAL(big.srtt_us, 60000u * 1000u);
    CU_ASSERT_EQUAL(dht_rtt_rto_ms(&big), 180000);
}

static int no_send(void *ud, const void *buf, size_t len, const struct sockaddr *to,
                   socklen_t tolen)
{
    return 0;
}

static dht_sa v4(uint32_t ip)
{
    dht_sa a;
    memset(&a, 0, sizeof(a));
    a.in.sin_family = AF_INET;
    a.in.sin_addr.s_addr = htonl(ip);
    a.in.sin_port = htons(6881);
    return a;
}

/* The deadline: soft timeout while nothing is measured, then the node's estimate for
 * addresses never measured, the address's own once it is, clamped to the LAN floor and
 * the soft timeout; a failed address is forgiven by any datagram. */
static void test_deadline(void)
{
    struct dht_config cfg;
    struct dht *d;
    dht_config_init(&cfg);
    cfg.send = no_send;
    cfg.seed = 1;
    CU_ASSERT_FATAL(dht_new(&cfg, 1000, &d) == 0);
    dht_sa a = v4(0x0a000001u), b = v4(0x0a000002u), c = v4(0x0a000003u);
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &a), 800);
    contact_replied(d, &a, 100); /* RTO 300 */
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &a), 300);
    char dump[4096] = {0};
    FILE *f = fmemopen(dump, sizeof(dump) - 1, "w");
    CU_ASSERT_FATAL(f != NULL);
    dht_dump(d, f);
    fclose(f);
    CU_ASSERT(strstr(dump, "round trip of all answers: srtt 100.0 ms rttvar 50.0 ms") != NULL);
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &b), 300); /* the node's estimate */
    contact_replied(d, &b, 0);
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &b), DEADLINE_FLOOR_MS);
    contact_replied(d, &c, 5000);
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &c), 800); /* at most the soft timeout */
    CU_ASSERT(!contact_failed(d, &a));
    CU_ASSERT_EQUAL(contact_missed(d, &a), 1);
    CU_ASSERT(!contact_failed(d, &a));
    CU_ASSERT_EQUAL(dht_addr_failed(d, &a.sa, sizeof(a.in)), 0);
    CU_ASSERT_EQUAL(contact_missed(d, &a), 2);
    CU_ASSERT(contact_failed(d, &a));
    CU_ASSERT_EQUAL(dht_addr_failed(d, &a.sa, sizeof(a.in)), 1);
    CU_ASSERT_EQUAL(dht_addr_failed(d, &b.sa, sizeof(b.in)), 0);
    struct sockaddr bad = {.sa_family = AF_UNIX};
    CU_ASSERT_EQUAL(dht_addr_failed(d, &bad, sizeof(bad)), -EAFNOSUPPORT);
    CU_ASSERT_EQUAL(dht_addr_failed(d, &a.sa, 4), -EAFNOSUPPORT); /* too short */
    const char junk[] = "not krpc";
    dht_input(d, junk, sizeof(junk), &a.sa, sizeof(a.in), 2000); /* any datagram */
    CU_ASSERT(!contact_failed(d, &a));
    dht_free(d);
    /* a soft timeout below the floor wins */
    cfg.soft_timeout_ms = 10;
    CU_ASSERT_FATAL(dht_new(&cfg, 1000, &d) == 0);
    contact_replied(d, &b, 0);
    CU_ASSERT_EQUAL(contact_deadline_ms(d, &b), 10);
    dht_free(d);
}

/* Everyone else vanishes: a lookup ends once the silent ones have missed their
 * deadline and its probe and the soft timeout (800 ms) has passed, not at the hard
 * timeout (4 s); the next one asks them again, because there is nobody else (to find
 * out whether they are back), but waits only for their deadline. */
static void all_gone(enum dht_dialect d)
{
    struct net net;
    uint8_t key[DHT_ID_LEN];
    memset(key, 0x77, sizeof(key));
    build(&net, 8, 8, d, 51 + (uint64_t)d);
    for (int i = 0; i < 7; i++)
        net.nodes[i].dead = 1;
    struct probe a, b;
    lookup(&net, 7, key, 0, &a);
    net_run(&net, net.now + 100, 1);
    lookup(&net, 7, key, 0, &b);
    printf("\n%s, all 7 others gone: the lookup ends after %llu ms, the next after %llu ms\n",
           d == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht", (unsigned long long)(a.done_ms - a.start_ms),
           (unsigned long long)(b.done_ms - b.start_ms));
    CU_ASSERT(a.done && b.done && !a.found && !b.found);
    CU_ASSERT(a.done_ms - a.start_ms <= 900);
    CU_ASSERT(b.done_ms - b.start_ms <= 100);
    net_done(&net);
}

static void test_gone_apt(void)
{
    all_gone(DHT_DIALECT_APT);
}

static void test_gone_bep5(void)
{
    all_gone(DHT_DIALECT_BEP5);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"RFC 6298 estimator on a fixed series", test_estimator},
        {"query deadlines and failed addresses", test_deadline},
        {"a third dead (apt-dht)", test_dead_apt},
        {"a third dead (bep5)", test_dead_bep5},
        {"late reply still used (apt-dht)", test_late_apt},
        {"late reply still used (bep5)", test_late_bep5},
        {"everyone gone (apt-dht)", test_gone_apt},
        {"everyone gone (bep5)", test_gone_bep5},
        {NULL, NULL},
    };
    return unit_run("dht_rtt", cases);
}

/* test_dht_routing.c - the routing table's rules (split only around our id, full
 * buckets, bad-node replacement from the cache, ping of the least recently seen
 * questionable node, 15-minute status), XOR ordering, tokens and their rotation, and
 * value storage expiry and bounds, and each address's share of the storage. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "dht/dht-int.h"

static int nosend(void *ud, const void *b, size_t l, const struct sockaddr *to, socklen_t tl)
{
    return 0;
}

static struct dht *owner(void)
{
    struct dht_config c;
    struct dht *d = NULL;
    dht_config_init(&c);
    c.send = nosend;
    c.seed = 7;
    CU_ASSERT_FATAL(dht_new(&c, 0, &d) == 0);
    return d;
}

static dht_sa addr(unsigned n)
{
    dht_sa a;
    memset(&a, 0, sizeof(a));
    a.in.sin_family = AF_INET;
    a.in.sin_addr.s_addr = htonl(0x0a000000u + n);
    a.in.sin_port = htons(1000 + (n % 60000));
    return a;
}

/* An id sharing exactly `bits` leading bits with self, then `tail` in its last byte. */
static void id_at(const uint8_t *self, int bits, uint8_t tail, uint8_t *out)
{
    memcpy(out, self, DHT_ID_LEN);
    out[bits / 8] ^= (uint8_t)(0x80 >> (bits % 8));
    out[19] = (uint8_t)(out[19] ^ tail); /* callers keep bits < 152 */
}

static void test_xor(void)
{
    uint8_t t[20] = {0}, a[20] = {0}, b[20] = {0};
    a[19] = 1;
    b[0] = 0x80;
    CU_ASSERT(dht_xor_cmp(t, a, b) < 0);
    CU_ASSERT(dht_xor_cmp(t, b, a) > 0);
    CU_ASSERT_EQUAL(dht_xor_cmp(t, a, a), 0);
    memset(t, 0xff, 20);
    CU_ASSERT(dht_xor_cmp(t, a, b) > 0); /* closeness is relative to the target */
    CU_ASSERT_EQUAL(dht_common_bits(a, b), 0);
    CU_ASSERT_EQUAL(dht_common_bits(a, a), 160);
    uint8_t c[20] = {0};
    c[2] = 0x10;
    CU_ASSERT_EQUAL(dht_common_bits(a, c), 19);
}

static void test_split_only_own_bucket(void)
{
    struct dht *d = owner();
    struct rtable rt;
    uint8_t self[20], id[20];
    memset(self, 0, 20);
    CU_ASSERT_FATAL(rt_init(&rt, d, self, 0) == 0);
    /* 8 far nodes (first bit differs) fill the single bucket. */
    for (int i = 0; i < DHT_K; i++) {
        id_at(self, 0, (uint8_t)(i + 1), id);
        dht_sa a = addr((unsigned)i + 1);
        CU_ASSERT_EQUAL(rt_heard(&rt, id, &a, 1, 1, NULL), RT_ADDED);
    }
    CU_ASSERT_EQUAL(rt.nb, 1);
    /* A ninth far node: the bucket holds our id, so it splits; the far half is full. */
    id_at(self, 0, 0x40, id);
    dht_sa a9 = addr(100);
    CU_ASSERT_EQUAL(rt_heard(&rt, id, &a9, 1, 1, NULL), RT_CACHED);
    CU_ASSERT_EQUAL(rt.nb, 2);
    CU_ASSERT_EQUAL(rt.b[0]->count, DHT_K);
    CU_ASSERT_EQUAL(rt.b[1]->count, 0);
    CU_ASSERT_EQUAL(rt.b[0]->nrepl, 1);
    /* Near nodes go to the own bucket, which keeps splitting as it fills. */
    for (int i = 0; i < 40; i++) {
        id_at(self, 1 + i / 4, (uint8_t)(i + 1), id);
        dht_sa a = addr(200 + (unsigned)i);
        rt_heard(&rt, id, &a, 1, 1, NULL);
    }
    CU_ASSERT(rt.nb > 5);
    for (int i = 0; i < rt.nb; i++)
        CU_ASSERT(rt.b[i]->count <= DHT_K);
    /* Far buckets never split: the far half still has exactly K and one cached. */
    CU_ASSERT_EQUAL(rt.b[0]->count, DHT_K);
    rt_done(&rt);
    dht_free(d);
}

static void test_replacement(void)
{
    struct dht *d = owner();
    struct rtable rt;
    uint8_t self[20], id[20], first[20];
    struct rt_node *ping = NULL;
    memset(self, 0xff, 20);
    rt_init(&rt, d, self, 0);
    /* Force a split so bucket 0 (far half) is not the own bucket. */
    for (int i = 0; i < DHT_K; i++) {
        id_at(self, 0, (uint8_t)(i + 1), id);
        if (i == 0)
            memcpy(first, id, 20);
        dht_sa a = addr((unsigned)i + 1);
        rt_heard(&rt, id, &a, 1, 1000, NULL);
    }
    id_at(self, 0, 0x70, id);
    dht_sa an = addr(500);
    CU_ASSERT_EQUAL(rt_heard(&rt, id, &an, 1, 1000, &ping), RT_CACHED);
    CU_ASSERT_PTR_NULL(ping); /* all good: the newcomer just waits in the cache */
    /* 16 minutes later every node is questionable: the least recently seen is pinged. */
    uint64_t later = 1000 + 16 * 60 * 1000;
    CU_ASSERT_EQUAL(rt_status(&rt.b[0]->n[0], later), RT_QUESTIONABLE);
    rt.b[0]->n[3].last_reply_ms = 500; /* seen least recently */
    uint8_t lrs[20];
    memcpy(lrs, rt.b[0]->n[3].id, 20);
    id_at(self, 0, 0x71, id);
    dht_sa an2 = addr(501);
    CU_ASSERT_EQUAL(rt_heard(&rt, id, &an2, 1, later, &ping), RT_CACHED);
    CU_ASSERT_PTR_NOT_NULL(ping);
    if (ping)
        CU_ASSERT_EQUAL(memcmp(ping->id, lrs, 20), 0);
    /* It fails twice: bad, replaced by the most recent cached node. */
    rt_failed(&rt, lrs, later + 1);
    CU_ASSERT_PTR_NOT_NULL(rt_find(&rt, lrs));
    rt_failed(&rt, lrs, later + 2);
    CU_ASSERT_PTR_NULL(rt_find(&rt, lrs));
    CU_ASSERT_PTR_NOT_NULL(rt_find(&rt, id));
    CU_ASSERT_EQUAL(rt.b[0]->count, DHT_K);
    /* A node that answers again is good; an id never moves to another address. */
    dht_sa other = addr(999);
    CU_ASSERT_EQUAL(rt_heard(&rt, first, &other, 1, later + 3, NULL), RT_IGNORED);
    dht_sa a1 = addr(1);
    CU_ASSERT_EQUAL(rt_heard(&rt, first, &a1, 1, later + 3, NULL), RT_UPDATED);
    CU_ASSERT_EQUAL(rt_status(rt_find(&rt, first), later + 3), RT_GOOD);
    /* Our own id is never inserted. */
    CU_ASSERT_EQUAL(rt_heard(&rt, self, &a1, 1, later, NULL), RT_IGNORED);
    rt_done(&rt);
    dht_free(d);
}

static void test_status_and_closest(void)
{
    struct dht *d = owner();
    struct rtable rt;
    uint8_t self[20] = {0}, target[20] = {0};
    rt_init(&rt, d, self, 0);
    for (unsigned i = 1; i <= 30; i++) {
        uint8_t id[20] = {0};
        id[0] = (uint8_t)(i * 8);
        id[19] = (uint8_t)i;
        dht_sa a = addr(i);
        rt_heard(&rt, id, &a, 1, 10, NULL);
    }
    const struct rt_node *n[8];
    target[0] = 0x50;
    int cnt = rt_closest(&rt, target, 20, n, 8);
    CU_ASSERT(cnt > 0);
    for (int i = 1; i < cnt; i++)
        CU_ASSERT(dht_xor_cmp(target, n[i - 1]->id, n[i]->id) < 0);
    struct rt_node q = {0};
    q.last_query_ms = 100;
    CU_ASSERT_EQUAL(rt_status(&q, 200), RT_QUESTIONABLE); /* never answered */
    q.last_reply_ms = 1;
    CU_ASSERT_EQUAL(rt_status(&q, 200), RT_GOOD);
    CU_ASSERT_EQUAL(rt_status(&q, 100 + 15 * 60 * 1000), RT_QUESTIONABLE);
    q.fails = 2;
    CU_ASSERT_EQUAL(rt_status(&q, 200), RT_BAD);
    uint8_t rid[20];
    for (int b = 0; b < rt.nb; b++) {
        rt_random_id(&rt, b, 0x1234, 0x5678, 0x9abc, rid);
        CU_ASSERT_EQUAL(rt_bucket_of(&rt, rid), b);
    }
    rt_done(&rt);
    dht_free(d);
}

static void test_tokens(void)
{
    struct dht *d = owner();
    struct tokens t;
    uint8_t tok[TOKEN_LEN], tok2[TOKEN_LEN];
    dht_sa a = addr(1), b = addr(2);
    token_init(&t, d, 0);
    token_make(&t, &a, tok);
    CU_ASSERT(token_check(&t, &a, tok, TOKEN_LEN));
    CU_ASSERT(!token_check(&t, &b, tok, TOKEN_LEN));
    CU_ASSERT(!token_check(&t, &a, tok, TOKEN_LEN - 1));
    token_rotate(&t, d, TOKEN_ROTATE_MS);
    CU_ASSERT(token_check(&t, &a, tok, TOKEN_LEN)); /* previous secret still accepted */
    token_make(&t, &a, tok2);
    CU_ASSERT(memcmp(tok, tok2, TOKEN_LEN) != 0);
    token_rotate(&t, d, 2 * TOKEN_ROTATE_MS);
    CU_ASSERT(!token_check(&t, &a, tok, TOKEN_LEN)); /* two rotations: expired */
    CU_ASSERT(token_check(&t, &a, tok2, TOKEN_LEN));
    dht_free(d);
}

static void test_storage(void)
{
    struct dht *d = owner();
    struct store *s = store_new(d, 4, 10);
    uint8_t k1[20] = {1}, k2[20] = {2};
    dht_sa out[8];
    CU_ASSERT_FATAL(s != NULL);
    for (unsigned i = 0; i < 6; i++) {
        dht_sa a = addr(i);
        CU_ASSERT_EQUAL(store_put(s, k1, &a, 1000 + i), 0);
    }
    CU_ASSERT_EQUAL(store_get(s, k1, -1, out, 8), 4); /* per-key bound */
    CU_ASSERT_EQUAL(store_get(s, k1, 1, out, 8), 0);  /* no IPv6 values */
    CU_ASSERT_EQUAL(store_get(s, k1, 0, out, 2), 2);  /* subset */
    dht_sa same = addr(5);
    CU_ASSERT_EQUAL(store_put(s, k1, &same, 5000), 0); /* refresh, not a duplicate */
    unsigned keys, vals;
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(vals, 4);
    for (unsigned i = 0; i < 6; i++) {
        dht_sa a = addr(100 + i);
        store_put(s, k2, &a, 2000);
    }
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(keys, 2);
    CU_ASSERT_EQUAL(vals, 8);
    uint8_t k3[20] = {3, 1}, k4[20] = {3, 2}, k5[20] = {3, 3};
    dht_sa a = addr(300), b = addr(301), c = addr(302);
    CU_ASSERT_EQUAL(store_put(s, k3, &a, 2000), 0);
    CU_ASSERT_EQUAL(store_put(s, k4, &a, 2000), -ENOSPC); /* its share: 10 values, 9 owners */
    CU_ASSERT_EQUAL(store_put(s, k4, &b, 2000), 0);
    CU_ASSERT_EQUAL(store_put(s, k5, &c, 2000), -ENOSPC); /* total bound, nobody bigger */
    store_expire(s, 1999);
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(keys, 4);
    CU_ASSERT_EQUAL(store_get(s, k1, -1, out, 8), 1); /* only the refreshed one is left */
    store_expire(s, 6000);
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(keys, 0);
    CU_ASSERT_EQUAL(vals, 0);
    store_free(s);
    dht_free(d);
}

static dht_sa addr_port(uint32_t ip, uint16_t port)
{
    dht_sa a;
    memset(&a, 0, sizeof(a));
    a.in.sin_family = AF_INET;
    a.in.sin_addr.s_addr = htonl(ip);
    a.in.sin_port = htons(port);
    return a;
}

/* Each address's share: one value per key per address (IP; IP and port on loopback),
 * at most max(total/16, total/owners) values, and in a full store the biggest owner
 * gives way to a smaller one, not the newcomer to the biggest. */
static void test_storage_share(void)
{
    struct dht *d = owner();
    struct store *s = store_new(d, 256, 64);
    uint8_t k[20] = {9};
    dht_sa out[8];
    unsigned keys, vals;
    CU_ASSERT_FATAL(s != NULL);
    dht_sa a1 = addr_port(0x14000001u, 80), a2 = addr_port(0x14000001u, 81);
    CU_ASSERT_EQUAL(store_put(s, k, &a1, 5000), 0);
    CU_ASSERT_EQUAL(store_put(s, k, &a2, 5000), 0); /* same address: replaces */
    CU_ASSERT_EQUAL(store_get(s, k, -1, out, 8), 1);
    CU_ASSERT(dht_addr_equal(&out[0], &a2));
    dht_sa l1 = addr_port(0x7f000001u, 80), l2 = addr_port(0x7f000001u, 81);
    CU_ASSERT_EQUAL(store_put(s, k, &l1, 5000), 0);
    CU_ASSERT_EQUAL(store_put(s, k, &l2, 5000), 0); /* loopback: the port tells them apart */
    CU_ASSERT_EQUAL(store_get(s, k, -1, out, 8), 3);
    store_expire(s, 6000);
    /* A lone address may fill the whole store... */
    int ok = 0;
    for (int i = 0; i < 100; i++) {
        k[1] = (uint8_t)i;
        ok += store_put(s, k, &a1, 10000) == 0;
    }
    CU_ASSERT_EQUAL(ok, 64);
    /* ...but every newcomer takes its place, one value at a time, */
    for (uint32_t i = 0; i < 20; i++) {
        dht_sa b = addr_port(0x15000000u + i, 80);
        k[1] = (uint8_t)(200 + i);
        CU_ASSERT_EQUAL(store_put(s, k, &b, 10000), 0);
    }
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(vals, 64);
    /* and now that 21 owners share it, the flooder may add nothing (its share is 4). */
    k[1] = 150;
    CU_ASSERT_EQUAL(store_put(s, k, &a1, 10000), -ENOSPC);
    /* A newcomer never pushes out someone no bigger than itself: fill the owners up to
     * equal shares, then a 65th value has nowhere to go. */
    for (uint32_t i = 0; i < 20; i++) {
        dht_sa b = addr_port(0x15000000u + i, 80);
        for (int j = 0; j < 3; j++) {
            k[1] = (uint8_t)(100 + j);
            k[2] = (uint8_t)i;
            store_put(s, k, &b, 10000);
        }
    }
    k[2] = 0;
    dht_sa big = addr_port(0x16000000u, 80);
    CU_ASSERT_EQUAL(store_put(s, k, &big, 10000), 0); /* a bigger owner still exists */
    store_expire(s, 20000);
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(vals, 0);
    CU_ASSERT_EQUAL(keys, 0);
    store_free(s);
    dht_free(d);
}

/* Random puts from many owners (some on loopback), expiries and evictions: the counts
 * stay consistent with what the keys hold, no owner has two values under one key, and
 * everything expires in the end. Run under ASan this also checks the owner table. */
static void test_storage_churn(void)
{
    struct dht *d = owner();
    struct store *s = store_new(d, 8, 500);
    uint64_t rng = 99, now = 1000;
    CU_ASSERT_FATAL(s != NULL);
    for (int op = 0; op < 20000; op++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t r = (uint32_t)(rng >> 33);
        uint8_t key[20] = {(uint8_t)(r % 200), 7};
        uint32_t who = (r >> 8) % 300;
        dht_sa a = who < 20 ? addr_port(0x7f000001u, (uint16_t)(1000 + who))
                            : addr_port(0x14000000u + who, (uint16_t)(6881 + (r >> 20) % 3));
        store_put(s, key, &a, now + 1 + (r >> 16) % 5000);
        if (op % 1000 == 999) {
            now += 700;
            store_expire(s, now);
            unsigned keys, vals, sum = 0;
            store_counts(s, &keys, &vals);
            for (int k = 0; k < 200; k++) {
                uint8_t kk[20] = {(uint8_t)k, 7};
                dht_sa out[16];
                int n = store_get(s, kk, -1, out, 16);
                for (int i = 0; i < n; i++)
                    for (int j = i + 1; j < n; j++)
                        CU_ASSERT(dht_addr_is_loopback(&out[i])
                                      ? !dht_addr_equal(&out[i], &out[j])
                                      : !dht_addr_ip_equal(&out[i], &out[j]));
                sum += (unsigned)n;
            }
            CU_ASSERT_EQUAL(sum, vals);
            CU_ASSERT(vals <= 500);
        }
    }
    store_expire(s, now + 10000);
    unsigned keys, vals;
    store_counts(s, &keys, &vals);
    CU_ASSERT_EQUAL(keys, 0);
    CU_ASSERT_EQUAL(vals, 0);
    store_free(s);
    dht_free(d);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"xor metric", test_xor},
        {"split only own bucket", test_split_only_own_bucket},
        {"replacement", test_replacement},
        {"status and closest", test_status_and_closest},
        {"tokens", test_tokens},
        {"storage", test_storage},
        {"storage share per address", test_storage_share},
        {"storage churn", test_storage_churn},
        {NULL, NULL},
    };
    return unit_run("dht_routing", cases);
}

/* test_dht_sybil.c - the defences against one party posing as many (dht/sybil.c):
 * CRC-32C, BEP 42 ids against the BEP's own examples, the addresses exempt from it,
 * which addresses count as one sender, subnets, and the diverse choice of K closest. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "dht/dht-int.h"

static dht_sa sa(const char *ip, uint16_t port)
{
    dht_sa a;
    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, ip, &a.in.sin_addr) == 1) {
        a.in.sin_family = AF_INET;
        a.in.sin_port = htons(port);
    } else {
        CU_ASSERT_FATAL(inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1);
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons(port);
    }
    return a;
}

static void unhex(const char *h, uint8_t *out)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        unsigned v = 0;
        CU_ASSERT_FATAL(sscanf(h + 2 * i, "%2x", &v) == 1);
        out[i] = (uint8_t)v;
    }
}

static void test_crc32c(void)
{
    /* the check value of CRC-32C (Castagnoli) */
    CU_ASSERT_EQUAL(dht_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
    CU_ASSERT_EQUAL(dht_crc32c((const uint8_t *)"", 0), 0u);
}

/* The examples of BEP 42: address, and an id that is valid for it. */
static const struct {
    const char *ip, *id;
} bep42_examples[] = {
    {"124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"},
    {"21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"},
    {"65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"},
    {"84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"},
    {"43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"},
};

static void test_bep42(void)
{
    for (size_t i = 0; i < sizeof(bep42_examples) / sizeof(bep42_examples[0]); i++) {
        uint8_t id[DHT_ID_LEN], made[DHT_ID_LEN], rnd[DHT_ID_LEN];
        dht_sa a = sa(bep42_examples[i].ip, 6881);
        unhex(bep42_examples[i].id, id);
        CU_ASSERT(dht_bep42_ok(id, &a));
        /* any of the first 21 bits wrong, or another r: refused */
        for (int bit = 0; bit < 21; bit++) {
            uint8_t bad[DHT_ID_LEN];
            memcpy(bad, id, DHT_ID_LEN);
            bad[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
            CU_ASSERT(!dht_bep42_ok(bad, &a));
        }
        uint8_t other_r[DHT_ID_LEN];
        memcpy(other_r, id, DHT_ID_LEN);
        other_r[19] ^= 1;
        CU_ASSERT(!dht_bep42_ok(other_r, &a));
        /* bits 21.. are free */
        uint8_t free_bits[DHT_ID_LEN];
        memcpy(free_bits, id, DHT_ID_LEN);
        free_bits[2] ^= 0x07;
        free_bits[10] ^= 0xff;
        CU_ASSERT(dht_bep42_ok(free_bits, &a));
        /* making an id from random bytes gives one with the same prefix */
        memset(rnd, 0xa5, sizeof(rnd));
        rnd[19] = id[19];
        dht_bep42_make(&a, rnd, made);
        CU_ASSERT(memcmp(made, id, 2) == 0 && (made[2] & 0xf8) == (id[2] & 0xf8));
        CU_ASSERT(memcmp(made + 3, rnd + 3, DHT_ID_LEN - 3) == 0);
        CU_ASSERT(dht_bep42_ok(made, &a));
    }
    /* IPv6: a made id is valid, a flipped prefix is not; the mask keeps 64 bits */
    uint8_t rnd[DHT_ID_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                               11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    uint8_t id[DHT_ID_LEN];
    dht_sa g = sa("2001:db8:1:2::1", 6881), g2 = sa("2001:db8:1:2::ffff", 1);
    dht_bep42_make(&g, rnd, id);
    CU_ASSERT(dht_bep42_ok(id, &g));
    CU_ASSERT(dht_bep42_ok(id, &g2)); /* same /64 */
    id[0] ^= 0x80;
    CU_ASSERT(!dht_bep42_ok(id, &g));
}

static void test_local_and_owner(void)
{
    static const struct {
        const char *ip;
        int local, loopback;
    } cases[] = {
        {"10.1.2.3", 1, 0},         {"172.16.0.1", 1, 0},
        {"172.31.255.1", 1, 0},     {"172.32.0.1", 0, 0},
        {"192.168.7.7", 1, 0},      {"169.254.1.1", 1, 0},
        {"127.0.0.1", 1, 1},        {"127.9.9.9", 1, 1},
        {"8.8.8.8", 0, 0},          {"::1", 1, 1},
        {"fe80::1", 1, 0},          {"fd00::5", 1, 0},
        {"2001:db8::1", 0, 0},      {"::ffff:10.0.0.1", 1, 0},
        {"::ffff:127.0.0.1", 1, 1}, {"::ffff:8.8.4.4", 0, 0},
    };
    uint8_t zero[DHT_ID_LEN] = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dht_sa a = sa(cases[i].ip, 1);
        CU_ASSERT_EQUAL(dht_addr_is_local(&a), cases[i].local);
        CU_ASSERT_EQUAL(dht_addr_is_loopback(&a), cases[i].loopback);
        /* an arbitrary id is fine on a local address only (as good as certain) */
        CU_ASSERT_EQUAL(dht_bep42_ok(zero, &a), cases[i].local);
        /* the port counts in the owner key on loopback only */
        uint8_t k1[DHT_OWNER_LEN], k2[DHT_OWNER_LEN];
        dht_sa b = sa(cases[i].ip, 2);
        dht_addr_owner(&a, k1);
        dht_addr_owner(&b, k2);
        CU_ASSERT_EQUAL(memcmp(k1, k2, DHT_OWNER_LEN) != 0, cases[i].loopback);
    }
    /* an IPv4 address and its mapped form are one sender */
    uint8_t k1[DHT_OWNER_LEN], k2[DHT_OWNER_LEN];
    dht_sa v4 = sa("8.8.4.4", 1), m = sa("::ffff:8.8.4.4", 1);
    dht_addr_owner(&v4, k1);
    dht_addr_owner(&m, k2);
    CU_ASSERT(memcmp(k1, k2, DHT_OWNER_LEN) == 0);
}

static void test_subnet(void)
{
    static const struct {
        const char *a, *b;
        int same;
    } cases[] = {
        {"10.0.0.1", "10.0.0.254", 1},
        {"10.0.0.1", "10.0.1.1", 0},
        {"10.0.0.1", "::ffff:10.0.0.9", 1},
        {"2001:db8:1:2::1", "2001:db8:1:2:ffff::1", 1},
        {"2001:db8:1:2::1", "2001:db8:1:3::1", 0},
        {"10.0.0.1", "2001:db8::1", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dht_sa a = sa(cases[i].a, 1), b = sa(cases[i].b, 2);
        CU_ASSERT_EQUAL(dht_addr_same_subnet(&a, &b), cases[i].same);
    }
}

/* Candidates closest first, as "s.h" (subnet 10.0.s.h), '*' = unverified id; the
 * expected choice of K = 8 as a string of 0/1. */
static void test_pick_diverse(void)
{
    static const struct {
        const char *cands, *want;
    } cases[] = {
        /* one subnet only: simply the 8 closest */
        {"1.1 1.2 1.3 1.4 1.5 1.6 1.7 1.8 1.9 1.10", "1111111100"},
        /* a cluster in front of diverse nodes: 2 of it, then the others */
        {"9.1 9.2 9.3 9.4 9.5 1.1 2.1 3.1 4.1 5.1 6.1 7.1", "110001111110"},
        /* not enough others: the cluster fills up, closest first */
        {"9.1 9.2 9.3 9.4 9.5 9.6 9.7 9.8 1.1 2.1", "1111110011"},
        /* unverified ids from many subnets: at most 2 while verified ones remain */
        {"1.1* 2.1* 3.1* 4.1* 5.1 6.1 7.1 8.1 10.1 11.1 12.1", "11001111110"},
        /* both rules at once */
        {"9.1 9.2* 9.3 1.1* 2.1* 3.1 4.1 5.1 6.1 7.1", "1101011111"},
        /* fewer than K: all */
        {"9.1 9.2 9.3", "111"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dht_sa addrs[16];
        const dht_sa *ap[16];
        uint8_t unv[16], chosen[16];
        int n = 0;
        const char *p = cases[i].cands;
        while (*p) {
            unsigned s = 0, h = 0;
            int used = 0;
            CU_ASSERT_FATAL(sscanf(p, "%u.%u%n", &s, &h, &used) == 2);
            char ip[32];
            snprintf(ip, sizeof(ip), "10.0.%u.%u", s, h);
            addrs[n] = sa(ip, 6881);
            ap[n] = &addrs[n];
            p += used;
            unv[n] = *p == '*';
            p += *p == '*';
            while (*p == ' ')
                p++;
            n++;
        }
        int k = dht_pick_diverse(ap, unv, n, DHT_K, chosen);
        char got[17];
        for (int j = 0; j < n; j++)
            got[j] = chosen[j] ? '1' : '0';
        got[n] = 0;
        if (strcmp(got, cases[i].want) != 0)
            printf("\ncase %zu: got %s want %s\n", i, got, cases[i].want);
        CU_ASSERT_STRING_EQUAL(got, cases[i].want);
        CU_ASSERT_EQUAL(k, n < DHT_K ? n : DHT_K);
    }
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"crc32c", test_crc32c},
        {"bep42 ids", test_bep42},
        {"local addresses and senders", test_local_and_owner},
        {"subnets", test_subnet},
        {"diverse closest", test_pick_diverse},
        {NULL, NULL},
    };
    return unit_run("dht_sybil", cases);
}

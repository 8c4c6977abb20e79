/* test_dht_util.c - the library's leaf helpers: the allocator's byte count, the
 * splitmix64 stream (reference values, byte output, reproducibility from the seed) and
 * SHA-1 of two concatenated parts. */
#include "aptdht-config.h"
#include <stdint.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "dht/node.h"

static int nosend(void *ud, const void *b, size_t l, const struct sockaddr *to, socklen_t tl)
{
    return 0;
}

static struct dht *node(uint64_t seed)
{
    struct dht_config c;
    struct dht *d = NULL;
    dht_config_init(&c);
    c.send = nosend;
    c.seed = seed;
    CU_ASSERT_FATAL(dht_new(&c, 0, &d) == 0);
    return d;
}

static size_t mem_bytes(const struct dht *d)
{
    struct dht_stats st;
    dht_get_stats(d, &st);
    return st.mem_bytes;
}

static void test_alloc_counts_bytes(void)
{
    struct dht *d = node(1);
    size_t before = mem_bytes(d);
    uint8_t *p = dht_alloc(d, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 0xab, 100); /* the whole block is usable */
    CU_ASSERT_EQUAL(mem_bytes(d), before + 100 + sizeof(size_t));
    void *q = dht_alloc(d, 0);
    CU_ASSERT_PTR_NOT_NULL(q);
    CU_ASSERT_EQUAL(mem_bytes(d), before + 100 + 2 * sizeof(size_t));
    dht_dealloc(d, p);
    dht_dealloc(d, q);
    dht_dealloc(d, NULL);
    CU_ASSERT_EQUAL(mem_bytes(d), before);
    dht_free(d);
}

static void test_rand_reference(void)
{
    /* splitmix64's published outputs for state 1234567 */
    static const uint64_t want[] = {6457827717110365317ULL, 3203168211198807973ULL,
                                    9817491932198370423ULL};
    struct dht *d = node(1);
    d->rng = 1234567;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CU_ASSERT_EQUAL(dht_rand64(d), want[i]);
    dht_free(d);
}

static void test_rand_bytes(void)
{
    static const size_t lens[] = {0, 1, 7, 8, 13, 20, 24};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        struct dht *a = node(42), *b = node(42);
        uint8_t got[32], want[32], guard[32];
        memset(got, 0x5a, sizeof(got));
        memset(guard, 0x5a, sizeof(guard));
        dht_rand_bytes(a, got, lens[k]);
        for (size_t i = 0; i < lens[k]; i += 8) {
            uint64_t r = dht_rand64(b); /* one draw per 8 bytes, the tail truncated */
            memcpy(want + i, &r, lens[k] - i < 8 ? lens[k] - i : 8);
        }
        CU_ASSERT_EQUAL(memcmp(got, want, lens[k]), 0);
        CU_ASSERT_EQUAL(memcmp(got + lens[k], guard, sizeof(got) - lens[k]), 0);
        CU_ASSERT_EQUAL(dht_rand64(a), dht_rand64(b)); /* both streams at the same place */
        dht_free(a);
        dht_free(b);
    }
}

static void test_seed_reproducible(void)
{
    struct dht *a = node(9), *b = node(9), *c = node(10);
    CU_ASSERT_EQUAL(memcmp(dht_id(a), dht_id(b), DHT_ID_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(dht_id(a), dht_id(c), DHT_ID_LEN), 0);
    uint64_t ra = dht_rand64(a);
    CU_ASSERT_EQUAL(ra, dht_rand64(b));
    CU_ASSERT_NOT_EQUAL(ra, dht_rand64(c));
    dht_free(a);
    dht_free(b);
    dht_free(c);
}

/* Secrets (token secrets) come from the stream only for a seeded node; an unseeded
 * node's are not the stream's next bytes, which anyone who saw its ids could compute. */
static void test_secret_bytes(void)
{
    struct dht *a = node(9), *b = node(9), *u = node(0);
    uint8_t x[16], y[16], s1[16], s2[16];
    dht_secret_bytes(a, x, sizeof x);
    dht_rand_bytes(b, y, sizeof y);
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0); /* seeded: reproducible */
    struct dht copy = *u;                        /* the unseeded node's stream, cloned */
    dht_secret_bytes(u, s1, sizeof s1);
    dht_rand_bytes(&copy, y, sizeof y);
    CU_ASSERT_NOT_EQUAL(memcmp(s1, y, sizeof s1), 0);
    dht_secret_bytes(u, s2, sizeof s2);
    CU_ASSERT_NOT_EQUAL(memcmp(s1, s2, sizeof s1), 0);
    dht_free(a);
    dht_free(b);
    dht_free(u);
}

static void hex20(const uint8_t *md, char *out)
{
    for (int i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_sha1(void)
{
    static const struct {
        const char *a, *b, *hex;
    } cases[] = {
        {"", "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"a", "bc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t md[20];
        char hex[41];
        CU_ASSERT_EQUAL_FATAL(dht_sha1(cases[i].a, strlen(cases[i].a), cases[i].b,
                                       strlen(cases[i].b), md), 0);
        hex20(md, hex);
        CU_ASSERT_STRING_EQUAL(hex, cases[i].hex);
    }
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"alloc counts bytes", test_alloc_counts_bytes},
        {"rand reference values", test_rand_reference},
        {"rand bytes", test_rand_bytes},
        {"seed reproducible", test_seed_reproducible},
        {"secrets from getrandom unless seeded", test_secret_bytes},
        {"sha1 of two parts", test_sha1},
        {NULL, NULL},
    };
    return unit_run("dht_util", cases);
}

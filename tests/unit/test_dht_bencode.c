/* test_dht_bencode.c - the bounded bencode decoder and the encoder: round trips, and
 * every malformed form refused (truncation, leading zeros, bad lengths, wrong types,
 * nesting beyond the limit, trailing bytes, too many tokens). */
#include "config.h"
#include <errno.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "dht/dht-int.h"

static int parse(const char *s, struct ben_tok *t, size_t max)
{
    return ben_parse((const uint8_t *)s, strlen(s), t, max);
}

static void test_valid(void)
{
    static const struct {
        const char *in;
        int tokens;
    } cases[] = {
        {"i0e", 1}, {"i-42e", 1}, {"i123456789012345678e", 1}, {"0:", 1}, {"4:spam", 1},
        {"le", 1}, {"de", 1}, {"l4:spami42ee", 3}, {"d3:cow3:moo4:spam4:eggse", 5},
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", 11},
    };
    struct ben_tok t[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = parse(cases[i].in, t, 32);
        CU_ASSERT_EQUAL(n, cases[i].tokens);
    }
    CU_ASSERT_EQUAL(parse("i-42e", t, 32), 1);
    CU_ASSERT_EQUAL(t[0].type, BEN_INT);
    CU_ASSERT_EQUAL(t[0].i, -42);
    CU_ASSERT_EQUAL(parse("d3:cow3:moo4:spam4:eggse", t, 32), 5);
    int v = ben_dict_get(t, 0, "spam");
    CU_ASSERT_EQUAL(v, 4);
    CU_ASSERT_EQUAL(t[v].len, 4);
    CU_ASSERT_EQUAL(memcmp(t[v].s, "eggs", 4), 0);
    CU_ASSERT_EQUAL(ben_dict_get(t, 0, "moo"), -1);
    CU_ASSERT_EQUAL(t[0].next, 5);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "", "i", "i12", "ie", "i-e", "i-0e", "i03e", "i00e", "i1x2e", "i1234567890123456789e",
        "01:a", "-1:a", "5:abc", "99999999999:a", "1a", ":", "l", "li1e", "d", "d1:a",
        "di1ei2ee", "d1:ae", "d1:a1:b1:ce", "x", "i1ei2e", "4:spamx", "le ", "l4:spam",
        "d3:cowi1e", "de\n",
    };
    struct ben_tok t[32];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = parse(bad[i], t, 32);
        if (n >= 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CU_ASSERT(n < 0);
    }
}

static void test_limits(void)
{
    struct ben_tok t[BEN_MAX_TOKENS];
    char deep[64], wide[4096];
    size_t n = 0;
    for (int i = 0; i < BEN_MAX_DEPTH; i++)
        deep[n++] = 'l';
    for (int i = 0; i < BEN_MAX_DEPTH; i++)
        deep[n++] = 'e';
    deep[n] = 0;
    CU_ASSERT(parse(deep, t, BEN_MAX_TOKENS) > 0);
    n = 0;
    for (int i = 0; i < BEN_MAX_DEPTH + 2; i++)
        deep[n++] = 'l';
    for (int i = 0; i < BEN_MAX_DEPTH + 2; i++)
        deep[n++] = 'e';
    deep[n] = 0;
    CU_ASSERT_EQUAL(parse(deep, t, BEN_MAX_TOKENS), -ELOOP);
    n = 0;
    wide[n++] = 'l';
    for (int i = 0; i < 600; i++) {
        memcpy(wide + n, "i1e", 3);
        n += 3;
    }
    wide[n++] = 'e';
    wide[n] = 0;
    CU_ASSERT_EQUAL(parse(wide, t, BEN_MAX_TOKENS), -E2BIG);
    CU_ASSERT_EQUAL(parse("l4:spami42ee", t, 2), -E2BIG);
}

static void test_encode_roundtrip(void)
{
    uint8_t buf[256];
    struct benc w;
    struct ben_tok t[32];
    benc_init(&w, buf, sizeof(buf));
    benc_dict(&w);
    benc_cstr(&w, "a");
    benc_list(&w);
    benc_int(&w, -7);
    benc_int(&w, 0);
    benc_int(&w, 9000000000LL);
    benc_str(&w, "\0x", 2);
    benc_end(&w);
    benc_cstr(&w, "b");
    benc_cstr(&w, "");
    benc_end(&w);
    int len = benc_finish(&w);
    static const char want[] = "d1:ali-7ei0ei9000000000e2:\0xe1:b0:e";
    CU_ASSERT_EQUAL(len, (int)sizeof(want) - 1);
    CU_ASSERT_EQUAL(memcmp(buf, want, sizeof(want) - 1), 0);
    int n = ben_parse(buf, (size_t)len, t, 32);
    CU_ASSERT_EQUAL(n, 9);
    int a = ben_dict_get(t, 0, "a");
    CU_ASSERT_EQUAL(t[a].type, BEN_LIST);
    CU_ASSERT_EQUAL(t[a].count, 4);
    CU_ASSERT_EQUAL(t[a + 3].i, 9000000000LL);
    /* Overflow is remembered, never written past the buffer. */
    benc_init(&w, buf, 5);
    benc_cstr(&w, "too long");
    benc_int(&w, 1);
    CU_ASSERT_EQUAL(benc_finish(&w), -ENOBUFS);
}

static void test_every_prefix_truncated(void)
{
    const char *msg = "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
                      "1:q9:find_node1:t2:aa1:y1:qe";
    struct ben_tok t[64];
    size_t len = strlen(msg);
    for (size_t i = 0; i < len; i++)
        CU_ASSERT(ben_parse((const uint8_t *)msg, i, t, 64) < 0);
    CU_ASSERT(ben_parse((const uint8_t *)msg, len, t, 64) > 0);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"valid", test_valid},
        {"malformed", test_malformed},
        {"limits", test_limits},
        {"encode round trip", test_encode_roundtrip},
        {"truncation", test_every_prefix_truncated},
        {NULL, NULL},
    };
    return unit_run("dht_bencode", cases);
}

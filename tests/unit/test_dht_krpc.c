/* test_dht_krpc.c - KRPC: the apt-dht protocol page's example packets byte for byte in
 * both directions, the mainline forms, and every error path a node answers
 * (203 malformed / bad token, 204 unknown method), observed through a node whose send
 * callback captures what it sends. */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "dht/dht-int.h"

#define T20 "12345678901234567890"
#define ID_A "abcdefghij0123456789"
#define ID_M "mnopqrstuvwxyz123456"
#define ID_0 "0123456789abcdefghij"
#define U8(s) ((const uint8_t *)(s))

static uint8_t out[DHT_MAX_PACKET];

static void expect(int len, const char *want)
{
    CU_ASSERT_EQUAL(len, (int)strlen(want));
    if (len == (int)strlen(want)) {
        CU_ASSERT_EQUAL(memcmp(out, want, (size_t)len), 0);
    } else {
        fprintf(stderr, "got %.*s\nwant %s\n", len > 0 ? len : 0, out, want);
    }
}

static void test_vectors_queries(void)
{
    struct krpc_query q = {.method = KM_PING, .t = U8(T20), .tlen = 20, .id = U8(ID_A),
                           .port = -1};
    expect(krpc_encode_query(DHT_DIALECT_APT, &q, out, sizeof(out)),
           "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t20:123456789012345678901:y1:qe");
    q.method = KM_JOIN;
    expect(krpc_encode_query(DHT_DIALECT_APT, &q, out, sizeof(out)),
           "d1:ad2:id20:abcdefghij0123456789e1:q4:join1:t20:123456789012345678901:y1:qe");
    q.method = KM_FIND_NODE;
    q.target = U8(ID_M);
    expect(krpc_encode_query(DHT_DIALECT_APT, &q, out, sizeof(out)),
           "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t20:"
           "123456789012345678901:y1:qe");
    q.method = KM_GET;
    expect(krpc_encode_query(DHT_DIALECT_APT, &q, out, sizeof(out)),
           "d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q9:get_value1:t20:"
           "123456789012345678901:y1:qe");
    /* Erratum: the page prints "1:q11:store_value", but "store_value" is 11 bytes; that
     * packet is not valid bencode. The encoder writes the corrected length. */
    q.method = KM_STORE;
    expect(krpc_encode_query(DHT_DIALECT_APT, &q, out, sizeof(out)),
           "d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q11:store_value1:t20:"
           "123456789012345678901:y1:qe");
}

static void test_vectors_replies(void)
{
    struct krpc_reply r = {.t = U8(T20), .tlen = 20, .id = U8(ID_M), .port = -1};
    expect(krpc_encode_reply(&r, out, sizeof(out)),
           "d1:rd2:id20:mnopqrstuvwxyz123456e1:t20:123456789012345678901:y1:re");
    r.ip_addr = "123.123.123.123";
    r.port = 12345;
    expect(krpc_encode_reply(&r, out, sizeof(out)),
           "d1:rd2:id20:mnopqrstuvwxyz1234567:ip_addr15:123.123.123.1234:porti12345ee1:t20:"
           "123456789012345678901:y1:re");
    struct krpc_reply f = {.t = U8(T20), .tlen = 20, .id = U8(ID_0), .port = -1,
                           .nodes = U8("def456..."), .nodes_len = 9};
    expect(krpc_encode_reply(&f, out, sizeof(out)),
           "d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t20:123456789012345678901:y1:re");
    static const uint8_t *const vals[] = {U8("axje.u"), U8("idhtnm")};
    static const size_t vlen[] = {6, 6};
    struct krpc_reply g = {.t = U8(T20), .tlen = 20, .id = U8(ID_A), .port = -1,
                           .values = vals, .value_len = vlen, .nvalues = 2, .has_values = 1};
    expect(krpc_encode_reply(&g, out, sizeof(out)),
           "d1:rd2:id20:abcdefghij01234567896:valuesl6:axje.u6:idhtnmee1:t20:"
           "123456789012345678901:y1:re");
    struct krpc_reply gn = {.t = U8(T20), .tlen = 20, .id = U8(ID_A), .port = -1,
                            .nodes = U8("def456..."), .nodes_len = 9};
    expect(krpc_encode_reply(&gn, out, sizeof(out)),
           "d1:rd2:id20:abcdefghij01234567895:nodes9:def456...e1:t20:123456789012345678901:y1:re");
    expect(krpc_encode_error(U8(T20), 20, 201, "A Generic Error Ocurred", out, sizeof(out)),
           "d1:eli201e23:A Generic Error Ocurrede1:t20:123456789012345678901:y1:ee");
}

static void parse_ok(const char *s, struct krpc_msg *m)
{
    int r = krpc_parse(U8(s), strlen(s), DHT_DIALECT_APT, m);
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(m->tlen, 20);
    CU_ASSERT(m->t && memcmp(m->t, T20, 20) == 0);
}

static void test_vectors_decode(void)
{
    static struct krpc_msg m;
    parse_ok("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t20:123456789012345678901:y1:qe", &m);
    CU_ASSERT_EQUAL(m.y, 'q');
    CU_ASSERT_EQUAL(m.method, KM_PING);
    CU_ASSERT_EQUAL(m.error, 0);
    CU_ASSERT(m.id && memcmp(m.id, ID_A, 20) == 0);
    parse_ok("d1:ad2:id20:abcdefghij0123456789e1:q4:join1:t20:123456789012345678901:y1:qe", &m);
    CU_ASSERT_EQUAL(m.method, KM_JOIN);
    parse_ok("d1:rd2:id20:mnopqrstuvwxyz1234567:ip_addr15:123.123.123.1234:porti12345ee1:t20:"
             "123456789012345678901:y1:re", &m);
    CU_ASSERT_EQUAL(m.y, 'r');
    CU_ASSERT_EQUAL(m.port, 12345);
    CU_ASSERT_EQUAL(m.ip_addr_len, 15);
    CU_ASSERT(memcmp(m.id, ID_M, 20) == 0);
    parse_ok("d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node"
             "1:t20:123456789012345678901:y1:qe", &m);
    CU_ASSERT_EQUAL(m.method, KM_FIND_NODE);
    CU_ASSERT(m.target && memcmp(m.target, ID_M, 20) == 0);
    parse_ok("d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t20:123456789012345678901:"
             "y1:re", &m);
    CU_ASSERT_EQUAL(m.nodes_len, 9);
    parse_ok("d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q9:get_value1:t20:"
             "123456789012345678901:y1:qe", &m);
    CU_ASSERT_EQUAL(m.method, KM_GET);
    CU_ASSERT_EQUAL(m.error, 0);
    parse_ok("d1:rd2:id20:abcdefghij01234567896:valuesl6:axje.u6:idhtnmee1:t20:"
             "123456789012345678901:y1:re", &m);
    CU_ASSERT_EQUAL(m.nvalues, 2);
    CU_ASSERT(m.nvalues == 2 && memcmp(m.values[1], "idhtnm", 6) == 0);
    const char *page = "d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q13:"
                       "store_value1:t20:123456789012345678901:y1:qe";
    CU_ASSERT_EQUAL(krpc_parse(U8(page), strlen(page), DHT_DIALECT_APT, &m), -EINVAL);
    parse_ok("d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q11:store_value"
             "1:t20:123456789012345678901:y1:qe", &m);
    CU_ASSERT_EQUAL(m.method, KM_STORE);
    CU_ASSERT_EQUAL(m.error, 203); /* the token extension: a store must echo a token */
    parse_ok("d1:eli201e23:A Generic Error Ocurrede1:t20:123456789012345678901:y1:ee", &m);
    CU_ASSERT_EQUAL(m.y, 'e');
    CU_ASSERT_EQUAL(m.err_code, 201);
    CU_ASSERT_EQUAL(m.err_len, 23);
}

static void test_bep5_forms(void)
{
    static struct krpc_msg m;
    struct krpc_query q = {.method = KM_STORE, .t = U8("aa"), .tlen = 2, .id = U8(ID_A),
                           .target = U8(ID_M), .port = 6881, .token = U8("tok"),
                           .token_len = 3, .implied_port = 1};
    const char *want = "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:"
                       "mnopqrstuvwxyz1234564:porti6881e5:token3:toke1:q13:announce_peer"
                       "1:t2:aa1:y1:qe";
    expect(krpc_encode_query(DHT_DIALECT_BEP5, &q, out, sizeof(out)), want);
    CU_ASSERT_EQUAL(krpc_parse(U8(want), strlen(want), DHT_DIALECT_BEP5, &m), 0);
    CU_ASSERT_EQUAL(m.method, KM_STORE);
    CU_ASSERT_EQUAL(m.implied_port, 1);
    CU_ASSERT_EQUAL(m.port, 6881);
    CU_ASSERT_EQUAL(m.token_len, 3);
    CU_ASSERT_EQUAL(m.error, 0);
    struct krpc_query g = {.method = KM_GET, .t = U8("aa"), .tlen = 2, .id = U8(ID_A),
                           .target = U8(ID_M), .port = -1, .want = KRPC_WANT4 | KRPC_WANT6,
                           .ro = 1};
    const char *gw = "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:wantl2:"
                     "n42:n6ee1:q9:get_peers2:roi1e1:t2:aa1:y1:qe";
    expect(krpc_encode_query(DHT_DIALECT_BEP5, &g, out, sizeof(out)), gw);
    CU_ASSERT_EQUAL(krpc_parse(U8(gw), strlen(gw), DHT_DIALECT_BEP5, &m), 0);
    CU_ASSERT_EQUAL(m.method, KM_GET);
    CU_ASSERT_EQUAL(m.want, KRPC_WANT4 | KRPC_WANT6);
    CU_ASSERT_EQUAL(m.ro, 1);
    /* apt-dht method names are unknown to a mainline node and the reverse. */
    CU_ASSERT_EQUAL(krpc_parse(U8(gw), strlen(gw), DHT_DIALECT_APT, &m), 0);
    CU_ASSERT_EQUAL(m.error, 204);
}

/* ---- error paths through a node ---- */

static uint8_t sent[DHT_MAX_PACKET];
static int sent_len = -1;

static int capture(void *ud, const void *buf, size_t len, const struct sockaddr *to,
                   socklen_t tolen)
{
    if (sent_len < 0) { /* the first datagram is the answer; later ones are lookups */
        memcpy(sent, buf, len);
        sent_len = (int)len;
    }
    return 0;
}

static struct dht *mknode(enum dht_dialect d)
{
    struct dht_config c;
    struct dht *n = NULL;
    dht_config_init(&c);
    c.dialect = d;
    c.send = capture;
    c.seed = 42;
    c.id = U8(ID_M);
    CU_ASSERT_EQUAL(dht_new(&c, 1000, &n), 0);
    return n;
}

static struct sockaddr_in peer(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(4242)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    return a;
}

/* Feeds s to the node; returns the KRPC error code of the answer, 0 for a reply, -1 for
 * silence. */
static int answer(struct dht *n, const char *s, size_t len, struct krpc_msg *m)
{
    struct sockaddr_in a = peer();
    sent_len = -1;
    dht_input(n, s, len, (struct sockaddr *)&a, sizeof(a), 2000);
    if (sent_len < 0)
        return -1;
    CU_ASSERT_EQUAL(krpc_parse(sent, (size_t)sent_len, DHT_DIALECT_APT, m), 0);
    return m->y == 'e' ? (int)m->err_code : 0;
}

static int ans(struct dht *n, const char *s, struct krpc_msg *m)
{
    return answer(n, s, strlen(s), m);
}

static void test_error_paths(void)
{
    static struct krpc_msg m;
    struct dht *n = mknode(DHT_DIALECT_APT);
    static const struct {
        const char *in;
        int code;
    } cases[] = {
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:xx1:y1:qe", 0},
        {"d1:ade1:q4:ping1:t2:xx1:y1:qe", 203},                             /* no id */
        {"d1:ad2:id3:abce1:q4:ping1:t2:xx1:y1:qe", 203},                    /* short id */
        {"d1:ad2:idi5ee1:q4:ping1:t2:xx1:y1:qe", 203},                      /* id not a string */
        {"d1:ai1e1:q4:ping1:t2:xx1:y1:qe", 203},                            /* a not a dict */
        {"d1:q4:ping1:t2:xx1:y1:qe", 203},                                  /* no a */
        {"d1:ad2:id20:abcdefghij0123456789e1:t2:xx1:y1:qe", 203},           /* no method */
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:fly!1:t2:xx1:y1:qe", 204},  /* unknown */
        {"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:xx1:y1:qe", 204},
        {"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xx1:y1:qe", 203}, /* no target */
        {"d1:ad2:id20:abcdefghij01234567893:key3:abce1:q9:get_value1:t2:xx1:y1:qe", 203},
        {"d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz123456e1:q11:store_value"
         "1:t2:xx1:y1:qe", 203},                                              /* no token */
        {"d1:ad2:id20:abcdefghij01234567893:key20:mnopqrstuvwxyz1234565:token8:AAAAAAAAe"
         "1:q11:store_value1:t2:xx1:y1:qe", 203},                            /* bad token */
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:xxe", 203},        /* no y */
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe", -1},          /* no t: silence */
        {"not bencode", -1},
        {"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:xx1:y1:qee", -1},  /* trailing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int code = ans(n, cases[i].in, &m);
        if (code != cases[i].code)
            fprintf(stderr, "case %zu: got %d want %d\n", i, code, cases[i].code);
        CU_ASSERT_EQUAL(code, cases[i].code);
        if (code >= 0)
            CU_ASSERT(m.tlen == 2 && memcmp(m.t, "xx", 2) == 0); /* transaction id echoed */
    }
    char big[DHT_MAX_PACKET + 10];
    memset(big, 'x', sizeof(big));
    struct sockaddr_in a = peer();
    CU_ASSERT_EQUAL(dht_input(n, big, sizeof(big), (struct sockaddr *)&a, sizeof(a), 3000),
                    -EMSGSIZE);
    dht_free(n);
}

static void test_join_and_store(void)
{
    static struct krpc_msg m;
    char q[256];
    struct dht *n = mknode(DHT_DIALECT_APT);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij0123456789e1:q4:join1:t2:jj1:y1:qe", &m), 0);
    CU_ASSERT(m.ip_addr_len == 9 && memcmp(m.ip_addr, "127.0.0.1", 9) == 0);
    CU_ASSERT_EQUAL(m.port, 4242);
    /* get_value gives a token; store_value with it stores source address + given port. */
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij01234567893:key20:KKKKKKKKKKKKKKKKKKKK"
                           "e1:q9:get_value1:t2:gg1:y1:qe", &m), 0);
    CU_ASSERT_EQUAL(m.token_len, TOKEN_LEN);
    CU_ASSERT_EQUAL(m.has_values, 0);
    uint8_t tok[TOKEN_LEN];
    memcpy(tok, m.token, TOKEN_LEN);
    int len = snprintf(q, sizeof(q), "d1:ad2:id20:abcdefghij01234567893:key20:KKKKKKKKKKKKKKKKKKKK"
                       "4:porti9977e5:token%d:", TOKEN_LEN);
    memcpy(q + len, tok, TOKEN_LEN);
    len += TOKEN_LEN;
    len += snprintf(q + len, sizeof(q) - (size_t)len, "e1:q11:store_value1:t2:ss1:y1:qe");
    CU_ASSERT_EQUAL(answer(n, q, (size_t)len, &m), 0);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij01234567893:key20:KKKKKKKKKKKKKKKKKKKK"
                           "e1:q9:get_value1:t2:gg1:y1:qe", &m), 0);
    CU_ASSERT_EQUAL(m.nvalues, 1);
    if (m.nvalues == 1) {
        static const uint8_t want[6] = {127, 0, 0, 1, 0x26, 0xf9}; /* 127.0.0.1:9977 */
        CU_ASSERT_EQUAL(m.value_len[0], 6);
        CU_ASSERT_EQUAL(memcmp(m.values[0], want, 6), 0);
    }
    struct dht_stats st;
    dht_get_stats(n, &st);
    CU_ASSERT_EQUAL(st.values_stored, 1);
    dht_free(n);
}

static void test_bep5_announce_errors(void)
{
    static struct krpc_msg m;
    struct dht *n = mknode(DHT_DIALECT_BEP5);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij01234567899:info_hash20:KKKKKKKKKKKKKKKKKKKK"
                           "5:token8:AAAAAAAAe1:q13:announce_peer1:t2:aa1:y1:qe", &m), 203);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij01234567899:info_hash20:KKKKKKKKKKKKKKKKKKKK"
                           "4:porti70000e5:token8:AAAAAAAAe1:q13:announce_peer1:t2:aa1:y1:qe",
                        &m), 203);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij01234567899:info_hash20:KKKKKKKKKKKKKKKKKKKK"
                           "e1:q9:get_peers1:t2:aa1:y1:qe", &m), 0);
    CU_ASSERT_EQUAL(m.token_len, TOKEN_LEN);
    CU_ASSERT_EQUAL(ans(n, "d1:ad2:id20:abcdefghij0123456789e1:q4:join1:t2:jj1:y1:qe", &m), 204);
    dht_free(n);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"protocol page queries", test_vectors_queries},
        {"protocol page replies", test_vectors_replies},
        {"protocol page decode", test_vectors_decode},
        {"mainline forms", test_bep5_forms},
        {"error paths", test_error_paths},
        {"join and store", test_join_and_store},
        {"mainline announce errors", test_bep5_announce_errors},
        {NULL, NULL},
    };
    return unit_run("dht_krpc", cases);
}

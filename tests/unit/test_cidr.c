/* test_cidr.c - address blocks: parsing (IPv4, IPv6, v4-mapped IPv6, prefixes from 0 to
 * the full length, host bits cleared, every kind of bad text refused) and matching of
 * client addresses from either socket family. Both are tables; a failing row prints
 * itself beside its CU_ASSERT line. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/cidr.h"

/* ---- parsing ------------------------------------------------------------------------- */

struct parse_case {
    const char *text;
    int rc;
    int family;
    int prefix;
    const char *addr; /* the stored network, as text */
};

static const struct parse_case parse_cases[] = {
    /* IPv4 */
    {"127.0.0.0/8", 0, AF_INET, 8, "127.0.0.0"},
    {"10.1.2.3/8", 0, AF_INET, 8, "10.0.0.0"},
    {"192.168.1.77", 0, AF_INET, 32, "192.168.1.77"},
    {"192.168.1.77/32", 0, AF_INET, 32, "192.168.1.77"},
    {"192.168.1.77/31", 0, AF_INET, 31, "192.168.1.76"},
    {"0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0"},
    {"1.2.3.4/0", 0, AF_INET, 0, "0.0.0.0"},
    {"255.255.255.255/1", 0, AF_INET, 1, "128.0.0.0"},
    {"172.31.255.255/12", 0, AF_INET, 12, "172.16.0.0"},
    /* IPv6 */
    {"::1/128", 0, AF_INET6, 128, "::1"},
    {"::1", 0, AF_INET6, 128, "::1"},
    {"::/0", 0, AF_INET6, 0, "::"},
    {"ffff::1/0", 0, AF_INET6, 0, "::"},
    {"2001:db8::3/127", 0, AF_INET6, 127, "2001:db8::2"},
    {"fe80::1234/10", 0, AF_INET6, 10, "fe80::"},
    {"fc00::/7", 0, AF_INET6, 7, "fc00::"},
    {"2001:db8:ffff::/33", 0, AF_INET6, 33, "2001:db8:8000::"},
    {"2001:DB8::1/64", 0, AF_INET6, 64, "2001:db8::"},
    /* v4-mapped IPv6 stays an IPv6 block */
    {"::ffff:10.0.0.0/104", 0, AF_INET6, 104, "::ffff:10.0.0.0"},
    {"::ffff:10.1.2.3", 0, AF_INET6, 128, "::ffff:10.1.2.3"},
    {"::ffff:0:0/96", 0, AF_INET6, 96, "::ffff:0.0.0.0"},
    /* bad text */
    {"", -EINVAL, 0, 0, NULL},
    {"/8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/33", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/-1", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/+8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/ 8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/08", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/00", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/8x", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/0x8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/4294967304", -EINVAL, 0, 0, NULL}, /* 2^32 + 8 */
    {"10.0.0.0/99999999999999999999999", -EINVAL, 0, 0, NULL},
    {"10.0.0.0//8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/8/8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0/8 ", -EINVAL, 0, 0, NULL},
    {" 10.0.0.0/8", -EINVAL, 0, 0, NULL},
    {"10.0.0/8", -EINVAL, 0, 0, NULL},
    {"010.0.0.0/8", -EINVAL, 0, 0, NULL},
    {"256.0.0.0/8", -EINVAL, 0, 0, NULL},
    {"10.0.0.0.0", -EINVAL, 0, 0, NULL},
    {"localhost", -EINVAL, 0, 0, NULL},
    {"::1/129", -EINVAL, 0, 0, NULL},
    {"::1/0128", -EINVAL, 0, 0, NULL},
    {"[::1]/128", -EINVAL, 0, 0, NULL},
    {"fe80::1%eth0/64", -EINVAL, 0, 0, NULL},
    {"1:2:3:4:5:6:7:8:9/64", -EINVAL, 0, 0, NULL},
    {":::/0", -EINVAL, 0, 0, NULL},
    {"0000:0000:0000:0000:0000:0000:0000:0000:0000/1", -EINVAL, 0, 0, NULL},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *row = &parse_cases[i];
        struct cidr c;
        char text[INET6_ADDRSTRLEN];
        memset(&c, 0x5a, sizeof(c));
        int rc = cidr_parse(row->text, &c);
        if (rc != row->rc)
            fprintf(stderr, "\n  cidr '%s': got %d\n", row->text, rc);
        CU_ASSERT_EQUAL(rc, row->rc);
        if (row->rc != 0) {
            CU_ASSERT_EQUAL(c.prefix, 0x5a); /* untouched on failure */
            continue;
        }
        if (rc != 0)
            continue;
        CU_ASSERT_EQUAL(c.family, row->family);
        CU_ASSERT_EQUAL(c.prefix, row->prefix);
        CU_ASSERT_PTR_NOT_NULL(inet_ntop(c.family, c.addr, text, sizeof(text)));
        CU_ASSERT_STRING_EQUAL(text, row->addr);
    }
    struct cidr c;
    CU_ASSERT_EQUAL(cidr_parse(NULL, &c), -EINVAL);
    CU_ASSERT_EQUAL(cidr_parse("10.0.0.0/8", NULL), -EINVAL);
    CU_ASSERT_EQUAL(cidr_parse(NULL, NULL), -EINVAL);
}

static void make_addr(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        CU_ASSERT_EQUAL(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        CU_ASSERT_EQUAL(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
}

/* ---- matching ------------------------------------------------------------------------ */

struct match_case {
    const char *blocks; /* comma-separated */
    const char *addr;   /* with ':' an AF_INET6 socket address, else AF_INET */
    bool match;
};

static const struct match_case match_cases[] = {
    /* IPv4 blocks, IPv4 clients */
    {"127.0.0.0/8", "127.0.0.1", true},
    {"127.0.0.0/8", "127.255.255.254", true},
    {"127.0.0.0/8", "128.0.0.1", false},
    {"127.0.0.0/8", "126.255.255.255", false},
    {"192.168.1.10/32", "192.168.1.10", true},
    {"192.168.1.10/32", "192.168.1.11", false},
    {"192.168.1.10/31", "192.168.1.11", true},
    {"192.168.1.10/31", "192.168.1.12", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"0.0.0.0/0", "203.0.113.9", true},
    {"0.0.0.0/0", "0.0.0.0", true},
    /* IPv4 blocks, v4-mapped clients on an IPv6 socket */
    {"127.0.0.0/8", "::ffff:127.0.0.1", true},
    {"127.0.0.0/8", "::ffff:10.0.0.1", false},
    {"192.168.1.10", "::ffff:192.168.1.10", true},
    {"0.0.0.0/0", "::ffff:203.0.113.9", true},
    /* IPv4 blocks never match plain IPv6 clients (nor v4-compatible ::a.b.c.d) */
    {"127.0.0.0/8", "::1", false},
    {"127.0.0.0/8", "::127.0.0.1", false},
    {"0.0.0.0/0", "2001:db8::1", false},
    /* IPv6 blocks */
    {"::1/128", "::1", true},
    {"::1/128", "::2", false},
    {"::1/128", "127.0.0.1", false},
    {"2001:db8::2/127", "2001:db8::3", true},
    {"2001:db8::2/127", "2001:db8::4", false},
    {"fe80::/10", "fe80::1", true},
    {"fe80::/10", "febf:ffff::1", true},
    {"fe80::/10", "fec0::1", false},
    {"fc00::/7", "fd12:3456::1", true},
    {"fc00::/7", "fe00::1", false},
    {"::/0", "2001:db8::1", true},
    {"::/0", "203.0.113.9", true}, /* as ::ffff:203.0.113.9 */
    /* v4-mapped IPv6 blocks match IPv4 clients from either socket family */
    {"::ffff:0:0/96", "10.1.1.1", true},
    {"::ffff:0:0/96", "::ffff:10.1.1.1", true},
    {"::ffff:0:0/96", "2001:db8::1", false},
    {"::ffff:10.0.0.0/104", "10.9.8.7", true},
    {"::ffff:10.0.0.0/104", "11.0.0.1", false},
    {"::ffff:192.168.1.10/128", "192.168.1.10", true},
    {"::ffff:192.168.1.10/128", "192.168.1.11", false},
    /* lists: any block */
    {"10.0.0.0/8,fc00::/7,::1/128", "::1", true},
    {"10.0.0.0/8,fc00::/7,::1/128", "::ffff:10.9.8.7", true},
    {"10.0.0.0/8,fc00::/7,::1/128", "10.9.8.7", true},
    {"10.0.0.0/8,fc00::/7,::1/128", "fd00::5", true},
    {"10.0.0.0/8,fc00::/7,::1/128", "11.0.0.1", false},
    {"", "127.0.0.1", false},
    {"", "::1", false},
};

static void test_match(void)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *row = &match_cases[i];
        struct cidr blocks[4];
        size_t n = 0;
        char list[128];
        snprintf(list, sizeof(list), "%s", row->blocks);
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n < 4;
             tok = strtok_r(NULL, ",", &save))
            CU_ASSERT_EQUAL(cidr_parse(tok, &blocks[n++]), 0);
        struct sockaddr_storage ss;
        make_addr(row->addr, &ss);
        bool got = cidr_match_any(blocks, n, (struct sockaddr *)&ss);
        if (got != row->match)
            fprintf(stderr, "\n  match %s in %s: got %d\n", row->addr, row->blocks, got);
        CU_ASSERT_EQUAL(got, row->match);
    }
}

/* Addresses of no IP family, no address, no blocks, and blocks no parse could make. */
static void test_match_edges(void)
{
    struct sockaddr_storage unix_ss, v4;
    struct cidr all6, all4, wide[2];
    memset(&unix_ss, 0, sizeof(unix_ss));
    unix_ss.ss_family = AF_UNIX;
    make_addr("10.0.0.1", &v4);
    CU_ASSERT_EQUAL(cidr_parse("::/0", &all6), 0);
    CU_ASSERT_EQUAL(cidr_parse("0.0.0.0/0", &all4), 0);
    CU_ASSERT_FALSE(cidr_match_any(&all6, 1, (struct sockaddr *)&unix_ss));
    CU_ASSERT_FALSE(cidr_match_any(&all4, 1, (struct sockaddr *)&unix_ss));
    CU_ASSERT_FALSE(cidr_match_any(&all6, 1, NULL));
    CU_ASSERT_FALSE(cidr_match_any(NULL, 0, (struct sockaddr *)&v4));
    CU_ASSERT_FALSE(cidr_match_any(NULL, 1, (struct sockaddr *)&v4));
    CU_ASSERT_TRUE(cidr_match_any(&all4, 1, (struct sockaddr *)&v4));
    /* Prefixes past the family's length are never trusted to match. */
    wide[0] = all4;
    wide[0].prefix = 33;
    wide[1] = all6;
    wide[1].prefix = 129;
    CU_ASSERT_FALSE(cidr_match_any(wide, 2, (struct sockaddr *)&v4));
}

/* Same address, any port; different addresses or families never match. */
static void test_same_host(void)
{
    struct sockaddr_storage a, b;
    make_addr("10.0.0.1", &a);
    make_addr("10.0.0.1", &b);
    ((struct sockaddr_in *)&b)->sin_port = htons(9977);
    CU_ASSERT_TRUE(sa_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
    make_addr("10.0.0.2", &b);
    CU_ASSERT_FALSE(sa_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
    make_addr("::ffff:10.0.0.1", &b);
    CU_ASSERT_FALSE(sa_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
    make_addr("fd00::1", &a);
    make_addr("fd00::1", &b);
    ((struct sockaddr_in6 *)&b)->sin6_port = htons(1);
    CU_ASSERT_TRUE(sa_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
    make_addr("fd00::2", &b);
    CU_ASSERT_FALSE(sa_same_host((struct sockaddr *)&a, (struct sockaddr *)&b));
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"cidr_parse", test_parse},
        {"cidr_match_any", test_match},
        {"cidr_match_any: edges", test_match_edges},
        {"sa_same_host: the address, not the port", test_same_host},
        {NULL, NULL},
    };
    return unit_run("cidr", cases);
}

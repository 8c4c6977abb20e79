/* test_conns.c - connection budgets: per address (v4-mapped v6 counts as its v4 host),
 * a quarter of the pool for addresses that are not apt clients, the whole pool, and the
 * counts going back down as connections close. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "apt-dht-proxy/conns.h"
#include "apt-dht-proxy/loop.h"
#include "tests/unit/unit.h"

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof ss);
    s->sin_family = AF_INET;
    inet_pton(AF_INET, a, &s->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    s->sin6_family = AF_INET6;
    inet_pton(AF_INET6, a, &s->sin6_addr);
    return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_per_address(void)
{
    struct loop *l;
    struct conns *c;
    struct conns_limits lim = {100, 3, 0};
    struct conn_slot *s[4];
    struct sockaddr_storage a = v4("10.0.0.1"), am = v6("::ffff:10.0.0.1"), b = v4("10.0.0.2");
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    CU_ASSERT_FATAL(conns_new(&c, l, &lim) == 0);
    for (int i = 0; i < 3; i++) {
        const struct sockaddr *from = i == 1 ? SA(am) : SA(a);
        CU_ASSERT_TRUE(conns_admit(c, from, true));
        s[i] = conns_opened(c, from, true, -1);
        CU_ASSERT_PTR_NOT_NULL(s[i]);
    }
    CU_ASSERT_EQUAL(conns_from(c, SA(a)), 3);
    CU_ASSERT_FALSE(conns_admit(c, SA(a), true));
    CU_ASSERT_FALSE(conns_admit(c, SA(am), true)); /* the same host */
    CU_ASSERT_TRUE(conns_admit(c, SA(b), true));
    conns_closed(c, s[1]);
    CU_ASSERT_TRUE(conns_admit(c, SA(a), true));
    conns_closed(c, s[0]);
    conns_closed(c, s[2]);
    conns_closed(c, NULL);
    CU_ASSERT_EQUAL(conns_from(c, SA(a)), 0);
    CU_ASSERT_EQUAL(conns_total(c), 0);
    conns_free(c);
    loop_free(l);
}

/* 8 connections in all: others (not apt clients) get 2, apt the rest. */
static void test_audiences(void)
{
    struct loop *l;
    struct conns *c;
    struct conns_limits lim = {8, 100, 0};
    struct conn_slot *s[8];
    char addr[32];
    CU_ASSERT_FATAL(loop_new(&l) == 0);
    CU_ASSERT_FATAL(conns_new(&c, l, &lim) == 0);
    struct sockaddr_storage p1 = v4("192.168.1.1"), p2 = v4("192.168.1.2"), p3 = v4("192.168.1.3");
    s[0] = conns_opened(c, SA(p1), false, -1);
    s[1] = conns_opened(c, SA(p2), false, -1);
    CU_ASSERT_FALSE(conns_admit(c, SA(p3), false)); /* the quarter is used */
    for (int i = 2; i < 8; i++) {
        snprintf(addr, sizeof addr, "127.0.0.%d", i);
        struct sockaddr_storage a = v4(addr);
        CU_ASSERT_TRUE(conns_admit(c, SA(a), true));
        s[i] = conns_opened(c, SA(a), true, -1);
    }
    struct sockaddr_storage one = v4("127.0.0.1");
    CU_ASSERT_FALSE(conns_admit(c, SA(one), true)); /* the pool is full */
    conns_closed(c, s[0]);
    CU_ASSERT_TRUE(conns_admit(c, SA(p3), false));
    for (int i = 1; i < 8; i++)
        conns_closed(c, s[i]);
    CU_ASSERT_EQUAL(conns_total(c), 0);
    conns_free(c);
    loop_free(l);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"per address, v4-mapped counted as v4", test_per_address},
        {"a quarter of the pool for others", test_audiences},
        {NULL, NULL},
    };
    return unit_run("conns", cases);
}

/* test_roster.c - the LAN roster the owner of a key is ranked among: every node heard is
 * kept (well past a routing-table bucket's 8), a node that moves or restarts is one
 * entry, the oldest gives way when it is full, and the live window holds. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/roster.h"

static struct sockaddr_in addr_of(unsigned i)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9977)};
    sa.sin_addr.s_addr = htonl(0x0a000000u + i); /* 10.0.0.i */
    return sa;
}

static void id_of(unsigned i, uint8_t id[20])
{
    memset(id, 0, 20);
    memcpy(id, &i, sizeof i);
}

static void heard(struct roster *r, unsigned id, unsigned addr, uint64_t now)
{
    uint8_t b[20];
    struct sockaddr_in sa = addr_of(addr);
    id_of(id, b);
    roster_heard(r, b, (struct sockaddr *)&sa, sizeof sa, now);
}

static bool has(const struct roster_entry *e, size_t n, unsigned id, unsigned addr)
{
    uint8_t b[20];
    struct sockaddr_in sa = addr_of(addr);
    id_of(id, b);
    for (size_t i = 0; i < n; i++)
        if (memcmp(e[i].id, b, 20) == 0 &&
            ((struct sockaddr_in *)&e[i].addr)->sin_addr.s_addr == sa.sin_addr.s_addr)
            return true;
    return false;
}

static struct roster_entry live[ROSTER_MAX];

static void test_keeps_every_node(void)
{
    struct roster *r = calloc(1, sizeof *r);
    for (unsigned i = 1; i <= 50; i++)
        heard(r, i, i, 1000);
    for (unsigned i = 1; i <= 50; i++)
        heard(r, i, i, 2000); /* heard again: no new entry */
    size_t n = roster_live(r, 2000, live, ROSTER_MAX);
    CU_ASSERT_EQUAL(n, 50);
    for (unsigned i = 1; i <= 50; i++)
        CU_ASSERT_TRUE(has(live, n, i, i));
    free(r);
}

static void test_moves_and_restarts(void)
{
    struct roster *r = calloc(1, sizeof *r);
    heard(r, 1, 1, 10);
    heard(r, 2, 2, 10);
    heard(r, 3, 3, 10);
    heard(r, 2, 7, 20); /* node 2 moved to .7 */
    heard(r, 9, 1, 30); /* .1 restarted with a new id */
    heard(r, 3, 2, 40); /* node 3 moved to .2 */
    heard(r, 8, 2, 50); /* .2 restarted: node 3 (there now) is gone */
    size_t n = roster_live(r, 50, live, ROSTER_MAX);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_TRUE(has(live, n, 2, 7));
    CU_ASSERT_TRUE(has(live, n, 9, 1));
    CU_ASSERT_TRUE(has(live, n, 8, 2));
    free(r);
}

static void test_full_and_window(void)
{
    struct roster *r = calloc(1, sizeof *r);
    for (unsigned i = 1; i <= ROSTER_MAX; i++)
        heard(r, i, i, 100 + i);
    heard(r, 5000, 5000, 10000); /* full: node 1, heard longest ago, gives way */
    size_t n = roster_live(r, 10000, live, ROSTER_MAX);
    CU_ASSERT_EQUAL(n, ROSTER_MAX);
    CU_ASSERT_FALSE(has(live, n, 1, 1));
    CU_ASSERT_TRUE(has(live, n, 2, 2));
    CU_ASSERT_TRUE(has(live, n, 5000, 5000));
    /* past the window only the late one is live */
    n = roster_live(r, 100 + ROSTER_MAX + ROSTER_LIVE_MS, live, ROSTER_MAX);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_TRUE(has(live, n, 5000, 5000));
    free(r);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"50 nodes heard, 50 kept (a bucket holds 8)", test_keeps_every_node},
        {"a node that moves or restarts is one entry", test_moves_and_restarts},
        {"full: the oldest gives way; the live window", test_full_and_window},
        {NULL, NULL},
    };
    return unit_run("roster", cases);
}

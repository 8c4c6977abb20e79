/* test_owner.c - the owner of a key among LAN nodes: every view of the same nodes ranks
 * them the same way, ourselves included, and a node leaving moves only its own keys. */
#include "aptdht-config.h"
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/owner.h"

#define N 5

static void make_nodes(struct p2p_node *nodes)
{
    memset(nodes, 0, N * sizeof *nodes);
    for (int i = 0; i < N; i++)
        memset(nodes[i].id, 0x11 * (i + 1), 20);
}

static void key_of(unsigned i, uint8_t key[20])
{
    memset(key, 0, 20);
    memcpy(key, &i, sizeof i);
}

/* The index (into nodes) of the key's owner as seen from node `self`. */
static int owner_from(const struct p2p_node *nodes, int self, const uint8_t key[20])
{
    struct p2p_node others[N], out[1];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (i != self)
            others[n++] = nodes[i];
    if (owner_rank(nodes[self].id, others, n, key, out, 1) == 0)
        return self;
    for (int i = 0; i < N; i++)
        if (memcmp(nodes[i].id, out[0].id, 20) == 0)
            return i;
    return -1;
}

static void test_views_agree(void)
{
    struct p2p_node nodes[N];
    int owned[N] = {0};
    make_nodes(nodes);
    for (unsigned k = 0; k < 200; k++) {
        uint8_t key[20];
        key_of(k, key);
        int o = owner_from(nodes, 0, key);
        CU_ASSERT_FATAL(o >= 0);
        for (int self = 1; self < N; self++)
            CU_ASSERT_EQUAL(owner_from(nodes, self, key), o);
        owned[o]++;
    }
    for (int i = 0; i < N; i++)
        CU_ASSERT(owned[i] > 10); /* spread: about 40 each */
}

static void test_rank_order_and_self(void)
{
    struct p2p_node nodes[N], out[N];
    uint8_t key[20];
    make_nodes(nodes);
    key_of(7, key);
    /* as node 0: the nodes above it, heaviest first; the owner sees none above itself */
    size_t k = owner_rank(nodes[0].id, nodes + 1, N - 1, key, out, N);
    CU_ASSERT(k <= N - 1);
    if (k > 0) {
        int o = owner_from(nodes, 0, key);
        CU_ASSERT(memcmp(out[0].id, nodes[o].id, 20) == 0);
        CU_ASSERT_EQUAL(owner_rank(nodes[o].id, nodes, N, key, out, N), 0); /* self ignored */
    }
    /* max bounds the copy */
    CU_ASSERT(owner_rank(nodes[0].id, nodes + 1, N - 1, key, out, 1) <= 1);
    CU_ASSERT_EQUAL(owner_rank(nodes[0].id, NULL, 0, key, out, N), 0); /* alone: ours */
}

static void test_leaving_moves_only_its_keys(void)
{
    struct p2p_node nodes[N], fewer[N - 1], out[1];
    uint8_t self[20];
    make_nodes(nodes);
    memset(self, 0xee, 20);
    memcpy(fewer, nodes, (N - 1) * sizeof *nodes); /* node N-1 leaves */
    for (unsigned k = 0; k < 200; k++) {
        uint8_t key[20];
        key_of(k, key);
        size_t a = owner_rank(self, nodes, N, key, out, 1);
        uint8_t before[20];
        memcpy(before, a ? out[0].id : self, 20);
        size_t b = owner_rank(self, fewer, N - 1, key, out, 1);
        const uint8_t *after = b ? out[0].id : self;
        if (memcmp(before, nodes[N - 1].id, 20) != 0)
            CU_ASSERT(memcmp(before, after, 20) == 0);
    }
}

static void test_runner_up(void)
{
    struct p2p_node nodes[N], out, top[1];
    uint8_t key[20];
    make_nodes(nodes);
    for (unsigned k = 0; k < 50; k++) {
        key_of(k, key);
        int o = owner_from(nodes, 0, key);
        /* the owner's runner-up is whom everyone else would rank first without it */
        CU_ASSERT_TRUE(owner_runner_up(nodes[o].id, nodes, N, key, &out));
        CU_ASSERT(memcmp(out.id, nodes[o].id, 20) != 0);
        struct p2p_node others[N];
        size_t m = 0;
        for (int i = 0; i < N; i++)
            if (i != o)
                others[m++] = nodes[i];
        size_t above = owner_rank(out.id, others, m, key, top, 1);
        CU_ASSERT_EQUAL(above, 0); /* nobody but the owner ranks above the runner-up */
    }
    CU_ASSERT_FALSE(owner_runner_up(nodes[0].id, nodes, 1, key, &out)); /* only ourselves */
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"every view of the same nodes names the same owner", test_views_agree},
        {"rank order; the owner sees nobody above it", test_rank_order_and_self},
        {"a node leaving moves only the keys it owned", test_leaving_moves_only_its_keys},
        {"the owner's runner-up ranks first among the others", test_runner_up},
        {NULL, NULL},
    };
    return unit_run("owner", cases);
}

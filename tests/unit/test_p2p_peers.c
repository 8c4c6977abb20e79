/* test_p2p_peers.c - the peer table's round trips and skips (p2p-peers.c), without a DHT.
 *
 * A bare struct p2p (no node, no sockets, no interfaces) is enough for the peer table:
 * the deadlines that RFC 6298 estimators give (never measured, measured fast, measured
 * slow, a peer unmeasured on a node that is measured), and that a peer which failed is
 * left out of a lookup's holders, and that hearing from it does not cut its back-off
 * short, while one that never failed is kept. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p-int.h"
#include "tests/unit/unit.h"

static struct p2p p;

static struct sockaddr_storage addr(uint8_t last, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof ss);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    v4->sin_addr.s_addr = htonl(0x0a000000u | last);
    return ss;
}

static void setup(void)
{
    memset(&p, 0, sizeof p);
    CU_ASSERT_EQUAL_FATAL(strmap_new(&p.peers), 0);
}

static void teardown(void)
{
    strmap_free(p.peers, free);
}

static void test_deadlines(void)
{
    static const struct {
        double srtt_us, rttvar_us;
        uint32_t want_ms;
    } rows[] = {
        {0, 0, 250},            /* never measured: the default */
        {1000, 500, 150},       /* a LAN: the floor */
        {50000, 10000, 180},    /* 2 x (50 + 4 x 10) ms */
        {600000, 300000, 2000}, /* slow: the ceiling */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct p2p_rtt r = {rows[i].srtt_us, rows[i].rttvar_us};
        CU_ASSERT_EQUAL(p2p_rtt_deadline_ms(&r), rows[i].want_ms);
    }
}

static void test_samples(void)
{
    setup();
    struct sockaddr_storage a = addr(1, 9977), b = addr(2, 9977);
    CU_ASSERT_EQUAL(p2p_peer_deadline_ms(&p, (struct sockaddr *)&a), 250);
    /* the first sample: SRTT = R, RTTVAR = R / 2 (RFC 6298 2.2) */
    p2p_peer_rtt(&p, (struct sockaddr *)&a, 0, 100000);
    CU_ASSERT_DOUBLE_EQUAL(p.rtt.srtt_us, 100000, 0.5);
    CU_ASSERT_DOUBLE_EQUAL(p.rtt.rttvar_us, 50000, 0.5);
    CU_ASSERT_EQUAL(p2p_peer_deadline_ms(&p, (struct sockaddr *)&a), 600); /* 2 x 300 ms */
    /* b was never measured: the node's figure */
    CU_ASSERT_EQUAL(p2p_peer_deadline_ms(&p, (struct sockaddr *)&b), 600);
    /* fast samples bring a's deadline down to the floor */
    for (int i = 0; i < 40; i++)
        p2p_peer_rtt(&p, (struct sockaddr *)&a, 200, 1000);
    CU_ASSERT_EQUAL(p2p_peer_deadline_ms(&p, (struct sockaddr *)&a), 150);
    /* the connect time stands in when no headers came */
    p2p_peer_rtt(&p, (struct sockaddr *)&b, 1000, 0);
    CU_ASSERT_EQUAL(p2p_peer_deadline_ms(&p, (struct sockaddr *)&b), 150);
    teardown();
}

static void test_failed_skipped(void)
{
    setup();
    struct sockaddr_storage in[2] = {addr(1, 9977), addr(2, 9977)}, out[2];
    p2p_peer_result(&p, (struct sockaddr *)&in[0], PEER_FAILED, 0, 250);
    CU_ASSERT_EQUAL(p2p_peers_order(&p, in, 2, false, out, 2), 1);
    CU_ASSERT_EQUAL(memcmp(&out[0], &in[1], sizeof out[0]), 0);
    /* heard from again: its back-off still runs */
    p2p_peer_heard(&p, (struct sockaddr *)&in[0]);
    CU_ASSERT_EQUAL(p2p_peers_order(&p, in, 2, false, out, 2), 1);
    /* the explain page sees every holder */
    CU_ASSERT_EQUAL(p2p_peers_order(&p, in, 2, true, out, 2), 2);
    /* a good transfer forgives */
    p2p_peer_result(&p, (struct sockaddr *)&in[0], PEER_OK, 1000, 10);
    CU_ASSERT_EQUAL(p2p_peers_order(&p, in, 2, false, out, 2), 2);
    teardown();
}

int main(void)
{
    log_setup(LOG_LEVEL_ERROR, 0);
    static const struct unit_case cases[] = {
        {"deadlines from the estimator", test_deadlines},
        {"samples: per peer, and the node's for the unmeasured", test_samples},
        {"a failed peer is skipped, heard or not, until forgiven", test_failed_skipped},
        {NULL, NULL},
    };
    return unit_run("p2p_peers", cases);
}

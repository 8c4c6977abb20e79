/* fuzz_krpc.c - libFuzzer target for the bencode/KRPC decoder and a node's input path.
 * The first byte picks the dialect; the rest is one datagram fed to the raw decoders and
 * then to two nodes (one per dialect, fixed clock, sends discarded), so every answer
 * path (errors, tokens, stores and the store's per-address shares, lookups' replies,
 * BEP 42 checks of public senders) runs on hostile input. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <string.h>
#include "dht/dht-int.h"

static int drop(void *ud, const void *buf, size_t len, const struct sockaddr *to, socklen_t tl)
{
    struct ben_tok t[BEN_MAX_TOKENS];
    /* Whatever a node sends must itself be valid bencode. */
    if (ben_parse(buf, len, t, BEN_MAX_TOKENS) < 0)
        __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dht *nodes[2];
    static uint64_t now = 1000;
    struct ben_tok t[BEN_MAX_TOKENS];
    static struct krpc_msg m;
    if (size < 1)
        return 0;
    enum dht_dialect d = data[0] & 1 ? DHT_DIALECT_BEP5 : DHT_DIALECT_APT;
    data++;
    size--;
    ben_parse(data, size, t, BEN_MAX_TOKENS);
    krpc_parse(data, size, d, &m);
    if (!nodes[0]) {
        for (int i = 0; i < 2; i++) {
            struct dht_config c;
            dht_config_init(&c);
            c.dialect = i ? DHT_DIALECT_BEP5 : DHT_DIALECT_APT;
            c.send = drop;
            c.seed = 77 + (uint64_t)i;
            c.rate_per_s = 1000000;
            if (dht_new(&c, now, &nodes[i]) < 0)
                return 0;
        }
    }
    /* 16 private senders and 16 public ones (BEP 42 applies to those) */
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(6881)};
    uint32_t pick = size ? data[0] : 0;
    from.sin_addr.s_addr = htonl((pick & 0x10 ? 0x14000001u : 0x0a000001u) + (pick & 0x0f));
    now += 10;
    uint64_t next;
    dht_input(nodes[d], data, size, (struct sockaddr *)&from, sizeof(from), now);
    /* the same bytes as a LAN discovery datagram (the other parser fed from the network) */
    dht_lan_input(nodes[d], data, size, (struct sockaddr *)&from, sizeof(from));
    dht_periodic(nodes[d], now, &next);
    return 0;
}

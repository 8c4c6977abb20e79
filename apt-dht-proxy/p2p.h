/* p2p.h - the daemon's side of the DHT: one dht/ node driven by the event loop (its UDP
 * sockets, its timer, LAN discovery by multicast, the saved routing table), the mapping
 * from a file's SHA-256 to its DHT key (the first 160 bits), and what the daemon has
 * learnt about peers: who served bad data (banned), who failed (backed off), who is near
 * (same subnet) and fast. */
#ifndef APT_DHT_P2P_H
#define APT_DHT_P2P_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/loop.h"

struct p2p;

struct p2p_stats {
    uint64_t lookups, lookups_with_peers;
    uint64_t peer_ok, peer_failed, peer_bad;
    unsigned banned;
    int dht_state;     /* enum dht_state */
    unsigned nodes;    /* good + questionable */
    unsigned announced;
};

/* Starts the node as cfg says (dht.mode must not be off). http_port is the port peers
 * fetch from; it is what gets announced. Returns 0 or a negative errno. */
int p2p_new(struct p2p **out, const struct config *cfg, struct loop *l, uint16_t http_port);
/* Saves the routing table and stops. Accepts NULL. */
void p2p_free(struct p2p *p);

/* Looks up peers for the file; cb may be called several times, with done true exactly
 * once, last. Peers are filtered (not ourselves, not banned or backed off) and ordered
 * (same subnet first, then fastest). Returns a handle > 0 or a negative errno. */
typedef void (*p2p_peers_fn)(void *ud, const struct sockaddr_storage *peers, size_t n, bool done);
int p2p_find(struct p2p *p, const uint8_t sha256[32], p2p_peers_fn cb, void *ud);
void p2p_cancel(struct p2p *p, int handle);

/* Announces / stops announcing that this host serves the file (no-op in resolve-only). */
void p2p_announce(struct p2p *p, const uint8_t sha256[32]);
void p2p_unannounce(struct p2p *p, const uint8_t sha256[32]);

/* What a transfer from a peer came to (from fetch.h's on_peer_result). */
void p2p_peer_result(struct p2p *p, const struct sockaddr *peer, enum peer_result r,
                     uint64_t bytes, uint64_t ms);

/* The peer URL of a file at a peer: http://ADDR:PORT/~/sha256/HEX. 0 or -ENAMETOOLONG. */
int p2p_peer_url(const struct sockaddr *peer, const uint8_t sha256[32], char *out, size_t n);

/* A reloaded config: the node applies nothing while running (every dht.* key shapes the
 * node itself) and logs when a change needs a restart. */
void p2p_reconfigure(struct p2p *p, const struct config *cfg);

void p2p_get_stats(const struct p2p *p, struct p2p_stats *st);

#endif

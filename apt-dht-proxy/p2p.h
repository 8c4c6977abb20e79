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

/* Upper bounds (seconds) of the lookup-duration histogram's buckets; the last bucket of
 * lookup_buckets counts the lookups slower than all of them. */
#define P2P_LOOKUP_BUCKETS 10
extern const double p2p_lookup_bounds_s[P2P_LOOKUP_BUCKETS];

struct p2p_stats {
    uint64_t lookups, lookups_with_peers;
    uint64_t peer_ok, peer_failed, peer_bad;
    unsigned banned;   /* peers banned now (bad data) */
    unsigned backed_off; /* peers not asked now after failing */
    int dht_state;     /* enum dht_state: 0 alone, 1 active, 2 no network, 3 faulted */
    unsigned nodes;    /* good + questionable */
    unsigned nodes_good, buckets;
    unsigned announced;
    unsigned keys_stored, values_stored; /* what other nodes stored on this one */
    uint8_t id[20];    /* this node's id */
    /* Finished lookups by duration (bucket i: at most p2p_lookup_bounds_s[i]). */
    uint64_t lookup_buckets[P2P_LOOKUP_BUCKETS + 1];
    uint64_t lookups_done, lookup_ms_sum;
};

/* What the daemon has learnt of one peer it fetched from (or tried to). */
struct p2p_peer_view {
    char label[64];           /* "ADDR:PORT" of its HTTP side */
    uint64_t last_ms;         /* loop_now_ms of its last transfer's end; 0 = never */
    double bytes_per_s;       /* measured speed (moving average); 0 = not measured */
    uint64_t files_ok, bytes_ok; /* files it served that verified, and their bytes */
    uint64_t failures, bad;   /* transfers that failed / served bad data */
    uint64_t banned_until_ms, backoff_until_ms; /* loop_now_ms; 0 or past = not */
    const char *why;          /* the last problem ("served data that failed
                                 verification", "refused, unreachable or too slow"), or "" */
};

/* A node of the DHT routing table. */
struct p2p_node {
    struct sockaddr_storage addr;
    uint8_t id[20];
    bool good;                /* answered recently; else questionable */
    uint64_t last_reply_ms;   /* loop_now_ms; 0 = never */
};

/* Starts the node as cfg says (dht.mode must not be off). http_port is the port peers
 * fetch from; it is what gets announced. Returns 0 or a negative errno. */
int p2p_new(struct p2p **out, const struct config *cfg, struct loop *l, uint16_t http_port);
/* Saves the routing table and stops. Accepts NULL. */
void p2p_free(struct p2p *p);

/* Looks up peers for the file; cb may be called several times, with done true exactly
 * once, last, and never before p2p_find returns. Peers are filtered (not ourselves, not banned or backed off) and ordered
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

/* A peer transfer's response headers came connect_us and headers_us (0 = unknown) after
 * it began: a round-trip sample for that peer and the node (fetch.h's on_peer_rtt). */
void p2p_peer_rtt(struct p2p *p, const struct sockaddr *peer, uint64_t connect_us,
                  uint64_t headers_us);
/* The deadline for a peer's response headers, ms: from its measured round trip, else
 * the node's, else a default (fetch.h's peer_deadline_ms). */
uint32_t p2p_peer_deadline_ms(struct p2p *p, const struct sockaddr *peer);
/* A packet came from sa: a peer that failed is asked again once its back-off is over. */
void p2p_peer_heard(struct p2p *p, const struct sockaddr *sa);

/* The peer URL of a file at a peer: http://ADDR:PORT/~/sha256/HEX. 0 or -ENAMETOOLONG. */
int p2p_peer_url(const struct sockaddr *peer, const uint8_t sha256[32], char *out, size_t n);

/* A reloaded config: the node applies nothing while running (every dht.* key shapes the
 * node itself) and logs when a change needs a restart. */
void p2p_reconfigure(struct p2p *p, const struct config *cfg);

void p2p_get_stats(const struct p2p *p, struct p2p_stats *st);

/* Up to max peers known (most recently heard first); returns how many were copied. */
size_t p2p_peers(struct p2p *p, struct p2p_peer_view *out, size_t max);
/* What is known of the peer at sa (its HTTP address); false if nothing. */
bool p2p_peer_view(struct p2p *p, const struct sockaddr *sa, struct p2p_peer_view *out);
/* Up to max nodes of the routing table (closest buckets first). */
size_t p2p_nodes(const struct p2p *p, struct p2p_node *out, size_t max);
/* The live LAN nodes: those heard from within the roster's window on one of this host's
 * subnets (roster.h), ourselves and nodes whose address failed excluded; up to max, and
 * this node's id in self_id. The owner of a key is ranked among them (owner.h). */
size_t p2p_lan_nodes(struct p2p *p, struct p2p_node *out, size_t max, uint8_t self_id[20]);
/* The node's dialect name ("apt-dht", "bep5"). */
const char *p2p_dialect(const struct p2p *p);
/* True if sa is this host's own HTTP address. */
bool p2p_is_self(const struct p2p *p, const struct sockaddr *sa);

/* Like p2p_find, for a person asking (the explain page): every holder is reported,
 * ourselves and banned peers included, in the DHT's order, and the lookup is not counted
 * in the statistics. Returns a handle > 0 or a negative errno. */
int p2p_find_all(struct p2p *p, const uint8_t sha256[32], p2p_peers_fn cb, void *ud);

#endif

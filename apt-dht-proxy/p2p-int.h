/* p2p-int.h - what p2p.c and p2p-peers.c share; nothing else includes it.
 *
 * The p2p module is two files along one seam:
 *   p2p.c        the DHT node: its UDP sockets, its timers, LAN discovery, the bootstrap
 *                providers, the saved table, lookups and announcements - everything that
 *                talks to dht/ (it is the only file that includes dht/dht.h);
 *   p2p-peers.c  what the daemon knows of addresses and peers, with no DHT in it: this
 *                host's interfaces, which address is ourselves or near, and the peer
 *                table (bans, back-off, speed) that filters and orders a lookup's peers.
 * struct p2p is the one context of both; each file touches only its own fields. */
#ifndef APT_DHT_P2P_INT_H
#define APT_DHT_P2P_INT_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/roster.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/strmap.h"

#define MAX_IFS 32
/* Most peers one lookup result passes on (p2p_peers_order). */
#define P2P_ORDER_MAX 64

struct dht;
struct lookup_ctx;

/* A smoothed round trip (RFC 6298), microseconds; srtt_us 0 = no sample yet. */
struct p2p_rtt {
    double srtt_us, rttvar_us;
};

/* One address of this host, as getifaddrs gave it (p2p-peers.c). */
struct local_if {
    sa_family_t family;
    uint8_t addr[16], mask[16];
    unsigned ifindex;
    bool multicast;
};

/* The settings a node is built with; none of them can change under a running node. */
struct p2p_conf {
    int mode;
    uint16_t port;
    bool lan_discovery, resolve_only;
    uint32_t ttl_s;
    size_t n_bootstrap;
};

struct p2p {
    struct loop *loop;
    struct dht *dht;
    int fd4, fd6, lan4, lan6; /* the node's sockets; LAN discovery's; -1 = none */
    uint16_t http_port, udp_port;
    bool resolve_only;
    struct p2p_conf conf; /* the dht.* settings it started with (p2p_reconfigure) */
    struct loop_timer timer, lan_timer, save_timer, ifs_timer;
    uint64_t lan_interval_ms;
    uint64_t lan_last_ms; /* when we last answered another node's announcement */
    char state_path[PATH_MAX];
    struct local_if ifs[MAX_IFS];
    size_t n_ifs;
    struct strmap *peers; /* label -> struct peer_info (p2p-peers.c) */
    /* bootstrap providers' sources: the static list (resolved once, at start) and the
     * nodes of the table saved at the last shutdown */
    struct sockaddr_storage boot[32], saved[32];
    socklen_t bootlen[32], savedlen[32];
    int nboot, nsaved;
    struct lookup_ctx *lookups;
    struct p2p_stats st;
    struct p2p_rtt rtt; /* every peer's response times together (p2p-peers.c) */
    struct roster roster; /* the LAN's nodes as heard, for owner ranking (roster.h) */
};

/* Rereads this host's interface addresses into p->ifs (empty if getifaddrs fails). */
void p2p_ifs_refresh(struct p2p *p);

/* Copies up to max (at most P2P_ORDER_MAX) of the n_in peers of a lookup result into out
 * and returns how many. Unless all, ourselves and peers banned or backed off are left
 * out and the rest ordered: same subnet first, then the fastest seen. With all, every
 * peer is kept, in the given order. */
size_t p2p_peers_order(struct p2p *p, const struct sockaddr_storage *in, size_t n_in, bool all,
                       struct sockaddr_storage *out, size_t max);

/* A peer transfer's deadline for its response headers from an estimator (see
 * p2p-peers.c), ms. */
uint32_t p2p_rtt_deadline_ms(const struct p2p_rtt *r);
/* True if sa is on one of this host's subnets. */
bool p2p_peers_near(const struct p2p *p, const struct sockaddr *sa);

/* Counts the peers banned now and those backed off now (a banned peer counts once). */
void p2p_peers_count(const struct p2p *p, unsigned *banned, unsigned *backed_off);

#endif

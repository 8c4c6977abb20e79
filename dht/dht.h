/* dht.h - the apt-dht Kademlia DHT library: the one public header.
 *
 * Model: a node is an object (struct dht) that owns no socket and no clock. The caller
 * binds UDP sockets, hands every received datagram to dht_input() with the sender's
 * address and the current time, calls dht_periodic() when the deadline it returned has
 * passed, and sends the datagrams the library produces through the send callback given
 * in the config. Results (peers found, announce outcomes, state changes) arrive through
 * callbacks, always from inside dht_input()/dht_periodic() or the call that started the
 * work. There are no globals: any number of nodes may live in one process.
 *
 * Two wire dialects: DHT_DIALECT_APT (the apt-dht KRPC protocol: ping, join, find_node,
 * get_value, store_value; get_value answers carry a token that store_value echoes) and
 * DHT_DIALECT_BEP5 (BitTorrent mainline: ping, find_node, get_peers, announce_peer,
 * BEP 32 nodes6/want, BEP 43 ro, BEP 42 id checks and "ip"). IPv4 and IPv6 are handled
 * throughout.
 *
 * Against abuse: queries are rate limited per sender address, answers are at most 3
 * times the size of their query, each address gets a bounded share of the values
 * stored, and the K closest nodes a lookup trusts come from diverse subnets (and, in
 * bep5, have ids that BEP 42 ties to their addresses) whenever such nodes are known.
 *
 * Conventions: functions return 0 (or a count) on success and a negative errno on
 * failure. Times are milliseconds of a monotonic clock chosen by the caller
 * (uint64_t now_ms). Keys and node ids are 20 bytes. Functions that send but take no
 * now_ms use the time of the most recent dht_input()/dht_periodic() call.
 */
#ifndef APT_DHT_DHT_H
#define APT_DHT_DHT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define DHT_ID_LEN 20
#define DHT_K 8                 /* bucket size and lookup width */
#define DHT_MAX_PACKET 1500     /* datagrams longer than this are dropped, never sent */

/* LAN discovery: a BEP 14-style announcement sent to an administratively scoped
 * multicast group. The caller owns the multicast sockets: it joins the group, sends what
 * dht_lan_build() produces to DHT_LAN_GROUP4/6 on DHT_LAN_PORT every
 * DHT_LAN_INTERVAL_MS or so, and passes datagrams received on that port to
 * dht_lan_input(). The port differs from BEP 14's 6771 so BitTorrent clients on the LAN
 * are not bothered; the service id (SHA-1 of "apt-dht:<dialect>") keeps dialects apart. */
#define DHT_LAN_GROUP4 "239.192.152.143"
#define DHT_LAN_GROUP6 "ff15::efc0:988f"
#define DHT_LAN_PORT 6772
#define DHT_LAN_INTERVAL_MS (5 * 60 * 1000)

enum dht_dialect {
    DHT_DIALECT_APT = 0, /* the apt-dht protocol page */
    DHT_DIALECT_BEP5 = 1 /* BitTorrent mainline */
};

enum dht_state {
    DHT_ALONE = 0,      /* no node answered yet; bootstraps again with back-off */
    DHT_ACTIVE = 1,     /* at least one node in the table answers */
    DHT_NO_NETWORK = 2, /* sends fail with a network error, or nobody answered for 5 min */
    DHT_FAULTED = 3     /* an unrecoverable error (send callback gave EBADF, ENOMEM...) */
};

#define DHT_FAMILY_V4 1
#define DHT_FAMILY_V6 2

struct dht;

/* Sends one datagram. Returns 0 or a negative errno (the library keeps going; network
 * errors move the node to DHT_NO_NETWORK, -EBADF/-ENOTSOCK/-ENOMEM to DHT_FAULTED).
 * buf is only valid during the call. */
typedef int (*dht_send_fn)(void *ud, const void *buf, size_t len, const struct sockaddr *to,
                           socklen_t tolen);
/* Called when dht_state() changes. */
typedef void (*dht_state_fn)(void *ud, enum dht_state old_state, enum dht_state new_state);
/* Called for every node heard from (resolve-only nodes excepted), inside dht_input:
 * replied is 1 when it answered one of our queries, 0 when it sent us one. It must not
 * call back into the node. */
typedef void (*dht_node_fn)(void *ud, const uint8_t id[DHT_ID_LEN], const struct sockaddr *sa,
                            socklen_t salen, int replied);

struct dht_config {
    enum dht_dialect dialect;
    const uint8_t *id;            /* 20 bytes to use as node id, or NULL for a random one */
    uint16_t port;                /* default port for announcements (host order) */
    int families;                 /* DHT_FAMILY_* the caller can send on; 0 = both */
    int resolve_only;             /* answer no query, store nothing for others, BEP 43 ro;
                                     lookups and announcements still work */
    unsigned alpha;               /* parallel queries per lookup, 1..16; 0 = 3 */
    uint32_t soft_timeout_ms;     /* the longest deadline of a query; 0 = 800. A query's
                                     deadline is its address's measured round trip
                                     (SRTT + 4 RTTVAR, RFC 6298), at least 25 ms; not
                                     answered by then, the lookup widens past it */
    uint32_t hard_timeout_ms;     /* query not answered by then: failed; 0 = 4000 */
    uint32_t value_ttl_s;         /* lifetime of stored values; 0 = 1800 bep5, 7200 apt-dht */
    uint32_t max_values_per_key;  /* 0 = 256 */
    uint32_t max_values_total;    /* 0 = 16384; one announcing address holds at most one
                                     value per key and max(1/16, an equal split among the
                                     addresses present) of them; when full, the address
                                     holding most gives way to a smaller one */
    uint32_t rate_per_s;          /* queries per second per sender IP address, whatever
                                     its port (on loopback: per IP and port); 0 = 20 */
    uint32_t blacklist_ms;        /* how long a sender over the rate is ignored; 0 = 60000 */
    uint64_t seed;                /* PRNG seed (tests); 0 = from getrandom() */
    dht_send_fn send;             /* required */
    dht_state_fn on_state;        /* optional */
    dht_node_fn on_node;          /* optional */
    void *ud;                     /* passed to send, on_state and on_node */
};

/* Fills cfg with the defaults above (dialect APT, everything 0/NULL). */
void dht_config_init(struct dht_config *cfg);

/* Creates a node. cfg is copied (cfg->id too). *out is set on success.
 * Returns 0, -EINVAL (no send callback, bad alpha/dialect), -ENOMEM, or the error of
 * getrandom() when no seed is given. */
int dht_new(const struct dht_config *cfg, uint64_t now_ms, struct dht **out);
/* Frees a node; pending lookups end without a final callback. Accepts NULL. */
void dht_free(struct dht *dht);

/* Hands one received datagram to the node. Replies are sent from inside this call.
 * Returns 0 when the datagram was used; -EMSGSIZE (over DHT_MAX_PACKET), -EINVAL
 * (not KRPC, or answered with an error), -EACCES (sender rate limited or blacklisted),
 * -EAFNOSUPPORT (not AF_INET/AF_INET6); these are informative only. */
int dht_input(struct dht *dht, const void *buf, size_t len, const struct sockaddr *from,
              socklen_t fromlen, uint64_t now_ms);

/* Does timed work: query timeouts, lookups, bootstrap, bucket refresh, storage expiry,
 * re-announcements, token rotation. *next_ms (absolute, same clock) is when it wants
 * to be called again at the latest. Returns 0, or -EIO when the node is FAULTED. */
int dht_periodic(struct dht *dht, uint64_t now_ms, uint64_t *next_ms);

/* Adds a bootstrap address (numeric; resolving names is the caller's job). While the
 * node is ALONE it queries every bootstrap address, backing off from 1 s to 5 min.
 * At most 32 are kept: when full, the oldest is replaced.
 * Returns 0, -EAFNOSUPPORT, -EEXIST (already known). */
int dht_add_bootstrap(struct dht *dht, const struct sockaddr *sa, socklen_t salen);

/* Bootstrap providers: the one interface behind which every source of nodes to join
 * through sits (a static list, the table saved at the last shutdown, LAN discovery, a
 * directory service...). While the node is ALONE or has NO_NETWORK, each re-bootstrap
 * round of dht_periodic (at once, then backing off from 1 s to 5 min) calls every
 * provider's provide(); a provider answers with dht_add_bootstrap, at once or later
 * when its own I/O completes (a LAN announcement is answered by the other nodes), or with
 * dht_load. provide() runs inside dht_periodic and must not call dht_free. */
#define DHT_MAX_PROVIDERS 8
struct dht_bootstrap_provider {
    const char *name;                           /* for dht_dump */
    void (*provide)(struct dht *dht, void *ctx);
    void *ctx;
};

/* Adds a provider (copied). Returns 0, -EINVAL (no provide), -ENOSPC (too many). */
int dht_add_provider(struct dht *dht, const struct dht_bootstrap_provider *p);

/* Pings an address. cb gets the responder's id, or id == NULL after the hard timeout.
 * Returns 0, -EAFNOSUPPORT, -EBUSY (too many queries in flight). */
typedef void (*dht_ping_fn)(void *ud, const struct sockaddr *from, const uint8_t *id);
int dht_ping(struct dht *dht, const struct sockaddr *sa, socklen_t salen, dht_ping_fn cb,
             void *ud);

/* What a lookup callback receives. peers[0..n) are the peers new since the previous
 * call (valid during the callback only). done is 1 exactly once, in the last call;
 * queries and rounds (longest chain of referrals) are final then. */
struct dht_lookup_result {
    const uint8_t *key;
    const struct sockaddr_storage *peers;
    size_t n;
    int done;
    unsigned queries;
    unsigned rounds;
};
typedef void (*dht_lookup_fn)(void *ud, const struct dht_lookup_result *res);

/* Starts an iterative lookup of the peers stored under key. A lookup for a key that is
 * already being looked up joins it (receives the peers found so far at the next
 * callback). Returns a handle > 0 for dht_cancel(), or -EINVAL, -ENOMEM, -ENOSPC (too
 * many lookups, at most 1024). With an empty routing table the lookup ends at the next
 * dht_periodic() with no peers. */
int dht_lookup(struct dht *dht, const uint8_t key[DHT_ID_LEN], dht_lookup_fn cb, void *ud);
/* Cancels a lookup handle; its callback is not called again. Safe from a callback.
 * Returns 0 or -ENOENT (unknown or finished handle). */
int dht_cancel(struct dht *dht, int handle);

/* Announces that this host serves key on port (0 = cfg.port; bep5: 0 with cfg.port 0
 * sends implied_port). The node looks up the key, stores itself on the K closest nodes
 * that answered with a token, and does it again every TTL/2 until dht_unannounce().
 * cb (optional) gets the number of nodes that confirmed the store after each round.
 * Returns 0 (also when already announced: port and cb are updated), -ENOMEM, -ENOSPC
 * (more than 65536 keys), -EPERM (resolve-only node). */
typedef void (*dht_announce_fn)(void *ud, const uint8_t key[DHT_ID_LEN], int stored);
int dht_announce(struct dht *dht, const uint8_t key[DHT_ID_LEN], uint16_t port,
                 dht_announce_fn cb, void *ud);
/* Stops re-announcing key. Returns 0 or -ENOENT. */
int dht_unannounce(struct dht *dht, const uint8_t key[DHT_ID_LEN]);

enum dht_state dht_state(const struct dht *dht);
/* The node id (20 bytes, owned by the node). */
const uint8_t *dht_id(const struct dht *dht);
/* Our address as another node saw it (apt-dht join answers, bep5 answers' BEP 42 "ip").
 * Returns 0 or -ENOENT. */
int dht_external_addr(const struct dht *dht, struct sockaddr_storage *out);

struct dht_stats {
    uint64_t queries_sent, replies_received, errors_received, timeouts;
    uint64_t queries_received, replies_sent, errors_sent;
    uint64_t packets_dropped;   /* oversize, malformed, unsolicited, rate limited */
    uint64_t bytes_in, bytes_out;
    unsigned nodes_good, nodes_questionable, buckets; /* both families */
    unsigned values_stored, keys_stored;
    unsigned lookups_active, announces;
    size_t mem_bytes;           /* heap held by this node */
};
void dht_get_stats(const struct dht *dht, struct dht_stats *st);

/* Whether the node holds the address for dead: its queries to it missed their
 * deadlines (twice in a row, each deadline the address's measured round trip, RFC 6298
 * style, clamped to 25 ms..soft timeout) and no datagram has come from it since.
 * Lookups do not ask such an address. Returns 1, 0, or -EAFNOSUPPORT. */
int dht_addr_failed(const struct dht *dht, const struct sockaddr *sa, socklen_t salen);

/* A routing-table entry as reported by dht_get_nodes(). */
struct dht_node_info {
    uint8_t id[DHT_ID_LEN];
    struct sockaddr_storage addr;
    int good;                   /* 1 good, 0 questionable */
    uint64_t last_reply_ms;     /* 0 = never */
};
/* Copies up to max table entries (closest buckets first). Returns the count copied. */
int dht_get_nodes(const struct dht *dht, struct dht_node_info *out, size_t max);

/* State file: a small text file ("apt-dht-state 1", the id, one line per node) so the
 * node id and the routing table survive restarts. dht_save_buf writes into buf and
 * returns the length, or -ENOBUFS. dht_load_buf replaces the node id with the saved one
 * (only while the routing table is empty: else -EBUSY), inserts the saved nodes as
 * questionable and pings them. Returns the number of nodes read or -EINVAL.
 * dht_save writes atomically (temporary file + rename); dht_load reads a file.
 * Both return the same values plus the negative errno of the file operation. */
int dht_save_buf(const struct dht *dht, char *buf, size_t cap);
int dht_load_buf(struct dht *dht, const char *buf, size_t len);
int dht_save(const struct dht *dht, const char *path);
int dht_load(struct dht *dht, const char *path);

/* Builds a LAN announcement for the given family (DHT_FAMILY_V4 or _V6) into buf.
 * Returns its length, -ENOBUFS or -EINVAL. */
int dht_lan_build(const struct dht *dht, int family, char *buf, size_t cap);
/* Handles a datagram received on the LAN discovery port: when it is an announcement of
 * our service from another node, that node (sender address, announced port) is pinged
 * and becomes a bootstrap candidate. Returns 1 (used), 0 (ours or another service),
 * -EINVAL (malformed). */
int dht_lan_input(struct dht *dht, const void *buf, size_t len, const struct sockaddr *from,
                  socklen_t fromlen);

/* Writes a readable dump of the node (state, id, buckets, storage) to f. Returns 0. */
int dht_dump(const struct dht *dht, FILE *f);

/* Version string of the library, "MAJOR.MINOR.PATCH". */
const char *dht_version(void);

#endif

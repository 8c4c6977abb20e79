/* node.h - the node object shared by node.c (input, periodic work, lifecycle),
 * lookup.c (iterative lookups and announcements) and state.c (state file, LAN
 * discovery, dump). Private to the library. */
#ifndef APT_DHT_NODE_H
#define APT_DHT_NODE_H

#include "dht/dht-int.h"

#define PEND_MAX 4096           /* queries in flight per node */
#define LK_CANDS 64             /* candidates kept per lookup, closest first */
#define LK_MAX 1024             /* lookups at once */
#define LK_MAX_PEERS 512        /* peers remembered per lookup */
#define LK_CROWD (LK_CANDS / 4) /* candidates one subnet (or the unverified) may hold
                                   before its farthest gives way in a full list */
#define ANN_MAX 65536
#define BOOT_MAX 32
#define RL_SLOTS 256
#define ANSWER_FACTOR 3         /* an answer is at most this many times its query */
#define NONET_TIMEOUTS 16       /* timeouts in a row, no answer between: no network */
#define BOOT_BACKOFF_MAX_MS (5 * 60 * 1000)
#define CT_SETS 64              /* contact table: CT_SETS sets of CT_WAYS addresses */
#define CT_WAYS 4
#define CT_DEAD_MISSES 2        /* deadlines missed in a row: the address has failed */
#define DEADLINE_FLOOR_MS 25    /* the shortest query deadline (contact.c says why) */

/* P_PROBE: the ping that checks on an address which just missed a deadline. */
enum pend_kind { P_FREE = 0, P_PING, P_USERPING, P_BOOT, P_LOOKUP, P_STORE, P_PROBE };
/* How well a query's send time is known (node.c, clock_in): sent inside a call that
 * gave the time; sent outside one (the time of the last call, perhaps a second old);
 * stamped again at the next call. Only the first gives a round-trip sample. */
enum pend_clock { PC_NOW = 0, PC_STALE, PC_FIXED };

struct pending {
    uint8_t kind;               /* enum pend_kind */
    uint8_t method;             /* enum krpc_method */
    uint8_t has_id;
    uint16_t gen;               /* second half of the transaction id */
    uint8_t id[DHT_ID_LEN];     /* expected responder, if has_id */
    uint8_t missed;             /* its deadline passed unanswered (and was counted) */
    uint8_t clock;              /* enum pend_clock */
    dht_sa addr;
    uint64_t sent_ms;
    uint64_t deadline_ms;       /* sent_ms + the address's deadline (contact.c) */
    struct lookup *lk;          /* P_LOOKUP; NULL once the lookup is gone */
    struct announce *ann;       /* P_STORE; NULL once unannounced */
    dht_ping_fn cb;             /* P_USERPING */
    void *ud;
};

enum cand_state { C_NEW = 0, C_INFLIGHT, C_REPLIED, C_FAILED };

struct cand {
    uint8_t id[DHT_ID_LEN];
    dht_sa addr;
    uint8_t state;              /* enum cand_state */
    uint8_t depth;              /* 1 = from our table, n+1 = named by a depth-n node */
    uint8_t unverified;         /* bep5: the id fails BEP 42 for addr */
    uint8_t crowd;              /* candidates of the lookup in addr's subnet, itself too */
    uint8_t asked_failed;       /* C_INFLIGHT: its address had failed when it was asked */
    uint8_t token_len;
    uint8_t token[32];
    uint64_t sent_ms;           /* C_INFLIGHT: when its query left */
    uint64_t deadline_ms;       /* C_INFLIGHT: past it, out of the running */
};

struct waiter {
    int handle;
    int cancelled;
    dht_lookup_fn cb;
    void *ud;
    size_t delivered;           /* peers already handed to this waiter */
};

enum lk_kind { LK_FIND = 0, LK_GET };

struct lookup {
    struct lookup *next;
    uint8_t target[DHT_ID_LEN];
    int kind;
    int done;                   /* final callbacks made; reaped by the node */
    struct cand c[LK_CANDS];
    int nc;
    struct waiter *w;
    int nw, capw;
    struct sockaddr_storage *peers;
    size_t npeers, cappeers;
    unsigned queries, rounds;
    struct announce *ann;       /* the announcement this lookup serves, if any */
};

struct announce {
    struct announce *next;
    uint8_t key[DHT_ID_LEN];
    uint16_t port;
    dht_announce_fn cb;
    void *ud;
    uint64_t next_ms;           /* next round */
    struct lookup *lk;          /* lookup of the current round, if running */
    int stores_pending, stored;
};

struct rl_slot {
    uint8_t key[DHT_OWNER_LEN]; /* the sender: dht_addr_owner() */
    uint64_t last_ms;
    uint32_t tokens_milli;      /* token bucket, 1000 = one query */
    uint64_t black_until_ms;    /* 0 = not blacklisted */
};

/* One address's round trips and missed deadlines (contact.c). */
struct contact {
    dht_sa addr;                /* sa_family 0 = empty slot */
    struct dht_rtt rtt;
    uint8_t missed;             /* deadlines missed in a row, nothing heard since */
    uint64_t used_ms;           /* last looked up: the least recent gives way */
};

struct dht {
    struct dht_config cfg;
    uint8_t id[DHT_ID_LEN];
    uint64_t now;               /* time of the last call that gave one */
    uint64_t rng;               /* splitmix64 state */
    struct rtable rt[2];        /* [0] IPv4, [1] IPv6 */
    struct store *store;
    struct tokens tok;
    struct pending *pend;
    int npend, cappend;
    uint16_t gen;
    struct lookup *lookups;
    int nlookups, next_handle;
    struct announce *anns;
    int nanns;
    struct dht_bootstrap_provider prov[DHT_MAX_PROVIDERS];
    int nprov;
    dht_sa boot[BOOT_MAX];
    int nboot;
    int boot_oldest; /* once boot[] is full: the slot the next address replaces */
    uint64_t boot_next_ms;
    uint32_t boot_backoff_ms;
    enum dht_state state;
    int ever_active, faulted, own_lookup_due;
    int clocked;                /* inside dht_input/dht_periodic: now is the time */
    uint64_t last_reply_ms, net_err_ms;
    unsigned timeouts_in_row;
    struct rl_slot rl[RL_SLOTS];
    dht_sa ext;
    int has_ext;
    uint8_t lan_cookie[8];
    uint64_t next_expire_ms, next_refresh_ms;
    struct dht_stats st;
    size_t mem;
    struct dht_rtt rtt;         /* every answer of every address */
    struct contact ct[CT_SETS * CT_WAYS];
};

/* node.c */
int node_send_query(struct dht *dht, int kind, const dht_sa *to, const uint8_t *id,
                    struct krpc_query *q, struct pending **out);
void node_heard(struct dht *dht, const uint8_t *id, const dht_sa *from, int replied);
void node_update_state(struct dht *dht);

/* contact.c */
/* The deadline for a query to a, in ms after sending (see contact.c). */
uint32_t contact_deadline_ms(const struct dht *dht, const dht_sa *a);
/* An answer came from a, rtt_ms after its query: a round-trip sample; not failed. */
void contact_replied(struct dht *dht, const dht_sa *a, uint64_t rtt_ms);
/* A datagram came from a: whatever it missed is forgiven. */
void contact_heard(struct dht *dht, const dht_sa *a);
/* A query to a missed its deadline. Returns the misses in a row now. */
int contact_missed(struct dht *dht, const dht_sa *a);
/* CT_DEAD_MISSES or more misses in a row, nothing heard since. */
bool contact_failed(const struct dht *dht, const dht_sa *a);
/* a's SRTT and RTTVAR (us). Returns 0, or -1 when a was never measured. */
int contact_rtt(const struct dht *dht, const dht_sa *a, uint32_t *srtt_us,
                uint32_t *rttvar_us);

/* lookup.c */
struct lookup *lookup_start(struct dht *dht, int kind, const uint8_t *target);
void lookup_step(struct dht *dht, struct lookup *lk);
void lookup_on_reply(struct dht *dht, struct pending *p, const struct krpc_msg *m);
void lookup_on_timeout(struct dht *dht, struct pending *p);
/* p's send time was stamped again (node.c, clock_in): so is its candidate's deadline. */
void lookup_restamp(struct dht *dht, const struct pending *p);
/* a has failed: no lookup asks it (candidates not yet asked are given up). */
void lookup_drop_failed(struct dht *dht, const dht_sa *a);
void lookup_reap(struct dht *dht);
void lookup_flush(struct dht *dht);
void lookup_free_all(struct dht *dht);
void announce_periodic(struct dht *dht);
void announce_on_store(struct dht *dht, struct pending *p, int ok);
void announce_free_all(struct dht *dht);
uint64_t lookup_next_deadline(struct dht *dht, uint64_t next);

#endif

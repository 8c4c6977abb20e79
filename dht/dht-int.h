/* dht-int.h - the library's private interfaces between its modules (bencode, krpc,
 * routing table, storage, tokens, lookups, node). Not installed and not for the daemon:
 * the daemon uses dht.h only. Unit tests include it to test each module on its own. */
#ifndef APT_DHT_DHT_INT_H
#define APT_DHT_DHT_INT_H

#include <stdbool.h>
#include <netinet/in.h>
#include "dht/dht.h"

/* ---- bencode: a bounded, allocation-free parser into a flat token array ---- */
enum { BEN_INT = 1, BEN_STR, BEN_LIST, BEN_DICT };
#define BEN_MAX_DEPTH 12
#define BEN_MAX_TOKENS 512
#define BEN_MAX_INT_DIGITS 18

struct ben_tok {
    uint8_t type;
    uint32_t next;      /* index of the first token after this value's subtree */
    uint32_t count;     /* containers: number of direct children (dict: keys + values) */
    const uint8_t *s;   /* strings: the bytes */
    size_t len;         /* strings: length */
    int64_t i;          /* integers */
};

/* Parses exactly one value filling buf[0..len). Returns the token count, -EINVAL
 * (malformed, trailing bytes), -E2BIG (more than max tokens), -ELOOP (deeper than
 * BEN_MAX_DEPTH). Tokens point into buf. */
int ben_parse(const uint8_t *buf, size_t len, struct ben_tok *toks, size_t max);
/* Index of the value for key in dict token d, or -1. */
int ben_dict_get(const struct ben_tok *toks, int d, const char *key);

struct benc {
    uint8_t *buf;
    size_t cap, len;
    int err;            /* -ENOBUFS once anything did not fit */
};
void benc_init(struct benc *w, uint8_t *buf, size_t cap);
void benc_str(struct benc *w, const void *s, size_t n);
void benc_cstr(struct benc *w, const char *s);
void benc_int(struct benc *w, int64_t v);
void benc_list(struct benc *w);
void benc_dict(struct benc *w);
void benc_end(struct benc *w);
/* Returns the encoded length or -ENOBUFS. */
int benc_finish(const struct benc *w);

/* ---- KRPC messages of both dialects ---- */
enum krpc_method { KM_NONE = 0, KM_PING, KM_JOIN, KM_FIND_NODE, KM_GET, KM_STORE };
#define KRPC_MAX_VALUES 128
#define KRPC_WANT4 1
#define KRPC_WANT6 2

struct krpc_msg {
    char y;                         /* 'q', 'r' or 'e' */
    const uint8_t *t;               /* transaction id */
    size_t tlen;
    int method;                     /* queries: enum krpc_method */
    int error;                      /* queries: 0, or the KRPC error code to answer */
    const char *error_msg;
    const uint8_t *id;              /* 20 bytes or NULL */
    const uint8_t *target;          /* find_node target, get/store key, info_hash */
    const uint8_t *token;
    size_t token_len;
    int64_t port;                   /* -1 = absent */
    int implied_port;
    int ro;
    int want;                       /* KRPC_WANT* bits; 0 = absent */
    const uint8_t *nodes, *nodes6;
    size_t nodes_len, nodes6_len;
    const uint8_t *values[KRPC_MAX_VALUES];
    size_t value_len[KRPC_MAX_VALUES];
    size_t nvalues;
    int has_values;
    const uint8_t *ip_addr;         /* join answer: text address */
    size_t ip_addr_len;
    const uint8_t *ip;              /* bep5 answer (BEP 42): our compact address seen */
    size_t ip_len;
    int64_t err_code;               /* 'e' messages */
    const uint8_t *err_msg;
    size_t err_len;
};

/* Decodes one datagram. Returns 0 when m is usable (for a query, m->error may ask for
 * an error answer), -EINVAL when nothing can be answered (not bencode, no "t", an
 * answer without a 20-byte id). */
int krpc_parse(const uint8_t *buf, size_t len, enum dht_dialect d, struct krpc_msg *m);

struct krpc_query {
    int method;
    const uint8_t *t;
    size_t tlen;
    const uint8_t *id;
    const uint8_t *target;          /* find_node target or get/store key */
    const uint8_t *token;           /* store: NULL = no token */
    size_t token_len;
    int port;                       /* store: -1 = none */
    int implied_port;
    int want;
    int ro;
};
int krpc_encode_query(enum dht_dialect d, const struct krpc_query *q, uint8_t *buf,
                      size_t cap);

struct krpc_reply {
    const uint8_t *t;
    size_t tlen;
    const uint8_t *id;
    const char *ip_addr;            /* join: NULL = none */
    int port;                       /* join: -1 = none */
    const uint8_t *nodes, *nodes6;  /* NULL = key absent */
    size_t nodes_len, nodes6_len;
    const uint8_t *token;
    size_t token_len;
    const uint8_t *const *values;   /* has_values: list of strings */
    const size_t *value_len;
    size_t nvalues;
    int has_values;
    const uint8_t *ip;              /* BEP 42 "ip": the querier's compact address; */
    size_t ip_len;                  /* NULL = none */
};
int krpc_encode_reply(const struct krpc_reply *r, uint8_t *buf, size_t cap);
int krpc_encode_error(const uint8_t *t, size_t tlen, int code, const char *msg, uint8_t *buf,
                      size_t cap);
const char *krpc_method_name(enum dht_dialect d, int method);

/* ---- addresses and ids ---- */
/* An IPv4 or IPv6 socket address, 28 bytes instead of sockaddr_storage's 128. */
typedef union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} dht_sa;
int dht_sa_from(dht_sa *out, const struct sockaddr *sa, socklen_t len); /* 0 or -EAFNOSUPPORT */
void dht_sa_to_storage(const dht_sa *a, struct sockaddr_storage *ss);
/* Compact forms: 6 bytes (v4) or 18 bytes (v6) peer; node = id + peer. */
int dht_compact_peer(const dht_sa *ss, uint8_t *out); /* -> 6, 18 or -1 */
int dht_peer_from_compact(const uint8_t *c, size_t len, dht_sa *ss);
bool dht_addr_equal(const dht_sa *a, const dht_sa *b);
bool dht_addr_ip_equal(const dht_sa *a, const dht_sa *b);
int dht_addr_family(const dht_sa *ss);   /* 0 = v4 table, 1 = v6 */
socklen_t dht_addr_len(const dht_sa *ss);
bool dht_addr_usable(const dht_sa *ss);  /* no port 0, no any/multicast */
/* Returns <0, 0, >0 as a is closer to / as close as / farther from target than b. */
int dht_xor_cmp(const uint8_t *target, const uint8_t *a, const uint8_t *b);
int dht_common_bits(const uint8_t *a, const uint8_t *b);

/* ---- one sender, BEP 42 ids, diverse closest sets (sybil.c) ---- */
#define DHT_OWNER_LEN 18        /* 16-byte IP (IPv4 mapped) + port on loopback, else 0 */
#define DIVERSE_MAX 2           /* of K trusted nodes, at most this many per /24 or /64 */
uint32_t dht_crc32c(const uint8_t *p, size_t n);
bool dht_addr_is_loopback(const dht_sa *a);
/* Loopback, private (RFC 1918), link-local, unique-local: exempt from BEP 42. */
bool dht_addr_is_local(const dht_sa *a);
/* The key a sender is charged under: its IP, plus the port on loopback only. */
void dht_addr_owner(const dht_sa *a, uint8_t out[DHT_OWNER_LEN]);
/* Same /24 (IPv4, also IPv4-mapped) or same /64 (IPv6). */
bool dht_addr_same_subnet(const dht_sa *a, const dht_sa *b);
/* Whether id may belong to a node at a under BEP 42 (always true for local addresses). */
bool dht_bep42_ok(const uint8_t *id, const dht_sa *a);
/* A BEP 42 id for a: rnd with its first 21 bits replaced (r = rnd[19] & 7). */
void dht_bep42_make(const dht_sa *a, const uint8_t rnd[DHT_ID_LEN], uint8_t out[DHT_ID_LEN]);
/* Chooses up to k (<= DHT_K) of n candidates sorted closest first: closest first while
 * no /24 (/64) holds more than DIVERSE_MAX of the chosen and no more than DIVERSE_MAX
 * are unverified (unverified[i] != 0; NULL = none is), then the closest skipped ones if
 * fewer than k were found. chosen[0..n) gets 1 for each choice. Returns the count. */
int dht_pick_diverse(const dht_sa *const *addr, const uint8_t *unverified, int n, int k,
                     uint8_t *chosen);

/* ---- per-node leaf helpers shared by the modules (util.c) ---- */
/* malloc/free that keep the node's byte count (dht_stats.mem_bytes) up to date.
 * dht_alloc returns NULL when out of memory; dht_dealloc accepts NULL. */
void *dht_alloc(struct dht *dht, size_t n);
void dht_dealloc(struct dht *dht, void *p);
/* The node's seeded splitmix64 stream: fast and reproducible, not cryptographic. */
uint64_t dht_rand64(struct dht *dht);
void dht_rand_bytes(struct dht *dht, uint8_t *out, size_t n);
/* Bytes nobody may predict from what the node sends (its ids and transaction ids come
 * from the stream above): getrandom(), or the stream when the node is seeded. */
void dht_secret_bytes(struct dht *dht, uint8_t *out, size_t n);
/* SHA-1 of a || b into out. Returns 0 or -EIO (libcrypto failed). */
int dht_sha1(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[20]);

/* ---- round trips (contact.c): RFC 6298's estimator, kept in microseconds ---- */
struct dht_rtt {
    uint32_t srtt_us, rttvar_us;    /* SRTT and RTTVAR */
    uint32_t samples;               /* 0 = never measured */
};
/* Takes one round-trip sample (ms; above 60 s counts as 60 s). */
void dht_rtt_sample(struct dht_rtt *r, uint32_t sample_ms);
/* SRTT + max(1 ms, 4 * RTTVAR) in ms, rounded up; 0 = never measured. */
uint32_t dht_rtt_rto_ms(const struct dht_rtt *r);

/* ---- routing table: one per address family ---- */
#define RT_REPL 8
#define RT_GOOD_MS (15 * 60 * 1000)
#define RT_REFRESH_MS (15 * 60 * 1000)
#define RT_BAD_FAILS 2

struct rt_node {
    uint8_t id[DHT_ID_LEN];
    dht_sa addr;
    uint64_t last_reply_ms;         /* 0 = never answered us */
    uint64_t last_query_ms;         /* 0 = never queried us */
    uint64_t pinged_ms;             /* maintenance ping in flight since; 0 = none */
    uint8_t fails;                  /* queries in a row without an answer */
};

struct rt_bucket {
    struct rt_node n[DHT_K];
    int count;
    struct rt_node repl[RT_REPL];   /* replacement cache, most recent last */
    int nrepl;
    uint64_t changed_ms;
};

/* Buckets by length of the prefix shared with our id: b[i] (i < nb-1) holds ids sharing
 * exactly i bits; the last bucket holds everything closer, including our own id, and is
 * the only one that splits. This is the protocol page's range-halving table. */
struct rtable {
    uint8_t self[DHT_ID_LEN];
    struct dht *owner;              /* allocates the buckets */
    struct rt_bucket *b[160];       /* b[0..nb) allocated */
    int nb;
};

enum rt_status { RT_GOOD, RT_QUESTIONABLE, RT_BAD };
enum rt_result { RT_IGNORED = 0, RT_UPDATED, RT_ADDED, RT_CACHED };

int rt_init(struct rtable *rt, struct dht *owner, const uint8_t *self, uint64_t now_ms);
void rt_done(struct rtable *rt);
int rt_bucket_of(const struct rtable *rt, const uint8_t *id);
enum rt_status rt_status(const struct rt_node *n, uint64_t now_ms);
/* Records contact with a node: replied=1 for an answer to our query, 0 for a query it
 * sent us. *ping (if not NULL) receives the node to ping when a full bucket holds a
 * questionable node (the least recently seen one). */
enum rt_result rt_heard(struct rtable *rt, const uint8_t *id, const dht_sa *a,
                        int replied, uint64_t now_ms, struct rt_node **ping);
/* A query to id timed out: counts a failure; a bad node is replaced from the cache. */
void rt_failed(struct rtable *rt, const uint8_t *id, uint64_t now_ms);
struct rt_node *rt_find(struct rtable *rt, const uint8_t *id);
/* The up to max non-bad nodes closest to target, closest first. Returns the count. */
int rt_closest(const struct rtable *rt, const uint8_t *target, uint64_t now_ms,
               const struct rt_node **out, int max);
int rt_count(const struct rtable *rt, uint64_t now_ms, int *good, int *questionable);
/* A random id inside bucket i's range. */
void rt_random_id(const struct rtable *rt, int i, uint64_t r1, uint64_t r2, uint64_t r3,
                  uint8_t *out);

/* ---- value storage and tokens ---- */
struct store;
struct store *store_new(struct dht *dht, uint32_t per_key, uint32_t total);
void store_free(struct store *s);
/* Adds or refreshes peer under key until now+ttl. Returns 0, -ENOSPC. */
int store_put(struct store *s, const uint8_t *key, const dht_sa *peer,
              uint64_t expires_ms);
/* Copies up to max peers of key's family fam (0 v4, 1 v6, -1 both), a random subset if
 * there are more. Returns the count. */
int store_get(struct store *s, const uint8_t *key, int fam, dht_sa *out,
              int max);
void store_expire(struct store *s, uint64_t now_ms);
void store_counts(const struct store *s, unsigned *keys, unsigned *values);
void store_dump(const struct store *s, FILE *f, uint64_t now_ms);

#define TOKEN_LEN 8
#define TOKEN_ROTATE_MS (5 * 60 * 1000)
struct tokens {
    uint8_t secret[16], prev[16];
    uint64_t rotated_ms;
};
void token_init(struct tokens *t, struct dht *dht, uint64_t now_ms);
void token_rotate(struct tokens *t, struct dht *dht, uint64_t now_ms);
void token_make(const struct tokens *t, const dht_sa *a, uint8_t out[TOKEN_LEN]);
bool token_check(const struct tokens *t, const dht_sa *a, const uint8_t *tok,
                 size_t len);

#endif

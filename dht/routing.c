/* routing.c - the Kademlia routing table of one address family, and address helpers.
 *
 * Rules (the apt-dht protocol page): K = 8 nodes per bucket; only the bucket that holds
 * our own id splits; a node is good when it answered within 15 minutes (or answered
 * once and queried us within 15 minutes), bad after RT_BAD_FAILS unanswered queries in
 * a row, questionable otherwise. A full bucket takes a new node only in place of a bad
 * one; if it holds questionable nodes, the least recently seen is pinged (the caller
 * sends the ping) and the newcomer waits in the bucket's replacement cache, from which
 * a node that turns bad is replaced. Each bucket remembers when it last changed so the
 * node can refresh it after 15 minutes. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "dht/dht-int.h"

int dht_compact_peer(const dht_sa *ss, uint8_t *out)
{
    if (ss->sa.sa_family == AF_INET) {
        const struct sockaddr_in *s = &ss->in;
        memcpy(out, &s->sin_addr, 4);
        memcpy(out + 4, &s->sin_port, 2);
        return 6;
    }
    if (ss->sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = &ss->in6;
        memcpy(out, &s->sin6_addr, 16);
        memcpy(out + 16, &s->sin6_port, 2);
        return 18;
    }
    return -1;
}

int dht_peer_from_compact(const uint8_t *c, size_t len, dht_sa *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (len == 6) {
        struct sockaddr_in *s = &ss->in;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, c, 4);
        memcpy(&s->sin_port, c + 4, 2);
        return 0;
    }
    if (len == 18) {
        struct sockaddr_in6 *s = &ss->in6;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, c, 16);
        memcpy(&s->sin6_port, c + 16, 2);
        return 0;
    }
    return -EINVAL;
}

bool dht_addr_ip_equal(const dht_sa *a, const dht_sa *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return false;
    if (a->sa.sa_family == AF_INET)
        return memcmp(&a->in.sin_addr,
                      &b->in.sin_addr, 4) == 0;
    if (a->sa.sa_family == AF_INET6)
        return memcmp(&a->in6.sin6_addr,
                      &b->in6.sin6_addr, 16) == 0;
    return false;
}

static uint16_t addr_port(const dht_sa *a)
{
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_port;
    if (a->sa.sa_family == AF_INET6)
        return a->in6.sin6_port;
    return 0;
}

bool dht_addr_equal(const dht_sa *a, const dht_sa *b)
{
    return dht_addr_ip_equal(a, b) && addr_port(a) == addr_port(b);
}

int dht_addr_family(const dht_sa *ss)
{
    return ss->sa.sa_family == AF_INET6 ? 1 : 0;
}

socklen_t dht_addr_len(const dht_sa *ss)
{
    return ss->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

bool dht_addr_usable(const dht_sa *ss)
{
    if (addr_port(ss) == 0)
        return false;
    if (ss->sa.sa_family == AF_INET) {
        const uint8_t *ip = (const uint8_t *)&ss->in.sin_addr;
        return !(ip[0] == 0 || ip[0] >= 224);
    }
    if (ss->sa.sa_family == AF_INET6) {
        const struct in6_addr *ip = &ss->in6.sin6_addr;
        return !IN6_IS_ADDR_UNSPECIFIED(ip) && !IN6_IS_ADDR_MULTICAST(ip);
    }
    return false;
}

int dht_xor_cmp(const uint8_t *target, const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t da = a[i] ^ target[i], db = b[i] ^ target[i];
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

int dht_common_bits(const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t x = a[i] ^ b[i];
        if (x) {
            int n = i * 8;
            while (!(x & 0x80)) {
                x <<= 1;
                n++;
            }
            return n;
        }
    }
    return 160;
}

int dht_sa_from(dht_sa *out, const struct sockaddr *sa, socklen_t len)
{
    memset(out, 0, sizeof(*out));
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(&out->in, sa, sizeof(out->in));
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(&out->in6, sa, sizeof(out->in6));
        return 0;
    }
    return -EAFNOSUPPORT;
}

void dht_sa_to_storage(const dht_sa *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, a, dht_addr_len(a));
}

int rt_init(struct rtable *rt, struct dht *owner, const uint8_t *self, uint64_t now_ms)
{
    memset(rt, 0, sizeof(*rt));
    memcpy(rt->self, self, DHT_ID_LEN);
    rt->owner = owner;
    rt->b[0] = dht_alloc(owner, sizeof(struct rt_bucket));
    if (!rt->b[0])
        return -ENOMEM;
    memset(rt->b[0], 0, sizeof(struct rt_bucket));
    rt->nb = 1;
    rt->b[0]->changed_ms = now_ms;
    return 0;
}

void rt_done(struct rtable *rt)
{
    for (int i = 0; i < rt->nb; i++)
        dht_dealloc(rt->owner, rt->b[i]);
    rt->nb = 0;
}

int rt_bucket_of(const struct rtable *rt, const uint8_t *id)
{
    int c = dht_common_bits(rt->self, id);
    return c < rt->nb - 1 ? c : rt->nb - 1;
}

enum rt_status rt_status(const struct rt_node *n, uint64_t now_ms)
{
    if (n->fails >= RT_BAD_FAILS)
        return RT_BAD;
    if (n->last_reply_ms && n->last_reply_ms + RT_GOOD_MS > now_ms)
        return RT_GOOD;
    if (n->last_reply_ms && n->last_query_ms && n->last_query_ms + RT_GOOD_MS > now_ms)
        return RT_GOOD;
    return RT_QUESTIONABLE;
}

static uint64_t last_seen(const struct rt_node *n)
{
    return n->last_reply_ms > n->last_query_ms ? n->last_reply_ms : n->last_query_ms;
}

static void touch(struct rt_node *n, const uint8_t *id, const dht_sa *a,
                  int replied, uint64_t now_ms)
{
    memcpy(n->id, id, DHT_ID_LEN);
    n->addr = *a;
    if (replied) {
        n->last_reply_ms = now_ms;
        n->fails = 0;
        n->pinged_ms = 0;
    } else {
        n->last_query_ms = now_ms;
    }
}

/* Splits the last bucket: nodes sharing nb-1 or more bits with us move to a new one.
 * Returns 0 or -ENOMEM. */
static int split_last(struct rtable *rt, uint64_t now_ms)
{
    struct rt_bucket *old = rt->b[rt->nb - 1], *nw = dht_alloc(rt->owner, sizeof(*nw));
    int depth = rt->nb - 1;
    if (!nw)
        return -ENOMEM;
    memset(nw, 0, sizeof(*nw));
    rt->b[rt->nb] = nw;
    rt->nb++;
    int keep = 0;
    for (int i = 0; i < old->count; i++) {
        if (dht_common_bits(rt->self, old->n[i].id) > depth)
            nw->n[nw->count++] = old->n[i];
        else
            old->n[keep++] = old->n[i];
    }
    old->count = keep;
    int rkeep = 0;
    for (int i = 0; i < old->nrepl; i++) {
        if (dht_common_bits(rt->self, old->repl[i].id) > depth)
            nw->repl[nw->nrepl++] = old->repl[i];
        else
            old->repl[rkeep++] = old->repl[i];
    }
    old->nrepl = rkeep;
    old->changed_ms = nw->changed_ms = now_ms;
    return 0;
}

static void cache_add(struct rt_bucket *b, const uint8_t *id, const dht_sa *a,
                      int replied, uint64_t now_ms)
{
    for (int i = 0; i < b->nrepl; i++) {
        if (memcmp(b->repl[i].id, id, DHT_ID_LEN) == 0) {
            touch(&b->repl[i], id, a, replied, now_ms);
            return;
        }
    }
    if (b->nrepl == RT_REPL) {
        memmove(&b->repl[0], &b->repl[1], sizeof(b->repl[0]) * (RT_REPL - 1));
        b->nrepl--;
    }
    struct rt_node *n = &b->repl[b->nrepl++];
    memset(n, 0, sizeof(*n));
    touch(n, id, a, replied, now_ms);
}

/* The least recently seen questionable node that is not being pinged already. */
static struct rt_node *lrs_questionable(struct rt_bucket *b, uint64_t now_ms)
{
    struct rt_node *best = NULL;
    for (int i = 0; i < b->count; i++) {
        struct rt_node *n = &b->n[i];
        if (rt_status(n, now_ms) != RT_QUESTIONABLE || n->pinged_ms)
            continue;
        if (!best || last_seen(n) < last_seen(best))
            best = n;
    }
    return best;
}

enum rt_result rt_heard(struct rtable *rt, const uint8_t *id, const dht_sa *a,
                        int replied, uint64_t now_ms, struct rt_node **ping)
{
    if (ping)
        *ping = NULL;
    if (memcmp(id, rt->self, DHT_ID_LEN) == 0 || !dht_addr_usable(a))
        return RT_IGNORED;
    for (int guard = 0; guard < 161; guard++) {
        int bi = rt_bucket_of(rt, id);
        struct rt_bucket *b = rt->b[bi];
        for (int i = 0; i < b->count; i++) {
            if (memcmp(b->n[i].id, id, DHT_ID_LEN) != 0)
                continue;
            if (!dht_addr_equal(&b->n[i].addr, a))
                return RT_IGNORED; /* an id does not move: keep the known address */
            touch(&b->n[i], id, a, replied, now_ms);
            if (replied)
                b->changed_ms = now_ms;
            return RT_UPDATED;
        }
        if (b->count < DHT_K) {
            struct rt_node *n = &b->n[b->count++];
            memset(n, 0, sizeof(*n));
            touch(n, id, a, replied, now_ms);
            b->changed_ms = now_ms;
            return RT_ADDED;
        }
        if (bi == rt->nb - 1 && rt->nb < 160 && split_last(rt, now_ms) == 0)
            continue;
        for (int i = 0; i < b->count; i++) {
            if (rt_status(&b->n[i], now_ms) == RT_BAD) {
                memset(&b->n[i], 0, sizeof(b->n[i]));
                touch(&b->n[i], id, a, replied, now_ms);
                b->changed_ms = now_ms;
                return RT_ADDED;
            }
        }
        cache_add(b, id, a, replied, now_ms);
        struct rt_node *q = lrs_questionable(b, now_ms);
        if (q && ping) {
            q->pinged_ms = now_ms;
            *ping = q;
        }
        return RT_CACHED;
    }
    return RT_IGNORED;
}

struct rt_node *rt_find(struct rtable *rt, const uint8_t *id)
{
    struct rt_bucket *b = rt->b[rt_bucket_of(rt, id)];
    for (int i = 0; i < b->count; i++)
        if (memcmp(b->n[i].id, id, DHT_ID_LEN) == 0)
            return &b->n[i];
    return NULL;
}

void rt_failed(struct rtable *rt, const uint8_t *id, uint64_t now_ms)
{
    struct rt_bucket *b = rt->b[rt_bucket_of(rt, id)];
    for (int i = 0; i < b->count; i++) {
        struct rt_node *n = &b->n[i];
        if (memcmp(n->id, id, DHT_ID_LEN) != 0)
            continue;
        if (n->fails < 255)
            n->fails++;
        n->pinged_ms = 0;
        if (rt_status(n, now_ms) == RT_BAD && b->nrepl > 0) {
            *n = b->repl[--b->nrepl]; /* the most recently heard replacement */
            b->changed_ms = now_ms;
        }
        return;
    }
}

static void insert_sorted(const uint8_t *target, const struct rt_node **out, int *n, int max,
                          const struct rt_node *c)
{
    int pos = *n;
    while (pos > 0 && dht_xor_cmp(target, c->id, out[pos - 1]->id) < 0)
        pos--;
    if (pos >= max)
        return;
    int end = *n < max ? *n : max - 1;
    memmove(&out[pos + 1], &out[pos], sizeof(out[0]) * (size_t)(end - pos));
    out[pos] = c;
    if (*n < max)
        (*n)++;
}

int rt_closest(const struct rtable *rt, const uint8_t *target, uint64_t now_ms,
               const struct rt_node **out, int max)
{
    int n = 0;
    for (int bi = 0; bi < rt->nb; bi++) {
        const struct rt_bucket *b = rt->b[bi];
        for (int i = 0; i < b->count; i++)
            if (rt_status(&b->n[i], now_ms) != RT_BAD)
                insert_sorted(target, out, &n, max, &b->n[i]);
    }
    return n;
}

int rt_count(const struct rtable *rt, uint64_t now_ms, int *good, int *questionable)
{
    int g = 0, q = 0;
    for (int bi = 0; bi < rt->nb; bi++) {
        for (int i = 0; i < rt->b[bi]->count; i++) {
            enum rt_status s = rt_status(&rt->b[bi]->n[i], now_ms);
            g += s == RT_GOOD;
            q += s == RT_QUESTIONABLE;
        }
    }
    if (good)
        *good = g;
    if (questionable)
        *questionable = q;
    return g + q;
}

void rt_random_id(const struct rtable *rt, int i, uint64_t r1, uint64_t r2, uint64_t r3,
                  uint8_t *out)
{
    uint8_t rnd[24];
    memcpy(rnd, &r1, 8);
    memcpy(rnd + 8, &r2, 8);
    memcpy(rnd + 16, &r3, 8);
    /* Keep our first i bits; bucket i < nb-1 has bit i flipped, the last one is free. */
    for (int bit = 0; bit < 160; bit++) {
        int byte = bit / 8, mask = 0x80 >> (bit % 8);
        int v;
        if (bit < i)
            v = rt->self[byte] & mask;
        else if (bit == i && i < rt->nb - 1)
            v = (rt->self[byte] & mask) ^ mask;
        else
            v = rnd[byte] & mask;
        out[byte] = (uint8_t)(v ? (out[byte] | mask) : (out[byte] & ~mask));
    }
}

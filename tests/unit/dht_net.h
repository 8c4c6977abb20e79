/* dht_net.h - an in-memory network and fake clock for DHT tests: many struct dht in
 * one process, datagrams queued with a deterministic latency and delivered in time
 * order, dead nodes dropping everything. Time advances in fixed ticks; at each tick due
 * datagrams are delivered and nodes whose deadline passed get dht_periodic().
 * Node i has address 10.x.y.z (x.y.z = i + 1), or fd00::i+1 when v6, port 6881. For
 * tests of hostile networks: base4 and shift (set after net_init) give node i the IPv4
 * address base4 + ((i + 1) << shift) (+ 1 when shifted, so each node of a shift of 8
 * has a /24 of its own); net_set_addr() gives a node any address; a node with a
 * handler instead of a struct dht is a hand-written (hostile) node that answers
 * through net_send_from(); datagrams to addresses of no node go to net->outside.
 * One-way latency is lat_min + a random part below lat_span (10 + 0..49 ms unless set
 * after net_init), plus the extra_ms of both ends; a node counts the datagrams it sent
 * to dead nodes (sent_dead), which is what a lookup pays for the dead. */
#ifndef APT_DHT_TEST_NET_H
#define APT_DHT_TEST_NET_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "dht/dht.h"

struct net_pkt {
    uint64_t at, seq;
    int from, to;
    size_t len;
    uint8_t data[DHT_MAX_PACKET];
};

struct net;
/* A hand-written node: gets each datagram sent to it (from = sender's index). */
typedef void (*net_handler_fn)(struct net *net, int self, int from, const uint8_t *buf,
                               size_t len);
/* A datagram sent by node `from` to an address that is no node's. */
typedef void (*net_outside_fn)(struct net *net, int from, const struct sockaddr *to,
                               const uint8_t *buf, size_t len);

struct net_node {
    struct net *net;
    int index, dead;
    struct dht *dht;
    uint64_t next_ms;
    int has_addr;                   /* addr below replaces the computed address */
    struct sockaddr_storage addr;
    net_handler_fn handler;         /* set: a hand-written node, no dht */
    uint32_t extra_ms;              /* added to the latency of its datagrams, both ways */
    uint64_t sent_dead;             /* datagrams it sent to dead nodes */
};

struct net {
    struct net_node *nodes;
    int n, v6;
    uint64_t now, seq, rng;
    struct net_pkt **heap;
    size_t nheap, capheap;
    uint64_t delivered, dropped;
    uint32_t lat_min, lat_span;     /* one-way latency: lat_min + rand % lat_span ms */
    int cur_from, cur_to;           /* the datagram being delivered now; -1 = none */
    uint32_t base4;                 /* 10.0.0.0 unless set */
    int shift;
    int *custom;                    /* indices of nodes with has_addr */
    int ncustom;
    net_outside_fn outside;
    void *ud;                       /* for the test's handlers */
};

static inline uint64_t net_rand(struct net *net)
{
    uint64_t z = (net->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void net_addr(const struct net *net, int i, struct sockaddr_storage *ss)
{
    if (net->nodes[i].has_addr) {
        *ss = net->nodes[i].addr;
        return;
    }
    memset(ss, 0, sizeof(*ss));
    uint32_t v = (uint32_t)i + 1;
    if (!net->v6 && (net->shift || net->base4 != 0x0a000000u)) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(net->base4 + (v << net->shift) + (net->shift ? 1 : 0));
        s->sin_port = htons(6881);
        return;
    }
    if (net->v6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
        s->sin6_family = AF_INET6;
        s->sin6_addr.s6_addr[0] = 0xfd;
        s->sin6_addr.s6_addr[13] = (uint8_t)(v >> 16);
        s->sin6_addr.s6_addr[14] = (uint8_t)(v >> 8);
        s->sin6_addr.s6_addr[15] = (uint8_t)v;
        s->sin6_port = htons(6881);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = htonl(0x0a000000u | v);
        s->sin_port = htons(6881);
    }
}

static inline int net_same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* Index of the node at address sa, or -1. */
static inline int net_index(const struct net *net, const struct sockaddr *sa)
{
    uint32_t v;
    for (int i = 0; i < net->ncustom; i++)
        if (net_same_addr(&net->nodes[net->custom[i]].addr, sa))
            return net->custom[i];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        if (ntohs(s->sin_port) != 6881)
            return -1;
        uint32_t x = ntohl(s->sin_addr.s_addr) - net->base4;
        if (net->shift && (x & ((1u << net->shift) - 1)) != 1)
            return -1;
        v = net->shift ? x >> net->shift : x;
        if (!net->shift && x > 0xffffffu)
            return -1;
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        if (ntohs(s->sin6_port) != 6881)
            return -1;
        v = ((uint32_t)s->sin6_addr.s6_addr[13] << 16) |
            ((uint32_t)s->sin6_addr.s6_addr[14] << 8) | s->sin6_addr.s6_addr[15];
    }
    if (v < 1 || (int)v > net->n || net->nodes[v - 1].has_addr)
        return -1;
    return (int)v - 1;
}

/* Gives node i the address ss (before it starts). Returns 0 or -ENOMEM. */
static inline int net_set_addr(struct net *net, int i, const struct sockaddr_storage *ss)
{
    int *c = realloc(net->custom, sizeof(*c) * (size_t)(net->ncustom + 1));
    if (!c)
        return -ENOMEM;
    net->custom = c;
    net->custom[net->ncustom++] = i;
    net->nodes[i].has_addr = 1;
    net->nodes[i].addr = *ss;
    return 0;
}

static inline int net_before(const struct net_pkt *a, const struct net_pkt *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

/* Queues a datagram from node `from` to node dst. Returns 0 or -ENOMEM. */
static inline int net_enqueue(struct net *net, int from, int dst, const void *buf, size_t len)
{
    if (len > DHT_MAX_PACKET)
        return 0; /* lost */
    if (net->nheap == net->capheap) {
        size_t cap = net->capheap ? net->capheap * 2 : 1024;
        struct net_pkt **h = realloc(net->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        net->heap = h;
        net->capheap = cap;
    }
    struct net_pkt *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->at = net->now + net->lat_min + (net->lat_span ? net_rand(net) % net->lat_span : 0) +
            net->nodes[from].extra_ms + net->nodes[dst].extra_ms;
    if (net->nodes[dst].dead)
        net->nodes[from].sent_dead++;
    p->seq = net->seq++;
    p->from = from;
    p->to = dst;
    p->len = len;
    memcpy(p->data, buf, len);
    size_t i = net->nheap++;
    while (i > 0 && net_before(p, net->heap[(i - 1) / 2])) {
        net->heap[i] = net->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    net->heap[i] = p;
    return 0;
}

static inline int net_send(void *ud, const void *buf, size_t len, const struct sockaddr *to,
                           socklen_t tolen)
{
    struct net_node *nn = ud;
    struct net *net = nn->net;
    int dst = net_index(net, to);
    if (dst < 0) {
        if (net->outside)
            net->outside(net, nn->index, to, buf, len);
        return 0; /* lost, like UDP to nowhere */
    }
    return net_enqueue(net, nn->index, dst, buf, len);
}

/* A hand-written node sends: from its index to node dst. */
static inline int net_send_from(struct net *net, int from, int dst, const void *buf, size_t len)
{
    return net_enqueue(net, from, dst, buf, len);
}

static inline struct net_pkt *net_pop(struct net *net)
{
    struct net_pkt *top = net->heap[0], *last = net->heap[--net->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= net->nheap)
            break;
        if (c + 1 < net->nheap && net_before(net->heap[c + 1], net->heap[c]))
            c++;
        if (!net_before(net->heap[c], last))
            break;
        net->heap[i] = net->heap[c];
        i = c;
    }
    if (net->nheap)
        net->heap[i] = last;
    return top;
}

/* Creates n node slots (no nodes yet): net_start() creates each. */
static inline int net_init(struct net *net, int n, int v6, uint64_t seed)
{
    memset(net, 0, sizeof(*net));
    net->nodes = calloc((size_t)n, sizeof(*net->nodes));
    if (!net->nodes)
        return -ENOMEM;
    net->n = n;
    net->v6 = v6;
    net->rng = seed;
    net->now = 1000;
    net->base4 = 0x0a000000u;
    net->lat_min = 10;
    net->lat_span = 50;
    net->cur_from = net->cur_to = -1;
    for (int i = 0; i < n; i++) {
        net->nodes[i].net = net;
        net->nodes[i].index = i;
    }
    return 0;
}

/* Creates node i with cfg (send and ud are filled in) and bootstrap node boot (-1 none). */
static inline int net_start(struct net *net, int i, struct dht_config *cfg, int boot)
{
    struct net_node *nn = &net->nodes[i];
    cfg->send = net_send;
    cfg->ud = nn;
    cfg->families = net->v6 ? DHT_FAMILY_V6 : DHT_FAMILY_V4;
    int r = dht_new(cfg, net->now, &nn->dht);
    if (r < 0)
        return r;
    if (boot >= 0) {
        struct sockaddr_storage ss;
        net_addr(net, boot, &ss);
        r = dht_add_bootstrap(nn->dht, (struct sockaddr *)&ss, sizeof(ss));
    }
    nn->next_ms = net->now;
    return r;
}

/* Runs the network until `until` (absolute ms), in ticks of tick_ms. */
static inline void net_run(struct net *net, uint64_t until, uint64_t tick_ms)
{
    while (net->now < until) {
        net->now += tick_ms;
        while (net->nheap && net->heap[0]->at <= net->now) {
            struct net_pkt *p = net_pop(net);
            struct net_node *dst = &net->nodes[p->to];
            if (dst->handler && !dst->dead) {
                dst->handler(net, p->to, p->from, p->data, p->len);
                net->delivered++;
            } else if (dst->dht && !dst->dead) {
                struct sockaddr_storage from;
                net_addr(net, p->from, &from);
                net->cur_from = p->from;
                net->cur_to = p->to;
                dht_input(dst->dht, p->data, p->len, (struct sockaddr *)&from, sizeof(from),
                          p->at);
                net->cur_from = net->cur_to = -1;
                net->delivered++;
            } else {
                net->dropped++;
            }
            free(p);
        }
        for (int i = 0; i < net->n; i++) {
            struct net_node *nn = &net->nodes[i];
            if (nn->dht && !nn->dead && nn->next_ms <= net->now)
                dht_periodic(nn->dht, net->now, &nn->next_ms);
        }
    }
}

static inline void net_done(struct net *net)
{
    for (int i = 0; i < net->n; i++)
        dht_free(net->nodes[i].dht);
    while (net->nheap)
        free(net_pop(net));
    free(net->heap);
    free(net->nodes);
    free(net->custom);
}

#endif

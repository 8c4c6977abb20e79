/* conns.c - connection budgets per address and per audience, and the header deadline
 * (see conns.h). Each address with connections open has a counter in a map keyed by
 * its text form; each open connection has a slot on a list in order of opening, so the
 * deadline sweep, run once a second by a loop timer, looks only at the oldest ones. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/conns.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/strmap.h"

struct addr_count {
    uint32_t n;
    char key[INET6_ADDRSTRLEN];
};

struct conn_slot {
    struct addr_count *ac;
    bool apt_client;
    bool waiting_head;   /* opened, no complete request head yet */
    uint64_t opened_ms;
    int fd;
    struct conn_slot *prev, *next; /* in order of opening */
};

struct conns {
    struct loop *loop;
    struct conns_limits lim;
    struct strmap *by_addr;   /* text address -> struct addr_count */
    uint32_t total, from_others;
    struct conn_slot *head, *tail;
    struct loop_timer sweep;
};

/* The address as text, v4-mapped v6 as v4 (one host, one count). */
static void addr_key(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN])
{
    snprintf(out, INET6_ADDRSTRLEN, "?");
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  INET6_ADDRSTRLEN);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, INET6_ADDRSTRLEN);
        else
            inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN);
    }
}

static void on_sweep(struct loop *l, struct loop_timer *t, void *ud);

int conns_new(struct conns **out, struct loop *l, const struct conns_limits *lim)
{
    struct conns *c = calloc(1, sizeof *c);
    if (!c || strmap_new(&c->by_addr) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->loop = l;
    c->lim = *lim;
    loop_timer_init(&c->sweep, on_sweep, c);
    *out = c;
    return 0;
}

static void free_count(void *v)
{
    free(v);
}

void conns_free(struct conns *c)
{
    if (!c)
        return;
    loop_timer_stop(c->loop, &c->sweep);
    while (c->head) {
        struct conn_slot *s = c->head;
        c->head = s->next;
        free(s);
    }
    strmap_free(c->by_addr, free_count);
    free(c);
}

void conns_set_limits(struct conns *c, const struct conns_limits *lim)
{
    c->lim = *lim;
}

uint32_t conns_total(const struct conns *c)
{
    return c->total;
}

uint32_t conns_from(const struct conns *c, const struct sockaddr *sa)
{
    char k[INET6_ADDRSTRLEN];
    addr_key(sa, k);
    const struct addr_count *ac = strmap_get(c->by_addr, k);
    return ac ? ac->n : 0;
}

bool conns_admit(const struct conns *c, const struct sockaddr *sa, bool apt_client)
{
    if (c->total >= c->lim.max_total)
        return false;
    if (!apt_client && c->from_others >= c->lim.max_total / 4)
        return false;
    return conns_from(c, sa) < c->lim.max_per_client;
}

static void arm_sweep(struct conns *c)
{
    if (c->lim.header_timeout_s && !loop_timer_armed(&c->sweep))
        loop_timer_start(c->loop, &c->sweep, 1000);
}

struct conn_slot *conns_opened(struct conns *c, const struct sockaddr *sa, bool apt_client,
                               int fd)
{
    char k[INET6_ADDRSTRLEN];
    struct conn_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    addr_key(sa, k);
    struct addr_count *ac = strmap_get(c->by_addr, k);
    if (!ac) {
        if (!(ac = calloc(1, sizeof *ac))) {
            free(s);
            return NULL;
        }
        memcpy(ac->key, k, sizeof ac->key);
        if (strmap_put(c->by_addr, ac->key, ac, NULL) < 0) {
            free(ac);
            free(s);
            return NULL;
        }
    }
    ac->n++;
    c->total++;
    if (!apt_client)
        c->from_others++;
    *s = (struct conn_slot){ac, apt_client, true, loop_now_ms(), fd, c->tail, NULL};
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    arm_sweep(c);
    return s;
}

void conns_requested(struct conn_slot *s)
{
    if (s)
        s->waiting_head = false;
}

void conns_closed(struct conns *c, struct conn_slot *s)
{
    if (!s)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        c->tail = s->prev;
    c->total--;
    if (!s->apt_client)
        c->from_others--;
    if (--s->ac->n == 0) {
        strmap_del(c->by_addr, s->ac->key);
        free(s->ac);
    }
    free(s);
}

/* Shuts down every connection that is past the header deadline without a request head;
 * libmicrohttpd then sees the end of the stream and closes it (conns_closed follows). */
static void on_sweep(struct loop *l, struct loop_timer *t, void *ud)
{
    struct conns *c = ud;
    uint64_t now = loop_now_ms(), limit = (uint64_t)c->lim.header_timeout_s * 1000u;
    unsigned cut = 0;
    for (struct conn_slot *s = c->head; s && s->opened_ms + limit <= now; s = s->next) {
        if (s->waiting_head && s->fd >= 0) {
            shutdown(s->fd, SHUT_RDWR);
            s->fd = -1; /* once */
            cut++;
        }
    }
    if (cut)
        log_info("http: closed %u connections with no request head after %u s", cut,
                 (unsigned)c->lim.header_timeout_s);
    if (c->head)
        arm_sweep(c);
}

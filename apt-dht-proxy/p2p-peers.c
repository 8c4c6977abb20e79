/* p2p-peers.c - what the daemon knows of addresses and of the peers it fetched from.
 *
 * Who we are: the host's interface addresses, reread every minute (p2p_ifs_refresh), so
 * that a lookup never returns this host's own HTTP address and can tell a peer on one of
 * our subnets from a far one.
 *
 * Who served us well: one record per peer, keyed by "ADDR:PORT". A peer that served bad
 * data is banned for an hour; one that failed (refused, silent past its deadline, below
 * the speed floor) is backed off, 30 s doubling to 10 min, and forgiven at its next good
 * transfer; a good transfer also feeds a moving average of its speed. A failed peer is
 * also skipped, after its back-off, until it is heard from again (p2p_peer_heard: a
 * DHT packet from its address, which is its HTTP address too) or UNHEARD_MAX_MS has
 * passed: a laptop that left without a word costs one deadline, not one per file. The
 * table is bounded (MAX_PEER_INFO): when full, records with no ban or back-off running
 * are forgotten first. A lookup's peers are filtered and ordered from it
 * (p2p_peers_order): never ourselves, never banned, backed off or unheard, same subnet
 * first, then the fastest. The status pages read the same records.
 *
 * Round trips: each peer transfer's time to its response headers is a sample of that
 * peer's round trip (its disk included), smoothed as RFC 6298 does (SRTT, RTTVAR, gains
 * 1/8 and 1/4), per peer and for the node as a whole. A transfer's deadline for its
 * headers is twice the RTO (SRTT + 4 RTTVAR), at least DEADLINE_FLOOR_MS (a LAN is fast,
 * a disk not always) and at most DEADLINE_MAX_MS; a peer never measured gets the node's
 * figure, and the node with nothing measured DEADLINE_DEFAULT_MS.
 *
 * Nothing here speaks to the DHT; p2p.c does, and calls in. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p-int.h"
#include "apt-dht-proxy/url.h"

#define BAN_MS (60u * 60 * 1000)
#define BACKOFF_MIN_MS 30000u
#define BACKOFF_MAX_MS (10u * 60 * 1000)
#define MAX_PEER_INFO 4096
#define UNHEARD_MAX_MS BACKOFF_MAX_MS /* a failed peer never heard from is tried again */
#define DEADLINE_FLOOR_MS 150u
#define DEADLINE_MAX_MS 2000u
#define DEADLINE_DEFAULT_MS 250u

struct peer_info {
    uint64_t banned_until_ms, backoff_until_ms; /* 0 = not */
    unsigned failures;                          /* in a row */
    bool unheard;       /* failed, and not heard from since (p2p_peer_heard) */
    struct p2p_rtt rtt; /* its response time */
    double bytes_per_ms;                        /* moving average; 0 = not measured */
    char label[64];                             /* "ADDR:PORT" */
    /* for the status page */
    uint64_t last_ms;                           /* last result; 0 = never */
    uint64_t files_ok, bytes_ok, n_failed, n_bad;
    const char *why;                            /* the last problem, a static string */
};

/* ---- addresses ---- */

static int sa_label(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        return snprintf(out, n, "%s:%u", host, ntohs(v4->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        return snprintf(out, n, "[%s]:%u", host, ntohs(v6->sin6_port));
    }
    return snprintf(out, n, "?");
}

int p2p_peer_url(const struct sockaddr *peer, const uint8_t sha256[32], char *out, size_t n)
{
    char label[80], hex[65];
    sa_label(peer, label, sizeof label);
    hex_encode(sha256, 32, hex);
    int w = snprintf(out, n, "http://%s/~/sha256/%s", label, hex);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static const uint8_t *sa_bytes(const struct sockaddr *sa, size_t *len)
{
    if (sa->sa_family == AF_INET) {
        *len = 4;
        return (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    }
    *len = 16;
    return (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
}

static uint16_t sa_port(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET
               ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
               : ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

void p2p_ifs_refresh(struct p2p *p)
{
    struct ifaddrs *all, *i;
    p->n_ifs = 0;
    if (getifaddrs(&all) < 0)
        return;
    for (i = all; i && p->n_ifs < MAX_IFS; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct local_if *l = &p->ifs[p->n_ifs++];
        size_t len = 0;
        memset(l, 0, sizeof *l);
        l->family = i->ifa_addr->sa_family;
        /* sa_bytes sets len: call it before len is read (argument order is unspecified) */
        const uint8_t *bytes = sa_bytes(i->ifa_addr, &len);
        memcpy(l->addr, bytes, len);
        if (i->ifa_netmask) {
            bytes = sa_bytes(i->ifa_netmask, &len);
            memcpy(l->mask, bytes, len);
        }
        l->ifindex = if_nametoindex(i->ifa_name);
        l->multicast = (i->ifa_flags & IFF_MULTICAST) && !(i->ifa_flags & IFF_LOOPBACK);
    }
    freeifaddrs(all);
}

static bool is_self(const struct p2p *p, const struct sockaddr *sa)
{
    size_t len;
    const uint8_t *a = sa_bytes(sa, &len);
    if (sa_port(sa) != p->http_port)
        return false;
    for (size_t i = 0; i < p->n_ifs; i++)
        if (p->ifs[i].family == sa->sa_family && memcmp(p->ifs[i].addr, a, len) == 0)
            return true;
    return false;
}

static bool same_subnet(const struct p2p *p, const struct sockaddr *sa)
{
    size_t len;
    const uint8_t *a = sa_bytes(sa, &len);
    for (size_t i = 0; i < p->n_ifs; i++) {
        const struct local_if *l = &p->ifs[i];
        if (l->family != sa->sa_family)
            continue;
        size_t k = 0;
        while (k < len && (a[k] & l->mask[k]) == (l->addr[k] & l->mask[k]))
            k++;
        if (k == len)
            return true;
    }
    return false;
}

/* ---- peer health ---- */

struct prune_ctx {
    uint64_t now;
    const char *labels[MAX_PEER_INFO];
    size_t n;
};

static void prune_one(const char *key, void *value, void *ud)
{
    struct prune_ctx *x = ud;
    const struct peer_info *pi = value;
    if (pi->banned_until_ms <= x->now && pi->backoff_until_ms <= x->now && x->n < MAX_PEER_INFO)
        x->labels[x->n++] = key;
}

/* The map is bounded: when full, peers with no ban or back-off running are forgotten
 * (their speed is all that is lost), so bans keep working however many peers come. */
static void peers_prune(struct p2p *p)
{
    struct prune_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return;
    x->now = loop_now_ms();
    strmap_each(p->peers, prune_one, x);
    for (size_t i = 0; i < x->n; i++)
        free(strmap_del(p->peers, x->labels[i]));
    free(x);
}

static struct peer_info *peer_get(struct p2p *p, const struct sockaddr *sa, bool create)
{
    char label[64];
    sa_label(sa, label, sizeof label);
    struct peer_info *pi = strmap_get(p->peers, label);
    if (pi || !create)
        return pi;
    if (strmap_count(p->peers) >= MAX_PEER_INFO)
        peers_prune(p);
    if (strmap_count(p->peers) >= MAX_PEER_INFO)
        return NULL; /* thousands of peers banned at once: the newest goes unrecorded */
    pi = calloc(1, sizeof *pi);
    if (!pi)
        return NULL;
    snprintf(pi->label, sizeof pi->label, "%s", label);
    if (strmap_put(p->peers, pi->label, pi, NULL) < 0) {
        free(pi);
        return NULL;
    }
    return pi;
}

void p2p_peer_result(struct p2p *p, const struct sockaddr *peer, enum peer_result r,
                     uint64_t bytes, uint64_t ms)
{
    struct peer_info *pi = peer_get(p, peer, true);
    uint64_t now = loop_now_ms();
    if (!pi)
        return;
    pi->last_ms = now;
    switch (r) {
    case PEER_OK:
        p->st.peer_ok++;
        pi->files_ok++;
        pi->bytes_ok += bytes;
        pi->failures = 0;
        pi->backoff_until_ms = 0;
        pi->unheard = false;
        if (ms > 0 && bytes > 0) {
            double speed = (double)bytes / (double)ms;
            pi->bytes_per_ms = pi->bytes_per_ms > 0 ? 0.7 * pi->bytes_per_ms + 0.3 * speed : speed;
        }
        break;
    case PEER_BAD_DATA:
        p->st.peer_bad++;
        pi->n_bad++;
        pi->why = "served data that failed verification";
        pi->banned_until_ms = now + BAN_MS;
        log_warn("peer %s served data that failed verification: banned for %u minutes", pi->label,
                 BAN_MS / 60000);
        break;
    case PEER_FAILED:
    default: {
        p->st.peer_failed++;
        pi->n_failed++;
        pi->why = "refused, unreachable, an HTTP error or too slow";
        uint64_t b = BACKOFF_MIN_MS << (pi->failures < 5 ? pi->failures : 5);
        pi->failures++;
        pi->unheard = true;
        pi->backoff_until_ms = now + (b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS);
        log_info("peer %s failed; not asked again for %llu s", pi->label,
                 (unsigned long long)((b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS) / 1000));
        break;
    }
    }
}

static bool peer_usable(struct p2p *p, const struct sockaddr *sa, uint64_t now)
{
    struct peer_info *pi = peer_get(p, sa, false);
    if (!pi)
        return true;
    if (pi->unheard && now >= pi->last_ms + UNHEARD_MAX_MS)
        pi->unheard = false; /* long enough: it may be back on another way */
    return pi->banned_until_ms <= now && pi->backoff_until_ms <= now && !pi->unheard;
}

void p2p_peer_heard(struct p2p *p, const struct sockaddr *sa)
{
    if (!p->peers || strmap_count(p->peers) == 0)
        return;
    struct peer_info *pi = peer_get(p, sa, false);
    if (pi && pi->unheard) {
        pi->unheard = false;
        log_debug("peer %s heard from again", pi->label);
    }
}

/* ---- round trips ---- */

/* One sample into an RFC 6298 estimator (microseconds). */
static void rtt_sample(struct p2p_rtt *r, uint64_t us)
{
    double m = (double)us;
    if (r->srtt_us <= 0) {
        r->srtt_us = m;
        r->rttvar_us = m / 2;
        return;
    }
    double err = m > r->srtt_us ? m - r->srtt_us : r->srtt_us - m;
    r->rttvar_us = 0.75 * r->rttvar_us + 0.25 * err;
    r->srtt_us = 0.875 * r->srtt_us + 0.125 * m;
}

void p2p_peer_rtt(struct p2p *p, const struct sockaddr *peer, uint64_t connect_us,
                  uint64_t headers_us)
{
    uint64_t us = headers_us > 0 ? headers_us : connect_us;
    if (us == 0)
        return;
    struct peer_info *pi = peer_get(p, peer, true);
    if (pi)
        rtt_sample(&pi->rtt, us);
    rtt_sample(&p->rtt, us);
}

uint32_t p2p_rtt_deadline_ms(const struct p2p_rtt *r)
{
    if (r->srtt_us <= 0)
        return DEADLINE_DEFAULT_MS;
    double ms = 2 * (r->srtt_us + 4 * r->rttvar_us) / 1000;
    return ms < DEADLINE_FLOOR_MS ? DEADLINE_FLOOR_MS
           : ms > DEADLINE_MAX_MS ? DEADLINE_MAX_MS
                                  : (uint32_t)ms;
}

uint32_t p2p_peer_deadline_ms(struct p2p *p, const struct sockaddr *peer)
{
    struct peer_info *pi = peer_get(p, peer, false);
    return p2p_rtt_deadline_ms(pi && pi->rtt.srtt_us > 0 ? &pi->rtt : &p->rtt);
}

struct ranked {
    struct sockaddr_storage sa;
    int near;
    double speed;
};

static int by_rank(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->near != y->near)
        return y->near - x->near;
    return (y->speed > x->speed) - (y->speed < x->speed);
}

size_t p2p_peers_order(struct p2p *p, const struct sockaddr_storage *in, size_t n_in, bool all,
                       struct sockaddr_storage *out, size_t max)
{
    struct ranked r[P2P_ORDER_MAX];
    size_t n = 0;
    uint64_t now = loop_now_ms();
    if (max > P2P_ORDER_MAX)
        max = P2P_ORDER_MAX;
    for (size_t i = 0; i < n_in && n < max; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&in[i];
        if (!all && (is_self(p, sa) || !peer_usable(p, sa, now)))
            continue;
        struct peer_info *pi = peer_get(p, sa, false);
        r[n].sa = in[i];
        r[n].near = same_subnet(p, sa);
        r[n].speed = pi ? pi->bytes_per_ms : 0;
        n++;
    }
    if (!all)
        qsort(r, n, sizeof r[0], by_rank);
    for (size_t i = 0; i < n; i++)
        out[i] = r[i].sa;
    return n;
}

struct count_ctx {
    uint64_t now;
    unsigned banned, backed_off;
};

static void count_one(const char *key, void *value, void *ud)
{
    struct count_ctx *c = ud;
    const struct peer_info *pi = value;
    if (pi->banned_until_ms > c->now)
        c->banned++;
    else if (pi->backoff_until_ms > c->now)
        c->backed_off++;
}

void p2p_peers_count(const struct p2p *p, unsigned *banned, unsigned *backed_off)
{
    struct count_ctx c = {.now = loop_now_ms()};
    strmap_each(p->peers, count_one, &c);
    *banned = c.banned;
    *backed_off = c.backed_off;
}

/* ---- what the status page reads ---- */

static void view_of(const struct peer_info *pi, struct p2p_peer_view *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->label, sizeof v->label, "%s", pi->label);
    v->last_ms = pi->last_ms;
    v->bytes_per_s = pi->bytes_per_ms * 1000;
    v->files_ok = pi->files_ok;
    v->bytes_ok = pi->bytes_ok;
    v->failures = pi->n_failed;
    v->bad = pi->n_bad;
    v->banned_until_ms = pi->banned_until_ms;
    v->backoff_until_ms = pi->backoff_until_ms;
    v->why = pi->why ? pi->why : "";
}

struct views_ctx {
    struct p2p_peer_view *out;
    size_t n, max;
};

/* Keeps the max most recently heard, in that order (insertion into a sorted array). */
static void view_one(const char *key, void *value, void *ud)
{
    struct views_ctx *c = ud;
    const struct peer_info *pi = value;
    size_t i = c->n;
    if (i == c->max) {
        if (c->max == 0 || c->out[i - 1].last_ms >= pi->last_ms)
            return;
        i--; /* drop the oldest */
    } else {
        c->n++;
    }
    while (i > 0 && c->out[i - 1].last_ms < pi->last_ms) {
        c->out[i] = c->out[i - 1];
        i--;
    }
    view_of(pi, &c->out[i]);
}

size_t p2p_peers(struct p2p *p, struct p2p_peer_view *out, size_t max)
{
    struct views_ctx c = {out, 0, max};
    strmap_each(p->peers, view_one, &c);
    return c.n;
}

bool p2p_peer_view(struct p2p *p, const struct sockaddr *sa, struct p2p_peer_view *out)
{
    struct peer_info *pi = peer_get(p, sa, false);
    if (pi)
        view_of(pi, out);
    return pi != NULL;
}

bool p2p_is_self(const struct p2p *p, const struct sockaddr *sa)
{
    return is_self(p, sa);
}

bool p2p_peers_near(const struct p2p *p, const struct sockaddr *sa)
{
    return same_subnet(p, sa) && !is_self(p, sa);
}

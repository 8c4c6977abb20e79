/* contact.c - what a node knows of each address it talks to: how long it takes to
 * answer, and whether it has stopped answering.
 *
 * Round trips follow RFC 6298: every answer to one of our queries (a KRPC reply or
 * error; we never send a query twice, so every sample is unambiguous in Karn's sense)
 * updates the address's smoothed round trip SRTT and its variation RTTVAR, and the
 * node's own estimator of all answers. A query's deadline is SRTT + max(G, 4 * RTTVAR)
 * of its address, or of the node when the address was never measured, or the soft
 * timeout when nothing was; clamped between DEADLINE_FLOOR_MS and the soft timeout.
 * The floor is for a LAN, where SRTT is well under a millisecond: it covers what a
 * round trip there really varies by (a busy host's event loop, a Wi-Fi station waking,
 * the 1 ms clock), and a deadline set too early costs one more query, never a result,
 * because a late answer still counts.
 *
 * A missed deadline is a suspicion: the address is probed once (a ping with twice the
 * deadline, RFC 6298's back-off). CT_DEAD_MISSES deadlines missed in a row with
 * nothing heard from the address meanwhile make it failed: lookups skip it (lookup.c)
 * and answers do not name it, until any datagram from it arrives.
 *
 * The table is a small set-associative cache keyed by address: the least recently used
 * entry of a set gives way, so what is forgotten is only a measurement. */
#include <string.h>
#include "dht/node.h"

#define RTT_G_US 1000u          /* RFC 6298's clock granularity G: our clock's 1 ms */
#define RTT_MAX_SAMPLE_MS 60000u

void dht_rtt_sample(struct dht_rtt *r, uint32_t sample_ms)
{
    uint32_t s = (sample_ms > RTT_MAX_SAMPLE_MS ? RTT_MAX_SAMPLE_MS : sample_ms) * 1000u;
    if (r->samples == 0) { /* RFC 6298 2.2 */
        r->srtt_us = s;
        r->rttvar_us = s / 2;
    } else { /* 2.3: beta = 1/4, alpha = 1/8; RTTVAR first, with the old SRTT */
        uint32_t dev = r->srtt_us > s ? r->srtt_us - s : s - r->srtt_us;
        r->rttvar_us = (3 * r->rttvar_us + dev) / 4;
        r->srtt_us = (7 * r->srtt_us + s) / 8;
    }
    if (r->samples < UINT32_MAX)
        r->samples++;
}

uint32_t dht_rtt_rto_ms(const struct dht_rtt *r)
{
    if (r->samples == 0)
        return 0;
    uint32_t var4 = 4 * r->rttvar_us;
    uint64_t us = (uint64_t)r->srtt_us + (var4 > RTT_G_US ? var4 : RTT_G_US);
    return (uint32_t)((us + 999) / 1000);
}

static uint32_t addr_hash(const dht_sa *a)
{
    uint32_t h = 2166136261u;
    const uint8_t *p;
    size_t n;
    uint16_t port;
    if (a->sa.sa_family == AF_INET6) {
        p = (const uint8_t *)&a->in6.sin6_addr;
        n = 16;
        port = a->in6.sin6_port;
    } else {
        p = (const uint8_t *)&a->in.sin_addr;
        n = 4;
        port = a->in.sin_port;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    return (h ^ (port >> 8)) * 16777619u;
}

/* Whether entry x should give way before entry y: an empty slot first, then the least
 * recently used. */
static int sooner(const struct contact *x, const struct contact *y)
{
    if (!x->addr.sa.sa_family || !y->addr.sa.sa_family)
        return !x->addr.sa.sa_family && y->addr.sa.sa_family;
    return x->used_ms < y->used_ms;
}

/* The entry of address a, or NULL; with create, a new one in place of its set's empty
 * or least recently used slot. */
static struct contact *lookup(struct dht *dht, const dht_sa *a, int create)
{
    struct contact *set = &dht->ct[(addr_hash(a) % CT_SETS) * CT_WAYS], *victim = set;
    for (int i = 0; i < CT_WAYS; i++) {
        if (set[i].addr.sa.sa_family && dht_addr_equal(&set[i].addr, a)) {
            set[i].used_ms = dht->now;
            return &set[i];
        }
        if (sooner(&set[i], victim))
            victim = &set[i];
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    victim->addr = *a;
    victim->used_ms = dht->now;
    return victim;
}

static const struct contact *peek(const struct dht *dht, const dht_sa *a)
{
    const struct contact *set = &dht->ct[(addr_hash(a) % CT_SETS) * CT_WAYS];
    for (int i = 0; i < CT_WAYS; i++)
        if (set[i].addr.sa.sa_family && dht_addr_equal(&set[i].addr, a))
            return &set[i];
    return NULL;
}

uint32_t contact_deadline_ms(const struct dht *dht, const dht_sa *a)
{
    const struct contact *c = peek(dht, a);
    uint32_t soft = dht->cfg.soft_timeout_ms;
    uint32_t rto = c && c->rtt.samples ? dht_rtt_rto_ms(&c->rtt) : dht_rtt_rto_ms(&dht->rtt);
    if (rto == 0 || rto > soft)
        return soft;
    if (rto < DEADLINE_FLOOR_MS)
        return DEADLINE_FLOOR_MS < soft ? DEADLINE_FLOOR_MS : soft;
    return rto;
}

void contact_replied(struct dht *dht, const dht_sa *a, uint64_t rtt_ms)
{
    uint32_t ms = rtt_ms > RTT_MAX_SAMPLE_MS ? RTT_MAX_SAMPLE_MS : (uint32_t)rtt_ms;
    struct contact *c = lookup(dht, a, 1);
    dht_rtt_sample(&c->rtt, ms);
    dht_rtt_sample(&dht->rtt, ms);
    c->missed = 0;
}

void contact_heard(struct dht *dht, const dht_sa *a)
{
    struct contact *c = lookup(dht, a, 0);
    if (c)
        c->missed = 0;
}

int contact_missed(struct dht *dht, const dht_sa *a)
{
    struct contact *c = lookup(dht, a, 1);
    if (c->missed < 255)
        c->missed++;
    return c->missed;
}

bool contact_failed(const struct dht *dht, const dht_sa *a)
{
    const struct contact *c = peek(dht, a);
    return c && c->missed >= CT_DEAD_MISSES;
}

int dht_addr_failed(const struct dht *dht, const struct sockaddr *sa, socklen_t salen)
{
    dht_sa a;
    int r = dht_sa_from(&a, sa, salen);
    return r < 0 ? r : contact_failed(dht, &a);
}

int contact_rtt(const struct dht *dht, const dht_sa *a, uint32_t *srtt_us,
                uint32_t *rttvar_us)
{
    const struct contact *c = peek(dht, a);
    if (!c || !c->rtt.samples)
        return -1;
    *srtt_us = c->rtt.srtt_us;
    *rttvar_us = c->rtt.rttvar_us;
    return 0;
}

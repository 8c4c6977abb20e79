/* node.c - one DHT node: datagrams in, queries answered, timers, lifecycle.
 *
 * The caller drives everything: dht_input() for each datagram received, dht_periodic()
 * when the returned deadline passes. Outgoing queries live in a pending table whose
 * slot index and a generation counter form the 4-byte transaction id, so an answer is
 * matched in O(1) and a stale or forged id is dropped. Incoming queries pass, in order:
 * the size limit, the per-address rate limit (a token bucket per sender IP, whatever
 * its source port, with a short blacklist; see sybil.c for loopback), KRPC validation
 * (errors 203/204), then the handler. Every answer, errors included, is kept within
 * ANSWER_FACTOR times the size of its query, so the node never amplifies a forged
 * source's traffic more than that: lists of values and nodes are trimmed to fit, and
 * what cannot fit is not sent. Node lists in answers prefer diverse subnets (and, in
 * the mainline dialect, BEP 42 ids) among the closest nodes. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "dht/node.h"

void dht_config_init(struct dht_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

static void apply_defaults(struct dht_config *c)
{
    if (!c->families)
        c->families = DHT_FAMILY_V4 | DHT_FAMILY_V6;
    if (!c->alpha)
        c->alpha = 3;
    if (!c->soft_timeout_ms)
        c->soft_timeout_ms = 800;
    if (!c->hard_timeout_ms)
        c->hard_timeout_ms = 4000;
    if (!c->value_ttl_s)
        c->value_ttl_s = c->dialect == DHT_DIALECT_BEP5 ? 1800 : 7200;
    if (!c->max_values_per_key)
        c->max_values_per_key = 256;
    if (!c->max_values_total)
        c->max_values_total = 16384;
    if (!c->rate_per_s)
        c->rate_per_s = 20;
    if (!c->blacklist_ms)
        c->blacklist_ms = 60000;
}

int dht_new(const struct dht_config *cfg, uint64_t now_ms, struct dht **out)
{
    struct dht tmp = {0};
    struct dht *dht = NULL;
    int r = -EINVAL;
    if (!cfg || !cfg->send || !out || cfg->alpha > 16 ||
        (cfg->dialect != DHT_DIALECT_APT && cfg->dialect != DHT_DIALECT_BEP5))
        goto fail;
    tmp.rng = cfg->seed;
    if (!tmp.rng && getrandom(&tmp.rng, sizeof(tmp.rng), 0) != sizeof(tmp.rng)) {
        r = -errno;
        goto fail;
    }
    r = -ENOMEM;
    dht = malloc(sizeof(*dht));
    if (!dht)
        goto fail;
    *dht = tmp;
    dht->mem = sizeof(*dht);
    dht->cfg = *cfg;
    dht->cfg.id = NULL;
    apply_defaults(&dht->cfg);
    dht->now = now_ms;
    if (cfg->id)
        memcpy(dht->id, cfg->id, DHT_ID_LEN);
    else
        dht_rand_bytes(dht, dht->id, DHT_ID_LEN);
    dht_rand_bytes(dht, dht->lan_cookie, sizeof(dht->lan_cookie));
    if (rt_init(&dht->rt[0], dht, dht->id, now_ms) < 0 ||
        rt_init(&dht->rt[1], dht, dht->id, now_ms) < 0)
        goto fail;
    dht->store = store_new(dht, dht->cfg.max_values_per_key, dht->cfg.max_values_total);
    if (!dht->store)
        goto fail;
    token_init(&dht->tok, dht, now_ms);
    dht->next_handle = 1;
    dht->boot_backoff_ms = 1000;
    dht->next_expire_ms = now_ms + 60000;
    dht->next_refresh_ms = now_ms + 60000;
    *out = dht;
    return 0;
fail:
    dht_free(dht);
    return r;
}

void dht_free(struct dht *dht)
{
    if (!dht)
        return;
    lookup_free_all(dht);
    announce_free_all(dht);
    store_free(dht->store);
    rt_done(&dht->rt[0]);
    rt_done(&dht->rt[1]);
    dht_dealloc(dht, dht->pend);
    free(dht);
}

enum dht_state dht_state(const struct dht *dht)
{
    return dht->state;
}

const uint8_t *dht_id(const struct dht *dht)
{
    return dht->id;
}

int dht_external_addr(const struct dht *dht, struct sockaddr_storage *out)
{
    if (!dht->has_ext)
        return -ENOENT;
    dht_sa_to_storage(&dht->ext, out);
    return 0;
}

void dht_get_stats(const struct dht *dht, struct dht_stats *st)
{
    *st = dht->st;
    int g4, q4, g6, q6;
    rt_count(&dht->rt[0], dht->now, &g4, &q4);
    rt_count(&dht->rt[1], dht->now, &g6, &q6);
    st->nodes_good = (unsigned)(g4 + g6);
    st->nodes_questionable = (unsigned)(q4 + q6);
    st->buckets = (unsigned)(dht->rt[0].nb + dht->rt[1].nb);
    store_counts(dht->store, &st->keys_stored, &st->values_stored);
    st->lookups_active = 0;
    for (const struct lookup *lk = dht->lookups; lk; lk = lk->next)
        st->lookups_active += !lk->done;
    st->announces = (unsigned)dht->nanns;
    st->mem_bytes = dht->mem;
}

static int family_ok(const struct dht *dht, const dht_sa *a)
{
    int bit = a->sa.sa_family == AF_INET6 ? DHT_FAMILY_V6 : DHT_FAMILY_V4;
    return (dht->cfg.families & bit) != 0;
}

static void send_raw(struct dht *dht, const uint8_t *buf, int len, const dht_sa *to)
{
    if (len <= 0 || len > DHT_MAX_PACKET)
        return;
    int r = dht->cfg.send(dht->cfg.ud, buf, (size_t)len, &to->sa, dht_addr_len(to));
    dht->st.bytes_out += (uint64_t)len;
    if (r == -EBADF || r == -ENOTSOCK || r == -ENOMEM || r == -EFAULT) {
        dht->faulted = 1;
    } else if (r == -ENETUNREACH || r == -ENETDOWN || r == -EHOSTUNREACH ||
               r == -EADDRNOTAVAIL) {
        dht->net_err_ms = dht->now ? dht->now : 1;
    }
}

static struct pending *pend_alloc(struct dht *dht, int *slot)
{
    for (int i = 0; i < dht->npend; i++) {
        if (dht->pend[i].kind == P_FREE) {
            *slot = i;
            return &dht->pend[i];
        }
    }
    if (dht->npend == dht->cappend) {
        if (dht->cappend >= PEND_MAX)
            return NULL;
        int cap = dht->cappend ? dht->cappend * 2 : 16;
        struct pending *p = dht_alloc(dht, sizeof(*p) * (size_t)cap);
        if (!p)
            return NULL;
        if (dht->npend)
            memcpy(p, dht->pend, sizeof(*p) * (size_t)dht->npend);
        dht_dealloc(dht, dht->pend);
        dht->pend = p;
        dht->cappend = cap;
    }
    *slot = dht->npend++;
    memset(&dht->pend[*slot], 0, sizeof(struct pending));
    return &dht->pend[*slot];
}

/* A probe gets twice the deadline (RFC 6298's back-off after a timeout). */
static uint32_t query_deadline_ms(const struct dht *dht, int kind, const dht_sa *to)
{
    uint32_t d = contact_deadline_ms(dht, to);
    if (kind == P_PROBE)
        d = 2 * d < dht->cfg.soft_timeout_ms ? 2 * d : dht->cfg.soft_timeout_ms;
    return d;
}

int node_send_query(struct dht *dht, int kind, const dht_sa *to, const uint8_t *id,
                    struct krpc_query *q, struct pending **out)
{
    uint8_t buf[DHT_MAX_PACKET], t[4];
    int slot;
    if (!family_ok(dht, to) || !dht_addr_usable(to))
        return -EAFNOSUPPORT;
    struct pending *p = pend_alloc(dht, &slot);
    if (!p)
        return -EBUSY;
    uint16_t gen = ++dht->gen;
    t[0] = (uint8_t)(slot >> 8);
    t[1] = (uint8_t)slot;
    t[2] = (uint8_t)(gen >> 8);
    t[3] = (uint8_t)gen;
    q->t = t;
    q->tlen = sizeof(t);
    q->id = dht->id;
    q->ro = dht->cfg.resolve_only;
    int len = krpc_encode_query(dht->cfg.dialect, q, buf, sizeof(buf));
    if (len < 0)
        return len;
    memset(p, 0, sizeof(*p));
    p->kind = (uint8_t)kind;
    p->method = (uint8_t)q->method;
    p->gen = gen;
    p->addr = *to;
    p->sent_ms = dht->now;
    p->deadline_ms = dht->now + query_deadline_ms(dht, kind, to);
    p->clock = dht->clocked ? PC_NOW : PC_STALE;
    if (id) {
        p->has_id = 1;
        memcpy(p->id, id, DHT_ID_LEN);
    }
    dht->st.queries_sent++;
    send_raw(dht, buf, len, to);
    if (out)
        *out = p;
    return 0;
}

static void ping_node(struct dht *dht, int kind, const dht_sa *to, const uint8_t *id)
{
    struct krpc_query q = {.method = KM_PING, .port = -1};
    if (kind == P_BOOT && dht->cfg.dialect == DHT_DIALECT_APT)
        q.method = KM_JOIN;
    node_send_query(dht, kind, to, id, &q, NULL);
}

void node_heard(struct dht *dht, const uint8_t *id, const dht_sa *from, int replied)
{
    struct rtable *rt = &dht->rt[dht_addr_family(from)];
    struct rt_node *ping = NULL;
    int before = rt_count(&dht->rt[0], dht->now, NULL, NULL) +
                 rt_count(&dht->rt[1], dht->now, NULL, NULL);
    enum rt_result r = rt_heard(rt, id, from, replied, dht->now, &ping);
    if (ping) {
        dht_sa a = ping->addr;
        uint8_t pid[DHT_ID_LEN];
        memcpy(pid, ping->id, DHT_ID_LEN);
        ping_node(dht, P_PING, &a, pid);
    }
    if (r == RT_ADDED && before == 0)
        dht->own_lookup_due = 1; /* first node: find our neighbourhood */
    if (dht->cfg.on_node)
        dht->cfg.on_node(dht->cfg.ud, id, &from->sa,
                         from->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in),
                         replied);
}

void node_update_state(struct dht *dht)
{
    enum dht_state s;
    int good = 0, g2 = 0, total;
    total = rt_count(&dht->rt[0], dht->now, &good, NULL);
    total += rt_count(&dht->rt[1], dht->now, &g2, NULL);
    good += g2;
    if (dht->faulted)
        s = DHT_FAULTED;
    else if (dht->net_err_ms && dht->net_err_ms + 30000 > dht->now &&
             dht->last_reply_ms < dht->net_err_ms)
        s = DHT_NO_NETWORK;
    else if (dht->ever_active && dht->timeouts_in_row >= NONET_TIMEOUTS)
        s = DHT_NO_NETWORK; /* we keep asking and nobody answers */
    else if (good > 0 || (dht->ever_active && total > 0))
        s = DHT_ACTIVE;     /* quiet nodes stay ACTIVE until queries start failing */
    else
        s = DHT_ALONE;
    if (s == DHT_ACTIVE)
        dht->ever_active = 1;
    if (s != dht->state) {
        enum dht_state old = dht->state;
        dht->state = s;
        if (s == DHT_ACTIVE)
            dht->boot_backoff_ms = 1000;
        if (dht->cfg.on_state)
            dht->cfg.on_state(dht->cfg.ud, old, s);
    }
}

/* ---- answering queries ---- */

/* The most an answer to a query of qlen bytes may take. */
static size_t answer_budget(size_t qlen)
{
    size_t b = qlen * ANSWER_FACTOR;
    return b < DHT_MAX_PACKET ? b : DHT_MAX_PACKET;
}

/* An error answer, with its message dropped if that is what it takes to stay within the
 * budget; none at all if even that is too long. */
static void send_error(struct dht *dht, const struct krpc_msg *m, int code, const char *msg,
                       const dht_sa *to, size_t qlen)
{
    uint8_t buf[512];
    size_t budget = answer_budget(qlen) < sizeof(buf) ? answer_budget(qlen) : sizeof(buf);
    int len = krpc_encode_error(m->t, m->tlen, code, msg, buf, budget);
    if (len < 0)
        len = krpc_encode_error(m->t, m->tlen, code, "", buf, budget);
    if (len < 0) {
        dht->st.packets_dropped++;
        return;
    }
    dht->st.errors_sent++;
    send_raw(dht, buf, len, to);
}

#define ANSWER_POOL 32          /* closest nodes considered for a diverse answer */

/* Compact node info of K nodes of one family close to target, preferring diverse
 * subnets and, in the mainline dialect, BEP 42 ids (sybil.c). Returns the byte count. */
static size_t closest_nodes(struct dht *dht, int fam, const uint8_t *target, uint8_t *out)
{
    const struct rt_node *n[ANSWER_POOL];
    const dht_sa *addr[ANSWER_POOL];
    uint8_t unv[ANSWER_POOL], chosen[ANSWER_POOL];
    int found = rt_closest(&dht->rt[fam], target, dht->now, n, ANSWER_POOL), cnt = 0;
    for (int i = 0; i < found; i++) /* we name no node we believe dead */
        if (!contact_failed(dht, &n[i]->addr))
            n[cnt++] = n[i];
    for (int i = 0; i < cnt; i++) {
        addr[i] = &n[i]->addr;
        unv[i] = dht->cfg.dialect == DHT_DIALECT_BEP5 && !dht_bep42_ok(n[i]->id, &n[i]->addr);
    }
    dht_pick_diverse(addr, unv, cnt, DHT_K, chosen);
    size_t len = 0;
    for (int i = 0; i < cnt; i++) {
        if (!chosen[i])
            continue;
        memcpy(out + len, n[i]->id, DHT_ID_LEN);
        len += DHT_ID_LEN;
        len += (size_t)dht_compact_peer(&n[i]->addr, out + len);
    }
    return len;
}

static void format_ip(const dht_sa *a, char *out, size_t cap)
{
    if (!inet_ntop(a->sa.sa_family, a->sa.sa_family == AF_INET ? (const void *)&a->in.sin_addr
                                                               : (const void *)&a->in6.sin6_addr,
                   out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

static uint16_t sa_port(const dht_sa *a)
{
    return ntohs(a->sa.sa_family == AF_INET ? a->in.sin_port : a->in6.sin6_port);
}

static void sa_set_port(dht_sa *a, uint16_t port)
{
    if (a->sa.sa_family == AF_INET)
        a->in.sin_port = htons(port);
    else
        a->in6.sin6_port = htons(port);
}

struct answer {
    uint8_t nodes[DHT_K * 26], nodes6[DHT_K * 38];
    dht_sa vals[KRPC_MAX_VALUES];
    uint8_t vbuf[KRPC_MAX_VALUES][18];
    const uint8_t *vptr[KRPC_MAX_VALUES];
    size_t vlen[KRPC_MAX_VALUES];
    uint8_t token[TOKEN_LEN];
    char ip[INET6_ADDRSTRLEN];
    uint8_t ipc[18];            /* the querier's compact address (bep5 "ip") */
};

#define TRIM_VALUES 8          /* values kept before own-family nodes go below... */
#define TRIM_NODES 4           /* ...this many */

/* Removes one entry from a node list of `each`-byte entries while it holds more than
 * `floor`. Returns 1 if it did. */
static int drop_node(size_t *len, size_t each, size_t floor)
{
    if (*len <= floor * each)
        return 0;
    *len -= *len >= each ? each : *len;
    return 1;
}

/* One trimming step, least useful part first: values beyond 16, nodes of the other
 * family, values beyond TRIM_VALUES, own-family nodes beyond TRIM_NODES, values beyond
 * one, then the last nodes. Returns 0 when there is nothing left to trim. */
static int trim_step(struct krpc_reply *r, int own_v6)
{
    size_t *own = own_v6 ? &r->nodes6_len : &r->nodes_len;
    size_t *other = own_v6 ? &r->nodes_len : &r->nodes6_len;
    size_t own_each = own_v6 ? 38 : 26, other_each = own_v6 ? 26 : 38;
    if (r->nvalues > 16) {
        r->nvalues /= 2;
        return 1;
    }
    if (drop_node(other, other_each, 0))
        return 1;
    if (r->nvalues > TRIM_VALUES) {
        r->nvalues = TRIM_VALUES;
        return 1;
    }
    if (drop_node(own, own_each, TRIM_NODES))
        return 1;
    if (r->nvalues > 1) {
        r->nvalues /= 2;
        return 1;
    }
    return drop_node(own, own_each, 0);
}

/* Encodes r within budget bytes, trimming its value and node lists until it fits. */
static int encode_bounded(struct krpc_reply *r, uint8_t *buf, size_t budget, int own_v6)
{
    for (int guard = 0; guard < 64; guard++) {
        int len = krpc_encode_reply(r, buf, budget);
        if (len != -ENOBUFS)
            return len;
        if (!trim_step(r, own_v6))
            return -ENOBUFS;
    }
    return -ENOBUFS;
}

static void add_nodes(struct dht *dht, const struct krpc_msg *m, const dht_sa *from,
                      const uint8_t *target, struct krpc_reply *r, struct answer *a)
{
    int want = m->want ? m->want : (dht_addr_family(from) ? KRPC_WANT6 : KRPC_WANT4);
    if (want & KRPC_WANT4) {
        r->nodes = a->nodes;
        r->nodes_len = closest_nodes(dht, 0, target, a->nodes);
    }
    if (want & KRPC_WANT6) {
        r->nodes6 = a->nodes6;
        r->nodes6_len = closest_nodes(dht, 1, target, a->nodes6);
    }
}

static int handle_store(struct dht *dht, const struct krpc_msg *m, const dht_sa *from)
{
    if (!token_check(&dht->tok, from, m->token, m->token_len))
        return 203;
    dht_sa peer = *from;
    if (!m->implied_port && m->port > 0)
        sa_set_port(&peer, (uint16_t)m->port);
    uint64_t exp = dht->now + (uint64_t)dht->cfg.value_ttl_s * 1000;
    return store_put(dht->store, m->target, &peer, exp) < 0 ? 202 : 0;
}

static void answer_query(struct dht *dht, const struct krpc_msg *m, const dht_sa *from,
                         size_t qlen)
{
    struct answer *a = malloc(sizeof(*a));
    uint8_t buf[DHT_MAX_PACKET];
    struct krpc_reply r = {.t = m->t, .tlen = m->tlen, .id = dht->id, .port = -1};
    if (!a)
        return;
    if (m->method == KM_JOIN) {
        format_ip(from, a->ip, sizeof(a->ip));
        r.ip_addr = a->ip;
        r.port = sa_port(from);
    } else if (m->method == KM_FIND_NODE) {
        add_nodes(dht, m, from, m->target, &r, a);
    } else if (m->method == KM_GET) {
        token_make(&dht->tok, from, a->token);
        r.token = a->token;
        r.token_len = TOKEN_LEN;
        int fam = m->want == (KRPC_WANT4 | KRPC_WANT6) ? -1 : dht_addr_family(from);
        int nv = store_get(dht->store, m->target, fam, a->vals, KRPC_MAX_VALUES);
        for (int i = 0; i < nv; i++) {
            a->vlen[i] = (size_t)dht_compact_peer(&a->vals[i], a->vbuf[i]);
            a->vptr[i] = a->vbuf[i];
        }
        if (nv > 0) {
            r.has_values = 1;
            r.values = a->vptr;
            r.value_len = a->vlen;
            r.nvalues = (size_t)nv;
        }
        add_nodes(dht, m, from, m->target, &r, a);
    } else if (m->method == KM_STORE) {
        int err = handle_store(dht, m, from);
        if (err) {
            free(a);
            send_error(dht, m, err, err == 203 ? "Protocol Error: bad token"
                                               : "Server Error: storage full", from, qlen);
            return;
        }
    }
    if (dht->cfg.dialect == DHT_DIALECT_BEP5) {
        /* BEP 42: tell the querier the address we see, so it can pick a matching id */
        int n = dht_compact_peer(from, a->ipc);
        r.ip = a->ipc;
        r.ip_len = n > 0 ? (size_t)n : 0;
    }
    int len = encode_bounded(&r, buf, answer_budget(qlen), dht_addr_family(from));
    free(a);
    if (len > 0) {
        dht->st.replies_sent++;
        send_raw(dht, buf, len, from);
    } else {
        dht->st.packets_dropped++;
    }
}

/* Token bucket per sender (its IP, whatever the source port: dht_addr_owner); over
 * the rate, the sender is ignored a while. */
static int rate_ok(struct dht *dht, const dht_sa *from)
{
    uint8_t key[DHT_OWNER_LEN];
    dht_addr_owner(from, key);
    uint32_t h = 2166136261u;
    for (int i = 0; i < DHT_OWNER_LEN; i++)
        h = (h ^ key[i]) * 16777619u;
    struct rl_slot *s = &dht->rl[h % RL_SLOTS];
    uint32_t burst = dht->cfg.rate_per_s * 2 * 1000;
    if (memcmp(s->key, key, DHT_OWNER_LEN) != 0) {
        memset(s, 0, sizeof(*s));
        memcpy(s->key, key, DHT_OWNER_LEN);
        s->tokens_milli = burst;
        s->last_ms = dht->now;
    }
    if (s->black_until_ms > dht->now)
        return 0;
    uint64_t add = (dht->now - s->last_ms) * dht->cfg.rate_per_s;
    s->last_ms = dht->now;
    s->tokens_milli = add + s->tokens_milli > burst ? burst : (uint32_t)(s->tokens_milli + add);
    if (s->tokens_milli < 1000) {
        s->black_until_ms = dht->now + dht->cfg.blacklist_ms;
        return 0;
    }
    s->tokens_milli -= 1000;
    return 1;
}

static int handle_query(struct dht *dht, const struct krpc_msg *m, const dht_sa *from,
                        size_t len)
{
    if (dht->cfg.resolve_only)
        return -EINVAL; /* resolve-only nodes answer nobody */
    if (!rate_ok(dht, from))
        return -EACCES;
    dht->st.queries_received++;
    if (m->error) {
        send_error(dht, m, m->error, m->error_msg, from, len);
        return -EINVAL;
    }
    if (!m->ro)
        node_heard(dht, m->id, from, 0);
    answer_query(dht, m, from, len);
    return 0;
}

/* ---- answers to our queries ---- */

static struct pending *match(struct dht *dht, const struct krpc_msg *m, const dht_sa *from)
{
    if (m->tlen != 4)
        return NULL;
    int slot = (m->t[0] << 8) | m->t[1];
    uint16_t gen = (uint16_t)((m->t[2] << 8) | m->t[3]);
    if (slot >= dht->npend)
        return NULL;
    struct pending *p = &dht->pend[slot];
    if (p->kind == P_FREE || p->gen != gen || !dht_addr_equal(&p->addr, from))
        return NULL;
    if (m->y == 'r' && p->has_id && memcmp(p->id, m->id, DHT_ID_LEN) != 0)
        return NULL;
    return p;
}

static void learn_external(struct dht *dht, const struct krpc_msg *m, const dht_sa *from)
{
    char ip[INET6_ADDRSTRLEN + 1];
    dht_sa ext = {0};
    if (!m->ip_addr || m->ip_addr_len >= sizeof(ip) || m->port < 1 || m->port > 65535)
        return;
    memcpy(ip, m->ip_addr, m->ip_addr_len);
    ip[m->ip_addr_len] = 0;
    if (inet_pton(AF_INET, ip, &ext.in.sin_addr) == 1)
        ext.sa.sa_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &ext.in6.sin6_addr) == 1)
        ext.sa.sa_family = AF_INET6;
    else
        return;
    sa_set_port(&ext, (uint16_t)m->port);
    dht->ext = ext;
    dht->has_ext = 1;
}

/* bep5: the compact address a responder saw us at (BEP 42 "ip"). */
static void learn_seen(struct dht *dht, const struct krpc_msg *m)
{
    dht_sa ext;
    if (dht_peer_from_compact(m->ip, m->ip_len, &ext) == 0 && dht_addr_usable(&ext)) {
        dht->ext = ext;
        dht->has_ext = 1;
    }
}

static void handle_answer(struct dht *dht, const struct krpc_msg *m, const dht_sa *from)
{
    struct pending *p = match(dht, m, from);
    if (!p) {
        dht->st.packets_dropped++;
        return;
    }
    struct pending copy = *p;
    p->kind = P_FREE; /* free before callbacks, which may send */
    if (copy.clock == PC_NOW)
        contact_replied(dht, from, dht->now - copy.sent_ms);
    else
        contact_heard(dht, from);
    if (m->y == 'e') {
        dht->st.errors_received++;
        if (copy.kind == P_LOOKUP)
            lookup_on_timeout(dht, &copy);
        else if (copy.kind == P_STORE)
            announce_on_store(dht, &copy, 0);
        else if (copy.kind == P_USERPING && copy.cb)
            copy.cb(copy.ud, &from->sa, NULL);
        return;
    }
    dht->st.replies_received++;
    dht->last_reply_ms = dht->now;
    dht->timeouts_in_row = 0;
    if (!m->ro)
        node_heard(dht, m->id, from, 1);
    if (m->ip_addr)
        learn_external(dht, m, from);
    else if (m->ip && dht->cfg.dialect == DHT_DIALECT_BEP5)
        learn_seen(dht, m);
    switch (copy.kind) {
    case P_LOOKUP:
        lookup_on_reply(dht, &copy, m);
        break;
    case P_STORE:
        announce_on_store(dht, &copy, 1);
        break;
    case P_USERPING:
        if (copy.cb)
            copy.cb(copy.ud, &from->sa, m->id);
        break;
    default:
        break;
    }
}

/* Inside dht_input and dht_periodic the node knows the time; queries sent outside them
 * (dht_lookup, dht_ping, dht_lan_input, dht_load) carry the time of the last call,
 * which may be a second old. Those have their send time and deadline set again at the
 * next call, and give no round-trip sample. */
static void clock_in(struct dht *dht, uint64_t now_ms)
{
    dht->now = now_ms;
    dht->clocked = 1;
    for (int i = 0; i < dht->npend; i++) {
        struct pending *p = &dht->pend[i];
        if (p->kind == P_FREE || p->clock != PC_STALE)
            continue;
        p->clock = PC_FIXED;
        p->sent_ms = now_ms;
        p->deadline_ms = now_ms + query_deadline_ms(dht, p->kind, &p->addr);
        if (p->kind == P_LOOKUP && p->lk)
            lookup_restamp(dht, p);
    }
}

static int input(struct dht *dht, const void *buf, size_t len, const struct sockaddr *from,
                 socklen_t fromlen)
{
    struct krpc_msg *m = NULL;
    dht_sa sa;
    int r;
    dht->st.bytes_in += len;
    if (len > DHT_MAX_PACKET) {
        r = -EMSGSIZE;
        goto fail;
    }
    r = dht_sa_from(&sa, from, fromlen);
    if (r < 0)
        goto fail;
    contact_heard(dht, &sa); /* whatever it sent, it is there */
    r = -ENOMEM;
    m = malloc(sizeof(*m));
    if (!m)
        goto fail;
    r = krpc_parse(buf, len, dht->cfg.dialect, m);
    if (r < 0)
        goto fail;
    if (m->y == 'q')
        r = handle_query(dht, m, &sa, len);
    else
        handle_answer(dht, m, &sa);
    free(m);
    if (dht->own_lookup_due) {
        dht->own_lookup_due = 0;
        lookup_start(dht, LK_FIND, dht->id);
    }
    lookup_reap(dht);
    node_update_state(dht);
    return r;
fail:
    free(m);
    dht->st.packets_dropped++;
    return r;
}

int dht_input(struct dht *dht, const void *buf, size_t len, const struct sockaddr *from,
              socklen_t fromlen, uint64_t now_ms)
{
    clock_in(dht, now_ms);
    int r = input(dht, buf, len, from, fromlen);
    dht->clocked = 0;
    return r;
}

int dht_add_bootstrap(struct dht *dht, const struct sockaddr *sa, socklen_t salen)
{
    dht_sa a;
    int r = dht_sa_from(&a, sa, salen);
    if (r < 0)
        return r;
    for (int i = 0; i < dht->nboot; i++)
        if (dht_addr_equal(&dht->boot[i], &a))
            return -EEXIST;
    if (dht->nboot >= BOOT_MAX) {
        /* full: the oldest address gives way, so new sources (a LAN announcement, a
         * provider's answer) are never shut out */
        dht->boot[dht->boot_oldest] = a;
        dht->boot_oldest = (dht->boot_oldest + 1) % BOOT_MAX;
    } else {
        dht->boot[dht->nboot++] = a;
    }
    dht->boot_next_ms = 0; /* try at the next dht_periodic() */
    return 0;
}

int dht_add_provider(struct dht *dht, const struct dht_bootstrap_provider *p)
{
    if (!p || !p->provide)
        return -EINVAL;
    if (dht->nprov >= DHT_MAX_PROVIDERS)
        return -ENOSPC;
    dht->prov[dht->nprov++] = *p;
    dht->boot_next_ms = 0; /* ask it at the next dht_periodic() */
    return 0;
}

int dht_ping(struct dht *dht, const struct sockaddr *sa, socklen_t salen, dht_ping_fn cb,
             void *ud)
{
    dht_sa a;
    struct pending *p = NULL;
    struct krpc_query q = {.method = KM_PING, .port = -1};
    int r = dht_sa_from(&a, sa, salen);
    if (r < 0)
        return r;
    r = node_send_query(dht, P_USERPING, &a, NULL, &q, &p);
    if (r < 0)
        return r;
    p->cb = cb;
    p->ud = ud;
    return 0;
}

/* ---- timers ---- */

/* A query's deadline passed unanswered: a first miss is checked on with a probe, a
 * second one in a row fails the address for every lookup. Bootstrap and user pings
 * are not probed: the first have their own back-off, the second their own caller. */
static void deadline_missed(struct dht *dht, int i)
{
    struct pending *p = &dht->pend[i];
    dht_sa a = p->addr;
    uint8_t id[DHT_ID_LEN];
    int has_id = p->has_id, kind = p->kind;
    memcpy(id, p->id, DHT_ID_LEN);
    p->missed = 1;
    int n = contact_missed(dht, &a);
    if (n >= CT_DEAD_MISSES) {
        lookup_drop_failed(dht, &a);
    } else if (kind == P_LOOKUP || kind == P_STORE || kind == P_PING) {
        struct krpc_query q = {.method = KM_PING, .port = -1};
        node_send_query(dht, P_PROBE, &a, has_id ? id : NULL, &q, NULL); /* may move pend */
    }
}

static void expire_pending(struct dht *dht, uint64_t *next)
{
    for (int i = 0; i < dht->npend; i++) {
        struct pending *p = &dht->pend[i];
        if (p->kind == P_FREE)
            continue;
        if (!p->missed) {
            if (p->deadline_ms <= dht->now) {
                deadline_missed(dht, i);
                p = &dht->pend[i];
            } else if (p->deadline_ms < *next) {
                *next = p->deadline_ms;
            }
        }
        uint64_t due = p->sent_ms + dht->cfg.hard_timeout_ms;
        if (due > dht->now) {
            if (due < *next)
                *next = due;
            continue;
        }
        struct pending copy = *p;
        p->kind = P_FREE;
        dht->st.timeouts++;
        dht->timeouts_in_row++;
        if (copy.has_id)
            rt_failed(&dht->rt[dht_addr_family(&copy.addr)], copy.id, dht->now);
        if (copy.kind == P_LOOKUP)
            lookup_on_timeout(dht, &copy);
        else if (copy.kind == P_STORE)
            announce_on_store(dht, &copy, 0);
        else if (copy.kind == P_USERPING && copy.cb)
            copy.cb(copy.ud, &copy.addr.sa, NULL);
    }
    while (dht->npend > 0 && dht->pend[dht->npend - 1].kind == P_FREE)
        dht->npend--;
}

/* ALONE or NO_NETWORK: query the bootstrap nodes and look up our own id through what
 * the table still holds, backing off from 1 s to 5 min. */
static void bootstrap(struct dht *dht, uint64_t *next)
{
    if (dht->state == DHT_ACTIVE || dht->state == DHT_FAULTED)
        return;
    if (dht->boot_next_ms <= dht->now) {
        /* providers first: what they add synchronously is queried in this round */
        for (int i = 0; i < dht->nprov; i++)
            dht->prov[i].provide(dht, dht->prov[i].ctx);
    }
    int known = rt_count(&dht->rt[0], dht->now, NULL, NULL) +
                rt_count(&dht->rt[1], dht->now, NULL, NULL);
    if (dht->nboot == 0 && known == 0 && dht->nprov == 0)
        return;
    if (dht->boot_next_ms <= dht->now) {
        for (int i = 0; i < dht->nboot; i++)
            ping_node(dht, P_BOOT, &dht->boot[i], NULL);
        if (known)
            dht->own_lookup_due = 1;
        dht->boot_next_ms = dht->now + dht->boot_backoff_ms;
        dht->boot_backoff_ms *= 2;
        if (dht->boot_backoff_ms > BOOT_BACKOFF_MAX_MS)
            dht->boot_backoff_ms = BOOT_BACKOFF_MAX_MS;
    }
    if (dht->boot_next_ms < *next)
        *next = dht->boot_next_ms;
}

/* One stale bucket per call is refreshed by a lookup of a random id in its range. */
static void refresh(struct dht *dht, uint64_t *next)
{
    if (dht->state != DHT_ACTIVE)
        return;
    for (int f = 0; f < 2; f++) {
        struct rtable *rt = &dht->rt[f];
        for (int i = 0; i < rt->nb; i++) {
            struct rt_bucket *b = rt->b[i];
            uint64_t due = b->changed_ms + RT_REFRESH_MS;
            if (due > dht->now || (b->count == 0 && i < rt->nb - 1)) {
                if (due > dht->now && due < *next)
                    *next = due;
                continue;
            }
            if (rt_count(rt, dht->now, NULL, NULL) == 0)
                continue;
            uint8_t target[DHT_ID_LEN];
            rt_random_id(rt, i, dht_rand64(dht), dht_rand64(dht), dht_rand64(dht), target);
            b->changed_ms = dht->now;
            lookup_start(dht, LK_FIND, target);
            return;
        }
    }
}

int dht_periodic(struct dht *dht, uint64_t now_ms, uint64_t *next_ms)
{
    uint64_t next = now_ms + 1000;
    clock_in(dht, now_ms);
    expire_pending(dht, &next);
    bootstrap(dht, &next);
    if (dht->own_lookup_due) {
        dht->own_lookup_due = 0;
        lookup_start(dht, LK_FIND, dht->id);
    }
    lookup_flush(dht);
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next)
        lookup_step(dht, lk);
    refresh(dht, &next);
    announce_periodic(dht);
    if (dht->tok.rotated_ms + TOKEN_ROTATE_MS <= now_ms)
        token_rotate(&dht->tok, dht, now_ms);
    if (dht->next_expire_ms <= now_ms) {
        store_expire(dht->store, now_ms);
        dht->next_expire_ms = now_ms + 60000;
    }
    lookup_reap(dht);
    node_update_state(dht);
    next = lookup_next_deadline(dht, next);
    if (next_ms)
        *next_ms = next;
    dht->clocked = 0;
    return dht->state == DHT_FAULTED ? -EIO : 0;
}

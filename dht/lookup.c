/* lookup.c - iterative lookups and announcements.
 *
 * A lookup keeps up to LK_CANDS candidates sorted by XOR distance to its target. It
 * keeps alpha queries active among the K closest candidates still in the running; a
 * query unanswered by its deadline (the address's measured round trip, contact.c; at
 * most the soft timeout) takes its candidate out of the running (the lookup widens to
 * the next candidate instead of waiting; a late answer puts it back), and one
 * unanswered after the hard timeout fails it for good. Addresses that have failed
 * (deadlines missed in a row, nothing heard since) are not asked at all: they are left
 * out of the seeds and of the nodes answers name, and a candidate not yet asked is
 * given up when its address fails - unless the table holds nobody else, when asking
 * them is the only way to find out they are back. The lookup is done when the K
 * closest candidates in the running have all answered, or none is left. Get
 * lookups collect peers from "values" and hand new ones to every waiter; a second
 * dht_lookup() of the same key adds a waiter to the running lookup.
 *
 * "The K closest" is a diverse set (sybil.c): closest first, but at most DIVERSE_MAX
 * from one /24 (/64) and, in the mainline dialect, at most DIVERSE_MAX whose ids fail
 * BEP 42, while other candidates are left; so a cluster of nodes placed next to a key
 * from one subnet cannot fill the set and hide the honest nodes behind it. Where all
 * nodes share a subnet (a LAN, loopback) the set is simply the K closest. For the same
 * reason a subnet (or the unverified) holding more than LK_CROWD candidates gives up
 * its farthest one when the candidate list is full.
 *
 * An announcement runs a get lookup every TTL/2 and then stores itself on the K
 * closest nodes that answered (with their token), chosen by the same diverse rule. */
#include <errno.h>
#include <string.h>
#include "dht/node.h"

/* In a full candidate list, the candidate to give way to a newcomer (unverified =
 * whether its id fails BEP 42) at position pos: the farthest of a crowded group (the
 * unverified, else the largest subnet) when there is one and the newcomer is not its
 * farthest member, else the farthest candidate. Returns an index, or -1 to drop the
 * newcomer. */
static int crowd_victim(const struct lookup *lk, const dht_sa *a, int unverified, int pos)
{
    int nunv = 0, last_unv = -1, best = -1;
    for (int i = 0; i < lk->nc; i++) {
        if (lk->c[i].unverified) {
            nunv++;
            last_unv = i;
        }
    }
    if (nunv > LK_CROWD)
        return unverified && pos > last_unv ? -1 : last_unv;
    for (int i = lk->nc - 1; i >= 0; i--) /* from the far end: the largest subnet's last */
        if (best < 0 || lk->c[i].crowd > lk->c[best].crowd)
            best = i;
    if (best >= 0 && lk->c[best].crowd > LK_CROWD)
        return dht_addr_same_subnet(a, &lk->c[best].addr) && pos > best ? -1 : best;
    return pos >= LK_CANDS ? -1 : LK_CANDS - 1;
}

/* Takes candidate v out of the list, keeping the others' subnet counts. */
static void cand_remove(struct lookup *lk, int v)
{
    for (int j = 0; j < lk->nc; j++)
        if (j != v && dht_addr_same_subnet(&lk->c[j].addr, &lk->c[v].addr))
            lk->c[j].crowd--;
    memmove(&lk->c[v], &lk->c[v + 1], sizeof(lk->c[0]) * (size_t)(lk->nc - 1 - v));
    lk->nc--;
}

static void cand_add(struct dht *dht, struct lookup *lk, const uint8_t *id, const dht_sa *a,
                     int depth)
{
    if (memcmp(id, dht->id, DHT_ID_LEN) == 0 || !dht_addr_usable(a))
        return;
    int fbit = a->sa.sa_family == AF_INET6 ? DHT_FAMILY_V6 : DHT_FAMILY_V4;
    if (!(dht->cfg.families & fbit))
        return;
    int pos = lk->nc;
    for (int i = 0; i < lk->nc; i++) {
        int c = dht_xor_cmp(lk->target, id, lk->c[i].id);
        if (c == 0)
            return; /* already known */
        if (c < 0 && pos == lk->nc)
            pos = i;
    }
    int unverified = dht->cfg.dialect == DHT_DIALECT_BEP5 && !dht_bep42_ok(id, a);
    if (lk->nc == LK_CANDS) {
        int v = crowd_victim(lk, a, unverified, pos);
        if (v < 0)
            return;
        cand_remove(lk, v);
        if (pos > v)
            pos--;
    }
    int crowd = 1;
    for (int j = 0; j < lk->nc; j++) {
        if (dht_addr_same_subnet(&lk->c[j].addr, a)) {
            lk->c[j].crowd++;
            crowd++;
        }
    }
    memmove(&lk->c[pos + 1], &lk->c[pos], sizeof(lk->c[0]) * (size_t)(lk->nc - pos));
    lk->nc++;
    struct cand *c = &lk->c[pos];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, DHT_ID_LEN);
    c->addr = *a;
    c->depth = (uint8_t)(depth > 255 ? 255 : depth);
    c->unverified = (uint8_t)unverified;
    c->crowd = (uint8_t)crowd;
}

/* Marks in chosen[] the diverse K closest among the candidates for which keep() holds
 * (sybil.c). Returns the count. */
static int window(const struct dht *dht, const struct lookup *lk,
                  int (*keep)(const struct dht *, const struct cand *), uint8_t *chosen)
{
    const dht_sa *addr[LK_CANDS];
    uint8_t unv[LK_CANDS], pick[LK_CANDS];
    int idx[LK_CANDS], n = 0;
    memset(chosen, 0, LK_CANDS);
    for (int i = 0; i < lk->nc; i++) {
        if (!keep(dht, &lk->c[i]))
            continue;
        addr[n] = &lk->c[i].addr;
        unv[n] = lk->c[i].unverified;
        idx[n++] = i;
    }
    if (n == 0)
        return 0;
    int k = dht_pick_diverse(addr, unv, n, DHT_K, pick);
    for (int i = 0; i < n; i++)
        chosen[idx[i]] = pick[i];
    return k;
}

/* The closest nodes of both tables; failed ones only when there is nobody else. */
static void seed(struct dht *dht, struct lookup *lk)
{
    const struct rt_node *n[2][LK_CANDS / 2];
    int cnt[2], alive = 0;
    for (int f = 0; f < 2; f++) {
        cnt[f] = rt_closest(&dht->rt[f], lk->target, dht->now, n[f], LK_CANDS / 2);
        for (int i = 0; i < cnt[f]; i++)
            alive += !contact_failed(dht, &n[f][i]->addr);
    }
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < cnt[f]; i++)
            if (!alive || !contact_failed(dht, &n[f][i]->addr))
                cand_add(dht, lk, n[f][i]->id, &n[f][i]->addr, 1);
}

struct lookup *lookup_start(struct dht *dht, int kind, const uint8_t *target)
{
    if (dht->nlookups >= LK_MAX)
        return NULL;
    struct lookup *lk = dht_alloc(dht, sizeof(*lk));
    if (!lk)
        return NULL;
    memset(lk, 0, sizeof(*lk));
    memcpy(lk->target, target, DHT_ID_LEN);
    lk->kind = kind;
    lk->next = dht->lookups;
    dht->lookups = lk;
    dht->nlookups++;
    seed(dht, lk);
    lookup_step(dht, lk);
    return lk;
}

static void deliver(struct dht *dht, struct lookup *lk)
{
    for (int i = 0; i < lk->nw; i++) {
        struct waiter *w = &lk->w[i];
        if (w->cancelled || (w->delivered == lk->npeers && !lk->done))
            continue;
        struct dht_lookup_result res = {
            .key = lk->target,
            .peers = lk->peers + w->delivered,
            .n = lk->npeers - w->delivered,
            .done = lk->done,
            .queries = lk->queries,
            .rounds = lk->rounds,
        };
        w->delivered = lk->npeers;
        if (lk->done)
            w->cancelled = 1; /* the handle ends with its final call */
        dht_lookup_fn cb = w->cb;
        void *ud = w->ud;
        cb(ud, &res); /* may add waiters (realloc of lk->w): re-read each time */
    }
}

static void store_round(struct dht *dht, struct lookup *lk);

static void finish(struct dht *dht, struct lookup *lk)
{
    if (lk->done)
        return;
    lk->done = 1;
    deliver(dht, lk);
    if (lk->ann)
        store_round(dht, lk);
}

static int send_cand(struct dht *dht, struct lookup *lk, struct cand *c)
{
    struct krpc_query q = {.method = lk->kind == LK_GET ? KM_GET : KM_FIND_NODE,
                           .target = lk->target, .port = -1};
    struct pending *p = NULL;
    if (dht->cfg.families == (DHT_FAMILY_V4 | DHT_FAMILY_V6))
        q.want = KRPC_WANT4 | KRPC_WANT6;
    int r = node_send_query(dht, P_LOOKUP, &c->addr, c->id, &q, &p);
    if (r < 0)
        return r;
    p->lk = lk;
    c->state = C_INFLIGHT;
    c->asked_failed = contact_failed(dht, &c->addr);
    c->sent_ms = p->sent_ms;
    c->deadline_ms = p->deadline_ms;
    lk->queries++;
    return 0;
}

/* A query past its deadline no longer holds a place: its candidate drops out of the
 * K-closest window (so the next one is asked) and out of the alpha count. Should it
 * answer before the lookup ends, it counts again. */
static int stale(const struct dht *dht, const struct cand *c)
{
    return c->state == C_INFLIGHT && c->deadline_ms <= dht->now;
}

/* A late query with nobody else left to ask is waited for until its hard timeout, unless
 * its address has failed meanwhile (its probe went unanswered too): then only until the
 * soft timeout, the latest an answer is expected on any network, so a lookup among
 * nodes that all vanished ends in well under a second rather than at the hard timeout,
 * and one slow holder that is all there is still gets the time to answer. A query to
 * an address that had failed already (asked because nobody else was left) is given up
 * at its deadline. */
static int given_up(const struct dht *dht, const struct cand *c)
{
    if (c->asked_failed)
        return c->deadline_ms <= dht->now;
    return contact_failed(dht, &c->addr) && c->sent_ms + dht->cfg.soft_timeout_ms <= dht->now;
}

/* In the running: neither failed nor past its deadline. */
static int running(const struct dht *dht, const struct cand *c)
{
    return c->state != C_FAILED && !stale(dht, c);
}

void lookup_step(struct dht *dht, struct lookup *lk)
{
    if (lk->done)
        return;
    unsigned active = 0, inflight = 0;
    for (int i = 0; i < lk->nc; i++) {
        const struct cand *c = &lk->c[i];
        inflight += c->state == C_INFLIGHT && !given_up(dht, c);
        active += c->state == C_INFLIGHT && !stale(dht, c);
    }
    uint8_t in[LK_CANDS];
    int live, all, failed;
    do { /* a send that fails takes its candidate out: choose the window again */
        window(dht, lk, running, in);
        live = 0, all = 1, failed = 0;
        for (int i = 0; i < lk->nc; i++) {
            struct cand *c = &lk->c[i];
            if (!in[i] || !running(dht, c))
                continue;
            if (c->state == C_NEW && active < dht->cfg.alpha) {
                int r = send_cand(dht, lk, c);
                if (r == -EBUSY)
                    return; /* no room for queries: try again later */
                if (r < 0) {
                    c->state = C_FAILED;
                    failed = 1;
                    continue;
                }
                active++;
            }
            if (c->state != C_REPLIED)
                all = 0;
            live++;
        }
    } while (failed);
    /* With nobody in the running but late queries out, wait for them (given_up). */
    if (all && (live > 0 || inflight == 0))
        finish(dht, lk);
}

static struct cand *cand_find(struct lookup *lk, const uint8_t *id)
{
    for (int i = 0; i < lk->nc; i++)
        if (memcmp(lk->c[i].id, id, DHT_ID_LEN) == 0)
            return &lk->c[i];
    return NULL;
}

static void add_peer(struct lookup *lk, struct dht *dht, const uint8_t *v, size_t len)
{
    dht_sa a;
    struct sockaddr_storage ss;
    if (dht_peer_from_compact(v, len, &a) < 0 || !dht_addr_usable(&a))
        return;
    dht_sa_to_storage(&a, &ss);
    for (size_t i = 0; i < lk->npeers; i++)
        if (memcmp(&lk->peers[i], &ss, sizeof(ss)) == 0)
            return;
    if (lk->npeers == lk->cappeers) {
        if (lk->cappeers >= LK_MAX_PEERS)
            return;
        size_t cap = lk->cappeers ? lk->cappeers * 2 : 8;
        struct sockaddr_storage *p = dht_alloc(dht, sizeof(*p) * cap);
        if (!p)
            return;
        if (lk->npeers)
            memcpy(p, lk->peers, sizeof(*p) * lk->npeers);
        dht_dealloc(dht, lk->peers);
        lk->peers = p;
        lk->cappeers = cap;
    }
    lk->peers[lk->npeers++] = ss;
}

static void add_nodes(struct dht *dht, struct lookup *lk, const uint8_t *b, size_t len,
                      size_t each, int depth)
{
    for (size_t off = 0; off + each <= len; off += each) {
        dht_sa a;
        if (dht_peer_from_compact(b + off + DHT_ID_LEN, each - DHT_ID_LEN, &a) == 0 &&
            !contact_failed(dht, &a))
            cand_add(dht, lk, b + off, &a, depth);
    }
}

void lookup_on_reply(struct dht *dht, struct pending *p, const struct krpc_msg *m)
{
    struct lookup *lk = p->lk;
    if (!lk || lk->done)
        return;
    struct cand *c = cand_find(lk, m->id);
    int depth = c ? c->depth : 1;
    if (c) {
        c->state = C_REPLIED;
        if (m->token && m->token_len <= sizeof(c->token)) {
            memcpy(c->token, m->token, m->token_len);
            c->token_len = (uint8_t)m->token_len;
        }
        if ((unsigned)depth > lk->rounds)
            lk->rounds = (unsigned)depth;
    }
    if (m->nodes)
        add_nodes(dht, lk, m->nodes, m->nodes_len, 26, depth + 1);
    if (m->nodes6)
        add_nodes(dht, lk, m->nodes6, m->nodes6_len, 38, depth + 1);
    if (lk->kind == LK_GET && m->nvalues) {
        size_t before = lk->npeers;
        for (size_t i = 0; i < m->nvalues; i++)
            add_peer(lk, dht, m->values[i], m->value_len[i]);
        if (lk->npeers > before)
            deliver(dht, lk);
    }
    lookup_step(dht, lk);
}

void lookup_on_timeout(struct dht *dht, struct pending *p)
{
    struct lookup *lk = p->lk;
    if (!lk || lk->done)
        return;
    struct cand *c = cand_find(lk, p->id);
    if (c)
        c->state = C_FAILED;
    lookup_step(dht, lk);
}

void lookup_restamp(struct dht *dht, const struct pending *p)
{
    struct cand *c = p->lk->done ? NULL : cand_find(p->lk, p->id);
    if (c && c->state == C_INFLIGHT) {
        c->sent_ms = p->sent_ms;
        c->deadline_ms = p->deadline_ms;
    }
}

void lookup_drop_failed(struct dht *dht, const dht_sa *a)
{
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next)
        for (int i = 0; i < lk->nc && !lk->done; i++)
            if (lk->c[i].state == C_NEW && dht_addr_equal(&lk->c[i].addr, a))
                lk->c[i].state = C_FAILED;
}

static void lookup_free(struct dht *dht, struct lookup *lk)
{
    for (int i = 0; i < dht->npend; i++)
        if (dht->pend[i].lk == lk)
            dht->pend[i].lk = NULL;
    if (lk->ann && lk->ann->lk == lk)
        lk->ann->lk = NULL;
    dht_dealloc(dht, lk->w);
    dht_dealloc(dht, lk->peers);
    dht_dealloc(dht, lk);
}

/* Frees finished lookups and those nobody waits for any more. Never called from
 * inside a callback, so callbacks may start and cancel lookups freely. */
/* Hands waiters the peers they have not seen yet: the node's own stored values (added
 * when the lookup started) and a joined waiter's backlog arrive at the next
 * dht_periodic rather than only with the next answer or the end. */
void lookup_flush(struct dht *dht)
{
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next) {
        if (lk->done || lk->kind != LK_GET)
            continue;
        for (int i = 0; i < lk->nw; i++) {
            if (!lk->w[i].cancelled && lk->w[i].delivered < lk->npeers) {
                deliver(dht, lk);
                break;
            }
        }
    }
}

void lookup_reap(struct dht *dht)
{
    struct lookup **pl = &dht->lookups;
    while (*pl) {
        struct lookup *lk = *pl;
        int waiting = lk->ann != NULL && !lk->done;
        for (int i = 0; i < lk->nw; i++)
            waiting |= !lk->w[i].cancelled;
        if (lk->done || (!waiting && lk->nw > 0)) {
            *pl = lk->next;
            dht->nlookups--;
            lookup_free(dht, lk);
        } else {
            pl = &lk->next;
        }
    }
}

void lookup_free_all(struct dht *dht)
{
    while (dht->lookups) {
        struct lookup *lk = dht->lookups;
        dht->lookups = lk->next;
        lookup_free(dht, lk);
    }
    dht->nlookups = 0;
}

uint64_t lookup_next_deadline(struct dht *dht, uint64_t next)
{
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next) {
        for (int i = 0; i < lk->nc; i++) {
            if (lk->c[i].state != C_INFLIGHT)
                continue;
            uint64_t due = lk->c[i].deadline_ms;
            uint64_t soft = lk->c[i].sent_ms + dht->cfg.soft_timeout_ms;
            if (due > dht->now && due < next)
                next = due;
            if (soft > dht->now && soft < next)
                next = soft; /* given_up() may change then */
        }
        if (!lk->done && lk->nc == 0)
            next = dht->now; /* empty lookups end at the next call */
    }
    return next;
}

static int add_waiter(struct dht *dht, struct lookup *lk, dht_lookup_fn cb, void *ud)
{
    if (lk->nw == lk->capw) {
        int cap = lk->capw ? lk->capw * 2 : 2;
        struct waiter *w = dht_alloc(dht, sizeof(*w) * (size_t)cap);
        if (!w)
            return -ENOMEM;
        if (lk->nw)
            memcpy(w, lk->w, sizeof(*w) * (size_t)lk->nw);
        dht_dealloc(dht, lk->w);
        lk->w = w;
        lk->capw = cap;
    }
    struct waiter *w = &lk->w[lk->nw++];
    memset(w, 0, sizeof(*w));
    w->handle = dht->next_handle++;
    if (dht->next_handle <= 0)
        dht->next_handle = 1;
    w->cb = cb;
    w->ud = ud;
    return w->handle;
}

static struct lookup *find_running(struct dht *dht, const uint8_t *key)
{
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next)
        if (!lk->done && lk->kind == LK_GET && memcmp(lk->target, key, DHT_ID_LEN) == 0)
            return lk;
    return NULL;
}

/* Values this node stores for the key count as found: in a small network the node asking
 * may itself be one of the closest to the key, where others stored their announcements.
 * They are delivered with the first answer (or the end), never before dht_lookup returns. */
static void add_local_values(struct dht *dht, struct lookup *lk)
{
    dht_sa vals[KRPC_MAX_VALUES];
    int nv = store_get(dht->store, lk->target, -1, vals, KRPC_MAX_VALUES);
    for (int i = 0; i < nv; i++) {
        uint8_t c[18];
        int n = dht_compact_peer(&vals[i], c);
        if (n > 0)
            add_peer(lk, dht, c, (size_t)n);
    }
}

int dht_lookup(struct dht *dht, const uint8_t key[DHT_ID_LEN], dht_lookup_fn cb, void *ud)
{
    if (!key || !cb)
        return -EINVAL;
    struct lookup *lk = find_running(dht, key);
    if (lk)
        return add_waiter(dht, lk, cb, ud);
    if (dht->nlookups >= LK_MAX)
        return -ENOSPC;
    /* Started without stepping so the waiter exists before any callback. */
    lk = dht_alloc(dht, sizeof(*lk));
    if (!lk)
        return -ENOMEM;
    memset(lk, 0, sizeof(*lk));
    memcpy(lk->target, key, DHT_ID_LEN);
    lk->kind = LK_GET;
    int h = add_waiter(dht, lk, cb, ud);
    if (h < 0) {
        dht_dealloc(dht, lk);
        return h;
    }
    lk->next = dht->lookups;
    dht->lookups = lk;
    dht->nlookups++;
    seed(dht, lk);
    add_local_values(dht, lk);
    if (lk->nc > 0)
        lookup_step(dht, lk);
    return h;
}

int dht_cancel(struct dht *dht, int handle)
{
    for (struct lookup *lk = dht->lookups; lk; lk = lk->next) {
        for (int i = 0; i < lk->nw; i++) {
            if (lk->w[i].handle == handle && !lk->w[i].cancelled) {
                lk->w[i].cancelled = 1;
                return 0;
            }
        }
    }
    return -ENOENT;
}

/* ---- announcements ---- */

static struct announce *ann_find(struct dht *dht, const uint8_t *key)
{
    for (struct announce *a = dht->anns; a; a = a->next)
        if (memcmp(a->key, key, DHT_ID_LEN) == 0)
            return a;
    return NULL;
}

int dht_announce(struct dht *dht, const uint8_t key[DHT_ID_LEN], uint16_t port,
                 dht_announce_fn cb, void *ud)
{
    if (!key)
        return -EINVAL;
    /* A resolve-only node may announce (BEP 43 lets read-only nodes store): its peers
     * are recorded by others while it stays out of their routing tables. */
    struct announce *a = ann_find(dht, key);
    if (!a) {
        if (dht->nanns >= ANN_MAX)
            return -ENOSPC;
        a = dht_alloc(dht, sizeof(*a));
        if (!a)
            return -ENOMEM;
        memset(a, 0, sizeof(*a));
        memcpy(a->key, key, DHT_ID_LEN);
        a->next = dht->anns;
        dht->anns = a;
        dht->nanns++;
        a->next_ms = 0; /* at the next dht_periodic() */
    }
    a->port = port;
    a->cb = cb;
    a->ud = ud;
    return 0;
}

static void ann_free(struct dht *dht, struct announce *a)
{
    for (int i = 0; i < dht->npend; i++)
        if (dht->pend[i].ann == a)
            dht->pend[i].ann = NULL;
    if (a->lk)
        a->lk->ann = NULL;
    dht_dealloc(dht, a);
}

int dht_unannounce(struct dht *dht, const uint8_t key[DHT_ID_LEN])
{
    for (struct announce **pa = &dht->anns; *pa; pa = &(*pa)->next) {
        if (memcmp((*pa)->key, key, DHT_ID_LEN) == 0) {
            struct announce *a = *pa;
            *pa = a->next;
            dht->nanns--;
            ann_free(dht, a);
            return 0;
        }
    }
    return -ENOENT;
}

void announce_free_all(struct dht *dht)
{
    while (dht->anns) {
        struct announce *a = dht->anns;
        dht->anns = a->next;
        ann_free(dht, a);
    }
    dht->nanns = 0;
}

void announce_periodic(struct dht *dht)
{
    if (dht->state != DHT_ACTIVE)
        return;
    for (struct announce *a = dht->anns; a; a = a->next) {
        if (a->lk || a->stores_pending || a->next_ms > dht->now)
            continue;
        a->next_ms = dht->now + (uint64_t)dht->cfg.value_ttl_s * 500;
        struct lookup *lk = find_running(dht, a->key);
        if (!lk)
            lk = lookup_start(dht, LK_GET, a->key);
        if (!lk)
            continue;
        if (lk->done) {
            a->next_ms = dht->now + 10000; /* nobody to ask yet: try again soon */
            continue;
        }
        lk->ann = a;
        a->lk = lk;
    }
}

static void ann_report(struct dht *dht, struct announce *a)
{
    if (a->stored == 0 && a->next_ms > dht->now + 30000)
        a->next_ms = dht->now + 30000; /* nobody took it: retry well before TTL/2 */
    if (a->cb)
        a->cb(a->ud, a->key, a->stored);
}

/* Answered, with a token where the dialect needs one. */
static int storable(const struct dht *dht, const struct cand *c)
{
    return c->state == C_REPLIED && (dht->cfg.dialect != DHT_DIALECT_BEP5 || c->token_len);
}

static void store_round(struct dht *dht, struct lookup *lk)
{
    struct announce *a = lk->ann;
    int sent = 0;
    a->lk = NULL;
    lk->ann = NULL;
    a->stored = 0;
    a->stores_pending = 0;
    uint16_t port = a->port ? a->port : dht->cfg.port;
    uint8_t in[LK_CANDS];
    window(dht, lk, storable, in);
    for (int i = 0; i < lk->nc && sent < DHT_K; i++) {
        struct cand *c = &lk->c[i];
        if (!in[i])
            continue;
        struct krpc_query q = {.method = KM_STORE, .target = a->key, .port = port,
                               .token = c->token_len ? c->token : NULL,
                               .token_len = c->token_len};
        if (port == 0) {
            q.implied_port = 1;
            q.port = dht->cfg.dialect == DHT_DIALECT_BEP5 ? 1 : -1;
        }
        struct pending *p = NULL;
        if (node_send_query(dht, P_STORE, &c->addr, c->id, &q, &p) == 0) {
            p->ann = a;
            sent++;
        }
    }
    a->stores_pending = sent;
    if (sent == 0)
        ann_report(dht, a);
}

void announce_on_store(struct dht *dht, struct pending *p, int ok)
{
    struct announce *a = p->ann;
    if (!a)
        return;
    a->stored += ok;
    if (a->stores_pending > 0 && --a->stores_pending == 0)
        ann_report(dht, a);
}

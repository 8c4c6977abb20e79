/* store.c - the values this node holds for others, and the tokens that guard storing.
 *
 * Storage: a hash table of keys (20 bytes), each with a small array of peer contacts
 * and their expiry. Memory is bounded per key (the entry closest to expiry gives way)
 * and in total. Every value is charged to its owner, the announcing address (its IP;
 * on loopback its IP and port, see sybil.c), and an owner holds at most one value per
 * key (announcing again replaces it) and at most its share of the store: the larger of
 * 1/STORE_SHARE_DIV of it and an equal split among the owners present, so a lone LAN
 * host may use the whole store but one address among many cannot take more than a
 * small part. When the store is full, the owner holding the most values gives way to a
 * smaller one, never the newcomer to the flooder: a histogram of owners by value count
 * keeps that maximum at hand in O(1). Answers carry a random subset when a key has more
 * peers than fit.
 *
 * Tokens: token = first TOKEN_LEN bytes of SHA-1(IP address || secret). The secret
 * rotates every 5 minutes and the previous one is still accepted, so a token lives 5 to
 * 10 minutes and proves the announcer can receive at the address it claims. */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include "dht/dht-int.h"

#define STORE_SLOTS 256
#define STORE_SHARE_DIV 16

struct svalue {
    dht_sa peer;
    uint64_t expires_ms;
    uint32_t oh;                    /* hash of the owner key, to find an owner's values */
};

struct skey {
    struct skey *next;
    uint8_t key[DHT_ID_LEN];
    uint32_t n, cap;
    struct svalue *v;
};

/* An owner in the open-addressing owner table (linear probing); n == 0: empty slot. */
struct sowner {
    uint8_t key[DHT_OWNER_LEN];
    uint32_t h;
    uint32_t n;                     /* values held */
};

struct store {
    struct dht *dht;
    struct skey *slot[STORE_SLOTS];
    uint32_t per_key, total, nvalues, nkeys;
    struct sowner *own;             /* owncap slots, a power of two; NULL while empty */
    uint32_t owncap, nowners;
    uint32_t *hist;                 /* hist[c] = owners holding exactly c values */
    uint32_t histcap, maxn;         /* maxn = the most values any owner holds */
    uint32_t cursor;                /* key slot where the next eviction scan starts */
};

struct store *store_new(struct dht *dht, uint32_t per_key, uint32_t total)
{
    struct store *s = dht_alloc(dht, sizeof(*s));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->dht = dht;
    s->per_key = per_key;
    s->total = total;
    return s;
}

static void key_free(struct store *s, struct skey *k)
{
    dht_dealloc(s->dht, k->v);
    dht_dealloc(s->dht, k);
}

void store_free(struct store *s)
{
    if (!s)
        return;
    for (int i = 0; i < STORE_SLOTS; i++) {
        while (s->slot[i]) {
            struct skey *k = s->slot[i];
            s->slot[i] = k->next;
            key_free(s, k);
        }
    }
    dht_dealloc(s->dht, s->own);
    dht_dealloc(s->dht, s->hist);
    dht_dealloc(s->dht, s);
}

/* ---- owners ---- */

static uint32_t owner_hash(const uint8_t *key)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < DHT_OWNER_LEN; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

static struct sowner *owner_find(struct store *s, const uint8_t *key, uint32_t h)
{
    if (!s->own)
        return NULL;
    for (uint32_t i = h & (s->owncap - 1);; i = (i + 1) & (s->owncap - 1)) {
        struct sowner *o = &s->own[i];
        if (o->n == 0)
            return NULL;
        if (o->h == h && memcmp(o->key, key, DHT_OWNER_LEN) == 0)
            return o;
    }
}

static struct sowner *owner_slot(struct sowner *tab, uint32_t cap, uint32_t h)
{
    uint32_t i = h & (cap - 1);
    while (tab[i].n != 0)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

/* Keeps the owner table at most half full. Returns 0 or -ENOMEM. */
static int owner_reserve(struct store *s)
{
    if ((s->nowners + 1) * 2 <= s->owncap)
        return 0;
    uint32_t cap = s->owncap ? s->owncap * 2 : 16;
    struct sowner *tab = dht_alloc(s->dht, sizeof(*tab) * cap);
    if (!tab)
        return -ENOMEM;
    memset(tab, 0, sizeof(*tab) * cap);
    for (uint32_t i = 0; i < s->owncap; i++)
        if (s->own[i].n)
            *owner_slot(tab, cap, s->own[i].h) = s->own[i];
    dht_dealloc(s->dht, s->own);
    s->own = tab;
    s->owncap = cap;
    return 0;
}

/* Makes room in the histogram for count c. Returns 0 or -ENOMEM. */
static int hist_reserve(struct store *s, uint32_t c)
{
    if (c < s->histcap)
        return 0;
    uint32_t cap = s->histcap ? s->histcap : 16;
    while (cap <= c)
        cap *= 2;
    uint32_t *h = dht_alloc(s->dht, sizeof(*h) * cap);
    if (!h)
        return -ENOMEM;
    memset(h, 0, sizeof(*h) * cap);
    if (s->histcap)
        memcpy(h, s->hist, sizeof(*h) * s->histcap);
    dht_dealloc(s->dht, s->hist);
    s->hist = h;
    s->histcap = cap;
    return 0;
}

/* Reserves what charging one more value to (key, h) can need. Returns 0 or -ENOMEM. */
static int owner_prepare(struct store *s, const uint8_t *key, uint32_t h)
{
    struct sowner *o = owner_find(s, key, h);
    if (hist_reserve(s, (o ? o->n : 0) + 1) < 0)
        return -ENOMEM;
    return o ? 0 : owner_reserve(s);
}

/* Charges one value to (key, h); owner_prepare() has reserved the room. */
static void owner_inc(struct store *s, const uint8_t *key, uint32_t h)
{
    struct sowner *o = owner_find(s, key, h);
    if (!o) {
        o = owner_slot(s->own, s->owncap, h);
        memcpy(o->key, key, DHT_OWNER_LEN);
        o->h = h;
        s->nowners++;
    } else {
        s->hist[o->n]--;
    }
    o->n++;
    s->hist[o->n]++;
    if (o->n > s->maxn)
        s->maxn = o->n;
}

/* Frees slot i of the owner table, moving later entries of its probe run back. */
static void owner_remove(struct store *s, uint32_t i)
{
    uint32_t mask = s->owncap - 1;
    for (uint32_t j = (i + 1) & mask; s->own[j].n != 0; j = (j + 1) & mask) {
        uint32_t home = s->own[j].h & mask;
        /* j may move back to i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->own[i] = s->own[j];
            i = j;
        }
    }
    s->own[i].n = 0;
    s->nowners--;
}

static void owner_dec(struct store *s, const dht_sa *peer, uint32_t h)
{
    uint8_t key[DHT_OWNER_LEN];
    dht_addr_owner(peer, key);
    struct sowner *o = owner_find(s, key, h);
    if (!o)
        return;
    s->hist[o->n]--;
    if (o->n == s->maxn && s->hist[o->n] == 0)
        s->maxn--; /* counts move by one, so the owner just left behind is at maxn - 1 */
    o->n--;
    if (o->n)
        s->hist[o->n]++;
    else
        owner_remove(s, (uint32_t)(o - s->own));
}

/* ---- keys and values ---- */

static struct skey *key_find(struct store *s, const uint8_t *key)
{
    for (struct skey *k = s->slot[key[0]]; k; k = k->next)
        if (memcmp(k->key, key, DHT_ID_LEN) == 0)
            return k;
    return NULL;
}

static int key_grow(struct store *s, struct skey *k)
{
    uint32_t cap = k->cap ? k->cap * 2 : 4;
    if (cap > s->per_key)
        cap = s->per_key;
    struct svalue *v = dht_alloc(s->dht, sizeof(*v) * cap);
    if (!v)
        return -ENOMEM;
    if (k->n)
        memcpy(v, k->v, sizeof(*v) * k->n);
    dht_dealloc(s->dht, k->v);
    k->v = v;
    k->cap = cap;
    return 0;
}

static bool owned_by(const struct svalue *v, const uint8_t *key, uint32_t h)
{
    uint8_t vk[DHT_OWNER_LEN];
    if (v->oh != h)
        return false;
    dht_addr_owner(&v->peer, vk);
    return memcmp(vk, key, DHT_OWNER_LEN) == 0;
}

/* Removes value i of key k (in slot *pk's chain); frees the key when it empties. */
static void value_remove(struct store *s, struct skey **pk, uint32_t i)
{
    struct skey *k = *pk;
    owner_dec(s, &k->v[i].peer, k->v[i].oh);
    k->v[i] = k->v[--k->n];
    s->nvalues--;
    if (k->n == 0) {
        *pk = k->next;
        key_free(s, k);
        s->nkeys--;
    }
}

/* Whether value v belongs to an owner holding the most values. */
static bool of_biggest(struct store *s, const struct svalue *v)
{
    uint8_t key[DHT_OWNER_LEN];
    dht_addr_owner(&v->peer, key);
    const struct sowner *o = owner_find(s, key, v->oh);
    return o && o->n == s->maxn;
}

/* Drops one value of an owner that holds the most, scanning from a rotating cursor so
 * evictions spread over keys. The biggest owner holds at least total/owners values, so
 * the scan is short unless the counts are nearly equal. Returns 0 or -ENOENT. */
static int evict_biggest(struct store *s)
{
    for (uint32_t n = 0; n < STORE_SLOTS; n++) {
        uint32_t sl = (s->cursor + n) % STORE_SLOTS;
        for (struct skey **pk = &s->slot[sl]; *pk; pk = &(*pk)->next) {
            for (uint32_t i = 0; i < (*pk)->n; i++) {
                if (of_biggest(s, &(*pk)->v[i])) {
                    value_remove(s, pk, i);
                    s->cursor = sl + 1;
                    return 0;
                }
            }
        }
    }
    return -ENOENT;
}

/* The most values one owner may hold while `owners` owners share the store. */
static uint32_t share(const struct store *s, uint32_t owners)
{
    uint32_t a = s->total / STORE_SHARE_DIV, b = owners ? s->total / owners : s->total;
    uint32_t m = a > b ? a : b;
    return m ? m : 1;
}

/* Room for one more value of an owner holding n: within its share, and in a full store
 * only by evicting a bigger owner's value. Returns 0 or -ENOSPC. */
static int make_room(struct store *s, uint32_t n, uint32_t owners)
{
    if (n >= share(s, owners))
        return -ENOSPC;
    if (s->nvalues < s->total)
        return 0;
    if (n + 1 >= s->maxn)
        return -ENOSPC; /* the newcomer would become the biggest: it is the one to wait */
    return evict_biggest(s) < 0 ? -ENOSPC : 0;
}

static struct skey *key_new(struct store *s, const uint8_t *key)
{
    struct skey *k = dht_alloc(s->dht, sizeof(*k));
    if (!k)
        return NULL;
    memset(k, 0, sizeof(*k));
    memcpy(k->key, key, DHT_ID_LEN);
    k->next = s->slot[key[0]];
    s->slot[key[0]] = k;
    s->nkeys++;
    return k;
}

int store_put(struct store *s, const uint8_t *key, const dht_sa *peer, uint64_t expires_ms)
{
    uint8_t ok[DHT_OWNER_LEN];
    dht_addr_owner(peer, ok);
    uint32_t h = owner_hash(ok);
    struct skey *k = key_find(s, key);
    for (uint32_t i = 0; k && i < k->n; i++) {
        if (owned_by(&k->v[i], ok, h)) {
            k->v[i].peer = *peer; /* the owner's one value for this key: refreshed */
            k->v[i].expires_ms = expires_ms;
            return 0;
        }
    }
    const struct sowner *o = owner_find(s, ok, h);
    uint32_t n = o ? o->n : 0;
    if (n >= share(s, s->nowners + !o) || owner_prepare(s, ok, h) < 0)
        return -ENOSPC;
    if (k && k->n == s->per_key) {
        /* Full key: the entry closest to expiry gives way (no new value in total). */
        uint32_t old = 0;
        for (uint32_t i = 1; i < k->n; i++)
            if (k->v[i].expires_ms < k->v[old].expires_ms)
                old = i;
        owner_dec(s, &k->v[old].peer, k->v[old].oh);
        k->v[old] = (struct svalue){.peer = *peer, .expires_ms = expires_ms, .oh = h};
        owner_inc(s, ok, h);
        return 0;
    }
    if (make_room(s, n, s->nowners + !o) < 0)
        return -ENOSPC;
    k = key_find(s, key); /* the eviction may have freed it */
    if (!k && !(k = key_new(s, key)))
        return -ENOMEM;
    if (k->n == k->cap && key_grow(s, k) < 0)
        return -ENOMEM;
    k->v[k->n++] = (struct svalue){.peer = *peer, .expires_ms = expires_ms, .oh = h};
    s->nvalues++;
    owner_inc(s, ok, h);
    return 0;
}

int store_get(struct store *s, const uint8_t *key, int fam, dht_sa *out, int max)
{
    struct skey *k = key_find(s, key);
    int n = 0;
    if (!k || max <= 0)
        return 0;
    /* Reservoir sampling: every matching value has the same chance to be chosen. */
    uint32_t seen = 0;
    for (uint32_t i = 0; i < k->n; i++) {
        if (fam >= 0 && dht_addr_family(&k->v[i].peer) != fam)
            continue;
        seen++;
        if (n < max) {
            out[n++] = k->v[i].peer;
        } else {
            uint64_t j = dht_rand64(s->dht) % seen;
            if (j < (uint64_t)max)
                out[j] = k->v[i].peer;
        }
    }
    return n;
}

void store_expire(struct store *s, uint64_t now_ms)
{
    for (int i = 0; i < STORE_SLOTS; i++) {
        struct skey **pk = &s->slot[i];
        while (*pk) {
            struct skey *k = *pk;
            uint32_t keep = 0;
            for (uint32_t j = 0; j < k->n; j++) {
                if (k->v[j].expires_ms > now_ms)
                    k->v[keep++] = k->v[j];
                else
                    owner_dec(s, &k->v[j].peer, k->v[j].oh);
            }
            s->nvalues -= k->n - keep;
            k->n = keep;
            if (keep == 0) {
                *pk = k->next;
                key_free(s, k);
                s->nkeys--;
            } else {
                pk = &k->next;
            }
        }
    }
}

void store_counts(const struct store *s, unsigned *keys, unsigned *values)
{
    *keys = s->nkeys;
    *values = s->nvalues;
}

void store_dump(const struct store *s, FILE *f, uint64_t now_ms)
{
    for (int i = 0; i < STORE_SLOTS; i++) {
        for (const struct skey *k = s->slot[i]; k; k = k->next) {
            fprintf(f, "key ");
            for (int j = 0; j < DHT_ID_LEN; j++)
                fprintf(f, "%02x", k->key[j]);
            fprintf(f, " values %u\n", (unsigned)k->n);
            for (uint32_t j = 0; j < k->n; j++) {
                char ip[INET6_ADDRSTRLEN] = "?";
                const dht_sa *p = &k->v[j].peer;
                if (p->sa.sa_family == AF_INET)
                    inet_ntop(AF_INET, &p->in.sin_addr, ip, sizeof(ip));
                else
                    inet_ntop(AF_INET6, &p->in6.sin6_addr, ip, sizeof(ip));
                uint16_t port = ntohs(p->sa.sa_family == AF_INET ? p->in.sin_port
                                                                  : p->in6.sin6_port);
                fprintf(f, "  %s%s%s:%u expires in %llu s\n", p->sa.sa_family == AF_INET6 ? "[" : "",
                        ip, p->sa.sa_family == AF_INET6 ? "]" : "", port,
                        (unsigned long long)((k->v[j].expires_ms - now_ms) / 1000));
            }
        }
    }
}

void token_init(struct tokens *t, struct dht *dht, uint64_t now_ms)
{
    dht_secret_bytes(dht, t->secret, sizeof(t->secret));
    dht_secret_bytes(dht, t->prev, sizeof(t->prev));
    t->rotated_ms = now_ms;
}

void token_rotate(struct tokens *t, struct dht *dht, uint64_t now_ms)
{
    memcpy(t->prev, t->secret, sizeof(t->prev));
    dht_secret_bytes(dht, t->secret, sizeof(t->secret));
    t->rotated_ms = now_ms;
}

static void token_with(const uint8_t *secret, const dht_sa *a, uint8_t out[TOKEN_LEN])
{
    uint8_t md[20];
    const void *ip = a->sa.sa_family == AF_INET ? (const void *)&a->in.sin_addr
                                                : (const void *)&a->in6.sin6_addr;
    size_t iplen = a->sa.sa_family == AF_INET ? 4 : 16;
    if (dht_sha1(ip, iplen, secret, 16, md) < 0)
        memset(md, 0, sizeof(md)); /* never matches a real token: see token_check */
    memcpy(out, md, TOKEN_LEN);
}

void token_make(const struct tokens *t, const dht_sa *a, uint8_t out[TOKEN_LEN])
{
    token_with(t->secret, a, out);
}

bool token_check(const struct tokens *t, const dht_sa *a, const uint8_t *tok, size_t len)
{
    static const uint8_t zero[TOKEN_LEN];
    uint8_t want[TOKEN_LEN];
    if (!tok || len != TOKEN_LEN || memcmp(tok, zero, TOKEN_LEN) == 0)
        return false;
    token_with(t->secret, a, want);
    if (memcmp(want, tok, TOKEN_LEN) == 0)
        return true;
    token_with(t->prev, a, want);
    return memcmp(want, tok, TOKEN_LEN) == 0;
}

/* store.c - the values this node holds for others, and the tokens that guard storing.
 *
 * Storage: a hash table of keys (20 bytes), each with a small array of peer contacts
 * and their expiry. Memory is bounded twice: per key (the oldest entry gives way) and in
 * total (a new key or value is refused when full, until entries expire). Answers carry
 * a random subset when a key has more peers than fit.
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

struct svalue {
    dht_sa peer;
    uint64_t expires_ms;
};

struct skey {
    struct skey *next;
    uint8_t key[DHT_ID_LEN];
    uint32_t n, cap;
    struct svalue *v;
};

struct store {
    struct dht *dht;
    struct skey *slot[STORE_SLOTS];
    uint32_t per_key, total, nvalues, nkeys;
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
    dht_dealloc(s->dht, s);
}

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

int store_put(struct store *s, const uint8_t *key, const dht_sa *peer, uint64_t expires_ms)
{
    struct skey *k = key_find(s, key);
    if (k) {
        for (uint32_t i = 0; i < k->n; i++) {
            if (dht_addr_equal(&k->v[i].peer, peer)) {
                k->v[i].expires_ms = expires_ms;
                return 0;
            }
        }
    }
    if (s->nvalues >= s->total)
        return -ENOSPC;
    if (!k) {
        k = dht_alloc(s->dht, sizeof(*k));
        if (!k)
            return -ENOMEM;
        memset(k, 0, sizeof(*k));
        memcpy(k->key, key, DHT_ID_LEN);
        k->next = s->slot[key[0]];
        s->slot[key[0]] = k;
        s->nkeys++;
    }
    if (k->n == k->cap && k->cap < s->per_key && key_grow(s, k) < 0)
        return -ENOMEM;
    if (k->n == k->cap) {
        /* Full key: the entry closest to expiry gives way. */
        uint32_t old = 0;
        for (uint32_t i = 1; i < k->n; i++)
            if (k->v[i].expires_ms < k->v[old].expires_ms)
                old = i;
        k->v[old].peer = *peer;
        k->v[old].expires_ms = expires_ms;
        return 0;
    }
    k->v[k->n].peer = *peer;
    k->v[k->n].expires_ms = expires_ms;
    k->n++;
    s->nvalues++;
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
            for (uint32_t j = 0; j < k->n; j++)
                if (k->v[j].expires_ms > now_ms)
                    k->v[keep++] = k->v[j];
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
    dht_rand_bytes(dht, t->secret, sizeof(t->secret));
    dht_rand_bytes(dht, t->prev, sizeof(t->prev));
    t->rotated_ms = now_ms;
}

void token_rotate(struct tokens *t, struct dht *dht, uint64_t now_ms)
{
    memcpy(t->prev, t->secret, sizeof(t->prev));
    dht_rand_bytes(dht, t->secret, sizeof(t->secret));
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

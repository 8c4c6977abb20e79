/* util.c - the leaf helpers every module of the library shares: its allocator, its
 * random numbers and SHA-1.
 *
 * Allocator: each block carries its size in front, so the node can report the bytes it
 * holds (dht_stats.mem_bytes) without a table of blocks. Random numbers: one splitmix64
 * stream per node, seeded once (dht_config.seed, or getrandom() when 0), so a seeded
 * node is reproducible in tests and simulations. splitmix64 is fast, not cryptographic:
 * each output reveals the state, so secrets (the token secrets) come from getrandom()
 * instead, unless the node is seeded. SHA-1 comes from libcrypto, the library's only
 * dependency beyond libc. These functions call nothing else in the library, so the
 * routing table, the storage and the tokens use them without depending on the node's
 * protocol engine (node.c, lookup.c); only struct dht's rng and mem fields are read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <openssl/evp.h>
#include "dht/node.h"

void *dht_alloc(struct dht *dht, size_t n)
{
    size_t *p = malloc(sizeof(size_t) + n);
    if (!p)
        return NULL;
    *p = n;
    dht->mem += n + sizeof(size_t);
    return p + 1;
}

void dht_dealloc(struct dht *dht, void *v)
{
    if (!v)
        return;
    size_t *p = (size_t *)v - 1;
    dht->mem -= *p + sizeof(size_t);
    free(p);
}

uint64_t dht_rand64(struct dht *dht)
{
    uint64_t z = (dht->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dht_rand_bytes(struct dht *dht, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = dht_rand64(dht);
        memcpy(out + i, &r, n - i < 8 ? n - i : 8);
    }
}

void dht_secret_bytes(struct dht *dht, uint8_t *out, size_t n)
{
    if (dht->cfg.seed == 0 && getrandom(out, n, 0) == (ssize_t)n)
        return;
    dht_rand_bytes(dht, out, n); /* a seeded node (tests), or no getrandom() */
}

int dht_sha1(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[20])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, a, alen) && EVP_DigestUpdate(ctx, b, blen) &&
             EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    return ok && len == 20 ? 0 : -EIO;
}

/* owner.c - the owner of a key among the live LAN nodes (see owner.h).
 *
 * The weight is SHA-256(node id || key) compared as a big-endian number; ids are 20
 * bytes in both dialects. Ranking is a partial selection sort of at most n + 1 weights,
 * n being a LAN's nodes (at most OWNER_LAN_MAX). */
#include "aptdht-config.h"
#include <openssl/evp.h>
#include <string.h>
#include "apt-dht-proxy/owner.h"

static void weight(const uint8_t id[20], const uint8_t key[20], uint8_t out[32])
{
    uint8_t buf[40];
    unsigned n = 0;
    memcpy(buf, id, 20);
    memcpy(buf + 20, key, 20);
    if (!EVP_Digest(buf, sizeof buf, out, &n, EVP_sha256(), NULL))
        memset(out, 0, 32); /* cannot happen with OpenSSL's built-in SHA-256 */
}

size_t owner_rank(const uint8_t self_id[20], const struct p2p_node *nodes, size_t n,
                  const uint8_t key[20], struct p2p_node *out, size_t max)
{
    uint8_t self_w[32], w[OWNER_LAN_MAX][32];
    bool taken[OWNER_LAN_MAX] = {false};
    size_t m = n < OWNER_LAN_MAX ? n : OWNER_LAN_MAX, k = 0;
    weight(self_id, key, self_w);
    for (size_t i = 0; i < m; i++)
        weight(nodes[i].id, key, w[i]);
    while (k < max) {
        size_t best = m;
        for (size_t i = 0; i < m; i++) {
            if (taken[i] || memcmp(nodes[i].id, self_id, 20) == 0 ||
                memcmp(w[i], self_w, 32) <= 0)
                continue;
            if (best == m || memcmp(w[i], w[best], 32) > 0)
                best = i;
        }
        if (best == m)
            break;
        taken[best] = true;
        out[k++] = nodes[best];
    }
    return k;
}

bool owner_runner_up(const uint8_t self_id[20], const struct p2p_node *nodes, size_t n,
                     const uint8_t key[20], struct p2p_node *out)
{
    uint8_t best_w[32], w[32];
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(nodes[i].id, self_id, 20) == 0)
            continue;
        weight(nodes[i].id, key, w);
        if (!found || memcmp(w, best_w, 32) > 0) {
            memcpy(best_w, w, 32);
            *out = nodes[i];
            found = true;
        }
    }
    return found;
}

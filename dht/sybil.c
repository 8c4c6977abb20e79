/* sybil.c - defences against one party posing as many: which addresses count as one
 * sender, node ids bound to addresses (BEP 42), and closest sets drawn from many subnets.
 *
 * A DHT trusts the K nodes closest to a key. Ids cost nothing, so an attacker with a
 * handful of addresses can claim the ids closest to any key and answer lookups with
 * nothing (an eclipse), and one host with many source ports can pose as many senders.
 * Three rules make that expensive without a central authority:
 *
 * - One sender = one IP address (the port does not count), except on loopback, where
 *   every local process shares 127.0.0.1 or ::1 and the port is all that tells them
 *   apart. Rate limits and the storage share are charged to this owner key.
 * - BEP 42 (mainline dialect): the first 21 bits of a node id must equal those of
 *   CRC-32C(ip & mask, with r in the top 3 bits) where r is the low 3 bits of the id's
 *   last byte; the mask keeps 2/4/6/8 bits of the IPv4 octets (1..8 bits of the first
 *   eight IPv6 octets), so an address has only 8 prefixes to choose from. Loopback,
 *   private, link-local and unique-local addresses are exempt (as in libtorrent): a
 *   LAN's nodes never know their public address, and need not.
 * - Diversity: of the K nodes a lookup trusts (or an answer names), at most
 *   DIVERSE_MAX share a /24 (IPv4) or /64 (IPv6), and at most DIVERSE_MAX have ids
 *   that fail BEP 42, while other candidates remain. The cap only reorders preference:
 *   where every node shares one subnet (a LAN lab, a loopback swarm) the K closest are
 *   taken as before, so a network with no diversity to prefer works unchanged. */
#include <string.h>
#include "dht/dht-int.h"

uint32_t dht_crc32c(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static const uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The IPv4 address of a (also inside an IPv4-mapped IPv6 address), or NULL. */
static const uint8_t *ipv4_of(const dht_sa *a)
{
    if (a->sa.sa_family == AF_INET)
        return (const uint8_t *)&a->in.sin_addr;
    if (a->sa.sa_family == AF_INET6 &&
        memcmp(a->in6.sin6_addr.s6_addr, mapped_prefix, sizeof(mapped_prefix)) == 0)
        return a->in6.sin6_addr.s6_addr + 12;
    return NULL;
}

bool dht_addr_is_loopback(const dht_sa *a)
{
    const uint8_t *v4 = ipv4_of(a);
    if (v4)
        return v4[0] == 127;
    return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

bool dht_addr_is_local(const dht_sa *a)
{
    const uint8_t *v4 = ipv4_of(a);
    if (v4)
        return v4[0] == 10 || v4[0] == 127 || (v4[0] == 172 && (v4[1] & 0xf0) == 16) ||
               (v4[0] == 192 && v4[1] == 168) || (v4[0] == 169 && v4[1] == 254);
    if (a->sa.sa_family != AF_INET6)
        return false;
    const struct in6_addr *ip = &a->in6.sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(ip) || IN6_IS_ADDR_LINKLOCAL(ip) || IN6_IS_ADDR_SITELOCAL(ip) ||
           (ip->s6_addr[0] & 0xfe) == 0xfc; /* unique local, fc00::/7 */
}

void dht_addr_owner(const dht_sa *a, uint8_t out[DHT_OWNER_LEN])
{
    const uint8_t *v4 = ipv4_of(a);
    memset(out, 0, DHT_OWNER_LEN);
    if (v4) {
        memcpy(out, mapped_prefix, sizeof(mapped_prefix));
        memcpy(out + 12, v4, 4);
    } else if (a->sa.sa_family == AF_INET6) {
        memcpy(out, a->in6.sin6_addr.s6_addr, 16);
    }
    if (dht_addr_is_loopback(a)) {
        uint16_t port = a->sa.sa_family == AF_INET ? a->in.sin_port : a->in6.sin6_port;
        memcpy(out + 16, &port, 2);
    }
}

bool dht_addr_same_subnet(const dht_sa *a, const dht_sa *b)
{
    const uint8_t *x = ipv4_of(a), *y = ipv4_of(b);
    if (x || y)
        return x && y && memcmp(x, y, 3) == 0;
    return a->sa.sa_family == AF_INET6 && b->sa.sa_family == AF_INET6 &&
           memcmp(a->in6.sin6_addr.s6_addr, b->in6.sin6_addr.s6_addr, 8) == 0;
}

/* The CRC-32C BEP 42 derives from address a and r (0..7). Returns 0 when a is neither
 * IPv4 nor IPv6. */
static uint32_t bep42_crc(const dht_sa *a, unsigned r)
{
    static const uint8_t m4[4] = {0x03, 0x0f, 0x3f, 0xff};
    static const uint8_t m6[8] = {0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff};
    const uint8_t *v4 = ipv4_of(a), *src = v4, *mask = m4;
    uint8_t ip[8];
    size_t n = 4;
    if (!v4) {
        if (a->sa.sa_family != AF_INET6)
            return 0;
        src = a->in6.sin6_addr.s6_addr;
        mask = m6;
        n = 8;
    }
    for (size_t i = 0; i < n; i++)
        ip[i] = src[i] & mask[i];
    ip[0] |= (uint8_t)((r & 7) << 5);
    return dht_crc32c(ip, n);
}

bool dht_bep42_ok(const uint8_t *id, const dht_sa *a)
{
    if (dht_addr_is_local(a))
        return true;
    uint32_t crc = bep42_crc(a, id[19] & 7u);
    return id[0] == (uint8_t)(crc >> 24) && id[1] == (uint8_t)(crc >> 16) &&
           (id[2] & 0xf8) == ((crc >> 8) & 0xf8);
}

void dht_bep42_make(const dht_sa *a, const uint8_t rnd[DHT_ID_LEN], uint8_t out[DHT_ID_LEN])
{
    uint32_t crc = bep42_crc(a, rnd[19] & 7u);
    memcpy(out, rnd, DHT_ID_LEN);
    out[0] = (uint8_t)(crc >> 24);
    out[1] = (uint8_t)(crc >> 16);
    out[2] = (uint8_t)(((crc >> 8) & 0xf8) | (rnd[2] & 7));
}

int dht_pick_diverse(const dht_sa *const *addr, const uint8_t *unverified, int n, int k,
                     uint8_t *chosen)
{
    int picked = 0, nunv = 0, idx[DHT_K];
    if (k > DHT_K)
        k = DHT_K;
    memset(chosen, 0, (size_t)n);
    /* First pass: closest first, skipping what would crowd a subnet or the unverified. */
    for (int i = 0; i < n && picked < k; i++) {
        int unv = unverified && unverified[i];
        if (unv && nunv >= DIVERSE_MAX)
            continue;
        int same = 0;
        for (int j = 0; j < picked; j++)
            same += dht_addr_same_subnet(addr[i], addr[idx[j]]);
        if (same >= DIVERSE_MAX)
            continue;
        chosen[i] = 1;
        idx[picked++] = i;
        nunv += unv;
    }
    /* Second pass: nothing more diverse is left, so the closest skipped ones fill up. */
    for (int i = 0; i < n && picked < k; i++) {
        if (!chosen[i]) {
            chosen[i] = 1;
            picked++;
        }
    }
    return picked;
}

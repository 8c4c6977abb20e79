/* cidr.c - address blocks and matching.
 *
 * Model: a block is a family, 16 address bytes and a prefix length, stored with its host
 * bits cleared, so matching compares the first `prefix` bits of two byte strings. IPv4
 * and IPv6 meet in one place only: an IPv4 client is also ::ffff:a.b.c.d, so the answer
 * never depends on which kind of socket the connection arrived on. */
#include "aptdht-config.h"
#include "apt-dht-proxy/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* A prefix length: decimal digits, no sign, no leading zero (as config numbers), at most
 * max. strtoul's own leniency (blanks, signs) is shut out by the first-digit test. */
static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
        return -EINVAL;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

int cidr_parse(const char *s, struct cidr *out)
{
    char addr[INET6_ADDRSTRLEN];
    struct cidr c;
    if (!s || !out)
        return -EINVAL;
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(&c, 0, sizeof(c));
    c.family = memchr(addr, ':', alen) ? AF_INET6 : AF_INET;
    if (inet_pton(c.family, addr, c.addr) != 1)
        return -EINVAL;
    unsigned bits = c.family == AF_INET ? 32 : 128, prefix = bits;
    if (slash && parse_prefix(slash + 1, bits, &prefix) < 0)
        return -EINVAL;
    c.prefix = (uint8_t)prefix;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = c.prefix > i * 8 ? c.prefix - i * 8 : 0;
        if (keep < 8)
            c.addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    *out = c;
    return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[full] & mask) == (b[full] & mask);
}

/* An IPv4 client is matched both as itself against IPv4 blocks and as ::ffff:a.b.c.d
 * against IPv6 blocks, whichever socket family it arrived on, so the answer never depends
 * on whether the listener is dual-stack. */
bool cidr_match_any(const struct cidr *blocks, size_t n, const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t v6[16];
    const uint8_t *v4 = NULL;
    if (!sa || (!blocks && n))
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        memcpy(v6, mapped, 12);
        memcpy(v6 + 12, &sin->sin_addr, 4);
        v4 = v6 + 12;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(v6, &sin6->sin6_addr, 16);
        if (memcmp(v6, mapped, 12) == 0)
            v4 = v6 + 12;
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cidr *b = &blocks[i];
        if (b->family == AF_INET && v4 && b->prefix <= 32 && prefix_equal(v4, b->addr, b->prefix))
            return true;
        if (b->family == AF_INET6 && b->prefix <= 128 && prefix_equal(v6, b->addr, b->prefix))
            return true;
    }
    return false;
}

int cidr_list_copy(struct cidr **dst, size_t *n_dst, const struct cidr *src, size_t n)
{
    struct cidr *p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        return -ENOMEM;
    if (n)
        memcpy(p, src, n * sizeof *p);
    free(*dst);
    *dst = p;
    *n_dst = n;
    return 0;
}

bool sa_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
                      &((const struct sockaddr_in *)(const void *)b)->sin_addr, 4) == 0;
    return a->sa_family == AF_INET6 &&
           memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
}

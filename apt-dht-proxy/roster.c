/* roster.c - the LAN's apt-dht nodes as heard (see roster.h). A flat array: a LAN has
 * tens of nodes, and every operation is a scan. */
#include "aptdht-config.h"
#include <netinet/in.h>
#include <string.h>
#include <stdbool.h>
#include "apt-dht-proxy/roster.h"

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)(const void *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)(const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)(const void *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static void remove_at(struct roster *r, size_t i)
{
    r->e[i] = r->e[--r->n];
}

static size_t find_id(const struct roster *r, const uint8_t id[20])
{
    for (size_t i = 0; i < r->n; i++)
        if (memcmp(r->e[i].id, id, 20) == 0)
            return i;
    return ROSTER_MAX;
}

static size_t find_addr(const struct roster *r, const struct sockaddr *sa, size_t skip)
{
    for (size_t i = 0; i < r->n; i++)
        if (i != skip && same_addr(&r->e[i].addr, sa))
            return i;
    return ROSTER_MAX;
}

void roster_heard(struct roster *r, const uint8_t id[20], const struct sockaddr *sa,
                  socklen_t salen, uint64_t now)
{
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || salen > sizeof r->e[0].addr)
        return;
    size_t slot = find_id(r, id);
    if (slot == ROSTER_MAX) {
        slot = find_addr(r, sa, ROSTER_MAX); /* that node restarted with a new id */
    } else {
        size_t j = find_addr(r, sa, slot); /* another id held this address before */
        if (j != ROSTER_MAX) {
            remove_at(r, j);
            if (slot == r->n)
                slot = j; /* it was the last entry: remove_at moved it into j */
        }
    }
    if (slot == ROSTER_MAX) {
        if (r->n < ROSTER_MAX) {
            slot = r->n++;
        } else {
            slot = 0;
            for (size_t i = 1; i < r->n; i++)
                if (r->e[i].heard_ms < r->e[slot].heard_ms)
                    slot = i;
        }
    }
    struct roster_entry *e = &r->e[slot];
    memcpy(e->id, id, 20);
    memset(&e->addr, 0, sizeof e->addr);
    memcpy(&e->addr, sa, salen);
    e->heard_ms = now;
}

size_t roster_live(const struct roster *r, uint64_t now, struct roster_entry *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n && k < max; i++)
        if (r->e[i].heard_ms + ROSTER_LIVE_MS > now)
            out[k++] = r->e[i];
    return k;
}

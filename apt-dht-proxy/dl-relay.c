/* dl-relay.c - what the download object offers relays and takes from them.
 *
 * A host whose download of a file is still arriving serves it to other hosts (the peer
 * route, uploads.c): every byte of the current body, whichever source sent it (a peer's
 * too, unverified: the receiver verifies the whole file itself), the last byte held back
 * until the download is DONE, so a relay never completes a file it has not verified. A
 * body that starts over (dl_reset_body bumps the generation) or a download that fails
 * ends the relay responses short, and their receivers try another source.
 *
 * The other way round: a peer busy with F downstreams of a file answers 503 and names
 * them (X-Apt-Dht-Relays: ADDR:PORT,...), and the download asks them next, as quiet peers
 * whose 404 or 503 is no failure of theirs. That builds a tree of relays instead of
 * piling every host on the first holder's uplink. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/cidr.h"
#include "apt-dht-proxy/fetch-int.h"
#include "apt-dht-proxy/log.h"

/* One "ADDR:PORT" or "[ADDR]:PORT" of a relay hint into sa; false if malformed. */
static bool hint_addr(const char *h, size_t n, struct sockaddr_storage *sa, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon = n ? memrchr(h, ':', n) : NULL;
    size_t hl = colon ? (size_t)(colon - h) : 0;
    char *end;
    if (!colon || hl == 0 || n - hl - 1 < 1 || n - hl - 1 > 5)
        return false;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end != h + n || port == 0 || port > 65535)
        return false;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= sizeof host)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *a4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return true;
    }
    return false;
}

/* One hint, if well formed and new, at peers[*at]. */
static void add_hint(struct dl *d, const char *h, size_t n, const char *path, size_t *at)
{
    struct sockaddr_storage sa;
    socklen_t len;
    char url[160];
    if (!hint_addr(h, n, &sa, &len) || dl_peer_is_listed(d, (struct sockaddr *)&sa, len) ||
        snprintf(url, sizeof url, "http://%.*s%s", (int)n, h, path) >= (int)sizeof url ||
        dl_add_peer_at(d, *at, (struct sockaddr *)&sa, len, url) < 0)
        return;
    d->peers[*at].quiet = true;
    log_debug("fetch %s: trying relay %s next", d->key, d->peers[*at].label);
    (*at)++;
}

void dl_add_hints(struct dl *d, struct xfer *x)
{
    const char *path = strstr(d->peers[x->idx].url, "/~/");
    size_t at = d->peer_idx; /* right after the peers already started */
    for (const char *h = x->hints; path && *h;) {
        const char *comma = strchr(h, ',');
        size_t n = comma ? (size_t)(comma - h) : strlen(h);
        while (n && *h == ' ')
            h++, n--;
        add_hint(d, h, n, path, &at);
        h += n + (comma ? 1 : 0);
        if (!comma)
            break;
    }
    x->hints[0] = '\0';
}

uint64_t dl_relay_available(const struct dl *d)
{
    if (d->state == DL_DONE)
        return d->received;
    if (d->state != DL_STREAMING || d->total < 0)
        return 0;
    if (d->received >= (uint64_t)d->total)
        return (uint64_t)d->total - (d->total > 0); /* the last byte waits for DONE */
    return d->received;
}

bool dl_source_is_host(const struct dl *d, const struct sockaddr *host)
{
    if (d->src != SRC_PEER)
        return false;
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        const struct xfer *x = &d->xf[i];
        if (x->easy && !x->doomed && x->peer &&
            sa_same_host((const struct sockaddr *)&d->peers[x->idx].sa, host))
            return true;
    }
    return false;
}

unsigned dl_body_gen(const struct dl *d)
{
    return d->body_gen;
}

void dl_relay_count(struct dl *d, int delta)
{
    if (delta > 0)
        d->relays++;
    else if (d->relays > 0)
        d->relays--;
}

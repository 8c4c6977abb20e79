/* mirrors.c - the health of mirrors, by origin, with exponential back-off (mirrors.h).
 *
 * One record per origin that failed and has not succeeded since: how many failures in a
 * row and until when it is backed off. The records live in a string map keyed by the
 * origin, which each record holds. Ordering a download's few URLs is a stable insertion
 * sort on (backed off?, end of back-off), so healthy mirrors keep the order the config
 * gives them. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/mirrors.h"
#include "apt-dht-proxy/strmap.h"

#define ORIGIN_MAX 300 /* "https://" + a 253-byte host (or [v6]) + ":65535" */

struct health {
    char origin[ORIGIN_MAX];
    unsigned fails;    /* failures in a row, >= 1 */
    uint64_t until_ms; /* backed off until then (loop time) */
};

struct mirrors {
    struct strmap *map; /* origin -> struct health */
};

int mirrors_new(struct mirrors **out)
{
    struct mirrors *m = calloc(1, sizeof *m);
    if (!m || strmap_new(&m->map) < 0) {
        free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

void mirrors_free(struct mirrors *m)
{
    if (!m)
        return;
    strmap_free(m->map, free);
    free(m);
}

int mirrors_origin(const char *url, char *out, size_t n)
{
    const char *scheme, *h;
    unsigned port;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = "http", h = url + 7, port = 80;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = "https", h = url + 8, port = 443;
    else
        return -EINVAL;
    size_t hl = strcspn(h, "/?#");
    const char *close = h[0] == '[' ? memchr(h, ']', hl) : NULL;
    const char *colon = memchr(close ? close : h, ':', hl - (size_t)((close ? close : h) - h));
    size_t name = colon ? (size_t)(colon - h) : hl;
    if (name == 0 || (h[0] == '[' && !close))
        return -EINVAL;
    if (colon) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (end != h + hl || v == 0 || v > 65535)
            return -EINVAL;
        port = (unsigned)v;
    }
    int w = snprintf(out, n, "%s://%.*s:%u", scheme, (int)name, h, port);
    if (w < 0 || (size_t)w >= n)
        return -ENAMETOOLONG;
    for (char *p = out + strlen(scheme) + 3; *p && *p != ':'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p | 0x20);
    return 0;
}

static struct health *find(const struct mirrors *m, const char *url)
{
    char origin[ORIGIN_MAX];
    if (!m || mirrors_origin(url, origin, sizeof origin) < 0)
        return NULL;
    return strmap_get(m->map, origin);
}

static uint64_t backoff_ms(unsigned fails)
{
    uint64_t ms = MIRRORS_BACKOFF_MIN_MS;
    for (unsigned i = 1; i < fails && ms < MIRRORS_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < MIRRORS_BACKOFF_MAX_MS ? ms : MIRRORS_BACKOFF_MAX_MS;
}

void mirrors_failed(struct mirrors *m, const char *url, uint64_t now_ms)
{
    struct health *h = find(m, url);
    if (!m)
        return;
    if (!h) {
        if (strmap_count(m->map) >= MIRRORS_MAX || !(h = calloc(1, sizeof *h)))
            return; /* not remembered: the mirror is tried as if healthy */
        if (mirrors_origin(url, h->origin, sizeof h->origin) < 0 ||
            strmap_put(m->map, h->origin, h, NULL) < 0) {
            free(h);
            return;
        }
    }
    if (h->fails < 64)
        h->fails++;
    h->until_ms = now_ms + backoff_ms(h->fails);
    /* the first failure is news; the next ones (every download that still had it) not */
    if (h->fails == 1)
        log_warn("mirror %s failed: tried after the others for %llu s", h->origin,
                 (unsigned long long)(backoff_ms(h->fails) / 1000));
    else
        log_debug("mirror %s failed (%u in a row): tried after the others for %llu s",
                  h->origin, h->fails, (unsigned long long)(backoff_ms(h->fails) / 1000));
}

void mirrors_ok(struct mirrors *m, const char *url)
{
    struct health *h = find(m, url);
    if (!h)
        return;
    log_info("mirror %s answers again", h->origin);
    strmap_del(m->map, h->origin);
    free(h);
}

uint64_t mirrors_backoff_left(const struct mirrors *m, const char *url, uint64_t now_ms)
{
    const struct health *h = find(m, url);
    return h && h->until_ms > now_ms ? h->until_ms - now_ms : 0;
}

void mirrors_order(const struct mirrors *m, char **urls, size_t n, uint64_t now_ms)
{
    uint64_t left[16];
    if (!m || n < 2 || n > sizeof left / sizeof left[0] || strmap_count(m->map) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        left[i] = mirrors_backoff_left(m, urls[i], now_ms);
    for (size_t i = 1; i < n; i++) { /* stable: equal back-offs (0) keep their order */
        char *u = urls[i];
        uint64_t l = left[i];
        size_t j = i;
        for (; j > 0 && left[j - 1] > l; j--) {
            urls[j] = urls[j - 1];
            left[j] = left[j - 1];
        }
        urls[j] = u;
        left[j] = l;
    }
}

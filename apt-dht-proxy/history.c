/* history.c - a ring of per-minute differences of the counters.
 *
 * Slot m % HISTORY_MINUTES holds minute m when stamp[slot] == m; any other stamp means
 * the minute was never closed (no tick: zero) or belongs to an older day (overwritten
 * on its next use). So a gap of hours costs nothing to skip and nothing is ever shifted. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/history.h"
#include "apt-dht-proxy/stats.h"

struct history {
    int64_t last_min;         /* the minute of the last tick */
    uint64_t last[HIST_N];    /* the totals at the last tick */
    int64_t stamp[HISTORY_MINUTES];
    uint64_t v[HISTORY_MINUTES][HIST_N];
};

static size_t slot_of(int64_t m)
{
    int64_t k = m % HISTORY_MINUTES;
    return (size_t)(k < 0 ? k + HISTORY_MINUTES : k);
}

int history_new(struct history **out, int64_t now_min, const uint64_t totals[HIST_N])
{
    struct history *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->last_min = now_min;
    memcpy(h->last, totals, sizeof h->last);
    for (size_t i = 0; i < HISTORY_MINUTES; i++)
        h->stamp[i] = INT64_MIN;
    *out = h;
    return 0;
}

void history_free(struct history *h)
{
    free(h);
}

void history_tick(struct history *h, int64_t now_min, const uint64_t totals[HIST_N])
{
    if (now_min <= h->last_min)
        return;
    size_t k = slot_of(now_min - 1);
    h->stamp[k] = now_min - 1;
    for (int s = 0; s < HIST_N; s++)
        /* a counter never shrinks; if one did (a restart of its owner), count nothing */
        h->v[k][s] = totals[s] >= h->last[s] ? totals[s] - h->last[s] : 0;
    h->last_min = now_min;
    memcpy(h->last, totals, sizeof h->last);
}

static uint64_t minute_value(const struct history *h, enum history_series s, int64_t m)
{
    size_t k = slot_of(m);
    return h->stamp[k] == m ? h->v[k][s] : 0;
}

uint64_t history_pending(const struct history *h, enum history_series s,
                         const uint64_t totals[HIST_N])
{
    return totals[s] >= h->last[s] ? totals[s] - h->last[s] : 0;
}

uint64_t history_sum(const struct history *h, enum history_series s, int64_t now_min,
                     unsigned minutes, const uint64_t totals[HIST_N])
{
    uint64_t sum = history_pending(h, s, totals);
    if (minutes > HISTORY_MINUTES)
        minutes = HISTORY_MINUTES;
    for (unsigned i = 1; i <= minutes; i++)
        sum += minute_value(h, s, now_min - (int64_t)i);
    return sum;
}

void history_get(const struct history *h, enum history_series s, int64_t now_min, uint64_t *out,
                 size_t n)
{
    if (n > HISTORY_MINUTES)
        n = HISTORY_MINUTES;
    for (size_t i = 0; i < n; i++)
        out[i] = minute_value(h, s, now_min - (int64_t)n + (int64_t)i);
}

void history_totals(const struct stats *st, uint64_t totals[HIST_N])
{
    totals[HIST_SERVED_CACHE] = st->served_bytes[STATS_CACHE];
    totals[HIST_SERVED_PEER] = st->served_bytes[STATS_PEER];
    totals[HIST_SERVED_MIRROR] = st->served_bytes[STATS_MIRROR];
    totals[HIST_UPLOADED] = st->bytes_uploaded;
    totals[HIST_FROM_MIRROR] = st->bytes_from_mirror;
    totals[HIST_REQUESTS] = st->requests;
}

/* history.h - the last 24 hours of the daemon's counters, minute by minute.
 *
 * The serving path only adds to the cumulative counters of stats.h; once a minute the
 * owner hands history_tick the counters' current totals and the history stores the
 * difference since the previous tick under the minute that just ended. A minute with no
 * tick (the daemon was stopped or the loop stalled) reads as zero. Minutes are counted
 * by the caller's clock (CLOCK_MONOTONIC minutes for the daemon), so the history needs
 * no real time and its tests no sleeping. Fixed size: HISTORY_MINUTES slots of
 * HISTORY_N series, allocated once. */
#ifndef APT_DHT_HISTORY_H
#define APT_DHT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define HISTORY_MINUTES 1440

/* The series kept. */
enum history_series {
    HIST_SERVED_CACHE,  /* bytes to apt from the cache */
    HIST_SERVED_PEER,   /* bytes to apt of files that came from peers */
    HIST_SERVED_MIRROR, /* bytes to apt of files that came from mirrors */
    HIST_UPLOADED,      /* bytes sent to peers */
    HIST_FROM_MIRROR,   /* bytes received from mirrors */
    HIST_REQUESTS,      /* requests */
    HIST_N
};

struct history;

/* A history whose first minute is now_min, with the counters' totals at that moment.
 * 0 or -ENOMEM. */
int history_new(struct history **out, int64_t now_min, const uint64_t totals[HIST_N]);
void history_free(struct history *h);

/* Closes every minute before now_min: what the counters grew since the last tick goes
 * to minute now_min - 1, the minutes in between read zero. A tick within the same minute
 * as the last one changes nothing. */
void history_tick(struct history *h, int64_t now_min, const uint64_t totals[HIST_N]);

/* The growth of series s over the last `minutes` minutes before now_min (closed minutes
 * only) plus the minute in progress (totals now minus the last tick). */
uint64_t history_sum(const struct history *h, enum history_series s, int64_t now_min,
                     unsigned minutes, const uint64_t totals[HIST_N]);

/* The closed minutes of series s, oldest first: out[i] is minute now_min - n + i (so
 * out[n - 1] is the minute that just ended); n <= HISTORY_MINUTES. */
void history_get(const struct history *h, enum history_series s, int64_t now_min, uint64_t *out,
                 size_t n);

/* The minute in progress of series s: the totals now minus those of the last tick. */
uint64_t history_pending(const struct history *h, enum history_series s,
                         const uint64_t totals[HIST_N]);

/* The totals history_tick expects, read from the counters. */
struct stats;
void history_totals(const struct stats *st, uint64_t totals[HIST_N]);

#endif

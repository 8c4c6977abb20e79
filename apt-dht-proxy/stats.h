/* stats.h - the daemon's counters, kept in one place: the HTTP side adds to them, the
 * fetcher's callbacks add to them, and whatever reports them (the status page, /metrics,
 * SIGUSR1) reads this struct. Every counter only grows while the daemon runs; rates and
 * the per-minute history are differences of two readings (history.h), so the serving
 * path pays one addition per event and nothing else. */
#ifndef APT_DHT_STATS_H
#define APT_DHT_STATS_H

#include <stdint.h>
#include <string.h>

/* Where the body of an answer to apt came from. */
enum stats_src { STATS_CACHE, STATS_PEER, STATS_MIRROR, STATS_N_SRC };

/* Where a whole downloaded file came from, for verification counts. */
enum stats_origin { STATS_FROM_PEER, STATS_FROM_MIRROR, STATS_N_ORIGIN };

struct stats {
    uint64_t connections;       /* HTTP connections accepted */
    uint64_t requests;
    uint64_t bytes_served;      /* body bytes sent to apt clients */
    uint64_t bytes_from_mirror; /* body bytes received from mirrors */
    uint64_t bytes_from_peers;  /* body bytes received from peers (verified or not) */
    uint64_t bytes_uploaded;    /* body bytes sent to peers */
    uint64_t hits, misses, revalidated, errors;
    /* Answers to apt that succeeded (status < 400), and their body bytes, by where the
     * body came from; counted when the request ends (stats_served). */
    uint64_t served_requests[STATS_N_SRC], served_bytes[STATS_N_SRC];
    uint64_t uploads;           /* files sent to peers (answers to /~/sha256/HEX) */
    /* Whole files checked against the signed indices, by origin. */
    uint64_t verified[STATS_N_ORIGIN];   /* matched the expected size and hash */
    uint64_t mismatches[STATS_N_ORIGIN]; /* did not: discarded */
    uint64_t unverifiable;      /* from a mirror with no expected hash (stored as is) */
    int64_t last_mirror_ok_s;   /* wall clock of the last whole file from a mirror; 0 = never */
};

/* The kind of source named by a request's log source ("cache", "cache (revalidated)",
 * "peer ADDR", "mirror URL"); -1 for anything else ("-", "upload", "status"). */
static inline int stats_src_of(const char *source)
{
    if (strncmp(source, "cache", 5) == 0)
        return STATS_CACHE;
    if (strncmp(source, "peer ", 5) == 0)
        return STATS_PEER;
    if (strncmp(source, "mirror ", 7) == 0)
        return STATS_MIRROR;
    return -1;
}

/* A request ended: an answer to apt with this status, body bytes and log source. */
static inline void stats_served(struct stats *st, unsigned status, uint64_t bytes,
                                const char *source)
{
    int k = status < 400 ? stats_src_of(source) : -1;
    if (k < 0)
        return;
    st->served_requests[k]++;
    st->served_bytes[k] += bytes;
}

#endif

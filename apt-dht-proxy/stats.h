/* stats.h - the daemon's counters, kept in one place: the HTTP side adds to them, the
 * fetcher's byte callbacks add to them, and whatever reports them reads this struct. */
#ifndef APT_DHT_STATS_H
#define APT_DHT_STATS_H

#include <stdint.h>

struct stats {
    uint64_t connections;       /* HTTP connections accepted */
    uint64_t requests;
    uint64_t bytes_served;      /* body bytes sent to apt clients */
    uint64_t bytes_from_mirror; /* body bytes received from mirrors */
    uint64_t bytes_from_peers;  /* body bytes received from peers (verified or not) */
    uint64_t bytes_uploaded;    /* body bytes sent to peers */
    uint64_t hits, misses, revalidated, errors;
};

#endif

/* policy.h - what to do with one apt request: a pure function of what is known.
 *
 * The HTTP side gathers the facts (the route's file class, the hash index entry, the
 * cache entry, the negative cache, the indexer's queue, and later the download's state)
 * into a struct policy_in; policy_decide says what to do next and the caller does it.
 * Nothing here touches a socket, the disk or the clock, so every case is a table row in
 * tests/unit/test_policy.c.
 *
 * The rules, per file class:
 *  immutable  (pool/..., by-hash/...) cached -> serve; else fetch, verified against the
 *             hash index when it knows the file; a file it does not know yet while an
 *             index is being parsed waits for the parse (once).
 *  volatile   InRelease/Release: revalidate with the mirror each time (If-Modified-Since),
 *             serve the cached copy if the mirror cannot be reached.
 *             Other indices listed in the last InRelease: serve only a copy whose hash is
 *             the one listed; otherwise fetch by name and verify before delivery, and when
 *             the mirror's by-name copy disagrees (a mirror mid-sync) fetch the by-hash
 *             copy instead; so apt never gets a by-name index that disagrees with the
 *             InRelease it was just given ("Hash Sum mismatch").
 *             Anything else: revalidate like InRelease. */
#ifndef APT_DHT_POLICY_H
#define APT_DHT_POLICY_H

#include <stdbool.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/url.h"

enum policy_act {
    ACT_SERVE_CACHED,      /* the cache entry (a hit) */
    ACT_FETCH,             /* start or join the download, with the expectations in out */
    ACT_WAIT_INDEX,        /* suspend until the indexer's queue drains */
    ACT_REFUSE,            /* answer status with reason (reason NULL: the download's) */
    ACT_WAIT,              /* suspend until the download has news */
    ACT_STREAM,            /* stream the download as it arrives */
    ACT_SERVE_DONE,        /* the download is complete: its cache entry, else the stream */
    ACT_SERVE_REVALIDATED, /* the mirror said 304: the cache entry */
    ACT_RETRY,             /* the joined download failed before this request: decide afresh */
    ACT_BY_HASH,           /* the by-name index disagrees with InRelease: fetch by-hash */
    ACT_NOT_FOUND,         /* the mirror said 404: remember it, answer 404 */
    ACT_SERVE_STALE,       /* the mirror failed: the cached copy, logged as such */
};

/* The download a request waits on, as far as the policy cares. */
struct policy_dl {
    enum dl_state state;
    bool has_bytes;    /* a reader may have bytes now */
    int status;        /* upstream status, 0 = no answer */
    bool mismatch;     /* the body failed the expected hash */
    bool joined_late;  /* this request began at least a second after the download */
};

struct policy_in {
    enum url_class cls;
    bool release_name;   /* InRelease, Release, Release.gpg */
    bool have_expect;    /* the hash index (or a by-hash name) knows the file */
    bool expect_sha256;  /* ... and knows its SHA-256 */
    bool cached;         /* a cache entry exists under the route's key */
    bool cached_matches; /* its recorded SHA-256 is the expected one */
    bool neg_hit;        /* the mirror answered 404 for it recently */
    bool index_pending;  /* the indexer has files queued */
    bool index_waited;   /* this request waited for the indexer already */
    bool release_queued; /* the InRelease or Release of this file's suite waits to be parsed:
                          * the expected hash may be about to change */
    bool retried;        /* this request already decided afresh once */
    bool by_hash_tried;  /* this request already fell back to by-hash */
    const struct policy_dl *dl; /* NULL: no download yet (the first decision) */
};

struct policy_out {
    enum policy_act act;
    bool use_expect;    /* ACT_FETCH: verify against the hash index entry */
    bool verify_first;  /* ACT_FETCH: deliver nothing until the whole file verified */
    bool conditional;   /* ACT_FETCH: If-Modified-Since the cached copy */
    bool hit;           /* ACT_SERVE_CACHED: counts as a cache hit */
    bool miss;          /* ACT_FETCH: counts as a cache miss */
    unsigned status;    /* ACT_REFUSE, ACT_NOT_FOUND */
    const char *reason; /* ACT_REFUSE; NULL = the download's own reason */
};

struct policy_out policy_decide(const struct policy_in *in);

const char *policy_act_name(enum policy_act a);

#endif

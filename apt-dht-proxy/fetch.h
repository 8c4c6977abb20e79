/* fetch.h - downloads from upstream (peers on the LAN, then the mirrors) with libcurl's
 * multi interface driven by the event loop.
 *
 * A download in progress is one shared object (struct dl) per cache key: one upstream
 * transfer written to a temp file in the cache, read by every client that asked for the
 * same file while it arrives. Readers see bytes as soon as they are on disk, except that
 * when the expected hash is known the last byte is held back until the whole file
 * checks out; so a client never receives a complete file that fails verification, and a
 * transfer that fails leaves the client with a short body it detects. On success the
 * temp file is renamed into the cache (cache_commit); readers keep their open fd.
 * fetch.c holds the fetcher and the transfers, dl.c the download object. */
#ifndef APT_DHT_FETCH_H
#define APT_DHT_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/loop.h"

#define FETCH_MAX_URLS 8

struct fetcher;
struct dl;

enum dl_state {
    DL_CONNECTING,   /* no response headers yet */
    DL_STREAMING,    /* 200 received; body arriving (dl_total may be known) */
    DL_DONE,         /* complete (and verified when the hash was known); committed if cacheable */
    DL_NOT_MODIFIED, /* conditional request answered 304: the cached copy is current */
    DL_FAILED,       /* see dl_status / dl_reason */
};

enum peer_result {
    PEER_OK,       /* served the whole file and it verified */
    PEER_FAILED,   /* refused, unreachable, an HTTP error, silent past its deadline, or
                    * below the speed floor */
    PEER_BAD_DATA, /* served bytes that fail the hash or size check */
};

#define FETCH_MAX_OBJECT ((uint64_t)4 << 30) /* cache.max_object's default, bytes */
#define FETCH_MAX_INDEX ((uint64_t)256 << 20) /* cache.max_index's default, bytes */

struct fetch_opts {
    /* A mirror's timeouts; fetcher_reconfigure changes them. */
    uint32_t connect_timeout_s;
    uint32_t stall_timeout_s; /* no byte for this long = failure */
    /* The ceiling of a download whose size no index gives (bytes; 0 = the default):
     * max_object for immutable files, max_index for volatile ones (InRelease and Release
     * at most 10 MB, apt's own limit). A Content-Length above it fails the download at
     * once, a body that grows past it when it does. fetcher_set_ceilings changes them. */
    uint64_t max_object, max_index;
    const char *user_agent;
    /* Called when a download has been committed to the cache as key (path = its file,
     * sha256 = its content's digest). */
    void (*on_commit)(void *ud, const char *key, const char *path, const uint8_t sha256[32]);
    /* Called when a transfer from a peer ends, with its bytes and duration. */
    void (*on_peer_result)(void *ud, const struct sockaddr *peer, enum peer_result r,
                           uint64_t bytes, uint64_t ms);
    /* A peer transfer's deadline for its response headers, ms (NULL: a fixed default);
     * past it the next holder is asked too. */
    uint32_t (*peer_deadline_ms)(void *ud, const struct sockaddr *peer);
    /* A peer's response headers arrived: its connect time and the time to its headers
     * since the transfer began, microseconds (0 = not measured). */
    void (*on_peer_rtt)(void *ud, const struct sockaddr *peer, uint64_t connect_us,
                        uint64_t headers_us);
    /* Body bytes received, by kind of source. */
    void (*on_bytes)(void *ud, bool from_peer, size_t n);
    /* A whole body was checked against what the indices promise (expected false: nothing
     * was known to check it against; ok false: it failed the size or hash check). */
    void (*on_verify)(void *ud, bool from_peer, bool expected, bool ok);
    void *ud;
};

struct dl_request {
    const char *key;           /* cache key */
    const char *urls[FETCH_MAX_URLS]; /* upstream URLs, tried in order (failover) */
    size_t n_urls;
    bool immutable;
    bool cacheable;            /* false: stream only, never commit */
    bool verify_first;         /* deliver nothing until the whole file is verified */
    const struct hashdb_entry *expect; /* size/hash the file must have, or NULL */
    time_t if_modified_since;  /* > 0: conditional request (volatile revalidation) */
    /* A peer lookup runs for this file: peers added with dl_add_peer are tried before the
     * mirrors; if none has started sending within peer_budget_ms, the mirrors are used.
     * Needs expect (peers are only ever trusted against a known hash). */
    bool await_peers;
    uint32_t peer_budget_ms;
};

int fetcher_new(struct fetcher **out, struct loop *l, struct cache *c,
                const struct fetch_opts *opts);
/* Aborts every transfer; readers still holding a dl see DL_FAILED. Accepts NULL. */
void fetcher_free(struct fetcher *f);

/* New mirror timeouts (as fetch_opts: seconds, > 0), for every transfer started after
 * this call, including a running download's failover to its next mirror; a transfer
 * already under way keeps the timeouts it started with. Peers are judged otherwise: a
 * deadline for their headers (peer_deadline_ms) and a speed floor (see fetch.c). */
void fetcher_reconfigure(struct fetcher *f, uint32_t connect_timeout_s, uint32_t stall_timeout_s);
/* New ceilings (as fetch_opts; 0 = the default), for downloads started after the call. */
void fetcher_set_ceilings(struct fetcher *f, uint64_t max_object, uint64_t max_index);

/* How mirror transfers reach their mirrors (the upstream.* keys); peers use none of it. */
struct fetch_upstream {
    const char *proxy;    /* "http://HOST:PORT"; NULL = direct (never the environment's) */
    const char *no_proxy; /* curl's comma-separated list of hosts reached directly; NULL */
    const char *ca_file;  /* PEM CAs for https mirrors; NULL = the system's store */
    /* true if ip (numeric) and port, the address a mirror transfer has connected to, are
     * this proxy's own: the transfer is refused (a name that resolves to this host) */
    bool (*is_self)(void *ud, const char *ip, unsigned port);
    void *ud;
};
/* Copies u for every mirror transfer started after the call. 0 or -ENOMEM (unchanged). */
int fetcher_set_upstream(struct fetcher *f, const struct fetch_upstream *u);

/* Returns the download in progress for req->key or starts one; the caller holds a
 * reference (dl_unref when done). NULL with *err set (-ENOMEM, -ENAMETOOLONG...). */
struct dl *fetcher_get(struct fetcher *f, const struct dl_request *req, int *err);

void dl_ref(struct dl *d);
void dl_unref(struct dl *d);

enum dl_state dl_state(const struct dl *d);
/* Bytes a reader may have now (the held-back tail excluded). */
uint64_t dl_available(const struct dl *d);
/* Total size if known (Content-Length or expected size), else -1. */
int64_t dl_total(const struct dl *d);
/* Reads up to n bytes at pos (pos + n <= dl_available). Returns bytes or negative errno. */
ssize_t dl_read(struct dl *d, uint64_t pos, void *buf, size_t n);
/* Upstream status (200, 304, 404, 500 ...; 0 = no answer) and a one-line reason. */
int dl_status(const struct dl *d);
const char *dl_reason(const struct dl *d);
time_t dl_last_modified(const struct dl *d); /* 0 = unknown */
const char *dl_source(const struct dl *d);   /* "mirror URL" or "peer ADDR:PORT" */
bool dl_hash_mismatch(const struct dl *d);
/* The cache key the download stores under. */
const char *dl_key(const struct dl *d);
/* When the download started (loop_now_ms). */
uint64_t dl_started_ms(const struct dl *d);

/* Peers for a download started with await_peers: tried in the order added, each with
 * verification before anything is delivered; a failing or lying peer is reported through
 * on_peer_result and the next source is tried (from where the body stands: a Range
 * request). A peer that has not answered within its deadline keeps its transfer while
 * the next peer is asked too; the first to send a body byte wins. Ignored once the
 * download has moved on to the mirrors or ended. dl_peers_done: the lookup is over, no
 * more will come.
 * dl_claim_lookup returns true once per download that awaits peers: the caller that
 * gets true starts the lookup. */
int dl_add_peer(struct dl *d, const struct sockaddr *sa, socklen_t salen, const char *url);
void dl_peers_done(struct dl *d);
bool dl_claim_lookup(struct dl *d);
/* Like dl_add_peer, for a node the file's owner rank names (owner.h): it is asked to fetch
 * the file for us (pull, with our cache key) or to serve what it has, and its 404 or 503
 * does not count against it. Same conditions and returns as dl_add_peer. */
int dl_add_owner(struct dl *d, const struct sockaddr *sa, socklen_t salen, const char *url,
                 bool pull);

/* ---- relaying: the peer route serving a download still in flight ---- */

/* The download in flight whose expected SHA-256 is sha256 and whose size the index gives
 * (*size receives it), or NULL. Downloads in flight are few: this is a scan. */
struct dl *fetcher_find_sha256(struct fetcher *f, const uint8_t sha256[32], uint64_t *size);
/* Bytes of the current body a relay may send now, whatever the source (a peer's too,
 * unverified: the receiver verifies the whole file), the last byte held back until the
 * download is DONE (verified). */
uint64_t dl_relay_available(const struct dl *d);
/* Changes each time the body starts over (a new source): a relay response that has
 * sent bytes of an earlier body must abort. */
unsigned dl_body_gen(const struct dl *d);
/* True while d's transfer is from a peer at host's address (any port): a relay must not
 * serve a host its own bytes back (two hosts each waiting on the other). */
bool dl_source_is_host(const struct dl *d, const struct sockaddr *host);
/* A relay response starts (+1) or stops (-1) reading d: while any reads, watchers are
 * told of a peer's bytes too, not only of a mirror's. */
void dl_relay_count(struct dl *d, int delta);

/* A download in progress, as the status page shows it. Strings point into the download
 * and are valid during the callback only. */
struct dl_view {
    const char *key;     /* cache key */
    const char *source;  /* "peer ADDR:PORT", "mirror URL", or "" while none is chosen */
    bool awaiting_peers; /* waiting for the DHT lookup to name a peer */
    bool from_peer;      /* the transfer is from a peer (nothing is delivered until verified) */
    uint64_t received;   /* body bytes of the current transfer */
    int64_t total;       /* -1 = unknown */
    uint64_t started_ms, transfer_ms; /* loop_now_ms: the download, the current transfer */
    unsigned readers;    /* requests waiting on or reading it */
};
/* Calls fn for every download in progress (at most max); fn must not change the fetcher.
 * Returns the number of downloads in progress. */
size_t fetcher_each(struct fetcher *f, void (*fn)(void *ud, const struct dl_view *v), void *ud,
                    size_t max);

/* Watchers are told of every change (new bytes, new state). The callback must not free
 * the dl. Returns a handle for dl_unwatch, or NULL (-ENOMEM). */
struct dl_watch;
struct dl_watch *dl_watch(struct dl *d, void (*cb)(void *ud), void *ud);
void dl_unwatch(struct dl *d, struct dl_watch *w);

#endif

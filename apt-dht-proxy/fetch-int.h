/* fetch-int.h - what fetch.c and dl.c share; nothing else includes it.
 *
 * The fetch module is two files along one seam:
 *   fetch.c  the fetcher: which download a request joins, libcurl's multi interface
 *            driven by the loop, one easy handle per transfer, and what each HTTP answer
 *            means for the download (its headers, its body bytes, how it ended);
 *   dl.c     the download object: references, readers and watchers, the body file and
 *            its hashes, verification and commit, and the order in which sources are
 *            tried (peers, then mirrors), kept as a named state.
 * dl.c calls no libcurl function; fetch.c never decides which source comes next. */
#ifndef APT_DHT_FETCH_INT_H
#define APT_DHT_FETCH_INT_H

#include <curl/curl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/strmap.h"

#define DL_MAX_PEERS 16

struct dl_watch {
    void (*cb)(void *ud);
    void *ud;
    struct dl_watch *next;
};

struct dl_peer {
    struct sockaddr_storage sa;
    socklen_t salen;
    char url[160];
    char label[80]; /* "ADDR:PORT" for logs */
    bool pull;      /* ask it to fetch the file for us (X-Apt-Dht-Fetch: our key) */
    bool quiet;     /* an owner or a relay hint: its 404 or 503 is no failure of its own */
};

/* Where a download takes its bytes from. Changes only through set_source() in dl.c,
 * which logs each one; the order is NEW -> (AWAIT_PEER <-> PEER)* -> MIRROR* -> ENDED,
 * and any state may go straight to ENDED. */
enum dl_source {
    SRC_NEW,        /* created; no source chosen yet */
    SRC_AWAIT_PEER, /* peers are wanted and none is being tried: waiting for the lookup */
    SRC_PEER,       /* the transfer is from peers[peer_idx - 1] (running, or just ended) */
    SRC_MIRROR,     /* the transfer is from urls[url_idx - 1] (running, or just ended) */
    SRC_ENDED,      /* dl_finish ran: the state is final, no source is tried again */
};

struct dl {
    int refs;
    struct fetcher *f;
    char *key;
    char *join_key; /* its key in fetcher.inflight (the cache key, or a variant) */

    /* what the request asked for */
    char *urls[FETCH_MAX_URLS];
    size_t n_urls;
    bool immutable, cacheable, verify_first;
    bool have_expect;
    struct hashdb_entry expect;
    time_t ims; /* > 0: send If-Modified-Since */

    /* what readers see */
    enum dl_state state;
    int status; /* final upstream status for the client's decision */
    char reason[160];
    bool mismatch;
    time_t last_modified;
    char source[300]; /* "peer ADDR:PORT" or "mirror URL" */
    struct dl_watch *watchers;
    uint64_t started_ms;

    /* the body: a temp file in the cache (or a memfd) and its running hashes */
    char tmp_path[PATH_MAX]; /* "" = no file on disk (committed, unlinked or a memfd) */
    int fd;                  /* -1 = none */
    bool in_memory;          /* the disk was full: fd is a memfd, nothing is cached */
    uint64_t received;       /* body bytes in fd */
    int64_t total;           /* -1 = unknown */
    uint64_t ceiling;        /* the most bytes this download may bring */
    uint64_t reserved;       /* cache room taken for it (cache_reserve), bytes */
    uint64_t mem_held;       /* in_memory: bytes counted in fetcher.mem_used */
    EVP_MD_CTX *sha256, *sha1;
    bool have_digest;
    uint8_t digest[32]; /* SHA-256 of the complete body */

    /* the sources, in the order they are tried */
    enum dl_source src;
    size_t url_idx; /* urls[0 .. url_idx - 1] have been tried */
    struct dl_peer peers[DL_MAX_PEERS];
    size_t n_peers, peer_idx; /* peers[0 .. peer_idx - 1] have been tried */
    bool await_peers;         /* the request wanted peers (and the size is known) */
    bool peers_done;          /* the lookup is over: no more peers will come */
    bool budget_over;         /* the time to wait for peers ran out: no new peer is started */
    bool lookup_claimed;      /* dl_claim_lookup returned true once */
    struct loop_timer budget_timer;

    /* relaying (the peer route serves the body while it arrives, see dl_relay_available) */
    unsigned body_gen; /* bumped by dl_reset_body: a relay response can tell a restart */
    unsigned relays;   /* relay responses reading: a peer's bytes are notified too */
    char hints[200];   /* X-Apt-Dht-Relays of the current peer's 503, "" = none */

    /* the transfer under way (fetch.c) */
    CURL *easy; /* NULL = none running */
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    int resp_status;      /* status of the response being received */
    int os_errno;         /* of the failed transfer's last system call (CURLINFO_OS_ERRNO) */
    uint64_t transfer_ms; /* when it started */
};

struct fetcher {
    struct loop *loop;
    struct cache *cache;
    struct fetch_opts opts; /* timeouts as of the last fetcher_reconfigure */
    CURLM *multi;           /* NULL until the first transfer sets up libcurl */
    struct loop_timer timer;
    struct strmap *inflight; /* join key -> struct dl (not yet ended) */
    char user_agent[64];
    unsigned seq;      /* for join keys of downloads that run alone */
    uint64_t mem_used; /* bytes of all in-memory bodies (disk full) */
    unsigned n_dls;    /* downloads not yet destroyed */
    bool freed;        /* fetcher_free ran; the last dl_destroy frees the struct */
};

/* ---- fetch.c, for dl.c ---- */

/* Starts a transfer from the current source (d->src is SRC_PEER or SRC_MIRROR, the
 * index just advanced). On failure the download ends (DL_FAILED). */
void fetch_start(struct dl *d);
/* Drops the running transfer, if any, without calling back. */
void fetch_stop(struct dl *d);
/* Removes d from the in-flight map so no request joins it any more. */
void fetch_forget(struct dl *d);

/* ---- dl.c, for fetch.c ---- */

/* A new download for req under join_key, not started, holding the transfer's own
 * reference. 0 or -ENOMEM, or the error of creating the body file. */
int dl_new(struct dl **out, struct fetcher *f, const struct dl_request *req, const char *join_key);
/* Frees d whatever its references (for dl_unref and a download never begun). */
void dl_destroy(struct dl *d);
/* Arms the wait for peers and starts the first source. */
void dl_begin(struct dl *d, uint32_t peer_budget_ms);

void dl_notify(struct dl *d);
void dl_set_reason(struct dl *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The body file made empty again, with fresh hashes, for a new transfer. */
int dl_reset_body(struct dl *d);
/* A 200 arrived with this Content-Length (-1 = none). false: abort (the size differs
 * from the index's; the reason is set). */
bool dl_body_begins(struct dl *d, int64_t content_length);
/* Body bytes arrived. false: abort (too many, or cannot be stored; the reason is set). */
bool dl_append(struct dl *d, const char *buf, size_t n);

/* The transfer delivered the whole body: verify, then commit, or try the next source. */
void dl_complete(struct dl *d);
/* The transfer from the current peer failed: reports it and tries the next source. */
void dl_peer_failed(struct dl *d, enum peer_result r);
/* Starts the next source: the next peer while peers are wanted (or waits for the lookup
 * to name one, within the budget), else the next mirror; when none is left, fails. */
void dl_next_source(struct dl *d);
/* The current peer declined (its 404 or 503; quiet peers and any 503): the relays it
 * named are tried next, and it is not reported as failed. */
void dl_peer_declined(struct dl *d);
/* Ends the download for good: readers are told, the in-flight slot is freed and the
 * fetcher's reference dropped. */
void dl_finish(struct dl *d, enum dl_state st);

#endif

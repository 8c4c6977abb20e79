/* fetch-int.h - what fetch.c and dl.c share; nothing else includes it.
 *
 * The fetch module is two files along one seam:
 *   fetch.c  the fetcher: which download a request joins, libcurl's multi interface
 *            driven by the loop, one easy handle per transfer (struct xfer) with its
 *            deadlines, and what each HTTP answer means for the download (its headers,
 *            its body bytes, how it ended);
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

struct mirrors;

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

/* One HTTP transfer from one source (fetch.c). A download runs at most DL_MAX_XFERS at
 * once, and two only in the peer phase: a holder that has not answered within its
 * deadline keeps its transfer while the next holder is started beside it (a hedge). The
 * first of them to deliver a body byte becomes the writer, whose body alone goes into
 * the download, and the other is cancelled. Invariant: while a writer exists it is the
 * only transfer. */
#define DL_MAX_XFERS 2

struct xfer {
    struct dl *d;
    CURL *easy; /* NULL = the slot is free */
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    bool peer; /* from d->peers[idx], else from d->urls[idx] */
    size_t idx;
    uint64_t offset; /* the body byte its request starts at (Range: bytes=N-); 0 = all */
    int resp_status; /* of the response being received; 0 = none yet */
    int os_errno;    /* of its last system call when it failed (CURLINFO_OS_ERRNO) */
    int64_t length;  /* its response's Content-Length; -1 = none */
    bool restart;    /* asked a range and got a 200: its body starts at byte 0 */
    bool answered;   /* its response headers are in */
    bool late;       /* no response headers within its deadline */
    bool writer;     /* its body goes into the download */
    bool doomed;     /* cancelled inside a libcurl callback: reaped by its deadline
                      * timer at once, its data ignored meanwhile */
    bool bad;        /* a peer's answer that contradicts the index (its size) */
    bool self_refused; /* a mirror transfer that reached this proxy itself (PREREQFUNCTION) */
    char crange[96]; /* its Content-Range header; "" = none */
    char hints[200]; /* a busy peer's X-Apt-Dht-Relays (its 503); "" = none */
    time_t last_modified;
    /* loop_now_ms of its start, its response headers, its first body byte; 0 = not yet */
    uint64_t start_ms, answer_ms, first_byte_ms;
    uint64_t got;               /* body bytes it delivered as the writer */
    uint64_t win_ms, win_got;   /* the speed floor's window: its start and got then */
    struct loop_timer deadline; /* its response headers (a peer's deadline from its round
                                 * trip; a mirror's first-byte deadline once connected) */
    struct loop_timer tick;     /* the speed floor's check (peers only) */
    /* The loop-turn budget (XFER_TURN_BYTES): body bytes taken in turn `turn`; over it
     * the transfer is paused until the next wait has run (fetcher.paused). */
    uint64_t turn, turn_bytes;
    bool paused;
    struct xfer *paused_next;
};

/* Where a download takes its bytes from. Changes only through set_source() in dl.c,
 * which logs each one; the order is NEW -> (AWAIT_PEER <-> PEER)* -> MIRROR* -> ENDED,
 * and any state may go straight to ENDED. */
enum dl_source {
    SRC_NEW,        /* created; no source chosen yet */
    SRC_AWAIT_PEER, /* peers are wanted and none is being tried: waiting for the lookup */
    SRC_PEER,       /* transfers are from peers (running, or just ended) */
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

    /* the transfers under way (fetch.c) */
    struct xfer xf[DL_MAX_XFERS];
    uint64_t transfer_ms; /* when the newest transfer started (the status page) */
    bool tainted;         /* the body holds bytes from a peer: nothing is readable
                           * until the whole file has verified */
    int body_peer;        /* the one peer (index) that supplied every body byte so far;
                           * -1 = none, -2 = several sources */
    bool restarted;       /* a mixed body failed verification: started over from the
                           * mirrors (once) */
};

struct fetcher {
    struct loop *loop;
    double mirror_rate; /* bytes/ms: moving average over mirror transfers; 0 = unmeasured */
    struct cache *cache;
    struct fetch_opts opts; /* timeouts as of the last fetcher_reconfigure */
    CURLM *multi;           /* NULL until the first transfer sets up libcurl */
    struct loop_timer timer;
    struct strmap *inflight; /* join key -> struct dl (not yet ended) */
    char user_agent[64];
    unsigned seq;      /* for join keys of downloads that run alone */
    uint64_t mem_used; /* bytes of all in-memory bodies (disk full) */
    unsigned n_dls;    /* downloads not yet destroyed */
    struct mirrors *health; /* mirrors that failed, backed off (mirrors.h) */
    /* fetcher_set_upstream's copy; NULL = unset */
    char *proxy, *no_proxy, *ca_file;
    bool (*is_self)(void *ud, const char *ip, unsigned port);
    void *self_ud;
    bool freed;        /* fetcher_free ran; the last dl_destroy frees the struct */
    struct xfer *paused; /* transfers over their turn's budget, resumed before the wait */
    unsigned in_callback; /* inside libcurl's header or write callback (no removals) */
};

/* ---- fetch.c, for dl.c ---- */

/* Starts a transfer in a free slot from peers[idx] (peer) or urls[idx], asking for the
 * body from byte offset on. 0, or -EBUSY (no free slot) or -EIO (libcurl refused; the
 * reason is set); on failure nothing runs in that slot. */
int fetch_start(struct dl *d, bool peer, size_t idx, uint64_t offset);
/* Drops one transfer without calling back (idempotent). */
void fetch_cancel(struct xfer *x);
/* Cancels x from inside a libcurl callback, where its handle cannot be removed: its data
 * is ignored from now on and the loop reaps it at once. */
void fetch_doom(struct xfer *x);
/* Drops every transfer of d without calling back. */
void fetch_stop(struct dl *d);
/* The number of transfers d runs now. */
size_t fetch_running(const struct dl *d);
/* Removes d from the in-flight map so no request joins it any more. */
void fetch_forget(struct dl *d);
/* The lowest rate (bytes/ms) a peer's body may arrive at after its grace period: a
 * fraction of the mirrors' measured rate, or a fixed floor while none is measured. */
double fetch_peer_floor(const struct fetcher *f);

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

/* The body file made empty again, with fresh hashes: the one place a body starts
 * over (a first transfer, a 200 to a resumed request, a restart from the mirrors). */
int dl_reset_body(struct dl *d);
/* x's response headers are in, with its status. Checks its length (a 200: the whole
 * file; a 206: the rest from x->offset, as content_range says) against what the index
 * and the body so far allow. false: x's answer is refused (the reason is set). */
bool dl_answer_ok(struct dl *d, struct xfer *x, int64_t length, const char *content_range);
/* x is to write the body: cancels every other transfer, starts the body over when x's
 * answer starts at byte 0, and tells readers the body is streaming. false: abort x. */
bool dl_take_writer(struct dl *d, struct xfer *x);
/* Body bytes arrived from the writer. false: abort (too many, or cannot be stored; the
 * reason is set). */
bool dl_append(struct dl *d, struct xfer *x, const char *buf, size_t n);

/* The writer delivered the whole body: verify, then commit, or try the next source. */
void dl_complete(struct dl *d, struct xfer *x);
/* A peer's transfer ended or was abandoned without the whole file (r: what it counts
 * as; late or slow transfers are PEER_FAILED): it is reported and cancelled, and the
 * download goes on from the body it has, with the next source. */
void dl_peer_failed(struct dl *d, struct xfer *x, enum peer_result r);
/* A peer's transfer has no response headers within its deadline: the next holder is
 * started beside it (a hedge), the transfer itself is kept. */
void dl_peer_late(struct dl *d, struct xfer *x);
/* Starts the next source for the body as it stands (a Range request when it holds
 * bytes): the next peer while peers are wanted (or waits for the lookup to name one,
 * within the budget), else the next mirror; when none is left, fails. */
void dl_next_source(struct dl *d);
/* Puts a peer at peers[at] (at <= n_peers), the later ones shifted; starts nothing.
 * 0, or -EAGAIN when peers are no longer taken (the table full, the budget over). */
int dl_add_peer_at(struct dl *d, size_t at, const struct sockaddr *sa, socklen_t salen,
                   const char *url);
/* The peer of x declined (a 503, or an owner's or relay's 404): the relays it named are
 * tried next (dl-relay.c's dl_add_hints), and it is not reported as failed. */
void dl_peer_declined(struct dl *d, struct xfer *x);
/* The relays x's busy peer named go right after the peers already started, as quiet
 * peers; malformed entries and peers already listed are skipped (dl-relay.c). */
void dl_add_hints(struct dl *d, struct xfer *x);
/* True if a peer at sa is in d's list already. */
bool dl_peer_is_listed(const struct dl *d, const struct sockaddr *sa, socklen_t len);
/* A mirror's transfer died after its body began: resumes from the next mirror when
 * the file is immutable and one is left; false: none (the caller fails the download). */
bool dl_resume_mirror(struct dl *d, struct xfer *x);
/* Ends the download for good: readers are told, the in-flight slot is freed and the
 * fetcher's reference dropped. */
void dl_finish(struct dl *d, enum dl_state st);

#endif

/* status-int.h - what the status module's files share; nothing else includes it.
 *
 *   status.c          the object, access, routing, the heartbeat and history, health, the
 *                     clients seen and recent failures, and the summary every page reads
 *   status-page.c     the HTML page and its SVG picture
 *   status-report.c   the same summary as JSON and as text for a terminal
 *   status-explain.c  the explain page (with its live DHT lookup)
 *   metrics.c         /metrics
 *
 * A page is rendered in one go from one summary (struct status_sum), taken when the
 * request arrives, so every figure on it is of the same moment. */
#ifndef APT_DHT_STATUS_INT_H
#define APT_DHT_STATUS_INT_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include "apt-dht-proxy/cidr.h"
#include "apt-dht-proxy/history.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/server.h"
#include "apt-dht-proxy/stats.h"
#include "apt-dht-proxy/status.h"
#include "apt-dht-proxy/tbuf.h"

#define STATUS_CLIENTS 64  /* addresses remembered (the least recently seen goes) */
#define STATUS_FAILS 50    /* failed requests remembered */
#define STATUS_AGENT 128   /* bytes of a User-Agent kept */
#define STATUS_TARGET 320  /* bytes of a request target kept */
#define STATUS_STALL_MS 5000 /* a heartbeat this late means the loop stalled */
#define STATUS_STALL_KEEP_MS 60000 /* ... and /~/health says so for this long */

/* One address that asked something. */
struct status_client {
    char addr[INET6_ADDRSTRLEN];
    char agent[STATUS_AGENT]; /* its last User-Agent, as sent ("" = none) */
    uint64_t requests, bytes;
    uint64_t last_ms;         /* loop_now_ms; 0 = free slot */
    bool peer;                /* its last request was a peer's (/~/sha256/...) */
};

/* One request that failed (status >= 400). */
struct status_fail {
    int64_t time_ms; /* wall clock */
    char client[INET6_ADDRSTRLEN];
    char method[8];
    char target[STATUS_TARGET];
    char agent[STATUS_AGENT];
    unsigned status;
};

struct explain;

struct status {
    struct loop *loop;
    struct server *server;
    struct cache *cache;
    struct hashdb *db;
    struct p2p *p2p; /* NULL: dht.mode off */
    struct cidr *clients, *allowed; /* status_clients, allowed_clients */
    size_t n_clients, n_allowed;
    char *config_file; /* NULL = built-in defaults */
    uint64_t start_ms;
    int64_t start_wall; /* seconds since the epoch */
    struct history *hist;
    struct loop_timer beat;
    uint64_t beat_due_ms;
    uint64_t stall_ms, stall_at_ms; /* the last stall seen and when it ended; 0 = none */
    uint64_t watchdog_ms, watchdog_sent_ms; /* the service manager's watchdog; 0 = none */
    struct status_client seen[STATUS_CLIENTS];
    struct status_fail fails[STATUS_FAILS];
    size_t fail_next, n_fails;
    struct explain *explains; /* explain pages waiting for their lookup */
    uint64_t views;           /* status pages answered */
};

/* Everything a page shows that is a number, read once. */
struct status_sum {
    uint64_t now_ms;       /* loop_now_ms */
    int64_t now_wall;      /* seconds since the epoch */
    int64_t now_min;       /* the history's minute */
    uint64_t uptime_s;
    struct server_view sv;
    struct stats st;
    uint64_t totals[HIST_N], hour[HIST_N], day[HIST_N];
    bool have_p2p;
    struct p2p_stats ps;
    uint64_t cache_used, cache_max, cache_files, evictions;
    uint64_t disk_free, disk_size; /* of the cache's file system; 0 = unknown */
    uint64_t state_db, state_wal;  /* bytes of the hash index and its WAL; 0 = unknown */
    uint64_t expired_files, expired_bytes; /* removed by expiry by reference since start */
    size_t downloads;      /* in progress */
    unsigned health_status;
    char health[256];
};

void status_sum(struct status *st, struct status_sum *s);

/* The figures derived from the counters, for one window (since start, hour, day):
 * bytes apt received by source, and what the mirror was spared. */
struct status_window {
    uint64_t cache, peer, mirror, total; /* bytes to apt */
    uint64_t from_mirror;  /* bytes fetched from mirrors */
    uint64_t saved;        /* total - from_mirror, at least 0 */
    uint64_t uploaded;     /* bytes sent to peers */
};
void status_window(const struct status_sum *s, int which, struct status_window *w);
enum { WIN_START, WIN_HOUR, WIN_DAY };

/* The DHT state's name: "ALONE", "ACTIVE", "NO_NETWORK", "FAULTED", or "OFF". */
const char *status_dht_state(const struct status_sum *s);

/* Renderers. The page and explain write HTML, report JSON or text, metrics Prometheus. */
void status_page(struct status *st, const struct status_sum *s, struct tbuf *b);
void status_report_json(struct status *st, const struct status_sum *s, struct tbuf *b);
void status_report_text(struct status *st, const struct status_sum *s, struct tbuf *b);
void metrics_render(struct status *st, const struct status_sum *s, struct tbuf *b);

/* The HTML head and the navigation every page has, and the closing tags. */
void status_html_begin(struct tbuf *b, const char *title);
void status_html_end(struct tbuf *b);

/* Explain: answers a (suspending) response; frees what waits at shutdown. */
enum MHD_Result status_explain(struct status *st, struct answer *a, const char *query_u);
void status_explain_free_all(struct status *st);

/* The headers every status response has (type, no caching, no script, no framing). */
void status_headers(struct MHD_Response *resp, const char *ctype);
/* Queues text as the answer with status and content type. */
enum MHD_Result status_send(struct answer *a, unsigned http_status, const char *ctype,
                            struct tbuf *b);

/* "ADDR:PORT" / "[ADDR]:PORT" of sa. */
void status_sa_label(const struct sockaddr_storage *sa, char *out, size_t n);

#endif

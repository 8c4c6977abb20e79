/* server.c - apt-facing HTTP: routing, cache policy and responses.
 *
 * Every request is answered by one of three means: a cached file (sendfile through an
 * fd response, with Range and conditional requests), a download in progress (a
 * callback response that reads the shared temp file as it grows), or a one-line error.
 * A request that must wait (for response headers upstream, or for more body bytes) is
 * suspended and resumed by a watcher on its download; nothing here blocks.
 *
 * Policy, per file class (url.h):
 *  immutable  cached -> serve; else fetch, verified against the hash index when known.
 *  volatile   InRelease/Release: revalidate with the mirror each time (If-Modified-Since),
 *             serve the cached copy if the mirror cannot be reached.
 *             Other indices listed in the last InRelease: serve only a copy whose hash is
 *             the one listed; otherwise fetch it by name and verify it before delivery, and
 *             when the mirror's by-name copy disagrees (a mirror mid-sync), fetch the by-hash
 *             copy instead. So apt never gets a by-name index that disagrees with the
 *             InRelease it was just given ("Hash Sum mismatch").
 *             Anything else: revalidate like InRelease. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <curl/curl.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/server.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"
#include "apt-dht-proxy/version.h"

#define MAX_BACKEND_MIRRORS FETCH_MAX_URLS

struct mirror {
    char base[URL_MAX_TARGET]; /* "http://mirror.example/debian" */
    char host[URL_MAX_HOST + 1];
    char prefix[URL_MAX_PATH + 1]; /* "/debian" ("" for a mirror at the root) */
};

struct backend {
    char name[64];
    struct mirror mirrors[MAX_BACKEND_MIRRORS];
    size_t n;
};

struct neg_entry {
    uint64_t expires_ms;
    char key[];
};

struct server {
    const struct config *cfg;
    struct loop *loop;
    struct cache *cache;
    struct hashdb *db;
    struct indexer *ix;
    struct p2p *p2p;     /* NULL with dht.mode off */
    struct fetcher *fetcher;
    unsigned uploads;    /* peer uploads in progress */
    double tokens;       /* upload rate limit: bytes that may go out now */
    uint64_t tokens_ms;  /* when tokens was last refilled */
    struct MHD_Daemon *mhd;
    int mhd_epfd;
    bool kick;          /* a connection was resumed: MHD_run before the next wait */
    bool stopping;      /* server_free is ending every request: nothing starts or waits */
    uint16_t port;
    struct backend *backends;
    size_t n_backends;
    struct strmap *neg; /* key -> struct neg_entry: recent mirror 404s */
    struct req *reqs;   /* every live request, for shutdown */
    struct server_stats stats;
};

/* Where a request's file comes from and goes to. */
struct route {
    char key[URL_MAX_KEY];
    char urls[FETCH_MAX_URLS][URL_MAX_TARGET + URL_MAX_PATH * 3];
    size_t n_urls;
    enum url_class cls;
    char path[URL_MAX_PATH + 1]; /* the path as the mirror knows it, for by-hash fallback */
    size_t root_len; /* length of key's part that prefixes an upstream-relative path */
};

/* Per-request state (MHD's con_cls). Freed when both the request has completed and
 * any callback response reading it has been released. */
struct req {
    struct server *s;
    struct MHD_Connection *conn;
    struct req *prev, *next;
    int refs;
    uint64_t start_ms;
    char client[INET6_ADDRSTRLEN + 8];
    char method[8];
    char target[320];  /* for the log line */
    bool head;
    bool suspended;
    bool fallback_tried; /* by-hash fallback already attempted */
    bool retried;        /* joined a download that failed early; tried once afresh */
    bool index_wait;     /* suspended until the indexer's queue drains */
    bool index_waited;   /* waited once already (or timed out): decide with what is known */
    struct loop_timer index_timer;
    bool upload;         /* a peer fetching a file of ours */
    int up_fd;           /* rate-limited upload: the file, its range */
    uint64_t up_off, up_len;
    struct loop_timer rate_timer;
    struct route *route;
    struct dl *dl;
    struct dl_watch *watch;
    unsigned status;
    uint64_t bytes;
    char source[320];
};

/* ---- small helpers ---- */

static void req_unref(struct req *r)
{
    if (--r->refs > 0)
        return;
    if (r->dl) {
        if (r->watch)
            dl_unwatch(r->dl, r->watch);
        dl_unref(r->dl);
    }
    if (r->up_fd >= 0)
        close(r->up_fd);
    free(r->route);
    free(r);
}

static void req_resume(struct req *r)
{
    if (r->suspended) {
        r->suspended = false;
        r->s->kick = true;
        MHD_resume_connection(r->conn);
    }
}

static void req_suspend(struct req *r)
{
    if (!r->suspended && !r->s->stopping) {
        r->suspended = true;
        MHD_suspend_connection(r->conn);
    }
}

static void on_dl_change(void *ud)
{
    req_resume(ud);
}

static enum MHD_Result reply_error(struct req *r, unsigned status, const char *reason)
{
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", reason);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        (size_t)(n < (int)sizeof body ? n : (int)sizeof body - 1), body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    r->status = status;
    snprintf(r->source, sizeof r->source, "-");
    if (status >= 500)
        r->s->stats.errors++;
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void http_date(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static const char *content_type_of(const char *key)
{
    size_t n = strlen(key);
    if (n > 4 && strcmp(key + n - 4, ".deb") == 0)
        return "application/vnd.debian.binary-package";
    return "application/octet-stream";
}

/* ---- serving a cached file ---- */

/* Parses "bytes=A-B", "bytes=A-", "bytes=-N" for a file of size n.
 * Returns 1 with [*a, *b] set, 0 if no usable single range (serve the whole file),
 * -1 if unsatisfiable (416). */
static int parse_range(const char *h, uint64_t n, uint64_t *a, uint64_t *b)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        errno = 0;
        unsigned long long suf = strtoull(p + 1, &end, 10);
        if (errno || end == p + 1 || *end)
            return 0;
        if (suf == 0 || n == 0)
            return -1;
        *a = suf >= n ? 0 : n - suf;
        *b = n - 1;
        return 1;
    }
    errno = 0;
    unsigned long long x = strtoull(p, &end, 10);
    if (errno || end == p || *end != '-')
        return 0;
    p = end + 1;
    unsigned long long y = n ? n - 1 : 0;
    if (*p) {
        y = strtoull(p, &end, 10);
        if (errno || *end || y < x)
            return 0;
        if (y >= n)
            y = n ? n - 1 : 0;
    }
    if (x >= n)
        return -1;
    *a = x;
    *b = y;
    return 1;
}

/* If-Range: a date equal to (or later than) our Last-Modified keeps the range. */
static bool if_range_holds(const char *h, time_t mtime)
{
    if (!h)
        return true;
    time_t t = curl_getdate(h, NULL);
    return t > 0 && mtime <= t;
}

/* ---- uploads to peers, optionally rate-limited (peers.upload_rate) ---- */

static void stream_release(void *cls);

static void rate_wake(struct loop *l, struct loop_timer *t, void *ud)
{
    struct req *r = ud;
    req_resume(r);
}

/* Takes up to want bytes from the shared token bucket (refilled at the configured rate,
 * holding at most a tenth of a second's worth or 64 KiB). */
static size_t take_tokens(struct server *s, size_t want)
{
    double rate = (double)s->cfg->peer_upload_kib_s * 1024.0 / 1000.0; /* bytes per ms */
    double cap = rate * 100 > 65536 ? rate * 100 : 65536;
    uint64_t now = loop_now_ms();
    s->tokens += (double)(now - s->tokens_ms) * rate;
    s->tokens_ms = now;
    if (s->tokens > cap)
        s->tokens = cap;
    size_t n = s->tokens >= (double)want ? want : (size_t)s->tokens;
    s->tokens -= (double)n;
    return n;
}

static ssize_t upload_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct req *r = cls;
    if (pos >= r->up_len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (max > r->up_len - pos)
        max = (size_t)(r->up_len - pos);
    if (r->s->stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    /* the rate may have been set to 0 (no limit) by a reload during this upload */
    size_t n = r->s->cfg->peer_upload_kib_s ? take_tokens(r->s, max) : max;
    if (n == 0) {
        if (!loop_timer_armed(&r->rate_timer))
            loop_timer_start(r->s->loop, &r->rate_timer, 20);
        req_suspend(r);
        return 0;
    }
    ssize_t got = pread(r->up_fd, buf, n, (off_t)(r->up_off + pos));
    return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* A response for len bytes of fd at off: sendfile(2) normally; paced through the token
 * bucket for uploads when an upload rate is set. Takes ownership of fd. */
static struct MHD_Response *new_file_response(struct req *r, int fd, uint64_t off, uint64_t len)
{
    struct MHD_Response *resp;
    if (!(r->upload && r->s->cfg->peer_upload_kib_s > 0)) {
        resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
        if (!resp)
            close(fd);
        return resp;
    }
    r->up_fd = fd;
    r->up_off = off;
    r->up_len = len;
    resp = MHD_create_response_from_callback(len, 64 * 1024, upload_reader, r, stream_release);
    if (resp)
        r->refs++;
    return resp;
}

static enum MHD_Result serve_fd(struct req *r, int fd, const struct stat *st, const char *key)
{
    struct MHD_Connection *c = r->conn;
    uint64_t size = (uint64_t)st->st_size, a = 0, b = size ? size - 1 : 0;
    unsigned status = MHD_HTTP_OK;
    char date[64], cr[96];
    const char *ims = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Modified-Since");
    if (ims) {
        time_t t = curl_getdate(ims, NULL);
        if (t > 0 && st->st_mtime <= t) {
            close(fd);
            struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
            http_date(st->st_mtime, date, sizeof date);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
            r->status = MHD_HTTP_NOT_MODIFIED;
            enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NOT_MODIFIED, resp);
            MHD_destroy_response(resp);
            return ret;
        }
    }
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    const char *ifr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Range");
    int rr = range && if_range_holds(ifr, st->st_mtime) ? parse_range(range, size, &a, &b) : 0;
    if (rr < 0) {
        close(fd);
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        r->status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    uint64_t len = size ? b - a + 1 : 0;
    if (rr > 0)
        status = MHD_HTTP_PARTIAL_CONTENT;
    struct MHD_Response *resp = new_file_response(r, fd, a, len);
    if (!resp)
        return reply_error(r, 500, "cannot open the cached file");
    http_date(st->st_mtime, date, sizeof date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(key));
    if (rr > 0) {
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)a,
                 (unsigned long long)b, (unsigned long long)size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    r->status = status;
    r->bytes = r->head ? 0 : len;
    if (r->upload)
        r->s->stats.bytes_uploaded += r->bytes;
    else
        r->s->stats.bytes_served += r->bytes;
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result serve_cached(struct req *r, const char *key, const char *why)
{
    struct stat st;
    int fd = cache_open(r->s->cache, key, &st);
    if (fd < 0)
        return MHD_NO; /* caller falls back */
    snprintf(r->source, sizeof r->source, "%s", why);
    return serve_fd(r, fd, &st, key);
}

/* ---- serving a download in progress ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct req *r = cls;
    struct dl *d = r->dl;
    uint64_t avail = dl_available(d);
    if (pos < avail) {
        size_t n = avail - pos < max ? (size_t)(avail - pos) : max;
        ssize_t got = dl_read(d, pos, buf, n);
        if (got <= 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        r->bytes += (uint64_t)got;
        r->s->stats.bytes_served += (uint64_t)got;
        return got;
    }
    switch (dl_state(d)) {
    case DL_DONE:
        return MHD_CONTENT_READER_END_OF_STREAM;
    case DL_FAILED:
    case DL_NOT_MODIFIED:
        log_warn("%s: %s; closing the response after %llu bytes", r->target, dl_reason(d),
                 (unsigned long long)pos);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    default:
        req_suspend(r);
        return 0;
    }
}

static void stream_release(void *cls)
{
    req_unref(cls);
}

static enum MHD_Result serve_stream(struct req *r)
{
    int64_t total = dl_total(r->dl);
    struct MHD_Response *resp = MHD_create_response_from_callback(
        total >= 0 ? (uint64_t)total : MHD_SIZE_UNKNOWN, 256 * 1024, stream_reader, r,
        stream_release);
    if (!resp)
        return reply_error(r, 500, "out of memory");
    r->refs++; /* the response's */
    char date[64];
    if (dl_last_modified(r->dl) > 0) {
        http_date(dl_last_modified(r->dl), date, sizeof date);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(r->route->key));
    snprintf(r->source, sizeof r->source, "%s", dl_source(r->dl));
    r->status = MHD_HTTP_OK;
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- routing ---- */

static const struct backend *find_backend(const struct server *s, const char *name)
{
    for (size_t i = 0; i < s->n_backends; i++)
        if (strcmp(s->backends[i].name, name) == 0)
            return &s->backends[i];
    return NULL;
}

/* A mirror of some backend that serves host+path: proxy and rewrite requests for it share
 * the backend's cache entries and failover list. *rel receives the path past its prefix. */
static const struct backend *backend_for(const struct server *s, const char *host,
                                         const char *path, const char **rel)
{
    for (size_t i = 0; i < s->n_backends; i++) {
        for (size_t j = 0; j < s->backends[i].n; j++) {
            const struct mirror *m = &s->backends[i].mirrors[j];
            size_t pl = strlen(m->prefix);
            if (strcmp(m->host, host) == 0 && strncmp(path, m->prefix, pl) == 0 &&
                path[pl] == '/') {
                *rel = path + pl;
                return &s->backends[i];
            }
        }
    }
    return NULL;
}

static int route_backend(struct route *rt, const struct backend *b, const char *rel)
{
    const struct mirror *first = &b->mirrors[0];
    int w = snprintf(rt->key, sizeof rt->key, "%s%s%s", first->host, first->prefix, rel);
    if (w < 0 || (size_t)w >= sizeof rt->key)
        return -ENAMETOOLONG;
    rt->root_len = strlen(first->host) + strlen(first->prefix);
    for (size_t i = 0; i < b->n; i++)
        if (url_join(b->mirrors[i].base, rel, rt->urls[rt->n_urls++], sizeof rt->urls[0]) < 0)
            return -ENAMETOOLONG;
    snprintf(rt->path, sizeof rt->path, "%s", rel);
    return 0;
}

static int route_host(struct route *rt, const char *host, const char *path, bool https)
{
    char base[URL_MAX_HOST + 16];
    int w = snprintf(rt->key, sizeof rt->key, "%s%s", host, path);
    if (w < 0 || (size_t)w >= sizeof rt->key)
        return -ENAMETOOLONG;
    rt->root_len = strlen(host);
    snprintf(base, sizeof base, "%s://%s", https ? "https" : "http", host);
    if (url_join(base, path, rt->urls[0], sizeof rt->urls[0]) < 0)
        return -ENAMETOOLONG;
    rt->n_urls = 1;
    snprintf(rt->path, sizeof rt->path, "%s", path);
    return 0;
}

static bool is_self(const struct server *s, const char *host)
{
    char me[32];
    static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(me, sizeof me, "%s:%u", names[i], (unsigned)s->port);
        if (strcmp(host, me) == 0 || (s->port == 80 && strcmp(host, names[i]) == 0))
            return true;
    }
    return false;
}

/* Maps a parsed apt request to a route; returns 0 or an HTTP status with *why set. */
static unsigned resolve(struct server *s, const struct url_target *t, struct route *rt,
                        const char **why)
{
    const char *rel;
    const struct backend *b = NULL;
    int r;
    if (t->form == URL_ORIGIN && (b = find_backend(s, t->host)) != NULL) {
        rel = t->path;
    } else if (t->form == URL_ORIGIN && !url_host_is_hostname(t->host)) {
        *why = "unknown backend name";
        return MHD_HTTP_FORBIDDEN;
    } else {
        if (is_self(s, t->host)) {
            *why = "refusing to fetch from this proxy itself";
            return MHD_HTTP_FORBIDDEN;
        }
        b = backend_for(s, t->host, t->path, &rel);
    }
    const char *check = b ? rel : t->path;
    if (!url_is_archive_path(check)) {
        *why = "not a Debian archive path; this proxy serves only dists/, pool/ and index files";
        return MHD_HTTP_FORBIDDEN;
    }
    r = b ? route_backend(rt, b, rel) : route_host(rt, t->host, t->path, t->https);
    if (r < 0) {
        *why = "request path too long";
        return MHD_HTTP_URI_TOO_LONG;
    }
    rt->cls = url_classify(rt->key);
    return 0;
}

/* ---- the decision for one routed request ---- */

static bool neg_cached(struct server *s, const char *key)
{
    struct neg_entry *e = strmap_get(s->neg, key);
    if (!e)
        return false;
    if (e->expires_ms > loop_now_ms())
        return true;
    strmap_del(s->neg, key);
    free(e);
    return false;
}

static void neg_add(struct server *s, const char *key)
{
    if (s->cfg->negative_ttl_s == 0 || strmap_count(s->neg) > 100000)
        return;
    size_t kl = strlen(key);
    struct neg_entry *e = malloc(sizeof *e + kl + 1), *old = NULL;
    if (!e)
        return;
    memcpy(e->key, key, kl + 1);
    e->expires_ms = loop_now_ms() + (uint64_t)s->cfg->negative_ttl_s * 1000u;
    if (strmap_put(s->neg, e->key, e, (void **)&old) < 0)
        free(e);
    free(old);
}

static bool is_release_name(const char *key)
{
    const char *b = strrchr(key, '/');
    b = b ? b + 1 : key;
    return strcmp(b, "InRelease") == 0 || strcmp(b, "Release") == 0 ||
           strcmp(b, "Release.gpg") == 0;
}

struct find_ctx {
    struct dl *d; /* a reference, dropped when the lookup is done */
    uint8_t sha256[32];
};

static void on_peers(void *ud, const struct sockaddr_storage *peers, size_t n, bool done)
{
    struct find_ctx *x = ud;
    for (size_t i = 0; i < n; i++) {
        char url[200];
        const struct sockaddr *sa = (const struct sockaddr *)&peers[i];
        socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        if (p2p_peer_url(sa, x->sha256, url, sizeof url) == 0)
            dl_add_peer(x->d, sa, len, url);
    }
    if (done) {
        dl_peers_done(x->d);
        dl_unref(x->d);
        free(x);
    }
}

/* Starts the DHT lookup of a download that awaits peers (once per download). */
static void start_lookup(struct server *s, struct dl *d, const uint8_t sha256[32])
{
    if (!dl_claim_lookup(d))
        return;
    struct find_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        dl_peers_done(d);
        return;
    }
    dl_ref(d);
    x->d = d;
    memcpy(x->sha256, sha256, 32);
    if (p2p_find(s->p2p, sha256, on_peers, x) < 0) {
        dl_peers_done(d);
        dl_unref(d);
        free(x);
    }
}

static int start_dl(struct req *r, const char *key, const char (*urls)[URL_MAX_TARGET + URL_MAX_PATH * 3],
                    size_t n_urls, const struct hashdb_entry *expect, time_t ims, bool verify_first)
{
    /* Peers are asked for immutable files whose SHA-256 and size are known: they are
     * verified before a byte is delivered, and a peer's length is never believed.
     * InRelease and the by-name indices come from mirrors. */
    bool peers = r->s->p2p && expect && expect->have_sha256 && expect->size != UINT64_MAX &&
                 url_classify(key) == URL_IMMUTABLE && r->s->cfg->peer_budget_ms > 0;
    struct dl_request q = {
        .key = key,
        .n_urls = n_urls,
        .immutable = url_classify(key) == URL_IMMUTABLE,
        .cacheable = true,
        .verify_first = verify_first,
        .expect = expect,
        .if_modified_since = ims,
        .await_peers = peers,
        .peer_budget_ms = r->s->cfg->peer_budget_ms,
    };
    for (size_t i = 0; i < n_urls; i++)
        q.urls[i] = urls[i];
    int err = 0;
    struct dl *d = fetcher_get(r->s->fetcher, &q, &err);
    if (!d)
        return err;
    struct dl_watch *w = dl_watch(d, on_dl_change, r);
    if (!w) {
        dl_unref(d);
        return -ENOMEM;
    }
    if (r->dl) {
        if (r->watch)
            dl_unwatch(r->dl, r->watch);
        dl_unref(r->dl);
    }
    r->dl = d;
    r->watch = w;
    if (peers)
        start_lookup(r->s, d, expect->sha256);
    return 0;
}

static bool lookup_expect(struct server *s, const char *key, const char *path,
                          struct hashdb_entry *e)
{
    uint8_t h[32];
    memset(e, 0, sizeof *e);
    /* the index knows by-hash files too, with their size: prefer that */
    if (s->db && hashdb_lookup(s->db, key, e) == 0 && (e->have_sha256 || e->have_sha1))
        return true;
    memset(e, 0, sizeof *e);
    if (url_by_hash_sha256(path, h)) {
        e->size = UINT64_MAX;
        e->have_sha256 = true;
        memcpy(e->sha256, h, 32);
        return true;
    }
    return false;
}

/* Starts the by-hash download that replaces a by-name index the mirror got wrong. */
static int start_by_hash_fallback(struct req *r, const struct hashdb_entry *e)
{
    struct route *rt = r->route;
    char hex[65], rel[URL_MAX_PATH + 1], key[URL_MAX_KEY];
    char (*urls)[URL_MAX_TARGET + URL_MAX_PATH * 3] = rt->urls;
    const char *slash = strrchr(rt->path, '/');
    if (!e->have_sha256 || !slash)
        return -ENOENT;
    hex_encode(e->sha256, 32, hex);
    int w = snprintf(rel, sizeof rel, "%.*s/by-hash/SHA256/%s", (int)(slash - rt->path),
                     rt->path, hex);
    if (w < 0 || (size_t)w >= sizeof rel)
        return -ENAMETOOLONG;
    w = snprintf(key, sizeof key, "%.*s%s", (int)rt->root_len, rt->key, rel);
    if (w < 0 || (size_t)w >= sizeof key)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < rt->n_urls; i++) {
        /* urls[i] ends with the encoded rt->path; swap it for the by-hash path */
        char enc[URL_MAX_PATH * 3 + 1];
        int el = url_encode_path(rt->path, enc, sizeof enc);
        size_t ul = strlen(urls[i]);
        if (el < 0 || (size_t)el > ul)
            return -ENAMETOOLONG;
        urls[i][ul - (size_t)el] = '\0';
        char base[URL_MAX_TARGET + URL_MAX_PATH * 3];
        snprintf(base, sizeof base, "%s", urls[i]);
        if (url_join(base, rel, urls[i], sizeof urls[i]) < 0)
            return -ENAMETOOLONG;
    }
    log_info("%s: mirror's by-name copy disagrees with InRelease; fetching %s", rt->key, key);
    r->fallback_tried = true;
    return start_dl(r, key, (const char(*)[URL_MAX_TARGET + URL_MAX_PATH * 3])urls,
                    rt->n_urls, e, 0, true);
}

static enum MHD_Result decide(struct req *r);

/* A request that joined a download already under way, which then failed before any
 * body (a stall or an outage that began before this request), gets one fresh attempt
 * rather than inheriting an old failure. */
static bool should_retry(const struct req *r, const struct dl *d)
{
    return !r->retried && dl_status(d) != 404 && !dl_hash_mismatch(d) &&
           dl_available(d) == 0 && r->start_ms >= dl_started_ms(d) + 1000;
}

/* Called when the request's download has news; answers or keeps waiting. */
static enum MHD_Result continue_dl(struct req *r)
{
    struct dl *d = r->dl;
    struct route *rt = r->route;
    switch (dl_state(d)) {
    case DL_CONNECTING:
        req_suspend(r);
        return MHD_YES;
    case DL_STREAMING:
        if (dl_available(d) == 0) {
            /* verify_first, a peer, or nothing yet: headers go out with the first bytes
             * (an empty body waits for the end, so it too is checked first) */
            req_suspend(r);
            return MHD_YES;
        }
        return serve_stream(r);
    case DL_DONE:
        /* complete before this response started: the cached file goes out by sendfile */
        if (serve_cached(r, dl_key(d), dl_source(d)) == MHD_YES)
            return MHD_YES;
        return serve_stream(r);
    case DL_NOT_MODIFIED:
        r->s->stats.revalidated++;
        if (serve_cached(r, rt->key, "cache (revalidated)") == MHD_YES)
            return MHD_YES;
        return reply_error(r, 502, "cached copy vanished during revalidation");
    case DL_FAILED:
    default:
        break;
    }
    struct hashdb_entry e;
    if (should_retry(r, d)) {
        r->retried = true;
        log_info("%s: joined a download that failed (%s); trying afresh", rt->key, dl_reason(d));
        return decide(r);
    }
    bool hashed = lookup_expect(r->s, rt->key, rt->path, &e) && e.have_sha256;
    if (dl_hash_mismatch(d) && rt->cls == URL_VOLATILE && !r->fallback_tried && hashed) {
        int fr = start_by_hash_fallback(r, &e);
        if (fr == 0)
            return continue_dl(r);
        d = r->dl; /* start_dl may have replaced it before failing */
    }
    if (r->fallback_tried)
        return reply_error(r, 502, "the mirror's copy disagrees with InRelease and its by-hash copy failed");
    if (dl_status(d) == 404) {
        neg_add(r->s, rt->key);
        return reply_error(r, 404, dl_reason(d));
    }
    /* The mirror failed: a volatile file may come from the cache, but an index whose hash
     * the last InRelease gives only if the cached copy has that hash. */
    uint8_t got[32];
    bool cached_ok = !hashed || (cache_sha256(r->s->cache, rt->key, got) &&
                                 memcmp(got, e.sha256, 32) == 0);
    if (rt->cls == URL_VOLATILE && !dl_hash_mismatch(d) && cached_ok &&
        serve_cached(r, rt->key, "cache (mirror unreachable)") == MHD_YES) {
        log_warn("%s: %s; served the cached copy", rt->key, dl_reason(d));
        return MHD_YES;
    }
    return reply_error(r, dl_status(d) ? (unsigned)dl_status(d) : 502, dl_reason(d));
}

static void index_wait_expired(struct loop *l, struct loop_timer *t, void *ud)
{
    struct req *r = ud;
    r->index_waited = true;
    req_resume(r);
}

/* A file whose hash is not known yet while an index is being parsed (apt asks for
 * packages right after "apt update"): wait for the parse, at most 10 s, so the download
 * can be verified against the index. */
static enum MHD_Result wait_for_index(struct req *r)
{
    r->index_wait = true;
    loop_timer_start(r->s->loop, &r->index_timer, 10000);
    req_suspend(r);
    return MHD_YES;
}

static void on_index_event(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct server *s = ud;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* nothing to read: a spurious wake-up */
    }
    for (struct req *r = s->reqs; r; r = r->next)
        if (r->index_wait)
            req_resume(r);
}

static enum MHD_Result decide(struct req *r)
{
    struct server *s = r->s;
    struct route *rt = r->route;
    struct hashdb_entry e;
    struct stat st;
    bool have_expect = lookup_expect(s, rt->key, rt->path, &e);
    int err;
    if (neg_cached(s, rt->key))
        return reply_error(r, 404, "not found on the mirror (remembered)");
    if (rt->cls == URL_IMMUTABLE) {
        if (serve_cached(r, rt->key, "cache") == MHD_YES) {
            s->stats.hits++;
            return MHD_YES;
        }
        if (!have_expect && !r->index_waited && s->ix && indexer_pending(s->ix) > 0)
            return wait_for_index(r);
        s->stats.misses++;
        err = start_dl(r, rt->key, (const char(*)[URL_MAX_TARGET + URL_MAX_PATH * 3])rt->urls,
                       rt->n_urls, have_expect ? &e : NULL, 0, false);
    } else if (have_expect && !is_release_name(rt->key)) {
        uint8_t got[32];
        if (e.have_sha256 && cache_sha256(s->cache, rt->key, got) &&
            memcmp(got, e.sha256, 32) == 0 && serve_cached(r, rt->key, "cache") == MHD_YES) {
            s->stats.hits++;
            return MHD_YES;
        }
        s->stats.misses++;
        err = start_dl(r, rt->key, (const char(*)[URL_MAX_TARGET + URL_MAX_PATH * 3])rt->urls,
                       rt->n_urls, &e, 0, true);
    } else {
        time_t ims = 0;
        int fd = cache_open(s->cache, rt->key, &st);
        if (fd >= 0) {
            ims = st.st_mtime;
            close(fd);
        }
        err = start_dl(r, rt->key, (const char(*)[URL_MAX_TARGET + URL_MAX_PATH * 3])rt->urls,
                       rt->n_urls, NULL, ims, false);
    }
    if (err < 0)
        return reply_error(r, 500, "cannot start the download");
    return continue_dl(r);
}

/* ---- MHD callbacks ---- */

static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s); /* url_parse decodes, once, with its own limits */
}

static void client_string(struct MHD_Connection *c, char *out, size_t n, const struct sockaddr **sa)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *sa = ci ? ci->client_addr : NULL;
    snprintf(out, n, "?");
    if (!*sa)
        return;
    if ((*sa)->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)*sa)->sin_addr, out, (socklen_t)n);
    else if ((*sa)->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)*sa)->sin6_addr, out, (socklen_t)n);
}

static struct req *req_new(struct server *s, struct MHD_Connection *c, const char *url,
                           const char *method)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->s = s;
    r->conn = c;
    r->refs = 1;
    r->start_ms = loop_now_ms();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->target, sizeof r->target, "%s", url);
    snprintf(r->source, sizeof r->source, "-");
    r->head = strcmp(method, "HEAD") == 0;
    r->up_fd = -1;
    loop_timer_init(&r->index_timer, index_wait_expired, r);
    loop_timer_init(&r->rate_timer, rate_wake, r);
    r->next = s->reqs;
    if (s->reqs)
        s->reqs->prev = r;
    s->reqs = r;
    return r;
}

/* GET|HEAD /~/sha256/HEX from a peer: only complete, verified cache entries. */
static enum MHD_Result serve_peer(struct req *r, const uint8_t sha256[32])
{
    struct server *s = r->s;
    struct stat st;
    char key[URL_MAX_KEY];
    if (!s->p2p)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "peer sharing is off on this host");
    if (s->uploads >= s->cfg->peer_max_uploads)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many uploads; try another peer");
    int fd = cache_open_sha256(s->cache, sha256, &st, key, sizeof key);
    if (fd < 0)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "not shared by this peer");
    r->upload = true;
    s->uploads++;
    snprintf(r->source, sizeof r->source, "upload");
    return serve_fd(r, fd, &st, key);
}

static enum MHD_Result first_call(struct req *r, const char *url)
{
    struct server *s = r->s;
    struct url_target t;
    const struct sockaddr *sa;
    const char *why = NULL;
    client_string(r->conn, r->client, sizeof r->client, &sa);
    s->stats.requests++;
    if (strcmp(r->method, "CONNECT") == 0)
        return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "CONNECT is not supported; apt-dht serves plain http archive URLs");
    if (strcmp(r->method, "GET") != 0 && !r->head)
        return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served");
    if (strcmp(url, "/") == 0)
        return reply_error(r, MHD_HTTP_FORBIDDEN, "apt-dht-proxy serves Debian archive paths only; point apt at it as a proxy");
    int pr = url_parse(url, &t);
    if (pr == -ENAMETOOLONG)
        return reply_error(r, MHD_HTTP_URI_TOO_LONG, "request target too long");
    if (pr < 0)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed or unsafe request path");
    if (MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "query strings are not served");
    if (t.form == URL_PEER) {
        if (!sa || !cidr_match_any(s->cfg->peer_clients, s->cfg->n_peer_clients, sa))
            return reply_error(r, MHD_HTTP_FORBIDDEN, "client not allowed to use the peer service");
        return serve_peer(r, t.sha256);
    }
    if (!sa || !cidr_match_any(s->cfg->allowed_clients, s->cfg->n_allowed_clients, sa))
        return reply_error(r, MHD_HTTP_FORBIDDEN, "client not in allowed_clients");
    r->route = calloc(1, sizeof *r->route);
    if (!r->route)
        return reply_error(r, 500, "out of memory");
    unsigned st = resolve(s, &t, r->route, &why);
    if (st)
        return reply_error(r, st, why);
    return decide(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (s->stopping) {
        if (!r) {
            r = req_new(s, c, url, method);
            if (!r)
                return MHD_NO;
            *con_cls = r;
        }
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "apt-dht-proxy is stopping");
    }
    if (!r) {
        r = req_new(s, c, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        return first_call(r, url);
    }
    if (*upload_size) {
        *upload_size = 0; /* a body on GET/HEAD is ignored */
        return MHD_YES;
    }
    if (r->index_wait) {
        if (!r->index_waited && indexer_pending(s->ix) > 0) {
            req_suspend(r);
            return MHD_YES;
        }
        r->index_wait = false;
        r->index_waited = true;
        loop_timer_stop(s->loop, &r->index_timer);
        return decide(r);
    }
    if (r->dl)
        return continue_dl(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    unsigned status = r->status;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == MHD_HTTP_OK)
        status = 499; /* cut short (client gone or upstream failed) */
    log_request(r->client, r->method, r->target, status, r->bytes, r->source,
                loop_now_ms() - r->start_ms);
    if (r->dl && r->watch) {
        dl_unwatch(r->dl, r->watch);
        r->watch = NULL;
    }
    loop_timer_stop(s->loop, &r->index_timer);
    loop_timer_stop(s->loop, &r->rate_timer);
    if (r->upload && s->uploads)
        s->uploads--;
    req_unref(r);
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t len)
{
    struct server *s = cls;
    return cidr_match_any(s->cfg->allowed_clients, s->cfg->n_allowed_clients, sa) ||
                   cidr_match_any(s->cfg->peer_clients, s->cfg->n_peer_clients, sa)
               ? MHD_YES
               : MHD_NO;
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("http: %s", msg);
}

static void on_mhd_ready(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct server *s = ud;
    MHD_run(s->mhd);
}

/* Before each wait: let MHD work off anything pending (resumed connections), and tell
 * the loop how long MHD may sleep. */
static int64_t mhd_prepare(struct loop *l, void *ud)
{
    struct server *s = ud;
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (!s->mhd)
        return -1;
    for (int i = 0; i < 4 && s->kick; i++) {
        s->kick = false;
        MHD_run(s->mhd);
    }
    for (int i = 0; i < 4; i++) {
        if (MHD_get_timeout(s->mhd, &t) != MHD_YES)
            return -1;
        if (t > 0)
            return (int64_t)t;
        MHD_run(s->mhd);
    }
    return 0;
}

/* ---- lifecycle ---- */

/* A file left the cache: forget its hash and stop announcing it. */
static void on_drop(void *ud, const char *key, const uint8_t *sha256)
{
    struct server *s = ud;
    if (s->db)
        hashdb_cached_del(s->db, key);
    if (s->p2p && sha256)
        p2p_unannounce(s->p2p, sha256);
}

static void on_peer_result(void *ud, const struct sockaddr *peer, enum peer_result r,
                           uint64_t bytes, uint64_t ms)
{
    struct server *s = ud;
    if (s->p2p)
        p2p_peer_result(s->p2p, peer, r, bytes, ms);
}

static void on_bytes(void *ud, bool from_peer, size_t n)
{
    struct server *s = ud;
    if (from_peer)
        s->stats.bytes_from_peers += n;
    else
        s->stats.bytes_from_mirror += n;
}

static void on_commit(void *ud, const char *key, const char *path, const uint8_t sha256[32])
{
    struct server *s = ud;
    struct stat st;
    if (s->db && stat(path, &st) == 0)
        hashdb_cached_put(s->db, key, (uint64_t)st.st_size, sha256);
    if (s->p2p && url_classify(key) == URL_IMMUTABLE)
        p2p_announce(s->p2p, sha256);
    enum index_kind k = index_kind_of(key);
    uint8_t h[32];
    if (k == INDEX_NONE && url_by_hash_sha256(key, h)) {
        /* by-hash copies of indices: their directory tells what they are */
        if (strstr(key, "/source/by-hash/"))
            k = INDEX_SOURCES;
        else if (strstr(key, "/binary-"))
            k = INDEX_PACKAGES;
    }
    if (k == INDEX_NONE)
        return;
    if (k == INDEX_RELEASE && s->db) {
        /* small, and what apt asks next depends on it: parsed before the next request */
        struct index_stats is = {0};
        int r = index_parse_file(s->db, key, k, path, &is);
        if (r < 0)
            log_warn("index %s: %s", key, strerror(-r));
        else
            log_debug("index %s: %zu records", key, is.records);
    } else if (s->ix) {
        int r = indexer_submit(s->ix, key, k, path);
        if (r < 0)
            log_warn("index %s: not queued: %s", key, strerror(-r));
    }
}

static int build_backends(struct server *s, const struct config *cfg)
{
    struct backend *bs = calloc(cfg->n_backends ? cfg->n_backends : 1, sizeof *bs);
    if (!bs)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct config_backend *cb = &cfg->backends[i];
        snprintf(bs[i].name, sizeof bs[i].name, "%s", cb->name);
        for (size_t j = 0; j < cb->n_mirrors && bs[i].n < MAX_BACKEND_MIRRORS; j++) {
            struct mirror *m = &bs[i].mirrors[bs[i].n];
            struct url_target t;
            char probe[URL_MAX_TARGET + 4];
            /* parse "BASE/x" so that a mirror at the root parses too */
            snprintf(probe, sizeof probe, "%s/x", cb->mirrors[j]);
            if (url_parse(probe, &t) != 0 || t.form != URL_ABSOLUTE) {
                log_warn("backend %s: ignoring mirror %s (not a usable URL)", cb->name,
                         cb->mirrors[j]);
                continue;
            }
            snprintf(m->base, sizeof m->base, "%s", cb->mirrors[j]);
            snprintf(m->host, sizeof m->host, "%s", t.host);
            size_t pl = strlen(t.path) - 2; /* drop "/x" */
            memcpy(m->prefix, t.path, pl);
            m->prefix[pl] = '\0';
            bs[i].n++;
        }
    }
    free(s->backends);
    s->backends = bs;
    s->n_backends = cfg->n_backends;
    return 0;
}

void server_set_config(struct server *s, const struct config *cfg)
{
    s->cfg = cfg;
    build_backends(s, cfg);
    cache_set_max_size(s->cache, cfg->cache_max_size);
}

int server_new(struct server **out, const struct config *cfg, struct loop *l, struct cache *c,
               struct hashdb *db, struct indexer *ix, struct p2p *p2p)
{
    struct server *s = calloc(1, sizeof *s);
    char ua[64];
    int r = -ENOMEM;
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->loop = l;
    s->cache = c;
    s->db = db;
    s->ix = ix;
    s->p2p = p2p;
    s->mhd_epfd = -1;
    s->tokens_ms = loop_now_ms();
    snprintf(ua, sizeof ua, "apt-dht/%s", aptdht_version());
    struct fetch_opts fo = {
        .connect_timeout_s = cfg->connect_timeout_s,
        .stall_timeout_s = cfg->stall_timeout_s,
        .user_agent = ua,
        .on_commit = on_commit,
        .on_peer_result = on_peer_result,
        .on_bytes = on_bytes,
        .ud = s,
    };
    if (strmap_new(&s->neg) < 0 || build_backends(s, cfg) < 0)
        goto fail;
    if ((r = fetcher_new(&s->fetcher, l, c, &fo)) < 0)
        goto fail;
    cache_on_drop(c, on_drop, s);
    *out = s;
    return 0;
fail:
    server_free(s);
    return r;
}

static int listen_addr(const struct server *s, struct sockaddr_storage *ss, unsigned *flags)
{
    const char *a = s->cfg->listen_address;
    if (!a)
        a = s->cfg->dht_mode == DHT_MODE_OFF ? "127.0.0.1" : "0.0.0.0";
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, a, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(s->cfg->listen_port);
        return 0;
    }
    if (inet_pton(AF_INET6, a, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(s->cfg->listen_port);
        *flags |= MHD_USE_IPv6;
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
            *flags |= MHD_USE_DUAL_STACK;
        return 0;
    }
    return -EINVAL;
}

int server_start(struct server *s)
{
    struct sockaddr_storage ss;
    /* A client that hangs up must not kill the daemon; with SIGPIPE ignored, MHD may use
     * sendfile(2) for cached files (it falls back to small copies otherwise). */
    signal(SIGPIPE, SIG_IGN);
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    int r = listen_addr(s, &ss, &flags);
    if (r < 0) {
        log_error("listen.address '%s' is not an IP address", s->cfg->listen_address);
        return r;
    }
    s->mhd = MHD_start_daemon(
        flags, s->cfg->listen_port, accept_policy, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)64 * 1024, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_LIMIT,
        1000u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!s->mhd)
        return -EADDRINUSE;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = pi ? pi->port : s->cfg->listen_port;
    s->mhd_epfd = di ? di->epoll_fd : -1;
    if (s->mhd_epfd < 0 || (r = loop_add_fd(s->loop, s->mhd_epfd, EPOLLIN, on_mhd_ready, s)) < 0 ||
        (r = loop_add_prepare(s->loop, mhd_prepare, s)) < 0)
        return r < 0 ? r : -EIO;
    if (s->ix && (r = loop_add_fd(s->loop, indexer_event_fd(s->ix), EPOLLIN, on_index_event, s)) < 0)
        return r;
    return 0;
}

void server_set_p2p(struct server *s, struct p2p *p2p)
{
    s->p2p = p2p;
}

uint16_t server_port(const struct server *s)
{
    return s->port;
}

const struct server_stats *server_stats(const struct server *s)
{
    return &s->stats;
}

static void free_neg(void *v)
{
    free(v);
}

void server_free(struct server *s)
{
    if (!s)
        return;
    /* MHD must see every connection resumed before it stops; while stopping, nothing
     * suspends again, nothing new starts, and every request ends with an answer. */
    s->stopping = true;
    for (struct req *r = s->reqs; r; r = r->next)
        req_resume(r);
    cache_on_drop(s->cache, NULL, NULL);
    fetcher_free(s->fetcher); /* readers see DL_FAILED */
    s->fetcher = NULL;
    if (s->mhd) {
        for (int i = 0; i < 8; i++) {
            bool any = false;
            for (struct req *r = s->reqs; r; r = r->next) {
                any |= r->suspended;
                req_resume(r);
            }
            MHD_run(s->mhd);
            if (!any)
                break;
        }
        if (s->mhd_epfd >= 0)
            loop_del_fd(s->loop, s->mhd_epfd);
        if (s->ix)
            loop_del_fd(s->loop, indexer_event_fd(s->ix));
        MHD_stop_daemon(s->mhd);
    }
    strmap_free(s->neg, free_neg);
    free(s->backends);
    free(s);
}

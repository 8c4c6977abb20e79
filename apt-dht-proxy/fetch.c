/* fetch.c - shared downloads over libcurl's multi-socket API.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it (timer
 * callback); the loop reports readiness back with curl_multi_socket_action. Each struct
 * dl owns one easy handle at a time: on a connect error or a 5xx before any body byte it
 * moves to the next URL of its list (mirror failover). Body bytes go to a temp file and
 * through SHA-256 (and SHA-1 for archives that list only SHA-1) as they arrive.
 *
 * Lifetime: the fetcher holds one reference while the transfer runs and each reader holds
 * one; the temp fd stays open until the last reference goes, so readers finish reading
 * even after the file has been renamed into the cache or (on failure) unlinked. */
#include "aptdht-config.h"
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"

struct dl_watch {
    void (*cb)(void *ud);
    void *ud;
    struct dl_watch *next;
};

#define DL_MAX_PEERS 16
#define MEMORY_MAX ((uint64_t)1 << 30) /* largest download passed through memory */

struct dl_peer {
    struct sockaddr_storage sa;
    socklen_t salen;
    char url[160];
    char label[80]; /* "ADDR:PORT" for logs */
};

struct dl {
    int refs;
    struct fetcher *f;
    char *key;
    char *urls[FETCH_MAX_URLS];
    size_t n_urls, url_idx;
    bool immutable, cacheable, verify_first;
    bool have_expect;
    struct hashdb_entry expect;
    time_t ims;
    char inm[160];

    enum dl_state state;
    int status;          /* final upstream status for the client's decision */
    char reason[160];
    bool mismatch;

    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    int resp_status;     /* status of the response being received */
    char tmp_path[PATH_MAX];
    int fd;              /* -1 = none */
    uint64_t received;   /* body bytes on disk */
    int64_t total;       /* -1 = unknown */
    EVP_MD_CTX *sha256, *sha1;
    bool have_digest;
    uint8_t digest[32]; /* SHA-256 of the complete body */
    time_t last_modified;
    char source[300];
    struct dl_watch *watchers;
    uint64_t started_ms;

    /* peer sources, tried before urls[] while peer_phase */
    struct dl_peer peers[DL_MAX_PEERS];
    size_t n_peers, peer_idx;
    bool await_peers, peer_phase, peers_done, budget_over, lookup_claimed;
    bool on_peer;            /* the running transfer is from peers[peer_idx - 1] */
    uint64_t transfer_ms;    /* when the running transfer started */
    struct loop_timer budget_timer;
    bool ended;              /* finish() ran */
    bool in_memory;          /* the disk was full: fd is a memfd, nothing is cached */
    char *join_key;          /* its key in fetcher.inflight (the cache key, or a variant) */
};

struct fetcher {
    struct loop *loop;
    struct cache *cache;
    struct fetch_opts opts;
    CURLM *multi;
    struct loop_timer timer;
    struct strmap *inflight; /* join key -> struct dl (transfer running) */
    char user_agent[64];
    unsigned seq; /* for join keys of downloads that run alone */
};

static void start_transfer(struct dl *d);
static void finish(struct dl *d, enum dl_state st);
static void next_source(struct dl *d);
static int to_memory(struct dl *d);

/* ---- curl <-> loop glue ---- */

static void check_done(struct fetcher *f);
static bool multi_ready(struct fetcher *f);

static void on_sock(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct fetcher *f = ud;
    int flags = 0, running;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(f->multi, fd, flags, &running);
    check_done(f);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct fetcher *f = userp;
    uint32_t ev = 0;
    if (what == CURL_POLL_REMOVE) {
        loop_del_fd(f->loop, s);
        curl_multi_assign(f->multi, s, NULL);
        return 0;
    }
    if (what & CURL_POLL_IN)
        ev |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev |= EPOLLOUT;
    if (socketp) {
        loop_mod_fd(f->loop, s, ev);
    } else if (loop_add_fd(f->loop, s, ev, on_sock, f) == 0) {
        curl_multi_assign(f->multi, s, f);
    }
    return 0;
}

static void on_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    struct fetcher *f = ud;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    struct fetcher *f = userp;
    loop_timer_stop(f->loop, &f->timer);
    if (timeout_ms >= 0 && loop_timer_start(f->loop, &f->timer, (uint64_t)timeout_ms) < 0)
        return -1;
    return 0;
}

/* ---- the download object ---- */

static void notify(struct dl *d)
{
    for (struct dl_watch *w = d->watchers, *next; w; w = next) {
        next = w->next;
        w->cb(w->ud);
    }
}

static void close_easy(struct dl *d)
{
    if (!d->easy)
        return;
    curl_multi_remove_handle(d->f->multi, d->easy);
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
    curl_slist_free_all(d->hdrs);
    d->hdrs = NULL;
}

static void dl_destroy(struct dl *d)
{
    close_easy(d);
    if (d->fd >= 0)
        close(d->fd);
    if (d->tmp_path[0])
        unlink(d->tmp_path);
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->sha1);
    for (size_t i = 0; i < d->n_urls; i++)
        free(d->urls[i]);
    while (d->watchers) {
        struct dl_watch *w = d->watchers;
        d->watchers = w->next;
        free(w);
    }
    free(d->join_key);
    free(d->key);
    free(d);
}

void dl_ref(struct dl *d)
{
    d->refs++;
}

void dl_unref(struct dl *d)
{
    if (d && --d->refs == 0)
        dl_destroy(d);
}

enum dl_state dl_state(const struct dl *d)
{
    return d->state;
}

int64_t dl_total(const struct dl *d)
{
    return d->total;
}

int dl_status(const struct dl *d)
{
    return d->status;
}

const char *dl_reason(const struct dl *d)
{
    return d->reason;
}

time_t dl_last_modified(const struct dl *d)
{
    return d->last_modified;
}

const char *dl_source(const struct dl *d)
{
    return d->source;
}

bool dl_hash_mismatch(const struct dl *d)
{
    return d->mismatch;
}

const char *dl_key(const struct dl *d)
{
    return d->key;
}

uint64_t dl_started_ms(const struct dl *d)
{
    return d->started_ms;
}

uint64_t dl_available(const struct dl *d)
{
    if (d->state == DL_DONE)
        return d->received;
    /* peer_phase: bytes on disk are a peer's, or a failed peer's, until the download
     * is DONE (verified) or moves to a mirror (which starts the file afresh) */
    if (d->verify_first || d->on_peer || d->peer_phase || d->state == DL_CONNECTING ||
        d->state == DL_NOT_MODIFIED)
        return 0;
    /* STREAMING, or FAILED after some bytes: the tail of a file whose hash is known
     * waits for the check, and stays back for good when it fails. */
    if (d->have_expect && d->total > 0 && d->received >= (uint64_t)d->total)
        return (uint64_t)d->total - 1;
    return d->received;
}

ssize_t dl_read(struct dl *d, uint64_t pos, void *buf, size_t n)
{
    if (d->fd < 0)
        return -EIO;
    ssize_t r = pread(d->fd, buf, n, (off_t)pos);
    return r < 0 ? -errno : r;
}

struct dl_watch *dl_watch(struct dl *d, void (*cb)(void *ud), void *ud)
{
    struct dl_watch *w = malloc(sizeof *w);
    if (!w)
        return NULL;
    *w = (struct dl_watch){cb, ud, d->watchers};
    d->watchers = w;
    return w;
}

void dl_unwatch(struct dl *d, struct dl_watch *w)
{
    for (struct dl_watch **pp = &d->watchers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            free(w);
            return;
        }
    }
}

/* ---- curl callbacks ---- */

static void set_reason(struct dl *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_reason(struct dl *d, int status, const char *fmt, ...)
{
    va_list ap;
    d->status = status;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

/* Copies a header value without its line end; refuses control bytes. */
static bool header_value(const char *line, size_t n, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t len = (size_t)(end - v);
    if (len + 1 > outsz)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

static size_t headers_complete(struct dl *d)
{
    if (d->resp_status >= 300 && d->resp_status < 400 && d->resp_status != 304)
        return 1; /* a redirect; curl follows it */
    if (d->resp_status != 200)
        return 1; /* 304, 404, 5xx...: decided when the transfer ends */
    curl_off_t cl = -1;
    curl_easy_getinfo(d->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    d->total = cl >= 0 ? (int64_t)cl : -1;
    if (d->have_expect && d->expect.size != UINT64_MAX) {
        if (d->total >= 0 && (uint64_t)d->total != d->expect.size) {
            d->mismatch = true;
            set_reason(d, 502, "mirror's size differs from the index");
            return 0; /* abort: CURLE_WRITE_ERROR */
        }
        d->total = (int64_t)d->expect.size;
    }
    if (d->cacheable && d->total > 0 && cache_make_room(d->f->cache, (uint64_t)d->total) < 0)
        d->cacheable = false; /* larger than the whole cache: stream only */
    d->state = DL_STREAMING;
    notify(d);
    return 1;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct dl *d = ud;
    size_t n = size * nitems;
    char val[160];
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', n);
        d->resp_status = sp && (size_t)(sp - buf) + 4 <= n ? (int)strtol(sp + 1, NULL, 10) : 0;
        d->last_modified = 0;
        return n;
    }
    if (n <= 2 && (buf[0] == '\r' || buf[0] == '\n'))
        return headers_complete(d) ? n : 0;
    if (header_value(buf, n, "Last-Modified", val, sizeof val))
        d->last_modified = curl_getdate(val, NULL) > 0 ? curl_getdate(val, NULL) : 0;
    return n;
}

static size_t write_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct dl *d = ud;
    size_t n = size * nmemb;
    if (d->resp_status != 200 || d->state != DL_STREAMING)
        return n; /* an error page: not kept */
    if (d->total >= 0 && d->received + n > (uint64_t)d->total) {
        set_reason(d, 502, "mirror sent more bytes than announced");
        return 0;
    }
    if (d->in_memory && d->received + n > MEMORY_MAX) {
        set_reason(d, 502, "cache disk full and the file too large to pass through memory");
        return 0;
    }
    bool evicted = false;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(d->fd, buf + off, n - off);
        if (w < 0 && (errno == ENOSPC || errno == EDQUOT) && !d->in_memory) {
            if (!evicted && cache_make_room(d->f->cache, n + (64u << 20)) == 0) {
                evicted = true; /* evicted old entries; try again */
                continue;
            }
            if (to_memory(d) == 0)
                continue;
        }
        if (w < 0) {
            set_reason(d, 502, "cannot write the download: %s", strerror(errno));
            log_error("fetch %s: %s", d->key, d->reason);
            return 0;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(d->sha256, buf, n);
    if (d->sha1)
        EVP_DigestUpdate(d->sha1, buf, n);
    d->received += n;
    if (d->f->opts.on_bytes)
        d->f->opts.on_bytes(d->f->opts.ud, d->on_peer, n);
    if (!d->on_peer)
        notify(d); /* a peer's bytes are delivered only once verified */
    return n;
}

/* ---- starting and finishing ---- */

/* The disk is full: the download goes on in an anonymous in-memory file, is served to its
 * readers from there, and is not cached. What was written so far is copied over. */
static int to_memory(struct dl *d)
{
    char buf[65536];
    off_t end = lseek(d->fd, 0, SEEK_CUR);
    if (end < 0 || (d->total > 0 && (uint64_t)d->total > MEMORY_MAX))
        return -ENOSPC;
    int mfd = memfd_create("apt-dht-download", MFD_CLOEXEC);
    if (mfd < 0)
        return -errno;
    for (off_t pos = 0; pos < end;) {
        ssize_t r = pread(d->fd, buf, sizeof buf, pos);
        if (r <= 0 || write(mfd, buf, (size_t)r) != r) {
            close(mfd);
            return -EIO;
        }
        pos += r;
    }
    close(d->fd);
    if (d->tmp_path[0])
        unlink(d->tmp_path);
    d->tmp_path[0] = '\0';
    d->fd = mfd;
    d->in_memory = true;
    d->cacheable = false;
    log_warn("cache disk full: %s is served without being cached", d->key);
    return 0;
}

static int reset_body(struct dl *d)
{
    d->state = DL_CONNECTING;
    d->mismatch = false;
    d->reason[0] = '\0';
    d->errbuf[0] = '\0';
    d->received = 0;
    d->total = -1;
    d->resp_status = 0;
    d->last_modified = 0;
    /* Only a file that holds bytes of an earlier attempt is truncated: ext4 writes a file
     * out at close() once it has been truncated to zero (auto_da_alloc), which would stall
     * the loop in close() and push every download to the disk at once. */
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return -errno;
    if (st.st_size > 0 && ftruncate(d->fd, 0) < 0)
        return -errno;
    if (lseek(d->fd, 0, SEEK_SET) < 0)
        return -errno;
    if (!EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL))
        return -EIO;
    if (d->sha1 && !EVP_DigestInit_ex(d->sha1, EVP_sha1(), NULL))
        return -EIO;
    return 0;
}

static void start_transfer(struct dl *d)
{
    struct fetcher *f = d->f;
    const char *url = d->on_peer ? d->peers[d->peer_idx - 1].url : d->urls[d->url_idx - 1];
    CURL *e;
    if (!multi_ready(f) || reset_body(d) < 0 || !(e = curl_easy_init())) {
        set_reason(d, 502, "cannot start a transfer");
        finish(d, DL_FAILED);
        return;
    }
    d->easy = e;
    d->transfer_ms = loop_now_ms();
    if (d->on_peer)
        snprintf(d->source, sizeof d->source, "peer %s", d->peers[d->peer_idx - 1].label);
    else
        snprintf(d->source, sizeof d->source, "mirror %s", url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, d);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through an environment proxy (ourselves) */
    curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
    if (d->on_peer) {
        /* A peer is on the LAN: it answers at once and sends fast, or it is skipped. */
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 64L * 1024);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 3L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        /* and a whole-transfer deadline: 10 s plus a second per MiB (the size is known:
         * peers are only asked for files whose index gives the size) */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(10000 + (d->expect.size >> 10)));
    } else {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)f->opts.connect_timeout_s);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)f->opts.stall_timeout_s);
    }
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Conditional headers are written here rather than with CURLOPT_TIMECONDITION: a
     * mirror that ignores If-Modified-Since answers 200 with the same date, and libcurl
     * would then drop the body and pretend a 304 under our own 200 status. */
    if (d->ims > 0) {
        char h[80];
        struct tm tm;
        gmtime_r(&d->ims, &tm);
        strftime(h, sizeof h, "If-Modified-Since: %a, %d %b %Y %H:%M:%S GMT", &tm);
        d->hdrs = curl_slist_append(d->hdrs, h);
    }
    if (d->inm[0]) {
        char h[200];
        snprintf(h, sizeof h, "If-None-Match: %s", d->inm);
        d->hdrs = curl_slist_append(d->hdrs, h);
    }
    if (d->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->hdrs);
    log_debug("fetch %s from %s", d->key, url);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        set_reason(d, 502, "cannot start a transfer");
        finish(d, DL_FAILED);
    }
}

static bool digest_matches(EVP_MD_CTX *ctx, const uint8_t *want, unsigned len)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    return EVP_DigestFinal_ex(ctx, md, &n) && n == len && memcmp(md, want, len) == 0;
}

/* Finalises the SHA-256 of the body into d->digest. */
static void finish_sha256(struct dl *d)
{
    unsigned n = 0;
    d->have_digest = EVP_DigestFinal_ex(d->sha256, d->digest, &n) && n == 32;
}

/* The body is complete: check it against what the index promised, then commit. */
static void report_peer(struct dl *d, enum peer_result r)
{
    struct dl_peer *p = &d->peers[d->peer_idx - 1];
    if (r != PEER_OK)
        log_warn("fetch %s: peer %s %s; trying the next source", d->key, p->label,
                 r == PEER_BAD_DATA ? "sent bad data" : "failed");
    if (d->f->opts.on_peer_result)
        d->f->opts.on_peer_result(d->f->opts.ud, (const struct sockaddr *)&p->sa, r, d->received,
                                  loop_now_ms() - d->transfer_ms);
}

/* Starts the next source: the next peer while peers are wanted (or waits for the lookup
 * to give one, within the budget), else the next mirror; when none is left, fails. */
static void next_source(struct dl *d)
{
    d->on_peer = false;
    if (d->peer_phase && d->budget_over)
        d->peer_phase = false; /* the budget is spent: a failed peer is not replaced */
    if (d->peer_phase) {
        if (d->peer_idx < d->n_peers) {
            d->peer_idx++;
            d->on_peer = true;
            start_transfer(d);
            return;
        }
        if (!d->peers_done && !d->budget_over)
            return; /* the lookup may still find one */
        d->peer_phase = false;
        loop_timer_stop(d->f->loop, &d->budget_timer);
    }
    if (d->url_idx < d->n_urls) {
        d->url_idx++;
        start_transfer(d);
        return;
    }
    if (!d->reason[0])
        set_reason(d, 502, "no source could provide the file");
    finish(d, DL_FAILED);
}

static void on_budget(struct loop *l, struct loop_timer *t, void *ud)
{
    struct dl *d = ud;
    d->budget_over = true;
    if (!d->peer_phase || d->ended)
        return;
    if (d->easy && d->on_peer && d->received > 0)
        return; /* a peer is sending: let it finish */
    if (d->easy && d->on_peer)
        close_easy(d); /* not the peer's fault: our budget ran out; no report */
    d->peer_phase = false;
    next_source(d);
}

/* The body is complete: check it against what the index promised, then commit. */
static void complete_body(struct dl *d)
{
    bool ok = d->total < 0 || d->received == (uint64_t)d->total;
    finish_sha256(d);
    if (ok && d->have_expect) {
        ok = d->expect.have_sha256 ? d->have_digest && memcmp(d->digest, d->expect.sha256, 32) == 0
             : d->expect.have_sha1 ? digest_matches(d->sha1, d->expect.sha1, 20)
                                   : true;
    }
    if (!ok && d->on_peer) {
        report_peer(d, PEER_BAD_DATA);
        next_source(d);
        return;
    }
    if (!ok) {
        d->mismatch = true;
        set_reason(d, 502, "mirror's file does not match the index (size or hash)");
        log_warn("fetch %s: hash mismatch from %s", d->key, d->source);
        finish(d, DL_FAILED);
        return;
    }
    if (d->on_peer)
        report_peer(d, PEER_OK);
    d->status = 200;
    if (d->cacheable) {
        int r = cache_commit(d->f->cache, d->tmp_path, d->key, d->last_modified, d->immutable,
                             d->have_digest ? d->digest : NULL);
        if (r == 0) {
            d->tmp_path[0] = '\0'; /* it is the cache entry now */
            if (d->f->opts.on_commit && d->have_digest && cache_has(d->f->cache, d->key)) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", cache_dir(d->f->cache), d->key);
                d->f->opts.on_commit(d->f->opts.ud, d->key, path, d->digest);
            }
        } else {
            log_warn("cache: cannot store %s: %s", d->key, strerror(-r));
        }
    }
    finish(d, DL_DONE);
}

static void transfer_ended(struct dl *d, CURLcode res)
{
    bool body_started = d->state == DL_STREAMING;
    int st = d->resp_status;
    close_easy(d);
    if (res == CURLE_OK && st == 200 && body_started) {
        complete_body(d);
        return;
    }
    if (d->on_peer) {
        report_peer(d, d->mismatch ? PEER_BAD_DATA : PEER_FAILED);
        next_source(d);
        return;
    }
    if (res == CURLE_OK && st == 304) {
        d->status = 304;
        finish(d, DL_NOT_MODIFIED);
        return;
    }
    if (d->mismatch || body_started) {
        if (!d->reason[0])
            set_reason(d, 502, "mirror transfer failed: %s",
                       d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
        log_warn("fetch %s: %s", d->key, d->reason);
        finish(d, DL_FAILED);
        return;
    }
    /* Nothing delivered yet: a connect error or a 5xx moves on to the next mirror. */
    bool retry = res != CURLE_OK || st >= 500;
    if (res != CURLE_OK)
        set_reason(d, res == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "mirror unreachable: %s",
                   d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
    else if (st == 404 || st == 410)
        set_reason(d, 404, "not found on the mirror");
    else if (st == 403)
        set_reason(d, 403, "mirror refused the request");
    else
        set_reason(d, 502, "mirror answered %d", st);
    if (retry && d->url_idx < d->n_urls) {
        log_warn("fetch %s: %s; trying the next mirror", d->key, d->reason);
        next_source(d);
        return;
    }
    finish(d, DL_FAILED);
}

int dl_add_peer(struct dl *d, const struct sockaddr *sa, socklen_t salen, const char *url)
{
    if (!d->peer_phase || d->budget_over || d->ended || d->n_peers == DL_MAX_PEERS ||
        salen > sizeof d->peers[0].sa)
        return -EAGAIN;
    struct dl_peer *p = &d->peers[d->n_peers];
    memset(p, 0, sizeof *p);
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    snprintf(p->url, sizeof p->url, "%s", url);
    const char *h = strstr(url, "://");
    const char *end = h ? strstr(h + 3, "/~/") : NULL;
    snprintf(p->label, sizeof p->label, "%.*s", end ? (int)(end - h - 3) : 0, h ? h + 3 : "");
    d->n_peers++;
    if (!d->easy)
        next_source(d);
    return 0;
}

void dl_peers_done(struct dl *d)
{
    d->peers_done = true;
    if (d->peer_phase && !d->ended && !d->easy)
        next_source(d);
}

bool dl_claim_lookup(struct dl *d)
{
    if (!d->await_peers || d->lookup_claimed || d->ended)
        return false;
    d->lookup_claimed = true;
    return true;
}

bool dl_from_peer(const struct dl *d)
{
    return strncmp(d->source, "peer ", 5) == 0;
}

static void check_done(struct fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct dl *d = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        if (d)
            transfer_ended(d, m->data.result);
    }
}

/* Ends the transfer for good: readers are told, the in-flight slot is freed and the
 * fetcher's reference dropped. */
static void finish(struct dl *d, enum dl_state st)
{
    close_easy(d);
    d->ended = true;
    d->on_peer = false;
    d->peer_phase = false;
    loop_timer_stop(d->f->loop, &d->budget_timer);
    d->state = st;
    if (st != DL_DONE && d->tmp_path[0] && d->fd >= 0 && d->received == 0) {
        unlink(d->tmp_path);
        d->tmp_path[0] = '\0';
    }
    if (st == DL_FAILED && d->tmp_path[0]) {
        unlink(d->tmp_path); /* readers keep their fd; nothing reaches the cache */
        d->tmp_path[0] = '\0';
    }
    if (d->join_key && strmap_get(d->f->inflight, d->join_key) == d)
        strmap_del(d->f->inflight, d->join_key);
    notify(d);
    dl_unref(d);
}

/* ---- public ---- */

static int dl_init(struct dl *d, const struct dl_request *req)
{
    if (!(d->key = strdup(req->key)))
        return -ENOMEM;
    for (size_t i = 0; i < req->n_urls; i++)
        if (!(d->urls[d->n_urls++] = strdup(req->urls[i])))
            return -ENOMEM;
    d->immutable = req->immutable;
    d->cacheable = req->cacheable;
    d->verify_first = req->verify_first;
    if (req->expect) {
        d->have_expect = true;
        d->expect = *req->expect;
    }
    d->ims = req->if_modified_since;
    /* peers only with a known size: a peer's claimed length is never believed */
    d->await_peers = req->await_peers && req->expect && req->expect->size != UINT64_MAX;
    d->peer_phase = d->await_peers;
    if (req->if_none_match)
        snprintf(d->inm, sizeof d->inm, "%s", req->if_none_match);
    d->sha256 = EVP_MD_CTX_new();
    if (!d->sha256 || (d->have_expect && !d->expect.have_sha256 && !(d->sha1 = EVP_MD_CTX_new())))
        return -ENOMEM;
    int fd = cache_tmp_create(d->f->cache, d->tmp_path, sizeof d->tmp_path);
    if (fd < 0 && (fd == -ENOSPC || fd == -EDQUOT)) {
        d->tmp_path[0] = '\0';
        fd = memfd_create("apt-dht-download", MFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        d->in_memory = true;
        d->cacheable = false;
        log_warn("cache disk full: %s is served without being cached", d->key);
    }
    if (fd < 0) {
        d->tmp_path[0] = '\0';
        return fd;
    }
    d->fd = fd;
    return 0;
}

/* A request may join a download under way only if that download checks at least what
 * the request needs: a request that knows the hash (or must verify first) never joins
 * one that was started without; such a download runs under a join key of its own. */
static bool compatible(const struct dl *d, const struct dl_request *req)
{
    const struct hashdb_entry *e = req->expect;
    if (e && (!d->have_expect || d->expect.size != e->size ||
              d->expect.have_sha256 != e->have_sha256 || d->expect.have_sha1 != e->have_sha1 ||
              (e->have_sha256 && memcmp(d->expect.sha256, e->sha256, 32) != 0) ||
              (e->have_sha1 && memcmp(d->expect.sha1, e->sha1, 20) != 0)))
        return false;
    return !(req->verify_first && !d->verify_first);
}

struct dl *fetcher_get(struct fetcher *f, const struct dl_request *req, int *err)
{
    char jkey[URL_MAX_KEY + 16];
    struct dl *d = strmap_get(f->inflight, req->key);
    snprintf(jkey, sizeof jkey, "%s", req->key);
    if (d && !compatible(d, req)) {
        snprintf(jkey, sizeof jkey, "%s\n#verified", req->key);
        d = strmap_get(f->inflight, jkey);
        if (d && !compatible(d, req)) {
            /* a still different expectation: run alone, under a key nobody else asks
             * for (but in the map, so fetcher_free still ends it) */
            snprintf(jkey, sizeof jkey, "%s\n#%u", req->key, ++f->seq);
            d = NULL;
        }
    }
    if (d) {
        dl_ref(d);
        return d;
    }
    if (req->n_urls == 0 || req->n_urls > FETCH_MAX_URLS) {
        *err = -EINVAL;
        return NULL;
    }
    d = calloc(1, sizeof *d);
    if (!d) {
        *err = -ENOMEM;
        return NULL;
    }
    d->f = f;
    d->fd = -1;
    d->total = -1;
    d->started_ms = loop_now_ms();
    d->refs = 1; /* the transfer's own */
    loop_timer_init(&d->budget_timer, on_budget, d);
    int r = dl_init(d, req);
    if (r == 0 && !(d->join_key = strdup(jkey)))
        r = -ENOMEM;
    if (r == 0)
        r = strmap_put(f->inflight, d->join_key, d, NULL);
    if (r < 0) {
        dl_destroy(d);
        *err = r;
        return NULL;
    }
    dl_ref(d); /* the caller's */
    if (d->await_peers && loop_timer_start(f->loop, &d->budget_timer, req->peer_budget_ms) < 0)
        d->budget_over = true; /* no timer: no waiting for peers either */
    next_source(d);
    return d;
}

void fetcher_reconfigure(struct fetcher *f, uint32_t connect_timeout_s, uint32_t stall_timeout_s)
{
    f->opts.connect_timeout_s = connect_timeout_s;
    f->opts.stall_timeout_s = stall_timeout_s;
}

struct dl *fetcher_find(struct fetcher *f, const char *key)
{
    return strmap_get(f->inflight, key);
}

size_t fetcher_active(const struct fetcher *f)
{
    return strmap_count(f->inflight);
}

int fetcher_new(struct fetcher **out, struct loop *l, struct cache *c,
                const struct fetch_opts *opts)
{
    struct fetcher *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->loop = l;
    f->cache = c;
    f->opts = *opts;
    loop_timer_init(&f->timer, on_timer, f);
    snprintf(f->user_agent, sizeof f->user_agent, "%s", opts->user_agent ? opts->user_agent : "apt-dht");
    f->opts.user_agent = NULL; /* the caller's string need not outlive this call */
    if (strmap_new(&f->inflight) < 0) {
        fetcher_free(f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

/* libcurl (and with it the TLS library) is set up for the first upstream transfer, not at
 * start: a proxy that only serves its cache never loads that code, and an idle one stays
 * small. Returns false when libcurl cannot be set up. */
static bool multi_ready(struct fetcher *f)
{
    if (f->multi)
        return true;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("libcurl initialisation failed");
        return false;
    }
    if (!(f->multi = curl_multi_init())) {
        curl_global_cleanup();
        return false;
    }
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 16L);
    return true;
}

static void abort_one(const char *key, void *value, void *ud)
{
    struct dl **list = ud;
    struct dl *d = value;
    *list = d;
}

void fetcher_free(struct fetcher *f)
{
    if (!f)
        return;
    while (f->inflight && strmap_count(f->inflight) > 0) {
        struct dl *d = NULL;
        strmap_each(f->inflight, abort_one, &d);
        set_reason(d, 503, "proxy shutting down");
        finish(d, DL_FAILED);
    }
    loop_timer_stop(f->loop, &f->timer);
    if (f->multi) { /* multi_ready() set up libcurl for it */
        curl_multi_cleanup(f->multi);
        curl_global_cleanup();
    }
    strmap_free(f->inflight, NULL);
    free(f);
}

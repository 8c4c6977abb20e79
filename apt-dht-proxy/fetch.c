/* fetch.c - the fetcher: shared downloads over libcurl's multi-socket API.
 *
 * A request names a cache key; fetcher_get hands back the download in flight for it (a
 * struct dl, see dl.c) or starts one, so one upstream transfer serves every client that
 * wants the same file. A request joins only a download that checks at least what it
 * needs; otherwise its download runs under a join key of its own.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it (timer
 * callback); the loop reports readiness back with curl_multi_socket_action, and every
 * finished transfer is collected from curl_multi_info_read. A download owns one easy
 * handle at a time. This file turns what the HTTP answer says into calls on the
 * download: its status and headers (dl_body_begins), its body bytes (dl_append), and
 * how it ended: a whole body is verified (dl_complete), a peer's failure is reported,
 * and a connect error or a 5xx before any body byte moves on to the next source. Which
 * source that is, is dl.c's business.
 *
 * Timeouts for mirrors come from the config and are read when each transfer starts, so
 * fetcher_reconfigure applies to the next transfer; peers, which are on the LAN, get
 * fixed, short ones. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include "apt-dht-proxy/fetch-int.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/url.h"

/* ---- curl <-> loop glue ---- */

static void transfer_ended(struct dl *d, CURLcode res);

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

/* ---- the HTTP answer ---- */

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
    return dl_body_begins(d, cl >= 0 ? (int64_t)cl : -1) ? 1 : 0; /* 0: CURLE_WRITE_ERROR */
}

/* A busy peer's 503 names the relays it feeds (X-Apt-Dht-Relays: ADDR:PORT,...); dl.c
 * tries them next (dl_peer_declined). */
static void relay_hints(struct dl *d, const char *buf, size_t n)
{
    char v[sizeof d->hints];
    if (header_value(buf, n, "X-Apt-Dht-Relays", v, sizeof v))
        memcpy(d->hints, v, sizeof v); /* other header lines leave it alone */
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
    if (d->src == SRC_PEER && d->resp_status == 503)
        relay_hints(d, buf, n);
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
    return dl_append(d, buf, n) ? n : 0;
}

/* Why a mirror's answer is no body: its status, or the transfer's error. */
static void mirror_reason(struct dl *d, CURLcode res, int st, const char *err)
{
    if (res != CURLE_OK && (d->os_errno == EMFILE || d->os_errno == ENFILE)) {
        dl_set_reason(d, 503, "proxy out of file descriptors; try again shortly");
        log_error("fetch %s: no socket for the mirror: %s (%s)", d->key, strerror(d->os_errno),
                  d->os_errno == EMFILE ? "EMFILE: the open-file limit"
                                        : "ENFILE: the system's open-file table");
    } else if (res != CURLE_OK)
        dl_set_reason(d, res == CURLE_OPERATION_TIMEDOUT ? 504 : 502, "mirror unreachable: %s",
                      err);
    else if (st == 404 || st == 410)
        dl_set_reason(d, 404, "not found on the mirror");
    else if (st == 403)
        dl_set_reason(d, 403, "mirror refused the request");
    else
        dl_set_reason(d, 502, "mirror answered %d", st);
}

/* A mirror's transfer ended without a whole body: a connect error or a 5xx before any
 * body byte moves on to the next source, and so does an answer dl.c refused before its
 * body (a Content-Length above the ceiling); anything else is the download's answer. */
static void mirror_failed(struct dl *d, CURLcode res, int st, bool body_started)
{
    if (res == CURLE_OK && st == 304) {
        d->status = 304;
        dl_finish(d, DL_NOT_MODIFIED);
        return;
    }
    const char *err = d->errbuf[0] ? d->errbuf : curl_easy_strerror(res);
    if (d->mismatch || body_started) {
        if (!d->reason[0])
            dl_set_reason(d, 502, "mirror transfer failed: %s", err);
        log_warn("fetch %s: %s", d->key, d->reason);
        dl_finish(d, DL_FAILED);
        return;
    }
    bool retry = res != CURLE_OK || st >= 500;
    /* a write error with a reason is dl.c's refusal: its reason stands */
    if (!(res == CURLE_WRITE_ERROR && d->reason[0]))
        mirror_reason(d, res, st, err);
    if (retry && d->url_idx < d->n_urls) {
        log_warn("fetch %s: %s; trying the next mirror", d->key, d->reason);
        dl_next_source(d);
        return;
    }
    dl_finish(d, DL_FAILED);
}

/* A peer that answers 503 (busy) declines, and so does an owner or relay that answers
 * 404 (it does not have the file and may not fetch it): neither is its failure. */
static bool peer_declined(const struct dl *d, CURLcode res, int st)
{
    if (res != CURLE_OK || d->mismatch)
        return false;
    return st == 503 || (st == 404 && d->peers[d->peer_idx - 1].quiet);
}

static void transfer_ended(struct dl *d, CURLcode res)
{
    bool body_started = d->state == DL_STREAMING;
    int st = d->resp_status;
    long oserr = 0;
    if (res != CURLE_OK && curl_easy_getinfo(d->easy, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK)
        oserr = 0;
    d->os_errno = (int)oserr;
    fetch_stop(d);
    if (res == CURLE_OK && st == 200 && body_started)
        dl_complete(d);
    else if (d->src == SRC_PEER && peer_declined(d, res, st))
        dl_peer_declined(d);
    else if (d->src == SRC_PEER)
        dl_peer_failed(d, d->mismatch ? PEER_BAD_DATA : PEER_FAILED);
    else
        mirror_failed(d, res, st, body_started);
}

/* ---- one transfer ---- */

static void set_common_opts(struct fetcher *f, struct dl *d, CURL *e, const char *url)
{
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
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
}

static void set_limits(struct fetcher *f, struct dl *d, CURL *e)
{
    if (d->src == SRC_PEER) {
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
}

/* Asks an owner to fetch the file for us: it checks our key against its own hash index
 * before it fetches anything (see uploads.c). */
static void pull_header(struct dl *d)
{
    char h[URL_MAX_KEY + 32];
    if (snprintf(h, sizeof h, "X-Apt-Dht-Fetch: %s", d->key) < (int)sizeof h)
        d->hdrs = curl_slist_append(d->hdrs, h);
}

/* Conditional headers are written here rather than with CURLOPT_TIMECONDITION: a mirror
 * that ignores If-Modified-Since answers 200 with the same date, and libcurl would then
 * drop the body and pretend a 304 under our own 200 status. */
static void set_headers(struct dl *d, CURL *e)
{
    if (d->ims > 0) {
        char h[80];
        struct tm tm;
        gmtime_r(&d->ims, &tm);
        strftime(h, sizeof h, "If-Modified-Since: %a, %d %b %Y %H:%M:%S GMT", &tm);
        d->hdrs = curl_slist_append(d->hdrs, h);
    }
    if (d->src == SRC_PEER && d->peers[d->peer_idx - 1].pull)
        pull_header(d);
    if (d->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->hdrs);
}

void fetch_start(struct dl *d)
{
    struct fetcher *f = d->f;
    bool peer = d->src == SRC_PEER;
    const char *url = peer ? d->peers[d->peer_idx - 1].url : d->urls[d->url_idx - 1];
    CURL *e;
    d->resp_status = 0;
    d->os_errno = 0;
    d->errbuf[0] = '\0';
    if (!multi_ready(f) || dl_reset_body(d) < 0 || !(e = curl_easy_init())) {
        dl_set_reason(d, 502, "cannot start a transfer");
        dl_finish(d, DL_FAILED);
        return;
    }
    d->easy = e;
    d->transfer_ms = loop_now_ms();
    if (peer)
        snprintf(d->source, sizeof d->source, "peer %s", d->peers[d->peer_idx - 1].label);
    else
        snprintf(d->source, sizeof d->source, "mirror %s", url);
    set_common_opts(f, d, e, url);
    set_limits(f, d, e);
    set_headers(d, e);
    log_debug("fetch %s from %s", d->key, url);
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        dl_set_reason(d, 502, "cannot start a transfer");
        dl_finish(d, DL_FAILED);
    }
}

void fetch_stop(struct dl *d)
{
    if (!d->easy)
        return;
    curl_multi_remove_handle(d->f->multi, d->easy);
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
    curl_slist_free_all(d->hdrs);
    d->hdrs = NULL;
}

void fetch_forget(struct dl *d)
{
    if (d->join_key && strmap_get(d->f->inflight, d->join_key) == d)
        strmap_del(d->f->inflight, d->join_key);
}

/* ---- the fetcher ---- */

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

/* The download req may join, or NULL with the join key a new one should run under. */
static struct dl *join(struct fetcher *f, const struct dl_request *req, char *jkey, size_t n)
{
    struct dl *d = strmap_get(f->inflight, req->key);
    snprintf(jkey, n, "%s", req->key);
    if (!d || compatible(d, req))
        return d;
    snprintf(jkey, n, "%s\n#verified", req->key);
    d = strmap_get(f->inflight, jkey);
    if (!d || compatible(d, req))
        return d;
    /* a still different expectation: run alone, under a key nobody else asks for (but in
     * the map, so fetcher_free still ends it) */
    snprintf(jkey, n, "%s\n#%u", req->key, ++f->seq);
    return NULL;
}

struct dl *fetcher_get(struct fetcher *f, const struct dl_request *req, int *err)
{
    char jkey[URL_MAX_KEY + 16];
    struct dl *d = join(f, req, jkey, sizeof jkey);
    if (d) {
        dl_ref(d);
        return d;
    }
    if (req->n_urls == 0 || req->n_urls > FETCH_MAX_URLS) {
        *err = -EINVAL;
        return NULL;
    }
    int r = dl_new(&d, f, req, jkey);
    if (r == 0 && (r = strmap_put(f->inflight, d->join_key, d, NULL)) < 0)
        dl_destroy(d);
    if (r < 0) {
        *err = r;
        return NULL;
    }
    dl_ref(d); /* the caller's */
    dl_begin(d, req->peer_budget_ms);
    return d;
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
    snprintf(f->user_agent, sizeof f->user_agent, "%s",
             opts->user_agent ? opts->user_agent : "apt-dht");
    f->opts.user_agent = NULL; /* the caller's string need not outlive this call */
    fetcher_set_ceilings(f, opts->max_object, opts->max_index);
    if (strmap_new(&f->inflight) < 0) {
        fetcher_free(f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

void fetcher_reconfigure(struct fetcher *f, uint32_t connect_timeout_s, uint32_t stall_timeout_s)
{
    f->opts.connect_timeout_s = connect_timeout_s;
    f->opts.stall_timeout_s = stall_timeout_s;
}

void fetcher_set_ceilings(struct fetcher *f, uint64_t max_object, uint64_t max_index)
{
    f->opts.max_object = max_object ? max_object : FETCH_MAX_OBJECT;
    f->opts.max_index = max_index ? max_index : FETCH_MAX_INDEX;
}

static void pick_one(const char *key, void *value, void *ud)
{
    struct dl **one = ud;
    *one = value;
}

void fetcher_free(struct fetcher *f)
{
    if (!f)
        return;
    while (f->inflight && strmap_count(f->inflight) > 0) {
        struct dl *d = NULL;
        strmap_each(f->inflight, pick_one, &d);
        dl_set_reason(d, 503, "proxy shutting down");
        dl_finish(d, DL_FAILED);
    }
    loop_timer_stop(f->loop, &f->timer);
    if (f->multi) { /* multi_ready() set up libcurl for it */
        curl_multi_cleanup(f->multi);
        curl_global_cleanup();
    }
    strmap_free(f->inflight, NULL);
    f->inflight = NULL;
    f->multi = NULL;
    if (f->n_dls > 0)
        f->freed = true; /* readers still hold downloads: the last one frees f */
    else
        free(f);
}

/* ---- relaying ---- */

struct find_sha_ctx {
    const uint8_t *sha256;
    struct dl *found;
};

static void match_sha256(const char *key, void *value, void *ud)
{
    struct find_sha_ctx *c = ud;
    struct dl *d = value;
    if (!c->found && d->have_expect && d->expect.have_sha256 && d->expect.size != UINT64_MAX &&
        d->src != SRC_ENDED && memcmp(d->expect.sha256, c->sha256, 32) == 0)
        c->found = d;
}

struct dl *fetcher_find_sha256(struct fetcher *f, const uint8_t sha256[32], uint64_t *size)
{
    struct find_sha_ctx c = {sha256, NULL};
    if (f->inflight)
        strmap_each(f->inflight, match_sha256, &c);
    if (c.found)
        *size = c.found->expect.size;
    return c.found;
}

/* ---- what the status page reads ---- */

struct each_ctx {
    void (*fn)(void *ud, const struct dl_view *v);
    void *ud;
    size_t n, max;
};

static void view_one(const char *key, void *value, void *ud)
{
    struct each_ctx *c = ud;
    const struct dl *d = value;
    if (c->n++ >= c->max)
        return;
    struct dl_view v = {
        .key = d->key,
        .source = d->easy ? d->source : "",
        .awaiting_peers = d->src == SRC_AWAIT_PEER,
        .from_peer = d->src == SRC_PEER,
        .received = d->received,
        .total = d->total,
        .started_ms = d->started_ms,
        .transfer_ms = d->transfer_ms,
    };
    for (const struct dl_watch *w = d->watchers; w; w = w->next)
        v.readers++;
    c->fn(c->ud, &v);
}

size_t fetcher_each(struct fetcher *f, void (*fn)(void *ud, const struct dl_view *v), void *ud,
                    size_t max)
{
    struct each_ctx c = {fn, ud, 0, max};
    strmap_each(f->inflight, view_one, &c);
    return c.n;
}

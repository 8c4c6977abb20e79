/* fetch.c - the fetcher: shared downloads over libcurl's multi-socket API.
 *
 * A request names a cache key; fetcher_get hands back the download in flight for it (a
 * struct dl, see dl.c) or starts one, so one upstream transfer serves every client that
 * wants the same file. A request joins only a download that checks at least what it
 * needs; otherwise its download runs under a join key of its own.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake it (timer
 * callback); the loop reports readiness back with curl_multi_socket_action, and every
 * finished transfer is collected from curl_multi_info_read. A transfer is a struct xfer
 * (one easy handle, its source, its timing); a download runs one at a time, or two in
 * the peer phase when a holder is late (see fetch-int.h). This file turns what each HTTP
 * answer says into calls on the download: its status and headers (dl_answer_ok,
 * dl_take_writer), its body bytes (dl_append), and how it ended: a whole body is
 * verified (dl_complete), a peer's failure is reported, and a connect error or a 5xx
 * before any body byte moves on to the next source. Which source that is, is dl.c's
 * business.
 *
 * Timeouts for mirrors come from the config and are read when each transfer starts, so
 * fetcher_reconfigure applies to the next transfer. A peer is judged by two clocks of
 * its own. Its response headers are due within a deadline the caller derives from that
 * peer's measured round trip (peer_deadline_ms): past it the next holder is asked too
 * (dl_peer_late), and past PEER_GIVEUP_MS it has failed. Its body must then arrive at
 * the speed floor or faster (fetch_peer_floor: an eighth of the mirrors' measured rate,
 * 1 MiB/s while none is measured), judged over windows of PEER_WINDOW_MS after the same
 * grace; below it the transfer is abandoned and the body goes on from the next source.
 * The deadline is on the headers only: a peer relaying a file as it arrives answers at
 * once and is then judged by its speed. Libcurl's own limits are not used for peers:
 * they cannot tell a late answer from a slow body.
 *
 * A mirror that has connected must start its answer within FIRST_BYTE_MAX_MS (or the
 * stall timeout if shorter): the transfer's deadline timer, armed when curl has the
 * connection, stopped by the status line. Mirrors that fail (no connection, a 5xx, no
 * first byte, a stall) are reported to mirrors.c, which backs them off; downloads order
 * their mirrors through it. Mirror transfers alone go through upstream.proxy, and one
 * that connected to this proxy's own address and port is refused. */
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
#include "apt-dht-proxy/mirrors.h"
#include "apt-dht-proxy/url.h"

#define PEER_DEADLINE_DEFAULT_MS 250u       /* a peer's deadline when the caller gives none */
#define PEER_GIVEUP_MS 2000u                /* a peer with no answer by then has failed */
#define PEER_TICK_MS 250u                   /* how often a peer's speed is looked at */
#define PEER_WINDOW_MS 1000u                /* the grace, and each window the rate is taken over */
#define PEER_FLOOR_DIVISOR 8.0              /* the floor: the mirrors' rate over this */
#define PEER_FLOOR_DEFAULT 1048.576         /* bytes/ms (1 MiB/s) while no mirror is measured */
#define MIRROR_RATE_MIN_BYTES (256u * 1024) /* smaller bodies say little about a rate */

/* ---- curl <-> loop glue ---- */

static void transfer_ended(struct xfer *x, CURLcode res);
static void mirror_answered(struct xfer *x);
static void mirror_health(struct xfer *x, CURLcode res);

static void check_done(struct fetcher *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x)
            transfer_ended(x, m->data.result);
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

/* The peer's response time, for its deadline next time. */
static void report_rtt(struct xfer *x)
{
    struct fetch_opts *o = &x->d->f->opts;
    curl_off_t conn = 0, start = 0;
    if (!o->on_peer_rtt)
        return;
    curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &conn);
    curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &start);
    o->on_peer_rtt(o->ud, (const struct sockaddr *)&x->d->peers[x->idx].sa,
                   conn > 0 ? (uint64_t)conn : 0, start > 0 ? (uint64_t)start : 0);
}

static size_t headers_complete(struct xfer *x)
{
    struct dl *d = x->d;
    if (x->resp_status >= 300 && x->resp_status < 400 && x->resp_status != 304)
        return 1; /* a redirect; curl follows it */
    uint64_t now = loop_now_ms();
    x->answered = true;
    x->answer_ms = x->win_ms = now;
    if (x->peer) {
        loop_timer_stop(d->f->loop, &x->deadline);
        report_rtt(x);
        loop_timer_start(d->f->loop, &x->tick, PEER_TICK_MS);
    }
    if (x->resp_status != 200 && x->resp_status != 206)
        return 1; /* 304, 404, 5xx...: decided when the transfer ends */
    curl_off_t cl = -1;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (!dl_answer_ok(d, x, cl >= 0 ? (int64_t)cl : -1, x->crange))
        return 0; /* CURLE_WRITE_ERROR */
    /* alone, it writes from now on (readers see the body begin); racing another, the
     * first body byte decides */
    if (fetch_running(d) == 1 && !dl_take_writer(d, x))
        return 0;
    return 1;
}

/* A busy peer's 503 names the relays it feeds (X-Apt-Dht-Relays: ADDR:PORT,...); dl.c
 * tries them next (dl_peer_declined). */
static void relay_hints(struct xfer *x, const char *buf, size_t n)
{
    char v[sizeof x->hints];
    if (header_value(buf, n, "X-Apt-Dht-Relays", v, sizeof v))
        memcpy(x->hints, v, sizeof v); /* other header lines leave it alone */
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nitems;
    char val[160];
    if (x->doomed)
        return n;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        mirror_answered(x);
        const char *sp = memchr(buf, ' ', n);
        x->resp_status = sp && (size_t)(sp - buf) + 4 <= n ? (int)strtol(sp + 1, NULL, 10) : 0;
        x->last_modified = 0;
        x->crange[0] = '\0';
        return n;
    }
    if (n <= 2 && (buf[0] == '\r' || buf[0] == '\n'))
        return headers_complete(x) ? n : 0;
    if (x->peer && x->resp_status == 503)
        relay_hints(x, buf, n);
    if (header_value(buf, n, "Last-Modified", val, sizeof val))
        x->last_modified = curl_getdate(val, NULL) > 0 ? curl_getdate(val, NULL) : 0;
    else
        header_value(buf, n, "Content-Range", x->crange, sizeof x->crange);
    return n;
}

/* One transfer takes at most XFER_TURN_BYTES of body per turn of the loop. Without a
 * budget, libcurl goes on reading for as long as its socket stays readable (up to 100
 * reads of CURLOPT_BUFFERSIZE per call): a peer or mirror faster than this host can
 * hash and write keeps the loop inside one call for the whole file, and every other
 * request, upload and DHT answer waits (measured: 20 MiB at 400 Mbit/s on a loaded host,
 * 840 ms without a turn). Over the budget the transfer pauses; fetch_resume_paused,
 * before the next wait, lets it go on. */
#define XFER_TURN_BYTES (1024u * 1024u)

static void pause_xfer(struct xfer *x)
{
    struct fetcher *f = x->d->f;
    x->paused = true;
    x->paused_next = f->paused;
    f->paused = x;
}

static void unlink_paused(struct xfer *x)
{
    struct xfer **pp = &x->d->f->paused;
    while (*pp && *pp != x)
        pp = &(*pp)->paused_next;
    if (*pp)
        *pp = x->paused_next;
    x->paused = false;
    x->paused_next = NULL;
}

/* The loop's prepare hook: the paused transfers go on (their held bytes are written from
 * inside curl_easy_pause; the rest is read after the wait, which then must not sleep). */
static int64_t fetch_resume_paused(struct loop *l, void *ud)
{
    struct fetcher *f = ud;
    bool any = false;
    for (unsigned i = 0; f->paused && i < 1024; i++) {
        struct xfer *x = f->paused;
        f->paused = x->paused_next;
        x->paused = false;
        x->paused_next = NULL;
        x->turn = loop_turn(l);
        x->turn_bytes = 0;
        if (x->easy)
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        any = true;
    }
    return any ? 0 : -1;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    struct dl *d = x->d;
    size_t n = size * nmemb;
    uint64_t turn = loop_turn(d->f->loop);
    if (x->turn != turn) {
        x->turn = turn;
        x->turn_bytes = 0;
    }
    if (x->turn_bytes >= XFER_TURN_BYTES && !x->paused) {
        pause_xfer(x);
        return CURL_WRITEFUNC_PAUSE;
    }
    x->turn_bytes += n;
    if (x->doomed || (x->resp_status != 200 && x->resp_status != 206))
        return n; /* a loser's bytes, or an error page: not kept */
    if (!x->writer && !dl_take_writer(d, x))
        return 0;
    if (x->first_byte_ms == 0)
        x->first_byte_ms = loop_now_ms();
    return dl_append(d, x, buf, n) ? n : 0;
}

/* libcurl's header and write callbacks. While one runs, no easy handle may be removed
 * (fetch.h: fetch_doom), which free_slot must know. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct fetcher *f = ((struct xfer *)ud)->d->f;
    f->in_callback++;
    size_t r = on_header(buf, size, nitems, ud);
    f->in_callback--;
    return r;
}

static size_t write_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct fetcher *f = ((struct xfer *)ud)->d->f;
    f->in_callback++;
    size_t r = on_body(buf, size, nmemb, ud);
    f->in_callback--;
    return r;
}

/* Why a mirror's answer is no body: its status, or the transfer's error. */
static void mirror_reason(struct dl *d, struct xfer *x, CURLcode res, int st, const char *err)
{
    if (x->self_refused) {
        /* on_prereq's reason stands: it names the address */
    } else if (res != CURLE_OK && (x->os_errno == EMFILE || x->os_errno == ENFILE)) {
        dl_set_reason(d, 503, "proxy out of file descriptors; try again shortly");
        log_error("fetch %s: no socket for the mirror: %s (%s)", d->key, strerror(x->os_errno),
                  x->os_errno == EMFILE ? "EMFILE: the open-file limit"
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
 * body (a Content-Length above the ceiling); a transfer that dies mid-body resumes from
 * the next mirror where it can; anything else is the download's answer. */
static void mirror_failed(struct dl *d, struct xfer *x, CURLcode res)
{
    int st = x->resp_status;
    bool body_started = x->writer && x->got > 0;
    mirror_health(x, res);
    if (res == CURLE_OK && st == 304) {
        d->status = 304;
        dl_finish(d, DL_NOT_MODIFIED);
        return;
    }
    const char *err = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
    if (d->mismatch || body_started) {
        if (!d->reason[0])
            dl_set_reason(d, 502, "mirror transfer failed: %s", err);
        if (!d->mismatch && dl_resume_mirror(d, x))
            return;
        log_warn("fetch %s: %s", d->key, d->reason);
        dl_finish(d, DL_FAILED);
        return;
    }
    bool retry = res != CURLE_OK || st >= 500;
    /* a write error with a reason is dl.c's refusal: its reason stands */
    if (!(res == CURLE_WRITE_ERROR && d->reason[0]))
        mirror_reason(d, x, res, st, err);
    if (retry && d->url_idx < d->n_urls) {
        log_warn("fetch %s: %s; trying the next mirror", d->key, d->reason);
        dl_next_source(d);
        return;
    }
    if (dl_resume_mirror(d, x)) /* a body with a peer's bytes starts over instead */
        return;
    dl_finish(d, DL_FAILED);
}

/* A mirror's rate, for the peers' speed floor: only bodies big enough to say something. */
static void mirror_measured(struct fetcher *f, const struct xfer *x)
{
    if (x->got < MIRROR_RATE_MIN_BYTES || x->first_byte_ms == 0)
        return;
    uint64_t ms = loop_now_ms() - x->first_byte_ms;
    double rate = (double)x->got / (double)(ms > 0 ? ms : 1);
    f->mirror_rate = f->mirror_rate > 0 ? 0.7 * f->mirror_rate + 0.3 * rate : rate;
}

/* A peer that answers 503 (busy) declines, and so does an owner or relay that answers
 * 404 (it does not have the file and may not fetch it): neither is its failure. */
static bool peer_declined(const struct xfer *x, CURLcode res)
{
    if (res != CURLE_OK || x->bad)
        return false;
    return x->resp_status == 503 || (x->resp_status == 404 && x->d->peers[x->idx].quiet);
}

static void transfer_ended(struct xfer *x, CURLcode res)
{
    struct dl *d = x->d;
    int st = x->resp_status;
    long oserr = 0;
    if (x->doomed) {
        fetch_cancel(x);
        return;
    }
    if (res != CURLE_OK && curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr) != CURLE_OK)
        oserr = 0;
    x->os_errno = (int)oserr;
    fetch_cancel(x); /* the slot's fields stay until it is used again */
    bool whole = res == CURLE_OK && (st == 200 || st == 206);
    if (whole && !x->writer && !dl_take_writer(d, x))
        whole = false; /* an empty body that cannot begin */
    if (whole) {
        if (!x->peer)
            mirror_measured(d->f, x);
        dl_complete(d, x);
    } else if (x->peer && peer_declined(x, res)) {
        dl_peer_declined(d, x);
    } else if (x->peer) {
        if (res != CURLE_OK && res != CURLE_WRITE_ERROR)
            log_info("fetch %s: peer %s: %s", d->key, d->peers[x->idx].label,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
        dl_peer_failed(d, x, x->bad ? PEER_BAD_DATA : PEER_FAILED);
    } else
        mirror_failed(d, x, res);
}

/* ---- mirror transfers: health, first-byte deadline, upstream proxy, self-detection ---- */

#define FIRST_BYTE_MAX_MS 10000u

static const char *mirror_url(const struct xfer *x)
{
    return x->peer ? NULL : x->d->urls[x->idx];
}

/* A mirror's status line arrived: its first byte is in, and the mirror is alive. */
static void mirror_answered(struct xfer *x)
{
    if (x->peer)
        return;
    loop_timer_stop(x->d->f->loop, &x->deadline);
    mirrors_ok(x->d->f->health, mirror_url(x));
}

/* A mirror transfer ended without a body: back the mirror off if it was the mirror's
 * doing (not a refusal of ours: a ceiling, a loop, our own lack of descriptors). */
static void mirror_health(struct xfer *x, CURLcode res)
{
    bool ours = res == CURLE_WRITE_ERROR || res == CURLE_ABORTED_BY_CALLBACK ||
                x->self_refused || x->os_errno == EMFILE || x->os_errno == ENFILE;
    if (!ours && (res != CURLE_OK || x->resp_status >= 500))
        mirrors_failed(x->d->f->health, mirror_url(x), loop_now_ms());
}

static uint64_t first_byte_ms(const struct fetcher *f)
{
    uint64_t stall = (uint64_t)f->opts.stall_timeout_s * 1000;
    return stall < FIRST_BYTE_MAX_MS ? stall : FIRST_BYTE_MAX_MS;
}

/* The mirror connected and did not start its answer within first_byte_ms. */
static void mirror_no_answer(struct xfer *x)
{
    snprintf(x->errbuf, sizeof x->errbuf, "connected, but no answer within %llu ms",
             (unsigned long long)first_byte_ms(x->d->f));
    transfer_ended(x, CURLE_OPERATION_TIMEDOUT);
}

/* curl has a connection and is about to send the request (CURLOPT_PREREQFUNCTION, once
 * per request, redirects included): refuse this proxy's own address, else start the
 * first-byte deadline. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    struct xfer *x = ud;
    struct fetcher *f = x->d->f;
    (void)local_ip;
    (void)local_port;
    if (f->is_self && f->is_self(f->self_ud, ip, (unsigned)port)) {
        x->self_refused = true;
        dl_set_reason(x->d, 508, "loop: the mirror's name resolves to this proxy (%s port %d)",
                      ip, port);
        return CURL_PREREQFUNC_ABORT;
    }
    loop_timer_stop(f->loop, &x->deadline);
    loop_timer_start(f->loop, &x->deadline, first_byte_ms(f));
    return CURL_PREREQFUNC_OK;
}

static void set_mirror_opts(struct fetcher *f, struct xfer *x, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    if (f->proxy) {
        curl_easy_setopt(e, CURLOPT_PROXY, f->proxy);
        curl_easy_setopt(e, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
        /* https mirrors through a CONNECT tunnel; http ones as plain proxy requests */
        if (f->no_proxy)
            curl_easy_setopt(e, CURLOPT_NOPROXY, f->no_proxy);
    }
    if (f->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
}

/* ---- a peer's two clocks ---- */

/* Its response headers are late (first expiry), or it is given up on (second); or it
 * was cancelled inside a libcurl callback and is reaped now. */
static void on_deadline(struct loop *l, struct loop_timer *t, void *ud)
{
    struct xfer *x = ud;
    struct dl *d = x->d;
    if (x->doomed) {
        fetch_cancel(x);
        return;
    }
    if (!x->easy || x->answered)
        return;
    if (!x->peer) {
        mirror_no_answer(x);
        return;
    }
    if (!x->late) {
        uint64_t waited = loop_now_ms() - x->start_ms;
        x->late = true;
        /* given up at PEER_GIVEUP_MS, or one more deadline when that was the deadline */
        loop_timer_start(l, &x->deadline,
                         waited < PEER_GIVEUP_MS ? PEER_GIVEUP_MS - waited : waited);
        dl_peer_late(d, x);
        return;
    }
    log_info("fetch %s: peer %s sent no answer in %llu ms", d->key, d->peers[x->idx].label,
             (unsigned long long)(loop_now_ms() - x->start_ms));
    dl_peer_failed(d, x, PEER_FAILED);
}

/* The speed floor: after the grace, each window's rate must reach fetch_peer_floor. */
static void on_tick(struct loop *l, struct loop_timer *t, void *ud)
{
    struct xfer *x = ud;
    struct dl *d = x->d;
    uint64_t now = loop_now_ms();
    if (!x->easy || x->doomed)
        return;
    loop_timer_start(l, &x->tick, PEER_TICK_MS);
    if (now - x->win_ms < PEER_WINDOW_MS)
        return;
    double rate = (double)(x->got - x->win_got) / (double)(now - x->win_ms);
    double floor = fetch_peer_floor(d->f);
    x->win_ms = now;
    x->win_got = x->got;
    if (rate >= floor)
        return;
    log_info("fetch %s: peer %s sends %.0f KiB/s, below the floor of %.0f KiB/s%s", d->key,
             d->peers[x->idx].label, rate * 1000 / 1024, floor * 1000 / 1024,
             x->got > 0 ? "; resuming from the next source" : "");
    dl_peer_failed(d, x, PEER_FAILED);
}

double fetch_peer_floor(const struct fetcher *f)
{
    return f->mirror_rate > 0 ? f->mirror_rate / PEER_FLOOR_DIVISOR : PEER_FLOOR_DEFAULT;
}

/* ---- one transfer ---- */

static void set_common_opts(struct fetcher *f, struct xfer *x, CURL *e, const char *url)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
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

static void set_limits(struct fetcher *f, struct xfer *x, CURL *e)
{
    if (x->peer) {
        /* a peer is on the LAN; its deadline and speed floor are our own timers */
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)PEER_GIVEUP_MS);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)f->opts.connect_timeout_s);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)f->opts.stall_timeout_s);
    }
}

/* Asks an owner to fetch the file for us: it checks our key against its own hash index
 * before it fetches anything (see uploads.c). */
static void pull_header(struct dl *d, struct xfer *x)
{
    char h[URL_MAX_KEY + 32];
    if (snprintf(h, sizeof h, "X-Apt-Dht-Fetch: %s", d->key) < (int)sizeof h)
        x->hdrs = curl_slist_append(x->hdrs, h);
}

/* Conditional headers are written here rather than with CURLOPT_TIMECONDITION: a mirror
 * that ignores If-Modified-Since answers 200 with the same date, and libcurl would then
 * drop the body and pretend a 304 under our own 200 status. A resumed body asks for the
 * rest (the files that resume are immutable: no If-Range is needed). */
static void set_headers(struct dl *d, struct xfer *x, CURL *e)
{
    if (x->offset > 0) {
        char r[32];
        snprintf(r, sizeof r, "%llu-", (unsigned long long)x->offset);
        curl_easy_setopt(e, CURLOPT_RANGE, r);
    } else if (d->ims > 0 && !x->peer) {
        char h[80];
        struct tm tm;
        gmtime_r(&d->ims, &tm);
        strftime(h, sizeof h, "If-Modified-Since: %a, %d %b %Y %H:%M:%S GMT", &tm);
        x->hdrs = curl_slist_append(x->hdrs, h);
    }
    if (x->peer && d->peers[x->idx].pull)
        pull_header(d, x);
    if (x->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
}

/* A slot with no transfer, or one whose transfer was doomed (it lost a race) and can be
 * reaped now, outside libcurl's callbacks, rather than at its zero-delay timer: a source
 * that fails right after winning must find a slot for the next one. */
static struct xfer *free_slot(struct dl *d)
{
    for (size_t i = 0; i < DL_MAX_XFERS; i++)
        if (!d->xf[i].easy)
            return &d->xf[i];
    for (size_t i = 0; i < DL_MAX_XFERS && d->f->in_callback == 0; i++)
        if (d->xf[i].doomed)
            return &d->xf[i]; /* fetch_start cancels it first */
    return NULL;
}

static uint32_t deadline_of(struct fetcher *f, const struct dl_peer *p)
{
    uint32_t ms = f->opts.peer_deadline_ms
                      ? f->opts.peer_deadline_ms(f->opts.ud, (const struct sockaddr *)&p->sa)
                      : PEER_DEADLINE_DEFAULT_MS;
    return ms < PEER_GIVEUP_MS ? ms : PEER_GIVEUP_MS;
}

int fetch_start(struct dl *d, bool peer, size_t idx, uint64_t offset)
{
    struct fetcher *f = d->f;
    struct xfer *x = free_slot(d);
    const char *url = peer ? d->peers[idx].url : d->urls[idx];
    CURL *e;
    if (!x)
        return -EBUSY;
    fetch_cancel(x); /* its timers are stopped before the slot is wiped */
    memset(x, 0, sizeof *x);
    x->d = d;
    x->peer = peer;
    x->idx = idx;
    x->offset = offset;
    x->length = -1;
    loop_timer_init(&x->deadline, on_deadline, x);
    loop_timer_init(&x->tick, on_tick, x);
    if (!multi_ready(f) || !(e = curl_easy_init())) {
        dl_set_reason(d, 502, "cannot start a transfer");
        return -EIO;
    }
    x->easy = e;
    x->start_ms = d->transfer_ms = loop_now_ms();
    if (peer)
        snprintf(d->source, sizeof d->source, "peer %s", d->peers[idx].label);
    else
        snprintf(d->source, sizeof d->source, "mirror %s", url);
    set_common_opts(f, x, e, url);
    set_limits(f, x, e);
    if (!peer)
        set_mirror_opts(f, x, e);
    set_headers(d, x, e);
    if (offset)
        log_debug("fetch %s from %s from byte %llu", d->key, url, (unsigned long long)offset);
    else
        log_debug("fetch %s from %s", d->key, url);
    CURLMcode mc = curl_multi_add_handle(f->multi, e);
    if (mc != CURLM_OK) {
        log_error("fetch %s: libcurl refused the transfer: %s", d->key, curl_multi_strerror(mc));
        fetch_cancel(x);
        dl_set_reason(d, 502, "cannot start a transfer");
        return -EIO;
    }
    if (peer)
        loop_timer_start(f->loop, &x->deadline, deadline_of(f, &d->peers[idx]));
    return 0;
}

void fetch_cancel(struct xfer *x)
{
    if (!x->d)
        return; /* a slot never used */
    loop_timer_stop(x->d->f->loop, &x->deadline);
    loop_timer_stop(x->d->f->loop, &x->tick);
    if (x->paused)
        unlink_paused(x);
    if (!x->easy)
        return;
    curl_multi_remove_handle(x->d->f->multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    x->doomed = false;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
}

void fetch_stop(struct dl *d)
{
    for (size_t i = 0; i < DL_MAX_XFERS; i++)
        fetch_cancel(&d->xf[i]);
}

size_t fetch_running(const struct dl *d)
{
    size_t n = 0;
    for (size_t i = 0; i < DL_MAX_XFERS; i++)
        n += d->xf[i].easy && !d->xf[i].doomed;
    return n;
}

void fetch_doom(struct xfer *x)
{
    if (!x->easy || x->doomed)
        return;
    x->doomed = true;
    loop_timer_stop(x->d->f->loop, &x->tick);
    loop_timer_stop(x->d->f->loop, &x->deadline);
    loop_timer_start(x->d->f->loop, &x->deadline, 0);
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
    if (strmap_new(&f->inflight) < 0 || mirrors_new(&f->health) < 0 ||
        loop_add_prepare(l, fetch_resume_paused, f) < 0) {
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

static int dup_opt(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -ENOMEM : 0;
}

int fetcher_set_upstream(struct fetcher *f, const struct fetch_upstream *u)
{
    char *p = NULL, *np = NULL, *ca = NULL;
    if (dup_opt(&p, u->proxy) < 0 || dup_opt(&np, u->no_proxy) < 0 || dup_opt(&ca, u->ca_file) < 0) {
        free(p);
        free(np);
        free(ca);
        return -ENOMEM;
    }
    free(f->proxy);
    free(f->no_proxy);
    free(f->ca_file);
    f->proxy = p;
    f->no_proxy = np;
    f->ca_file = ca;
    f->is_self = u->is_self;
    f->self_ud = u->ud;
    return 0;
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
    loop_del_prepare(f->loop, fetch_resume_paused, f);
    if (f->multi) { /* multi_ready() set up libcurl for it */
        curl_multi_cleanup(f->multi);
        curl_global_cleanup();
    }
    strmap_free(f->inflight, NULL);
    f->inflight = NULL;
    mirrors_free(f->health);
    f->health = NULL;
    free(f->proxy);
    free(f->no_proxy);
    free(f->ca_file);
    f->proxy = f->no_proxy = f->ca_file = NULL;
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
    (void)key;
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
        .source = fetch_running(d) ? d->source : "",
        .awaiting_peers = d->src == SRC_AWAIT_PEER,
        .from_peer = d->tainted || d->src == SRC_PEER,
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

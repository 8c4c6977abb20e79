/* respond.c - building and queueing libmicrohttpd responses.
 *
 * A cached file goes out by sendfile(2) through an fd response, with conditional and
 * range requests decided here. A download in progress goes out through a callback
 * response that reads the shared temp file as it grows and suspends the connection when
 * it has caught up (the request's watcher on the download resumes it). An upload to a
 * peer under peers.upload_rate is a callback response that takes tokens from one bucket
 * shared by all uploads and sleeps on a timer when the bucket is empty. A relay is an
 * upload of a download still in flight: a callback response like a stream's, but it
 * sends a peer's unverified bytes too (the receiver verifies the whole file) and holds
 * only the last byte back until the download is verified. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/respond.h"

/* ---- dates ---- */

void http_date(time_t t, char *out, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

time_t http_date_parse(const char *s)
{
    /* IMF-fixdate, then the obsolete RFC 850 and asctime forms */
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                        "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; s && i < sizeof forms / sizeof forms[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, forms[i], &tm);
        if (end && *end == '\0')
            return timegm(&tm);
    }
    return -1;
}

/* ---- the answer object ---- */

void responder_init(struct responder *rs, struct loop *l, struct stats *stats,
                    uint32_t upload_kib_s)
{
    memset(rs, 0, sizeof *rs);
    rs->loop = l;
    rs->stats = stats;
    rs->upload_kib_s = upload_kib_s;
    rs->tokens_ms = loop_now_ms();
    const char *lie = getenv("APT_DHT_TEST_CORRUPT_UPLOADS");
    rs->corrupt_uploads = lie && strcmp(lie, "1") == 0;
    if (rs->corrupt_uploads)
        log_warn("test hook APT_DHT_TEST_CORRUPT_UPLOADS=1: every upload to a peer is corrupted");
}

static void pace_wake(struct loop *l, struct loop_timer *t, void *ud)
{
    answer_resume(ud);
}

void answer_init(struct answer *a, struct responder *rs, struct MHD_Connection *c,
                 const char *target, bool head, void (*release)(struct answer *a))
{
    memset(a, 0, sizeof *a);
    a->rs = rs;
    a->conn = c;
    a->target = target;
    a->head = head;
    a->release = release;
    a->refs = 1;
    a->up_fd = -1;
    a->held_fd = -1;
    snprintf(a->source, sizeof a->source, "-");
    loop_timer_init(&a->pace_timer, pace_wake, a);
}

void answer_ref(struct answer *a)
{
    a->refs++;
}

void answer_unref(struct answer *a)
{
    if (--a->refs == 0)
        a->release(a);
}

void answer_done(struct answer *a)
{
    cache_wait_cancel(a->check);
    a->check = NULL;
    loop_timer_stop(a->rs->loop, &a->pace_timer);
    if (a->up_fd >= 0)
        close(a->up_fd);
    a->up_fd = -1;
    answer_let_go(a);
}

void answer_let_go(struct answer *a)
{
    if (a->held_fd >= 0)
        close(a->held_fd);
    a->held_fd = -1;
    a->held_key = NULL;
}

void answer_suspend(struct answer *a)
{
    if (!a->suspended && !a->rs->stopping) {
        a->suspended = true;
        MHD_suspend_connection(a->conn);
    }
}

void answer_resume(struct answer *a)
{
    if (a->suspended) {
        a->suspended = false;
        a->rs->kick = true;
        MHD_resume_connection(a->conn);
    }
}

static enum MHD_Result queue(struct answer *a, unsigned status, struct MHD_Response *resp)
{
    a->status = status;
    enum MHD_Result ret = MHD_queue_response(a->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result answer_error(struct answer *a, unsigned status, const char *reason)
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
    snprintf(a->source, sizeof a->source, "-");
    if (status >= 500)
        a->rs->stats->errors++;
    return queue(a, status, resp);
}

enum MHD_Result answer_busy(struct answer *a, const char *relays)
{
    static const char body[] = "busy with this file; ask its relays\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Apt-Dht-Relays", relays);
    snprintf(a->source, sizeof a->source, "-");
    return queue(a, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
}

static const char *content_type_of(const char *key)
{
    size_t n = strlen(key);
    if (n > 4 && strcmp(key + n - 4, ".deb") == 0)
        return "application/vnd.debian.binary-package";
    return "application/octet-stream";
}

/* ---- ranges and conditions ---- */

/* Reads the decimal digits at *p (at least one; no sign, no space), saturating at
 * UINT64_MAX: a position past any file is as good as the end. false if there is none. */
static bool range_pos(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(*s - '0');
    *p = s;
    *out = v;
    return true;
}

/* Parses "bytes=A-B", "bytes=A-", "bytes=-N" (RFC 9110 14.1.2) for a file of size n.
 * Returns 1 with [*a, *b] set, 0 if no usable single range (serve the whole file: several
 * ranges, or anything malformed, a sign or a space included), -1 if unsatisfiable (416).
 * An end past the file is cut at its last byte. */
static int parse_range(const char *h, uint64_t n, uint64_t *a, uint64_t *b)
{
    uint64_t x, y;
    if (!h || strncmp(h, "bytes=", 6) != 0)
        return 0;
    const char *p = h + 6;
    if (*p == '-') {
        p++;
        if (!range_pos(&p, &y) || *p)
            return 0;
        if (y == 0 || n == 0)
            return -1;
        *a = y >= n ? 0 : n - y;
        *b = n - 1;
        return 1;
    }
    if (!range_pos(&p, &x) || *p++ != '-')
        return 0;
    y = UINT64_MAX;
    if (*p && (!range_pos(&p, &y) || y < x))
        return 0;
    if (*p)
        return 0;
    if (x >= n)
        return -1;
    *a = x;
    *b = y >= n ? n - 1 : y;
    return 1;
}

/* If-Range (RFC 9110 13.1.5): the range holds only for a date that is exactly our
 * Last-Modified; an entity tag never matches (the proxy sends none), so the whole file
 * goes out. */
static bool if_range_holds(const char *h, time_t mtime)
{
    if (!h)
        return true;
    time_t t = http_date_parse(h);
    return t > 0 && t == mtime;
}

static const char *header(struct answer *a, const char *name)
{
    return MHD_lookup_connection_value(a->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result answer_empty(struct answer *a, unsigned status, const char *hname,
                                    const char *hvalue)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, hname, hvalue);
    return queue(a, status, resp);
}

/* 416 for a file of size bytes: the Content-Range that names its length. */
static enum MHD_Result answer_unsatisfiable(struct answer *a, uint64_t size)
{
    char cr[96];
    snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
    return answer_empty(a, MHD_HTTP_RANGE_NOT_SATISFIABLE, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
}

/* The Range headers of a file's response: Accept-Ranges, and for a range (rr > 0, from
 * parse_range) its Content-Range. The status that goes with them is range_status(rr). */
static void range_headers(struct MHD_Response *resp, int rr, uint64_t from, uint64_t to,
                          uint64_t size)
{
    char cr[96];
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (rr <= 0)
        return;
    snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)from,
             (unsigned long long)to, (unsigned long long)size);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
}

static unsigned range_status(int rr)
{
    return rr > 0 ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK;
}

/* ---- paced uploads ---- */

/* Takes up to want bytes from the shared token bucket (refilled at the configured rate,
 * holding at most a tenth of a second's worth or 64 KiB). */
static size_t take_tokens(struct responder *rs, size_t want)
{
    double rate = (double)rs->upload_kib_s * 1024.0 / 1000.0; /* bytes per ms */
    double cap = rate * 100 > 65536 ? rate * 100 : 65536;
    uint64_t now = loop_now_ms();
    rs->tokens += (double)(now - rs->tokens_ms) * rate;
    rs->tokens_ms = now;
    if (rs->tokens > cap)
        rs->tokens = cap;
    size_t n = rs->tokens >= (double)want ? want : (size_t)rs->tokens;
    rs->tokens -= (double)n;
    return n;
}

static ssize_t upload_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct answer *a = cls;
    if (pos >= a->up_len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (max > a->up_len - pos)
        max = (size_t)(a->up_len - pos);
    if (a->rs->stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    /* the rate may have been set to 0 (no limit) by a reload during this upload */
    size_t n = a->rs->upload_kib_s ? take_tokens(a->rs, max) : max;
    if (n == 0) {
        if (!loop_timer_armed(&a->pace_timer))
            loop_timer_start(a->rs->loop, &a->pace_timer, 20);
        answer_suspend(a);
        return 0;
    }
    ssize_t got = pread(a->up_fd, buf, n, (off_t)(a->up_off + pos));
    if (got > 0 && pos == 0 && a->rs->corrupt_uploads)
        buf[0] ^= 0x5a; /* the test hook: a lying peer */
    return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reader_release(void *cls)
{
    answer_unref(cls);
}

/* A response for len bytes of fd at off: sendfile(2) normally; paced through the token
 * bucket for uploads when an upload rate is set. Takes ownership of fd. */
static struct MHD_Response *file_response(struct answer *a, int fd, uint64_t off, uint64_t len)
{
    struct MHD_Response *resp;
    if (!(a->upload && (a->rs->upload_kib_s > 0 || a->rs->corrupt_uploads))) {
        resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
        if (!resp)
            close(fd);
        return resp;
    }
    a->up_fd = fd;
    a->up_off = off;
    a->up_len = len;
    resp = MHD_create_response_from_callback(len, 64 * 1024, upload_reader, a, reader_release);
    if (resp)
        answer_ref(a);
    return resp;
}

/* ---- cached files ---- */

static void count_sent(struct answer *a, uint64_t len)
{
    a->bytes = a->head ? 0 : len;
    if (a->upload)
        a->rs->stats->bytes_uploaded += a->bytes;
    else
        a->rs->stats->bytes_served += a->bytes;
}

enum MHD_Result answer_fd(struct answer *a, int fd, const struct stat *st, const char *key)
{
    uint64_t size = (uint64_t)st->st_size, from = 0, to = size ? size - 1 : 0;
    struct responder *rs = a->rs;
    if (rs->date_t != st->st_mtime || !rs->date[0]) { /* hits on one file: written once */
        http_date(st->st_mtime, rs->date, sizeof rs->date);
        rs->date_t = st->st_mtime;
    }
    const char *date = rs->date;
    time_t ims = http_date_parse(header(a, "If-Modified-Since"));
    if (ims > 0 && st->st_mtime <= ims) {
        close(fd);
        return answer_empty(a, MHD_HTTP_NOT_MODIFIED, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    }
    const char *range = header(a, "Range");
    int rr = range && if_range_holds(header(a, "If-Range"), st->st_mtime)
                 ? parse_range(range, size, &from, &to)
                 : 0;
    if (rr < 0) {
        close(fd);
        return answer_unsatisfiable(a, size);
    }
    uint64_t len = size ? to - from + 1 : 0;
    struct MHD_Response *resp = file_response(a, fd, from, len);
    if (!resp)
        return answer_error(a, 500, "cannot open the cached file");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(key));
    range_headers(resp, rr, from, to, size);
    count_sent(a, len);
    return queue(a, range_status(rr), resp);
}

static void check_done(void *ud)
{
    struct answer *a = ud;
    a->check = NULL; /* the cache freed the wait */
    answer_resume(a);
}

int answer_check_cached(struct answer *a, struct cache *c, const char *key,
                        const struct hashdb_entry *expect)
{
    cache_wait_cancel(a->check); /* a wait left from an earlier decision */
    a->check = NULL;
    answer_let_go(a);
    int r = cache_check_open(c, key, expect, check_done, a, &a->check, &a->held_st);
    if (r >= 0) {
        a->held_fd = r;
        a->held_key = key;
        return 0;
    }
    if (r == -EINPROGRESS && a->check) {
        answer_suspend(a);
        return -EINPROGRESS;
    }
    if (r == -ENOENT)
        return 1;
    log_warn("%s: cannot check the cached file: %s", a->target, strerror(-r));
    return 0;
}

enum MHD_Result answer_start_failed(struct answer *a, int err)
{
    if (err == -EMFILE || err == -ENFILE) {
        log_error("%s: cannot start the download: %s (%s)", a->target, strerror(-err),
                  err == -EMFILE ? "EMFILE: raise the open-file limit, LimitNOFILE"
                                 : "ENFILE: the system's open-file table is full");
        return answer_error(a, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "proxy out of file descriptors; try again shortly");
    }
    log_error("%s: cannot start the download: %s", a->target, strerror(-err));
    return answer_error(a, 500, "cannot start the download");
}

int answer_cached(struct answer *a, struct cache *c, const char *key, const char *why,
                  enum MHD_Result *ret)
{
    struct stat st;
    int fd = -1;
    if (a->held_fd >= 0 && strcmp(a->held_key, key) == 0) {
        fd = a->held_fd; /* checked just now: served as it was opened */
        st = a->held_st;
        a->held_fd = -1;
        a->held_key = NULL;
    } else if ((fd = cache_open(c, key, &st)) < 0) {
        return 0;
    }
    snprintf(a->source, sizeof a->source, "%s", why);
    *ret = answer_fd(a, fd, &st, key);
    return 1;
}

/* ---- downloads in progress ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct answer *a = cls;
    struct dl *d = a->dl;
    uint64_t avail = dl_available(d);
    if (pos < avail) {
        size_t n = avail - pos < max ? (size_t)(avail - pos) : max;
        ssize_t got = dl_read(d, pos, buf, n);
        if (got <= 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        a->bytes += (uint64_t)got;
        a->rs->stats->bytes_served += (uint64_t)got;
        return got;
    }
    switch (dl_state(d)) {
    case DL_DONE:
        return MHD_CONTENT_READER_END_OF_STREAM;
    case DL_FAILED:
    case DL_NOT_MODIFIED:
        log_warn("%s: %s; closing the response after %llu bytes", a->target, dl_reason(d),
                 (unsigned long long)pos);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    default:
        answer_suspend(a);
        return 0;
    }
}

enum MHD_Result answer_stream(struct answer *a, struct dl *d, const char *key)
{
    int64_t total = dl_total(d);
    a->dl = d;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        total >= 0 ? (uint64_t)total : MHD_SIZE_UNKNOWN, 256 * 1024, stream_reader, a,
        reader_release);
    if (!resp)
        return answer_error(a, 500, "out of memory");
    answer_ref(a); /* the response's */
    char date[64];
    if (dl_last_modified(d) > 0) {
        http_date(dl_last_modified(d), date, sizeof date);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(key));
    snprintf(a->source, sizeof a->source, "%s", dl_source(d));
    return queue(a, MHD_HTTP_OK, resp);
}

/* ---- relays: downloads in flight, to peers ---- */

/* How many of the relay's bytes may go now: what has arrived, within the range and the
 * upload rate. 0 with *wait set = suspend; -1 = cut the response short. */
static ssize_t relay_room(struct answer *a, uint64_t pos, size_t max, bool *wait)
{
    struct dl *d = a->dl;
    *wait = false;
    if (dl_body_gen(d) != a->relay_gen) {
        if (pos > 0) {
            log_warn("%s: the download started over from another source; cutting the relay "
                     "after %llu bytes", a->target, (unsigned long long)pos);
            return -1;
        }
        a->relay_gen = dl_body_gen(d); /* nothing sent yet: follow the new body */
    }
    enum dl_state st = dl_state(d);
    if (st == DL_FAILED || st == DL_NOT_MODIFIED) {
        log_warn("%s: %s; cutting the relay after %llu bytes", a->target, dl_reason(d),
                 (unsigned long long)pos);
        return -1;
    }
    uint64_t at = a->up_off + pos, avail = dl_relay_available(d);
    if (at >= avail) {
        *wait = true;
        return 0;
    }
    size_t n = avail - at < max ? (size_t)(avail - at) : max;
    if (a->rs->upload_kib_s && (n = take_tokens(a->rs, n)) == 0) {
        if (!loop_timer_armed(&a->pace_timer))
            loop_timer_start(a->rs->loop, &a->pace_timer, 20);
        *wait = true;
    }
    return (ssize_t)n;
}

static ssize_t relay_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct answer *a = cls;
    bool wait;
    if (pos >= a->up_len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (a->rs->stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (max > a->up_len - pos)
        max = (size_t)(a->up_len - pos);
    ssize_t n = relay_room(a, pos, max, &wait);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0) {
        if (wait)
            answer_suspend(a); /* the download's watcher or the pace timer resumes it */
        return 0;
    }
    ssize_t got = dl_read(a->dl, a->up_off + pos, buf, (size_t)n);
    if (got <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos == 0 && a->rs->corrupt_uploads)
        buf[0] ^= 0x5a; /* the test hook: a lying relay */
    a->bytes += (uint64_t)got;
    a->rs->stats->bytes_uploaded += (uint64_t)got;
    return got;
}

enum MHD_Result answer_relay(struct answer *a, struct dl *d, uint64_t size, const char *key)
{
    uint64_t from = 0, to = size ? size - 1 : 0;
    int rr = parse_range(header(a, "Range"), size, &from, &to);
    if (rr < 0)
        return answer_unsatisfiable(a, size);
    a->dl = d;
    a->relay_gen = dl_body_gen(d);
    a->up_off = from;
    a->up_len = size ? to - from + 1 : 0;
    struct MHD_Response *resp = MHD_create_response_from_callback(a->up_len, 256 * 1024,
                                                                  relay_reader, a, reader_release);
    if (!resp)
        return answer_error(a, 500, "out of memory");
    answer_ref(a); /* the response's */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type_of(key));
    range_headers(resp, rr, from, to, size);
    snprintf(a->source, sizeof a->source, "relay");
    return queue(a, range_status(rr), resp);
}

/* test_fetch.c - the fetcher and the download object against HTTP servers on loopback.
 *
 * Each case runs the real loop, cache and libcurl against tiny in-process servers that
 * answer every request the same way: the right file, a wrong file of the same size,
 * half of the file and then silence, or nothing at all. They check the order of
 * sources (peers, the budget for waiting on them, then mirrors with failover), that no
 * unverified byte is ever available to a reader, what ends up in the cache, and that
 * fetcher_reconfigure reaches the next transfer; and the ceilings: a Content-Length
 * above one fails before a body byte, a body that grows past one fails when it does, and
 * a Content-Length that lies evicts nothing from the cache. Times are generous: a case
 * that hangs is stopped by a 10 s guard and fails. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"
#include "tests/unit/unit.h"

#define BODY_LEN 4096
#define KEY "mirror.example/debian/pool/main/a/a_1.0_all.deb"

enum srv_mode {
    SRV_OK,         /* 200 with the body */
    SRV_BAD,        /* 200 with a body of the same length that differs in one byte */
    SRV_HALF,       /* 200 announcing the whole body, half of it, then silence */
    SRV_SILENT,     /* reads the request and never answers */
    SRV_LIE,        /* 200 announcing LIE_LEN bytes, the body, then close */
    SRV_ENDLESS,    /* 200 without Content-Length: ENDLESS_N bodies, then close */
    SRV_CLOSE_HALF, /* 200 announcing the whole body, half of it, then close */
    SRV_HEADERS,    /* 200 headers, then silence */
    SRV_BAD_HALF,   /* as SRV_HALF, with a wrong byte in that half */
    SRV_NORANGE,    /* as SRV_OK, ignoring Range (always 200 and the whole body) */
    SRV_BADRANGE,   /* a Range is answered 206 with the wrong Content-Range */
    SRV_BUSY,       /* 503 naming the relay at srv.hint_port (X-Apt-Dht-Relays) */
    SRV_NOTHERE,    /* 404 */
    SRV_LATE,       /* as SRV_OK, LATE_MS after the request */
};

#define LATE_MS 30

#define LIE_LEN (200 * BODY_LEN)
#define ENDLESS_N 5

struct conn {
    struct srv *s;
    int fd;
    char buf[4096];
    size_t n;
    struct loop_timer later; /* SRV_LATE's answer */
};

struct srv {
    int lfd;
    uint16_t port;
    enum srv_mode mode;
    int requests;
    int ranged;            /* requests that asked a Range */
    long last_offset;      /* the last Range's first byte; -1 = none */
    uint16_t hint_port;    /* SRV_BUSY */
    bool pulled;           /* a request carried X-Apt-Dht-Fetch */
    struct conn *conns[8]; /* kept open until srv_stop */
    size_t n_conns;
};

/* One test's world. */
static struct {
    char dir[PATH_MAX];
    struct loop *loop;
    struct cache *cache;
    struct fetcher *f;
    struct loop_timer guard;
    bool timed_out;
    uint8_t body[BODY_LEN];
    struct hashdb_entry expect;
    struct dl *d;
    int peer_results, last_peer_result;
    int n_by_result[3]; /* by enum peer_result */
    int rtt_samples;
    uint64_t peer_bytes, mirror_bytes;
    int commits;
    bool stop_at_peer_byte;
    bool unverified_seen; /* a reader could have had a byte of a peer's */
    /* the loop-turn budget case: mirror bytes taken in the current loop turn, the most
     * taken in any one turn, the turns that took any */
    uint64_t turn, turn_bytes, max_turn_bytes, busy_turns;
} w;

/* ---- the servers ---- */

static void send_all(int fd, const void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
        if (r <= 0)
            return;
        off += (size_t)r;
    }
}

/* The first byte of a "Range: bytes=N-" in the request, or -1. */
static long range_of(const char *req)
{
    const char *r = strstr(req, "\r\nRange: bytes=");
    return r ? strtol(r + 15, NULL, 10) : -1;
}

static void answer_now(struct conn *c);

static void on_later(struct loop *l, struct loop_timer *t, void *ud)
{
    answer_now(ud);
}

static void answer(struct conn *c)
{
    if (c->s->mode == SRV_LATE) {
        loop_timer_init(&c->later, on_later, c);
        loop_timer_start(w.loop, &c->later, LATE_MS);
        return;
    }
    answer_now(c);
}

static void answer_now(struct conn *c)
{
    struct srv *s = c->s;
    char hdr[256];
    uint8_t body[BODY_LEN];
    s->requests++;
    s->last_offset = range_of(c->buf);
    if (s->last_offset >= 0)
        s->ranged++;
    if (s->mode == SRV_SILENT)
        return;
    s->pulled |= strstr(c->buf, "X-Apt-Dht-Fetch: " KEY "\r\n") != NULL;
    if (s->mode == SRV_BUSY || s->mode == SRV_NOTHERE) {
        int n = s->mode == SRV_BUSY
                    ? snprintf(hdr, sizeof hdr,
                               "HTTP/1.1 503 Busy\r\nX-Apt-Dht-Relays: bogus, :80, 1.2.3.4:99999, "
                               "[::1]:0, 1.2.3.4:, [::1:80, 127.0.0.1:%u\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n",
                               s->hint_port)
                    : snprintf(hdr, sizeof hdr, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                                "Connection: close\r\n\r\n");
        send_all(c->fd, hdr, (size_t)n);
        shutdown(c->fd, SHUT_WR);
        return;
    }
    memcpy(body, w.body, sizeof body);
    if (s->mode == SRV_LIE || s->mode == SRV_ENDLESS) {
        int n = s->mode == SRV_LIE
                    ? snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
                               LIE_LEN)
                    : snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        send_all(c->fd, hdr, (size_t)n);
        for (int i = 0; i < (s->mode == SRV_LIE ? 1 : ENDLESS_N); i++)
            send_all(c->fd, body, BODY_LEN);
        shutdown(c->fd, SHUT_WR);
        return;
    }
    if (s->mode == SRV_BAD || s->mode == SRV_BAD_HALF)
        body[BODY_LEN / 4] ^= 1;
    size_t off = s->last_offset > 0 && s->last_offset < BODY_LEN && s->mode != SRV_NORANGE
                     ? (size_t)s->last_offset
                     : 0;
    bool half = s->mode == SRV_HALF || s->mode == SRV_BAD_HALF || s->mode == SRV_CLOSE_HALF;
    int n = off ? snprintf(hdr, sizeof hdr,
                           "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
                           "Content-Range: bytes %zu-%d/%d\r\n%s\r\n",
                           BODY_LEN - off, s->mode == SRV_BADRANGE ? off + 1 : off, BODY_LEN - 1,
                           BODY_LEN, half ? "" : "Connection: close\r\n")
                : snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n",
                           BODY_LEN, half || s->mode == SRV_HEADERS ? "" : "Connection: close\r\n");
    send_all(c->fd, hdr, (size_t)n);
    if (s->mode == SRV_HEADERS)
        return;
    size_t len = BODY_LEN - off;
    send_all(c->fd, body + off, half ? len / 2 : len);
    if (!half || s->mode == SRV_CLOSE_HALF)
        shutdown(c->fd, SHUT_WR);
}

static void on_client(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct conn *c = ud;
    ssize_t r = read(fd, c->buf + c->n, sizeof c->buf - 1 - c->n);
    if (r <= 0) {
        loop_del_fd(l, fd); /* closed at srv_stop */
        return;
    }
    c->n += (size_t)r;
    c->buf[c->n] = '\0';
    if (strstr(c->buf, "\r\n\r\n"))
        answer(c);
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct srv *s = ud;
    int cfd = accept(fd, NULL, NULL);
    if (cfd < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c || s->n_conns == sizeof s->conns / sizeof s->conns[0]) {
        free(c);
        close(cfd);
        return;
    }
    c->s = s;
    c->fd = cfd;
    s->conns[s->n_conns++] = c;
    loop_add_fd(l, cfd, EPOLLIN, on_client, c);
}

/* A loopback port nothing listens on. */
static uint16_t closed_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void srv_start(struct srv *s, enum srv_mode mode)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->last_offset = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(s->lfd >= 0);
    CU_ASSERT_FATAL(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT_FATAL(listen(s->lfd, 8) == 0);
    CU_ASSERT_FATAL(getsockname(s->lfd, (struct sockaddr *)&sa, &len) == 0);
    s->port = ntohs(sa.sin_port);
    CU_ASSERT_FATAL(loop_add_fd(w.loop, s->lfd, EPOLLIN, on_accept, s) == 0);
}

static void srv_stop(struct srv *s)
{
    for (size_t i = 0; i < s->n_conns; i++) {
        loop_timer_stop(w.loop, &s->conns[i]->later);
        loop_del_fd(w.loop, s->conns[i]->fd);
        close(s->conns[i]->fd);
        free(s->conns[i]);
    }
    loop_del_fd(w.loop, s->lfd);
    close(s->lfd);
}

static void mirror_url(char *out, size_t n, uint16_t port)
{
    snprintf(out, n, "http://127.0.0.1:%u/debian/pool/main/a/a_1.0_all.deb", port);
}

static void add_peer(struct dl *d, const struct srv *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/~/sha256/00", s->port);
    CU_ASSERT_EQUAL(dl_add_peer(d, (struct sockaddr *)&sa, sizeof sa, url), 0);
}

/* ---- the fetcher's callbacks ---- */

static void on_commit(void *ud, const char *key, const char *path, const uint8_t sha256[32])
{
    w.commits++;
    if (strcmp(key, KEY) != 0)
        return; /* a file the index does not know (the ceiling cases) */
    CU_ASSERT_EQUAL(memcmp(sha256, w.expect.sha256, 32), 0);
}

static void on_peer_result(void *ud, const struct sockaddr *peer, enum peer_result r,
                           uint64_t bytes, uint64_t ms)
{
    w.peer_results++;
    w.last_peer_result = (int)r;
    w.n_by_result[r]++;
}

static uint32_t peer_deadline_ms(void *ud, const struct sockaddr *peer)
{
    return 100;
}

static void on_peer_rtt(void *ud, const struct sockaddr *peer, uint64_t connect_us,
                        uint64_t headers_us)
{
    w.rtt_samples++;
}

static void on_bytes(void *ud, bool from_peer, size_t n)
{
    if (from_peer) {
        w.peer_bytes += n;
        if (w.d && dl_available(w.d) > 0)
            w.unverified_seen = true;
        if (w.stop_at_peer_byte)
            loop_stop(w.loop);
    } else {
        w.mirror_bytes += n;
        if (loop_turn(w.loop) != w.turn) {
            w.turn = loop_turn(w.loop);
            w.turn_bytes = 0;
            w.busy_turns++;
        }
        w.turn_bytes += n;
        if (w.turn_bytes > w.max_turn_bytes)
            w.max_turn_bytes = w.turn_bytes;
    }
}

static void on_guard(struct loop *l, struct loop_timer *t, void *ud)
{
    w.timed_out = true;
    loop_stop(l);
}

static void on_change(void *ud)
{
    enum dl_state st = dl_state(w.d);
    if (st == DL_DONE || st == DL_FAILED || st == DL_NOT_MODIFIED)
        loop_stop(w.loop);
}

/* ---- set-up ---- */

static void setup(void)
{
    memset(&w, 0, sizeof w);
    snprintf(w.dir, sizeof w.dir, "%s/apt-dht-test-fetch-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(w.dir));
    CU_ASSERT_EQUAL_FATAL(loop_new(&w.loop), 0);
    CU_ASSERT_EQUAL_FATAL(cache_new(&w.cache, w.dir, 1 << 20), 0);
    struct fetch_opts fo = {
        .connect_timeout_s = 10,
        .stall_timeout_s = 30,
        .user_agent = "test_fetch",
        .on_commit = on_commit,
        .on_peer_result = on_peer_result,
        .peer_deadline_ms = peer_deadline_ms,
        .on_peer_rtt = on_peer_rtt,
        .on_bytes = on_bytes,
    };
    CU_ASSERT_EQUAL_FATAL(fetcher_new(&w.f, w.loop, w.cache, &fo), 0);
    for (size_t i = 0; i < BODY_LEN; i++)
        w.body[i] = (uint8_t)(i * 7 + 3);
    unsigned n = 0;
    w.expect.size = BODY_LEN;
    w.expect.have_sha256 = true;
    CU_ASSERT_FATAL(EVP_Digest(w.body, BODY_LEN, w.expect.sha256, &n, EVP_sha256(), NULL) == 1);
    loop_timer_init(&w.guard, on_guard, NULL);
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    fetcher_free(w.f);
    cache_free(w.cache);
    loop_timer_stop(w.loop, &w.guard);
    loop_free(w.loop);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w.dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Starts the download of KEY from the given mirror ports, watched by on_change. */
static struct dl *start(const uint16_t *ports, size_t n, bool await_peers, uint32_t budget_ms)
{
    static char urls[FETCH_MAX_URLS][128];
    struct dl_request q = {
        .key = KEY,
        .n_urls = n,
        .immutable = true,
        .cacheable = true,
        .expect = &w.expect,
        .await_peers = await_peers,
        .peer_budget_ms = budget_ms,
    };
    for (size_t i = 0; i < n; i++) {
        mirror_url(urls[i], sizeof urls[i], ports[i]);
        q.urls[i] = urls[i];
    }
    int err = 0;
    struct dl *d = fetcher_get(w.f, &q, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl_watch(d, on_change, NULL));
    w.d = d;
    return d;
}

/* Runs the loop until the download ends (or the loop is stopped, or the guard). */
static void run(void)
{
    CU_ASSERT_EQUAL(loop_timer_start(w.loop, &w.guard, 10000), 0);
    CU_ASSERT_EQUAL(loop_run(w.loop), 0);
    loop_timer_stop(w.loop, &w.guard);
    CU_ASSERT_FALSE(w.timed_out);
}

static void check_body(struct dl *d)
{
    uint8_t buf[BODY_LEN];
    CU_ASSERT_EQUAL(dl_state(d), DL_DONE);
    CU_ASSERT_EQUAL(dl_available(d), BODY_LEN);
    CU_ASSERT_EQUAL(dl_read(d, 0, buf, sizeof buf), BODY_LEN);
    CU_ASSERT_EQUAL(memcmp(buf, w.body, BODY_LEN), 0);
    CU_ASSERT_TRUE(cache_has(w.cache, KEY));
    CU_ASSERT_EQUAL(w.commits, 1);
    CU_ASSERT_FALSE(w.unverified_seen);
}

static void done(struct dl *d)
{
    dl_unref(d);
    w.d = NULL;
}

/* ---- cases ---- */

static void test_mirror_verified(void)
{
    struct srv m;
    setup();
    srv_start(&m, SRV_OK);
    struct dl *d = start(&m.port, 1, false, 0);
    CU_ASSERT_FALSE(dl_claim_lookup(d)); /* it awaits no peers */
    run();
    check_body(d);
    CU_ASSERT_EQUAL(dl_status(d), 200);
    CU_ASSERT_EQUAL(strncmp(dl_source(d), "mirror http://127.0.0.1:", 24), 0);
    CU_ASSERT_EQUAL(w.mirror_bytes, BODY_LEN);
    done(d);
    srv_stop(&m);
    teardown();
}

static void test_mirror_failover(void)
{
    struct srv m;
    setup();
    srv_start(&m, SRV_OK);
    uint16_t ports[2] = {closed_port(), m.port};
    struct dl *d = start(ports, 2, false, 0);
    run();
    check_body(d);
    char want[128];
    snprintf(want, sizeof want, "mirror http://127.0.0.1:%u/", m.port);
    CU_ASSERT_EQUAL(strncmp(dl_source(d), want, strlen(want)), 0);
    done(d);
    srv_stop(&m);
    teardown();
}

/* A mirror's wrong file streams but for its last byte, and is never cached. */
static void test_mirror_mismatch(void)
{
    struct srv m;
    setup();
    srv_start(&m, SRV_BAD);
    struct dl *d = start(&m.port, 1, false, 0);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_TRUE(dl_hash_mismatch(d));
    CU_ASSERT_EQUAL(dl_status(d), 502);
    CU_ASSERT_EQUAL(dl_available(d), BODY_LEN - 1);
    CU_ASSERT_FALSE(cache_has(w.cache, KEY));
    CU_ASSERT_EQUAL(w.commits, 0);
    done(d);
    srv_stop(&m);
    teardown();
}

static void test_good_peer(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 5000);
    CU_ASSERT_TRUE(dl_claim_lookup(d));
    CU_ASSERT_FALSE(dl_claim_lookup(d)); /* once per download */
    add_peer(d, &p);
    run();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", p.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT_EQUAL(w.peer_results, 1);
    CU_ASSERT_EQUAL(w.last_peer_result, PEER_OK);
    CU_ASSERT_EQUAL(w.peer_bytes, BODY_LEN);
    CU_ASSERT_EQUAL(m.requests, 0);
    CU_ASSERT_FALSE(dl_claim_lookup(d)); /* ended */
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A lying peer is reported, its bytes are never readable, and the mirror serves. */
static void test_bad_peer_then_mirror(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_BAD);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(w.peer_results, 1);
    CU_ASSERT_EQUAL(w.last_peer_result, PEER_BAD_DATA);
    CU_ASSERT_EQUAL(w.peer_bytes, BODY_LEN);
    CU_ASSERT_EQUAL(m.requests, 1);
    CU_ASSERT_EQUAL(strncmp(dl_source(d), "mirror ", 7), 0);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* Two holders asked together, the liar faster: its body fails verification, it is
 * reported, and the other one, asked beside it and dropped when the liar's first byte
 * won, is asked again and serves; the mirror is not asked. */
static void test_bad_peer_beside_good(void)
{
    struct srv m, p1, p2;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p1, SRV_BAD);
    srv_start(&p2, SRV_LATE);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p1);
    add_peer(d, &p2);
    dl_peers_done(d);
    run();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", p2.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_BAD_DATA], 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_OK], 1);
    CU_ASSERT_EQUAL(p2.requests, 2); /* beside the liar, then again */
    CU_ASSERT_EQUAL(m.requests, 0);
    done(d);
    srv_stop(&m);
    srv_stop(&p1);
    srv_stop(&p2);
    teardown();
}

/* The liar and a good peer answering at once, a third holder named: the liar's first
 * byte wins and its whole (tiny) answer is in at once, while the good peer's transfer,
 * dropped, still holds its slot. The good one is asked again in the other slot, and the
 * third, for which no slot is left, waits instead of failing the download. */
static void test_bad_peer_beside_good_fast(void)
{
    for (int round = 0; round < 20; round++) {
        struct srv m, p1, p2, p3;
        setup();
        srv_start(&m, SRV_OK);
        srv_start(&p1, SRV_BAD);
        srv_start(&p2, SRV_OK);
        srv_start(&p3, SRV_OK);
        struct dl *d = start(&m.port, 1, true, 5000);
        add_peer(d, &p1);
        add_peer(d, &p2);
        add_peer(d, &p3);
        dl_peers_done(d);
        run();
        check_body(d);
        CU_ASSERT_EQUAL(m.requests, 0);
        CU_ASSERT_EQUAL(w.n_by_result[PEER_OK], 1);
        if (dl_state(d) != DL_DONE)
            fprintf(stderr, "round %d: %d %s\n", round, dl_status(d), dl_reason(d));
        done(d);
        srv_stop(&m);
        srv_stop(&p1);
        srv_stop(&p2);
        srv_stop(&p3);
        teardown();
    }
}

/* Elapsed ms of a run. */
static uint64_t run_ms(void)
{
    uint64_t t0 = loop_now_ms();
    run();
    return loop_now_ms() - t0;
}

/* A holder that accepts and never answers costs nothing: holders are asked two at a
 * time, and the one asked beside it wins at once; the silent one is dropped, not judged
 * (it was not past its deadline), the mirror never asked. */
static void test_silent_peer_paired(void)
{
    struct srv m, p1, p2;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p1, SRV_SILENT);
    srv_start(&p2, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p1);
    add_peer(d, &p2);
    dl_peers_done(d);
    run();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", p2.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT_EQUAL(p1.requests, 1);
    CU_ASSERT_EQUAL(p2.requests, 1);
    CU_ASSERT_EQUAL(m.requests, 0);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_OK], 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 0);
    done(d);
    srv_stop(&m);
    srv_stop(&p1);
    srv_stop(&p2);
    teardown();
}

/* Two holders that accept and never answer, asked together: past their deadline (100 ms
 * here) the next one is asked beside them and wins; both silent ones are reported, the
 * mirror never asked. */
static void test_silent_peer_hedged(void)
{
    struct srv m, p1, p2, p3;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p1, SRV_SILENT);
    srv_start(&p2, SRV_SILENT);
    srv_start(&p3, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p1);
    add_peer(d, &p2);
    add_peer(d, &p3);
    dl_peers_done(d);
    uint64_t ms = run_ms();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", p3.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT(ms < 1000); /* a deadline, not a budget or a connect timeout */
    CU_ASSERT_EQUAL(p1.requests, 1);
    CU_ASSERT_EQUAL(p2.requests, 1);
    CU_ASSERT_EQUAL(p3.requests, 1);
    CU_ASSERT_EQUAL(m.requests, 0);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_OK], 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 2); /* the silent ones */
    CU_ASSERT(w.rtt_samples >= 1);
    done(d);
    srv_stop(&m);
    srv_stop(&p1);
    srv_stop(&p2);
    srv_stop(&p3);
    teardown();
}

static void test_silent_peer_given_up(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_SILENT);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    uint64_t ms = run_ms();
    check_body(d);
    CU_ASSERT(ms >= 1900 && ms < 4000);
    CU_ASSERT_EQUAL(m.requests, 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 1);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A peer that sends half the file and stalls is abandoned below the speed floor and the
 * mirror is asked for the rest only (Range), so the body is whole and verifies. */
static void test_stalled_peer_resumed_from_mirror(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_HALF);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(m.requests, 1);
    CU_ASSERT_EQUAL(m.ranged, 1);
    CU_ASSERT_EQUAL(m.last_offset, BODY_LEN / 2);
    CU_ASSERT_EQUAL(w.mirror_bytes, BODY_LEN / 2);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_BAD_DATA], 0);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A peer that closes after half the file: the next peer is asked for the rest. */
static void test_dead_peer_resumed_from_peer(void)
{
    struct srv m, p1, p2;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p1, SRV_CLOSE_HALF);
    srv_start(&p2, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p1);
    w.stop_at_peer_byte = true; /* p2 is named once p1 sends: it is not asked beside p1 */
    run();
    w.stop_at_peer_byte = false;
    add_peer(d, &p2);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(m.requests, 0);
    CU_ASSERT_EQUAL(p2.ranged, 1);
    CU_ASSERT_EQUAL(p2.last_offset, BODY_LEN / 2);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_OK], 1);
    done(d);
    srv_stop(&m);
    srv_stop(&p1);
    srv_stop(&p2);
    teardown();
}

/* A resumed request answered 200 (no Range support): the body starts over from it. */
static void test_resume_answered_whole(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_NORANGE);
    srv_start(&p, SRV_CLOSE_HALF);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(m.ranged, 1);
    CU_ASSERT_EQUAL(w.mirror_bytes, BODY_LEN);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A 206 whose Content-Range is not the rest asked for is refused: the next source. */
static void test_wrong_range_refused(void)
{
    struct srv m, p1, p2;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p1, SRV_CLOSE_HALF);
    srv_start(&p2, SRV_BADRANGE);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p1);
    w.stop_at_peer_byte = true; /* p2 is named once p1 sends: it is not asked beside p1 */
    run();
    w.stop_at_peer_byte = false;
    add_peer(d, &p2);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(p2.ranged, 1);
    CU_ASSERT_EQUAL(m.ranged, 1); /* the mirror sent the rest */
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 2);
    done(d);
    srv_stop(&m);
    srv_stop(&p1);
    srv_stop(&p2);
    teardown();
}

/* A body of several sources that fails verification: nobody is banned (either may have
 * lied), and the file starts over from the mirror, which gives the right one. */
static void test_mixed_body_restarts_from_mirror(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_BAD_HALF);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(m.requests, 2); /* the rest, then the whole file */
    CU_ASSERT_EQUAL(m.ranged, 1);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_BAD_DATA], 0);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* Headers, then nothing: below the floor after its grace, and the mirror serves. */
static void test_headers_then_stall(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_HEADERS);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    dl_peers_done(d);
    uint64_t ms = run_ms();
    check_body(d);
    CU_ASSERT(ms < 3000);
    CU_ASSERT_EQUAL(m.requests, 1);
    CU_ASSERT_EQUAL(m.ranged, 0);
    CU_ASSERT_EQUAL(w.n_by_result[PEER_FAILED], 1);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A busy peer's 503 names a relay (after malformed entries, which are skipped): the relay
 * is tried next and serves; the busy peer is not reported as failed, and the mirror is
 * not asked. */
static void test_busy_peer_names_relay(void)
{
    struct srv m, busy, relay;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&relay, SRV_OK);
    srv_start(&busy, SRV_BUSY);
    busy.hint_port = relay.port;
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &busy);
    dl_peers_done(d);
    run();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", relay.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT_EQUAL(busy.requests, 1);
    CU_ASSERT_EQUAL(relay.requests, 1);
    CU_ASSERT_EQUAL(w.peer_results, 1); /* the relay's PEER_OK only */
    CU_ASSERT_EQUAL(w.last_peer_result, PEER_OK);
    CU_ASSERT_EQUAL(m.requests, 0);
    done(d);
    srv_stop(&m);
    srv_stop(&busy);
    srv_stop(&relay);
    teardown();
}

/* An owner is asked to pull (X-Apt-Dht-Fetch: our key); its 404 is no failure of its
 * own, and the mirror serves. */
static void test_owner_declines(void)
{
    struct srv m, o;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&o, SRV_NOTHERE);
    struct dl *d = start(&m.port, 1, true, 5000);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(o.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/~/sha256/00", o.port);
    CU_ASSERT_EQUAL(dl_add_owner(d, (struct sockaddr *)&sa, sizeof sa, url, true), 0);
    CU_ASSERT_EQUAL(dl_add_owner(d, (struct sockaddr *)&sa, sizeof sa, url, true), -EEXIST);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_TRUE(o.pulled);
    CU_ASSERT_EQUAL(w.peer_results, 0);
    CU_ASSERT_EQUAL(m.requests, 1);
    done(d);
    srv_stop(&m);
    srv_stop(&o);
    teardown();
}

static void add_owner(struct dl *d, const struct srv *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/~/sha256/00", s->port);
    CU_ASSERT_EQUAL(dl_add_owner(d, (struct sockaddr *)&sa, sizeof sa, url, true), 0);
}

/* An owner asked to fetch for us that does not answer within its deadline is not
 * hedged by the next owner (which would fetch from the mirror too): the next is asked
 * only when the first has given up (2 s), and serves. */
static void test_late_owner_not_hedged(void)
{
    struct srv m, o1, o2;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&o1, SRV_SILENT);
    srv_start(&o2, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_owner(d, &o1);
    add_owner(d, &o2);
    dl_peers_done(d);
    uint64_t ms = run_ms();
    check_body(d);
    char want[64];
    snprintf(want, sizeof want, "peer 127.0.0.1:%u", o2.port);
    CU_ASSERT_STRING_EQUAL(dl_source(d), want);
    CU_ASSERT(ms >= 2000); /* o1's give-up time: o2 was not asked at o1's deadline */
    CU_ASSERT_EQUAL(o1.requests, 1);
    CU_ASSERT_EQUAL(o2.requests, 1);
    CU_ASSERT_EQUAL(m.requests, 0);
    done(d);
    srv_stop(&m);
    srv_stop(&o1);
    srv_stop(&o2);
    teardown();
}

/* What a relay sees of a lying peer's body, then the mirror's. */
static struct {
    uint64_t most_from_peer; /* dl_relay_available at its largest while a peer sent */
    unsigned gens;           /* body generations seen */
    unsigned last_gen;
} relay_view;

static void relay_watch(void *ud)
{
    struct dl *d = ud;
    if (dl_body_gen(d) != relay_view.last_gen) {
        relay_view.last_gen = dl_body_gen(d);
        relay_view.gens++;
    }
    if (strncmp(dl_source(d), "peer ", 5) == 0 && dl_state(d) == DL_STREAMING &&
        dl_relay_available(d) > relay_view.most_from_peer)
        relay_view.most_from_peer = dl_relay_available(d);
}

/* A relay of a download in flight: it may send a peer's unverified bytes as they come,
 * all but the last; the lying peer's body and the mirror's are two generations (a relay
 * that sent bytes of the first must cut its response); once DONE, every byte, and the
 * download is found by its SHA-256 only while in flight. */
static void test_relay_view(void)
{
    struct srv m, p;
    uint64_t size = 0;
    setup();
    memset(&relay_view, 0, sizeof relay_view);
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_BAD);
    struct dl *d = start(&m.port, 1, true, 5000);
    CU_ASSERT_PTR_EQUAL(fetcher_find_sha256(w.f, w.expect.sha256, &size), d);
    CU_ASSERT_EQUAL(size, BODY_LEN);
    dl_relay_count(d, +1); /* a peer's bytes are notified too */
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl_watch(d, relay_watch, d));
    relay_view.last_gen = dl_body_gen(d);
    add_peer(d, &p);
    dl_peers_done(d);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(relay_view.most_from_peer, BODY_LEN - 1); /* the last byte held back */
    CU_ASSERT(relay_view.gens >= 2);                         /* the peer's, the mirror's */
    CU_ASSERT_EQUAL(dl_relay_available(d), BODY_LEN);
    CU_ASSERT_PTR_NULL(fetcher_find_sha256(w.f, w.expect.sha256, &size)); /* ended */
    dl_relay_count(d, -1);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* Starts a download of key from port with no expectation (the index does not know it). */
static struct dl *start_unknown(const char *key, uint16_t port, bool immutable)
{
    char url[128];
    struct dl_request q = {.key = key, .n_urls = 1, .immutable = immutable, .cacheable = true};
    snprintf(url, sizeof url, "http://127.0.0.1:%u/debian/%s", port, immutable ? "x.deb" : "Packages");
    q.urls[0] = url;
    int err = 0;
    struct dl *d = fetcher_get(w.f, &q, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl_watch(d, on_change, NULL));
    w.d = d;
    return d;
}

/* A Content-Length under the ceiling that lies (800 KiB announced, 4 KiB sent) while the
 * cache holds 900 KiB of its 1 MiB: no room is taken for bytes that never come, so the
 * cached file stays. */
static void test_lying_length_evicts_nothing(void)
{
    struct srv m;
    char tmp[PATH_MAX];
    static char big[900 << 10];
    setup();
    int fd = cache_tmp_create(w.cache, tmp, sizeof tmp);
    CU_ASSERT_EQUAL(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    CU_ASSERT_EQUAL(cache_commit(w.cache, tmp, "mirror.example/debian/pool/old.deb", 0, true, NULL),
                    0);
    srv_start(&m, SRV_LIE);
    struct dl *d = start_unknown("mirror.example/debian/pool/lie.deb", m.port, true);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_TRUE(cache_has(w.cache, "mirror.example/debian/pool/old.deb"));
    CU_ASSERT_FALSE(cache_has(w.cache, "mirror.example/debian/pool/lie.deb"));
    CU_ASSERT_EQUAL(cache_reserved(w.cache), 0); /* released when it ended */
    done(d);
    srv_stop(&m);
    teardown();
}

/* A Content-Length above the ceiling (cache.max_object here 8 KiB) fails the download
 * before a body byte, with a reason. */
static void test_length_above_ceiling(void)
{
    struct srv m;
    setup();
    fetcher_set_ceilings(w.f, 2 * BODY_LEN, 0);
    srv_start(&m, SRV_LIE);
    struct dl *d = start_unknown("mirror.example/debian/pool/lie.deb", m.port, true);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_EQUAL(dl_status(d), 502);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl_reason(d), "announces 819200 bytes, more than the 8192"));
    CU_ASSERT_EQUAL(dl_available(d), 0);
    CU_ASSERT_EQUAL(w.mirror_bytes, 0);
    CU_ASSERT_EQUAL(m.requests, 1);
    done(d);
    srv_stop(&m);
    teardown();
}

/* A volatile file with no length whose body runs past cache.max_index (here 12 KiB of
 * 20 KiB sent) fails when it passes, and is not cached; under the ceiling it is. */
static void test_body_past_ceiling(void)
{
    struct srv m;
    setup();
    fetcher_set_ceilings(w.f, 0, 3 * BODY_LEN);
    srv_start(&m, SRV_ENDLESS);
    const char *key = "mirror.example/debian/dists/s/main/binary-all/Packages";
    struct dl *d = start_unknown(key, m.port, false);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl_reason(d), "more than the 12288 bytes allowed"));
    CU_ASSERT(w.mirror_bytes <= 3 * BODY_LEN);
    CU_ASSERT_FALSE(cache_has(w.cache, key));
    done(d);
    fetcher_set_ceilings(w.f, 0, ENDLESS_N * BODY_LEN);
    d = start_unknown(key, m.port, false);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_DONE);
    CU_ASSERT_TRUE(cache_has(w.cache, key));
    done(d);
    srv_stop(&m);
    teardown();
}

/* No peer within the budget: the mirror is used and later peers are refused. */
static void test_budget_runs_out(void)
{
    struct srv m;
    setup();
    srv_start(&m, SRV_OK);
    struct dl *d = start(&m.port, 1, true, 100);
    CU_ASSERT_EQUAL(dl_available(d), 0);
    run();
    check_body(d);
    CU_ASSERT_EQUAL(m.requests, 1);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    CU_ASSERT_EQUAL(dl_add_peer(d, (struct sockaddr *)&sa, sizeof sa, "http://x/~/"), -EAGAIN);
    CU_ASSERT_EQUAL(w.peer_results, 0);
    done(d);
    srv_stop(&m);
    teardown();
}

/* The fetcher starts with a 30 s stall timeout; after fetcher_reconfigure the next
 * transfer gives up on a silent mirror after 1 s, well inside the 10 s guard. */
static void test_reconfigure(void)
{
    struct srv m;
    setup();
    srv_start(&m, SRV_SILENT);
    fetcher_reconfigure(w.f, 1, 1);
    struct dl *d = start(&m.port, 1, false, 0);
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_EQUAL(dl_status(d), 504);
    CU_ASSERT_EQUAL(m.requests, 1);
    done(d);
    srv_stop(&m);
    teardown();
}

/* The proxy shuts down while a peer is sending: the reader still holding the download
 * sees it failed and none of the peer's unverified bytes. */
static void test_shutdown_during_peer(void)
{
    struct srv m, p;
    setup();
    srv_start(&m, SRV_OK);
    srv_start(&p, SRV_HALF);
    struct dl *d = start(&m.port, 1, true, 5000);
    add_peer(d, &p);
    w.stop_at_peer_byte = true;
    run();
    CU_ASSERT(w.peer_bytes > 0);
    fetcher_free(w.f);
    w.f = NULL;
    CU_ASSERT_EQUAL(dl_state(d), DL_FAILED);
    CU_ASSERT_EQUAL(dl_status(d), 503);
    CU_ASSERT_EQUAL(dl_available(d), 0);
    CU_ASSERT_FALSE(w.unverified_seen);
    done(d);
    srv_stop(&m);
    srv_stop(&p);
    teardown();
}

/* A mirror faster than the receiver: a thread writes FAST_LEN bytes as fast as loopback
 * takes them, so the socket never stops being readable. */
#define FAST_LEN (24u * 1024u * 1024u)

static void *fast_server(void *arg)
{
    int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
    char req[4096], hdr[128];
    static uint8_t chunk[64 * 1024];
    if (fd < 0)
        return NULL;
    if (read(fd, req, sizeof req) > 0) {
        int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n"
                                          "Connection: close\r\n\r\n", FAST_LEN);
        send_all(fd, hdr, (size_t)n);
        for (size_t off = 0; off < FAST_LEN; off += sizeof chunk)
            send_all(fd, chunk, sizeof chunk);
    }
    close(fd);
    return NULL;
}

/* The loop stays responsive under a fast transfer: no loop turn takes more than the
 * per-transfer budget (1 MiB, plus a receive buffer over it and the one held back by
 * the pause); without the budget libcurl reads the whole body in one or two turns. */
static void test_fast_mirror_yields_turns(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    pthread_t th;
    char url[128];
    setup();
    cache_set_max_size(w.cache, 256u << 20);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(lfd >= 0);
    CU_ASSERT_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CU_ASSERT_FATAL(listen(lfd, 1) == 0);
    CU_ASSERT_FATAL(getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, fast_server, &lfd) == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/debian/pool/main/b/big_1.0_all.deb",
             ntohs(sa.sin_port));
    struct dl_request q = {
        .key = "mirror.example/debian/pool/main/b/big_1.0_all.deb",
        .urls = {url},
        .n_urls = 1,
        .immutable = true,
        .cacheable = true,
    };
    int err = 0;
    struct dl *d = fetcher_get(w.f, &q, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl_watch(d, on_change, NULL));
    w.d = d;
    run();
    CU_ASSERT_EQUAL(dl_state(d), DL_DONE);
    CU_ASSERT_EQUAL(dl_available(d), FAST_LEN);
    CU_ASSERT_EQUAL(w.mirror_bytes, FAST_LEN);
    CU_ASSERT(w.max_turn_bytes <= 2u * 1024u * 1024u);
    CU_ASSERT(w.busy_turns >= FAST_LEN / (2u * 1024u * 1024u));
    if (w.max_turn_bytes > 2u * 1024u * 1024u)
        fprintf(stderr, "one loop turn took %llu bytes of one transfer (%llu turns)\n",
                (unsigned long long)w.max_turn_bytes, (unsigned long long)w.busy_turns);
    done(d);
    pthread_join(th, NULL);
    close(lfd);
    teardown();
}

int main(void)
{
    log_setup(getenv("TEST_FETCH_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, 0);
    static const struct unit_case cases[] = {
        {"mirror, verified and committed", test_mirror_verified},
        {"failover to the next mirror", test_mirror_failover},
        {"mirror's wrong file: tail held back, not cached", test_mirror_mismatch},
        {"a good peer serves, the mirror is not asked", test_good_peer},
        {"a busy peer's 503 names a relay, tried next", test_busy_peer_names_relay},
        {"a relay's view: a peer's bytes but the last, generations, DONE", test_relay_view},
        {"an owner asked to pull declines with 404: no failure, the mirror serves",
         test_owner_declines},
        {"a late owner is not hedged by the next owner", test_late_owner_not_hedged},
        {"a lying peer is reported, then the mirror", test_bad_peer_then_mirror},
        {"a liar asked beside a good peer wins the race, fails; the good one serves",
         test_bad_peer_beside_good},
        {"a liar and a good peer at once, a third named: the good one serves",
         test_bad_peer_beside_good_fast},
        {"the peer budget runs out: the mirror", test_budget_runs_out},
        {"fetcher_reconfigure reaches the next transfer", test_reconfigure},
        {"shutdown while a peer sends shows none of its bytes", test_shutdown_during_peer},
        {"a silent peer costs nothing: the one asked beside it wins", test_silent_peer_paired},
        {"two silent peers are hedged by the next, which wins", test_silent_peer_hedged},
        {"the only holder silent: given up after 2 s", test_silent_peer_given_up},
        {"a stalled peer: the mirror sends the rest (Range)",
         test_stalled_peer_resumed_from_mirror},
        {"a peer dying mid-file: the next peer sends the rest", test_dead_peer_resumed_from_peer},
        {"a resumed request answered 200 starts over", test_resume_answered_whole},
        {"a 206 of another range is refused", test_wrong_range_refused},
        {"a mixed body failing: from the mirror, nobody banned",
         test_mixed_body_restarts_from_mirror},
        {"headers then silence: below the floor, the mirror", test_headers_then_stall},
        {"a lying Content-Length evicts nothing", test_lying_length_evicts_nothing},
        {"a Content-Length above the ceiling fails at once", test_length_above_ceiling},
        {"a body past the ceiling fails, is not cached", test_body_past_ceiling},
        {"a fast mirror leaves the loop a turn every 1 MiB", test_fast_mirror_yields_turns},
        {NULL, NULL},
    };
    return unit_run("fetch", cases);
}

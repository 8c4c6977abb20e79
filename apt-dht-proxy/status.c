/* status.c - the status module: which requests are its own, who may read them, and the
 * figures every page is drawn from.
 *
 * Nothing here is on the serving path except status_note, which a finished request calls
 * (a scan of a 64-slot table and, for a failure, a copy into a ring). The counters
 * themselves live in stats.h and are only read here. A heartbeat timer runs once a second:
 * it closes the history's minute when the minute changes, and measures how late it fires,
 * which is how a stalled loop shows (a loop that is stalled cannot answer /~/health; once
 * it runs again, /~/health says it stalled, for a minute). Under a service manager with a
 * watchdog (systemd's WatchdogSec) the heartbeat also pets it, so a loop that stops
 * running gets the daemon restarted. */
#include "aptdht-config.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/respond.h"
#include "apt-dht-proxy/sdnotify.h"
#include "apt-dht-proxy/status-int.h"
#include "apt-dht-proxy/version.h"

#define BEAT_MS 1000

/* ---- the heartbeat and the history ---- */

static int64_t minute_of(uint64_t now_ms)
{
    return (int64_t)(now_ms / 60000);
}

static void read_totals(struct status *st, uint64_t totals[HIST_N])
{
    struct server_view v;
    server_view(st->server, &v);
    history_totals(v.stats, totals);
}

static void on_beat(struct loop *l, struct loop_timer *t, void *ud)
{
    struct status *st = ud;
    uint64_t now = loop_now_ms(), totals[HIST_N];
    uint64_t late = now > st->beat_due_ms ? now - st->beat_due_ms : 0;
    if (late >= STATUS_STALL_MS) {
        st->stall_ms = late;
        st->stall_at_ms = now;
        log_warn("the event loop stalled for %llu ms", (unsigned long long)late);
    }
    read_totals(st, totals);
    history_tick(st->hist, minute_of(now), totals);
    if (st->watchdog_ms && now - st->watchdog_sent_ms >= st->watchdog_ms / 2) {
        sdnotify_send("WATCHDOG=1");
        st->watchdog_sent_ms = now;
    }
    st->beat_due_ms = now + BEAT_MS;
    loop_timer_start(l, &st->beat, BEAT_MS);
}

/* ---- lifecycle ---- */

int status_reconfigure(struct status *st, const struct config *cfg)
{
    struct cidr *c = NULL, *a = NULL;
    size_t nc = 0, na = 0;
    if (cidr_list_copy(&c, &nc, cfg->status_clients, cfg->n_status_clients) < 0 ||
        cidr_list_copy(&a, &na, cfg->allowed_clients, cfg->n_allowed_clients) < 0) {
        free(c);
        return -ENOMEM;
    }
    free(st->clients);
    free(st->allowed);
    st->clients = c;
    st->n_clients = nc;
    st->allowed = a;
    st->n_allowed = na;
    return 0;
}

int status_new(struct status **out, const struct config *cfg, const char *config_file,
               struct loop *l, struct server *srv, struct cache *c, struct hashdb *db,
               struct p2p *p2p)
{
    struct status *st = calloc(1, sizeof *st);
    uint64_t totals[HIST_N];
    if (!st)
        return -ENOMEM;
    st->loop = l;
    st->server = srv;
    st->cache = c;
    st->db = db;
    st->p2p = p2p;
    st->start_ms = loop_now_ms();
    st->start_wall = (int64_t)time(NULL);
    loop_timer_init(&st->beat, on_beat, st);
    read_totals(st, totals);
    if ((config_file && !(st->config_file = strdup(config_file))) ||
        status_reconfigure(st, cfg) < 0 || history_new(&st->hist, minute_of(st->start_ms), totals) < 0 ||
        loop_timer_start(l, &st->beat, BEAT_MS) < 0) {
        status_free(st);
        return -ENOMEM;
    }
    st->beat_due_ms = st->start_ms + BEAT_MS;
    st->watchdog_ms = sdnotify_watchdog_ms();
    st->watchdog_sent_ms = st->start_ms;
    *out = st;
    return 0;
}

void status_free(struct status *st)
{
    if (!st)
        return;
    status_explain_free_all(st);
    loop_timer_stop(st->loop, &st->beat);
    history_free(st->hist);
    free(st->clients);
    free(st->allowed);
    free(st->config_file);
    free(st);
}

/* ---- what the server asks ---- */

bool status_route(const char *url)
{
    if (strncmp(url, "/~/status", 9) == 0)
        return url[9] == '\0' || url[9] == '/' || url[9] == '.';
    return strcmp(url, "/~/health") == 0 || strcmp(url, "/metrics") == 0;
}

bool status_admits(const struct status *st, const struct sockaddr *sa)
{
    return sa && cidr_match_any(st->clients, st->n_clients, sa);
}

static void copy_clean(char *dst, size_t n, const char *src)
{
    /* kept as sent (the pages escape it); only cut to size */
    snprintf(dst, n, "%s", src ? src : "");
}

/* The slot of (client, as a peer or not): an address that is both an apt client and a
 * peer has a row for each, so its peer User-Agent (the label its proxy gives itself) stays
 * beside its peer requests. The least recently seen slot is reused. */
static struct status_client *client_slot(struct status *st, const char *client, bool peer)
{
    struct status_client *oldest = &st->seen[0];
    for (size_t i = 0; i < STATUS_CLIENTS; i++) {
        struct status_client *c = &st->seen[i];
        if (c->last_ms && c->peer == peer && strcmp(c->addr, client) == 0)
            return c;
        if (c->last_ms < oldest->last_ms)
            oldest = c;
    }
    memset(oldest, 0, sizeof *oldest);
    copy_clean(oldest->addr, sizeof oldest->addr, client);
    oldest->peer = peer;
    return oldest;
}

void status_note(struct status *st, struct MHD_Connection *c, const char *client,
                 const char *method, const char *target, unsigned http_status, uint64_t bytes)
{
    const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
    struct status_client *sc = client_slot(st, client, strncmp(target, "/~/sha256/", 10) == 0);
    sc->requests++;
    sc->bytes += bytes;
    sc->last_ms = loop_now_ms();
    copy_clean(sc->agent, sizeof sc->agent, ua);
    if (http_status < 400)
        return;
    struct status_fail *f = &st->fails[st->fail_next];
    f->time_ms = (int64_t)time(NULL) * 1000;
    copy_clean(f->client, sizeof f->client, client);
    copy_clean(f->method, sizeof f->method, method);
    copy_clean(f->target, sizeof f->target, target);
    copy_clean(f->agent, sizeof f->agent, ua);
    f->status = http_status;
    st->fail_next = (st->fail_next + 1) % STATUS_FAILS;
    if (st->n_fails < STATUS_FAILS)
        st->n_fails++;
}

/* ---- health ---- */

/* 0 if a file can be created in the cache's temp dir, else the negative errno. */
static int cache_writable(struct cache *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.tmp", cache_dir(c));
    int fd = open(path, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EOPNOTSUPP || errno == EISDIR) /* no O_TMPFILE here: ask instead */
        return access(path, W_OK) == 0 ? 0 : -errno;
    return -errno;
}

const char *status_dht_state(const struct status_sum *s)
{
    static const char *const names[] = {"ALONE", "ACTIVE", "NO_NETWORK", "FAULTED"};
    if (!s->have_p2p)
        return "OFF";
    return s->ps.dht_state >= 0 && s->ps.dht_state < 4 ? names[s->ps.dht_state] : "UNKNOWN";
}

unsigned status_health(struct status *st, char *line, size_t n)
{
    uint64_t now = loop_now_ms();
    int w = cache_writable(st->cache);
    if (w < 0) {
        snprintf(line, n, "FAIL cache directory %s is not writable: %s", cache_dir(st->cache),
                 strerror(-w));
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    if (st->stall_at_ms && now - st->stall_at_ms < STATUS_STALL_KEEP_MS) {
        snprintf(line, n, "FAIL the event loop stalled for %llu ms, %llu s ago",
                 (unsigned long long)st->stall_ms,
                 (unsigned long long)((now - st->stall_at_ms) / 1000));
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    }
    struct statvfs vfs;
    bool full = statvfs(cache_dir(st->cache), &vfs) == 0 &&
                (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20);
    unsigned pct = cache_max_size(st->cache)
                       ? (unsigned)(cache_used(st->cache) * 100 / cache_max_size(st->cache))
                       : 0;
    char dht[64] = "off";
    if (st->p2p) {
        struct status_sum s = {.have_p2p = true};
        p2p_get_stats(st->p2p, &s.ps);
        snprintf(dht, sizeof dht, "%s, %u nodes", status_dht_state(&s), s.ps.nodes);
    }
    snprintf(line, n, "OK serving; dht %s; cache %u%% full%s", dht, pct,
             full ? "; the cache disk is full: files are served but not kept" : "");
    return MHD_HTTP_OK;
}

/* ---- the summary ---- */

static void count_dl(void *ud, const struct dl_view *v)
{
}

void status_sum(struct status *st, struct status_sum *s)
{
    struct statvfs vfs;
    memset(s, 0, sizeof *s);
    s->now_ms = loop_now_ms();
    s->now_wall = (int64_t)time(NULL);
    s->now_min = minute_of(s->now_ms);
    s->uptime_s = (s->now_ms - st->start_ms) / 1000;
    server_view(st->server, &s->sv);
    s->st = *s->sv.stats;
    history_totals(&s->st, s->totals);
    for (int i = 0; i < HIST_N; i++) {
        s->hour[i] = history_sum(st->hist, (enum history_series)i, s->now_min, 59, s->totals);
        s->day[i] = history_sum(st->hist, (enum history_series)i, s->now_min, 1439, s->totals);
    }
    if (st->p2p) {
        s->have_p2p = true;
        p2p_get_stats(st->p2p, &s->ps);
    }
    s->cache_used = cache_used(st->cache);
    s->cache_max = cache_max_size(st->cache);
    s->cache_files = cache_count(st->cache);
    s->evictions = cache_evictions(st->cache);
    if (statvfs(cache_dir(st->cache), &vfs) == 0) {
        s->disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        s->disk_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    }
    if (st->db)
        hashdb_disk_use(st->db, &s->state_db, &s->state_wal);
    if (s->sv.cat)
        catalogue_expiry_stats(s->sv.cat, &s->expired_files, &s->expired_bytes);
    s->downloads = fetcher_each(s->sv.fetcher, count_dl, NULL, 0);
    s->health_status = status_health(st, s->health, sizeof s->health);
}

void status_window(const struct status_sum *s, int which, struct status_window *w)
{
    const uint64_t *v = which == WIN_HOUR ? s->hour : which == WIN_DAY ? s->day : s->totals;
    w->cache = v[HIST_SERVED_CACHE];
    w->peer = v[HIST_SERVED_PEER];
    w->mirror = v[HIST_SERVED_MIRROR];
    w->total = w->cache + w->peer + w->mirror;
    w->from_mirror = v[HIST_FROM_MIRROR];
    w->saved = w->total > w->from_mirror ? w->total - w->from_mirror : 0;
    w->uploaded = v[HIST_UPLOADED];
}

void status_sa_label(const struct sockaddr_storage *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        snprintf(out, n, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        snprintf(out, n, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        snprintf(out, n, "?");
    }
}

/* ---- answering ---- */

void status_headers(struct MHD_Response *resp, const char *ctype)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* No script may run on these pages, even if an escaping bug let one in. */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; "
                            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
}

enum MHD_Result status_send(struct answer *a, unsigned http_status, const char *ctype,
                            struct tbuf *b)
{
    size_t len = 0;
    if (tbuf_failed(b)) {
        tbuf_done(b);
        return answer_error(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    if (!b->p)
        tbuf_puts(b, "");
    char *body = tbuf_take(b, &len);
    struct MHD_Response *resp =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(body);
        return answer_error(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    status_headers(resp, ctype);
    snprintf(a->source, sizeof a->source, "status");
    a->status = http_status;
    a->bytes = a->head ? 0 : len;
    enum MHD_Result r = MHD_queue_response(a->conn, http_status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_health(struct status *st, struct answer *a)
{
    struct tbuf b;
    char line[256];
    unsigned code = status_health(st, line, sizeof line);
    tbuf_init(&b);
    tbuf_printf(&b, "%s\n", line);
    return status_send(a, code, "text/plain; charset=utf-8", &b);
}

/* The pages that need the whole summary. */
static enum MHD_Result send_page(struct status *st, struct answer *a, const char *path)
{
    struct status_sum *s = malloc(sizeof *s);
    struct tbuf b;
    const char *ctype = "text/html; charset=utf-8";
    if (!s)
        return answer_error(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    status_sum(st, s);
    tbuf_init(&b);
    st->views++;
    if (strcmp(path, "/metrics") == 0) {
        metrics_render(st, s, &b);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(path, "/~/status.json") == 0) {
        status_report_json(st, s, &b);
        ctype = "application/json";
    } else if (strcmp(path, "/~/status.txt") == 0) {
        status_report_text(st, s, &b);
        ctype = "text/plain; charset=utf-8";
    } else {
        status_page(st, s, &b);
    }
    free(s);
    return status_send(a, MHD_HTTP_OK, ctype, &b);
}

enum MHD_Result status_answer(struct status *st, struct answer *a, const char *method,
                              const char *url, const struct sockaddr *sa)
{
    bool health = strcmp(url, "/~/health") == 0;
    if (strcmp(method, "GET") != 0 && !a->head)
        return answer_error(a, MHD_HTTP_METHOD_NOT_ALLOWED, "the status pages are read-only");
    if (!status_admits(st, sa) && !(health && sa && cidr_match_any(st->allowed, st->n_allowed, sa)))
        return answer_error(a, MHD_HTTP_FORBIDDEN,
                            health ? "client not in status_clients or allowed_clients"
                                   : "client not in status_clients");
    if (health)
        return send_health(st, a);
    if (strcmp(url, "/~/status/explain") == 0)
        return status_explain(st, a,
                              MHD_lookup_connection_value(a->conn, MHD_GET_ARGUMENT_KIND, "u"));
    if (strcmp(url, "/~/status") == 0 || strcmp(url, "/~/status/") == 0 ||
        strcmp(url, "/~/status.json") == 0 || strcmp(url, "/~/status.txt") == 0 ||
        strcmp(url, "/metrics") == 0)
        return send_page(st, a, url);
    return answer_error(a, MHD_HTTP_NOT_FOUND,
                        "no such status page; see /~/status, /~/status/explain, /metrics");
}

/* server.c - the request pipeline of apt-dht-proxy's HTTP side.
 *
 * libmicrohttpd, on the loop by way of httpd.h, hands each request to on_request. An apt
 * request is parsed (url.h), routed (router.h) and then driven through named phases:
 *
 *   NEW --(request read)--> PARSED
 *   PARSED --decide--> ANSWERED                      served from the cache or refused
 *          \--------> WAIT_INDEX --(parse done, 10 s)--> PARSED
 *          \--------> WAIT_DL --(download news)--> WAIT_DL | ANSWERED | PARSED (retry)
 *
 * Every decision is policy_decide() (policy.h), a pure function of the facts gathered
 * here; this file only gathers them and applies the result. Responses are built by
 * respond.h; a waiting request is suspended and resumed by a watcher on its download or
 * by a timer, never spun on. A peer's request (/~/sha256/HEX) is uploads.h's: from the
 * cache, from a download in flight (a relay), or by a pull-through download this file
 * starts for it (pull_start) when this host's own indices vouch for the file. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/httpd.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/negcache.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/peers.h"
#include "apt-dht-proxy/policy.h"
#include "apt-dht-proxy/respond.h"
#include "apt-dht-proxy/router.h"
#include "apt-dht-proxy/server-conf.h"
#include "apt-dht-proxy/server.h"
#include "apt-dht-proxy/status.h"
#include "apt-dht-proxy/uploads.h"
#include "apt-dht-proxy/url.h"
#include "apt-dht-proxy/version.h"

#define INDEX_WAIT_MS 10000 /* longest a request waits for the indexer */

struct server {
    struct server_conf conf;
    struct loop *loop;
    struct cache *cache;
    struct hashdb *db;
    struct indexer *ix;
    struct catalogue *cat;
    struct p2p *p2p;     /* NULL with dht.mode off */
    struct fetcher *fetcher;
    struct router *router; /* swapped whole on reload; NULL until server_start */
    const struct config *start_cfg; /* the config the router is first built from */
    struct responder rs;
    struct stats stats;
    struct uploads *up;  /* the peer route */
    struct httpd *httpd;  /* NULL until server_start */
    uint16_t port;
    int listen_fds[HTTPD_MAX_LISTEN]; /* inherited sockets (socket activation) */
    size_t n_listen_fds;
    bool ix_added;       /* the indexer's eventfd is in the loop */
    struct negcache *neg; /* recent mirror 404s */
    struct req *reqs;    /* every live request, for the index wake-up and shutdown */
    struct status *status; /* the status pages; NULL = none */
};

enum req_phase {
    REQ_NEW,        /* its head is in; libmicrohttpd calls again once the request is read */
    REQ_PARSED,     /* routed (or a peer's request); nothing decided yet */
    REQ_WAIT_INDEX, /* suspended until the indexer's queue drains, at most INDEX_WAIT_MS */
    REQ_WAIT_DL,    /* suspended on its download's headers or first bytes */
    REQ_ANSWERED,   /* a response is queued (or MHD was told to close) */
    REQ_WAIT_CHECK, /* suspended while its cache entry's SHA-256 is checked (cache_check) */
};

static const char *const phase_names[] = {"NEW",      "PARSED",     "WAIT_INDEX",
                                          "WAIT_DL",  "ANSWERED",   "WAIT_CHECK"};

/* Per-request state (MHD's con_cls). The answer comes first and holds the references:
 * it is freed when the request has completed and every callback response reading it has
 * been released. */
struct req {
    struct answer ans;
    struct server *s;
    struct req *prev, *next;
    enum req_phase phase;
    struct upload *upload; /* a peer fetching a file of ours (uploads.h), else NULL */
    bool index_waited;   /* waited for the indexer once already (or timed out) */
    bool retried;        /* joined a download that failed early; decided afresh once */
    bool by_hash_tried;  /* fell back to the by-hash copy of an index once */
    bool cache_vanished; /* its entry was evicted between the decision and the open */
    uint64_t start_ms;
    char client[INET6_ADDRSTRLEN + 8];
    char method[8];
    char target[320];    /* for the log line */
    struct loop_timer index_timer;
    struct route route;
    struct dl *dl;
    struct dl_watch *watch;
};

/* The one place a request changes phase. */
static void req_set_phase(struct req *r, enum req_phase p)
{
    if (r->phase == p)
        return;
    log_debug("%s: %s -> %s", r->target, phase_names[r->phase], phase_names[p]);
    r->phase = p;
}

/* ---- requests ---- */

static void req_release(struct answer *a)
{
    struct req *r = (struct req *)a; /* the answer is the first member */
    if (r->dl) {
        if (r->watch)
            dl_unwatch(r->dl, r->watch);
        dl_unref(r->dl);
    }
    answer_done(&r->ans);
    upload_free(r->upload);
    route_done(&r->route);
    free(r);
}

static void on_dl_change(void *ud)
{
    struct req *r = ud;
    answer_resume(&r->ans);
}

static void index_wait_expired(struct loop *l, struct loop_timer *t, void *ud)
{
    struct req *r = ud;
    r->index_waited = true;
    answer_resume(&r->ans);
}

static struct req *req_new(struct server *s, struct MHD_Connection *c, const char *url,
                           const char *method)
{
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n = strnlen(url, sizeof r->target - 1), m = strnlen(method, sizeof r->method - 1);
    memcpy(r->target, url, n); /* cut to fit, as the log line shows it; calloc'd: ends in NUL */
    memcpy(r->method, method, m);
    answer_init(&r->ans, &s->rs, c, r->target, strcmp(method, "HEAD") == 0, req_release);
    r->s = s;
    r->start_ms = loop_now_ms();
    loop_timer_init(&r->index_timer, index_wait_expired, r);
    r->next = s->reqs;
    if (s->reqs)
        s->reqs->prev = r;
    s->reqs = r;
    return r;
}

static void req_unlink(struct req *r)
{
    struct server *s = r->s;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static enum MHD_Result refuse(struct req *r, unsigned status, const char *reason)
{
    req_set_phase(r, REQ_ANSWERED);
    return answer_error(&r->ans, status, reason);
}

/* Serves the cache entry key; 0 if there is none (nothing queued). */
static int serve_cached(struct req *r, const char *key, const char *why, enum MHD_Result *ret)
{
    if (!answer_cached(&r->ans, r->s->cache, key, why, ret))
        return 0;
    req_set_phase(r, REQ_ANSWERED);
    return 1;
}

static enum MHD_Result stream(struct req *r)
{
    req_set_phase(r, REQ_ANSWERED);
    return answer_stream(&r->ans, r->dl, r->route.key);
}

/* ---- the decision for one routed request ---- */

static bool lookup_expect(struct server *s, const struct route *rt, struct hashdb_entry *e)
{
    uint8_t h[32];
    memset(e, 0, sizeof *e);
    /* the index knows by-hash files too, with their size: prefer that */
    if (s->db && hashdb_lookup(s->db, rt->key, e) == 0 && (e->have_sha256 || e->have_sha1))
        return true;
    memset(e, 0, sizeof *e);
    if (url_by_hash_sha256(rt->path, h)) {
        e->size = UINT64_MAX;
        e->have_sha256 = true;
        memcpy(e->sha256, h, 32);
        return true;
    }
    return false;
}

static bool is_release_name(const char *key)
{
    const char *b = strrchr(key, '/');
    b = b ? b + 1 : key;
    return strcmp(b, "InRelease") == 0 || strcmp(b, "Release") == 0 ||
           strcmp(b, "Release.gpg") == 0;
}

/* True while the InRelease or Release of the suite of key (".../dists/SUITE/...") waits
 * for the indexer: an index by name must not be judged by the hashes of the one before. */
static bool suite_release_queued(struct indexer *ix, const char *key)
{
    char rel[URL_MAX_KEY + 16];
    const char *d = strstr(key, "/dists/");
    const char *end = d ? strchr(d + 7, '/') : NULL;
    if (!ix || !end)
        return false;
    int n = (int)(end - key + 1);
    snprintf(rel, sizeof rel, "%.*sInRelease", n, key);
    if (indexer_queued(ix, rel))
        return true;
    snprintf(rel, sizeof rel, "%.*sRelease", n, key);
    return indexer_queued(ix, rel);
}

/* A miss whose content is known may be a cache entry under another key, or a file
 * imported from outside: catalogue_adopt makes it this key's entry. Asked before a
 * download is joined only (a request that waits on one is past that decision). */
static bool adopt(struct req *r, const struct hashdb_entry *e)
{
    return !r->dl && e->have_sha256 && r->s->cat &&
           catalogue_adopt(r->s->cat, r->route.key, e->sha256);
}

/* Gathers what the policy needs; *e receives the hash index entry. */
static void gather(struct req *r, struct policy_in *in, struct hashdb_entry *e)
{
    struct server *s = r->s;
    uint8_t got[32];
    memset(in, 0, sizeof *in);
    in->cls = r->route.cls;
    in->release_name = is_release_name(r->route.key);
    in->have_expect = lookup_expect(s, &r->route, e);
    in->expect_sha256 = in->have_expect && e->have_sha256;
    in->cached = !r->cache_vanished && (cache_has(s->cache, r->route.key) || adopt(r, e));
    in->cached_matches = in->cached && in->expect_sha256 &&
                         cache_sha256(s->cache, r->route.key, got) &&
                         memcmp(got, e->sha256, 32) == 0;
    in->neg_hit = negcache_has(s->neg, r->route.key, loop_now_ms());
    in->index_pending = s->ix && indexer_pending(s->ix) > 0;
    in->index_waited = r->index_waited;
    in->release_queued = in->cls == URL_VOLATILE && !in->release_name && in->have_expect &&
                         suite_release_queued(s->ix, r->route.key);
    in->retried = r->retried;
    in->by_hash_tried = r->by_hash_tried;
}

static void set_dl(struct req *r, struct dl *d, struct dl_watch *w)
{
    if (r->dl) {
        if (r->watch)
            dl_unwatch(r->dl, r->watch);
        dl_unref(r->dl);
    }
    r->dl = d;
    r->watch = w;
}

static time_t cached_mtime(struct cache *c, const char *key)
{
    struct stat st;
    int fd = cache_open(c, key, &st);
    if (fd < 0)
        return 0;
    close(fd);
    return st.st_mtime;
}

/* The download of route rt (started or joined), referenced, with its DHT lookup when
 * peers may serve it; forward: the lookup may hand it to the file's owner (not for a
 * download this host runs for another's pull-through request). NULL with *err. */
static struct dl *get_dl(struct server *s, const struct route *rt,
                         const struct hashdb_entry *expect, bool verify_first, time_t ims,
                         bool forward, int *err)
{
    /* Peers are asked for immutable files whose SHA-256 and size are known: they are
     * verified before a byte is delivered, and a peer's length is never believed.
     * InRelease and the by-name indices come from mirrors. */
    bool peers = s->p2p && expect && expect->have_sha256 && expect->size != UINT64_MAX &&
                 rt->cls == URL_IMMUTABLE && s->conf.peer_budget_ms > 0;
    struct dl_request q = {
        .key = rt->key,
        .n_urls = rt->n_urls,
        .immutable = rt->cls == URL_IMMUTABLE,
        .cacheable = true,
        .verify_first = verify_first,
        .expect = expect,
        .if_modified_since = ims,
        .await_peers = peers,
        .peer_budget_ms = s->conf.peer_budget_ms,
    };
    for (size_t i = 0; i < rt->n_urls; i++)
        q.urls[i] = rt->urls[i];
    struct dl *d = fetcher_get(s->fetcher, &q, err);
    if (d && peers)
        peers_find(s->p2p, s->loop, d, expect->sha256, forward);
    return d;
}

/* Starts (or joins) the download of route rt with the policy's expectations. */
static int start_dl(struct req *r, const struct route *rt, const struct hashdb_entry *expect,
                    const struct policy_out *o)
{
    struct server *s = r->s;
    int err = 0;
    time_t ims = o->conditional ? cached_mtime(s->cache, rt->key) : 0;
    struct dl *d = get_dl(s, rt, expect, o->verify_first, ims, true, &err);
    if (!d)
        return err;
    struct dl_watch *w = dl_watch(d, on_dl_change, r);
    if (!w) {
        dl_unref(d);
        return -ENOMEM;
    }
    set_dl(r, d, w);
    return 0;
}

/* A peer asked this host, as the file's owner, to fetch route rt for it, and this host's
 * own index gives e (uploads.c checked key, SHA-256 and class). */
static struct dl *pull_start(void *ud, const struct route *rt, const struct hashdb_entry *e)
{
    int err = 0;
    return get_dl(ud, rt, e, false, 0, false, &err);
}

/* The by-hash download that replaces a by-name index the mirror got wrong. */
static int start_by_hash(struct req *r, const struct hashdb_entry *e)
{
    struct route bh;
    struct policy_out o = {.act = ACT_FETCH, .use_expect = true, .verify_first = true};
    r->by_hash_tried = true;
    int err = route_by_hash(&r->route, e->sha256, &bh);
    if (err < 0)
        return err;
    log_info("%s: mirror's by-name copy disagrees with InRelease; fetching %s", r->route.key,
             bh.key);
    err = start_dl(r, &bh, e, &o);
    route_done(&bh);
    return err;
}

static enum MHD_Result drive(struct req *r);

/* What a finished (or failed) download left in the cache. */
static enum MHD_Result apply_serve(struct req *r, enum policy_act act)
{
    enum MHD_Result ret = MHD_YES;
    switch (act) {
    case ACT_SERVE_DONE:
        /* complete before this response started: the cached file goes out by sendfile */
        if (serve_cached(r, dl_key(r->dl), dl_source(r->dl), &ret))
            return ret;
        return stream(r);
    case ACT_SERVE_REVALIDATED:
        r->s->stats.revalidated++;
        if (serve_cached(r, r->route.key, "cache (revalidated)", &ret))
            return ret;
        return refuse(r, 502, "cached copy vanished during revalidation");
    default:
        if (serve_cached(r, r->route.key, "cache (mirror unreachable)", &ret)) {
            log_warn("%s: %s; served the cached copy", r->route.key, dl_reason(r->dl));
            return ret;
        }
        return refuse(r, dl_status(r->dl) ? (unsigned)dl_status(r->dl) : 502, dl_reason(r->dl));
    }
}

static enum MHD_Result apply(struct req *r, const struct policy_out *o,
                             const struct hashdb_entry *e)
{
    struct server *s = r->s;
    enum MHD_Result ret = MHD_YES;
    int err;
    if (o->act != ACT_SERVE_CACHED)
        answer_let_go(&r->ans); /* the entry checked is not served as it is now */
    switch (o->act) {
    case ACT_SERVE_CACHED:
        if (serve_cached(r, r->route.key, "cache", &ret)) {
            s->stats.hits++;
            return ret;
        }
        r->cache_vanished = true; /* raced with eviction: decide again without it */
        return drive(r);
    case ACT_FETCH:
        if (o->miss)
            s->stats.misses++;
        if ((err = start_dl(r, &r->route, o->use_expect ? e : NULL, o)) < 0) {
            req_set_phase(r, REQ_ANSWERED);
            return answer_start_failed(&r->ans, err); /* 503 for EMFILE, ENFILE */
        }
        req_set_phase(r, REQ_WAIT_DL);
        return drive(r);
    case ACT_WAIT_INDEX:
        req_set_phase(r, REQ_WAIT_INDEX);
        loop_timer_start(s->loop, &r->index_timer, INDEX_WAIT_MS);
        answer_suspend(&r->ans);
        return MHD_YES;
    case ACT_WAIT:
        answer_suspend(&r->ans);
        return MHD_YES;
    case ACT_STREAM:
        return stream(r);
    case ACT_SERVE_DONE:
    case ACT_SERVE_REVALIDATED:
    case ACT_SERVE_STALE:
        return apply_serve(r, o->act);
    case ACT_RETRY:
        r->retried = true;
        log_info("%s: joined a download that failed (%s); trying afresh", r->route.key,
                 dl_reason(r->dl));
        set_dl(r, NULL, NULL);
        req_set_phase(r, REQ_PARSED);
        return drive(r);
    case ACT_BY_HASH:
        start_by_hash(r, e); /* on failure, the next decision knows by_hash_tried */
        return drive(r);
    case ACT_NOT_FOUND:
        negcache_add(s->neg, r->route.key, loop_now_ms());
        return refuse(r, 404, dl_reason(r->dl));
    case ACT_REFUSE:
    default:
        return refuse(r, o->status, o->reason ? o->reason : dl_reason(r->dl));
    }
}

/* Decides the request's next step from what is known now, and takes it. Called on the
 * first call, on every resume of a waiting request, and after a retry. */
static enum MHD_Result drive(struct req *r)
{
    struct policy_in in;
    struct policy_dl pd;
    struct hashdb_entry e;
    gather(r, &in, &e);
    if (!r->dl && in.cached) { /* the entry is checked before anything is decided on it */
        int ck = answer_check_cached(&r->ans, r->s->cache, r->route.key,
                                     in.have_expect ? &e : NULL);
        if (ck == -EINPROGRESS) {
            req_set_phase(r, REQ_WAIT_CHECK); /* resumed when the hash is known */
            return MHD_YES;
        }
        if (ck > 0)
            gather(r, &in, &e); /* it failed and was dropped: decide without it */
    }
    if (r->dl) {
        pd = (struct policy_dl){
            .state = dl_state(r->dl),
            .has_bytes = dl_available(r->dl) > 0,
            .status = dl_status(r->dl),
            .mismatch = dl_hash_mismatch(r->dl),
            .joined_late = r->start_ms >= dl_started_ms(r->dl) + 1000,
        };
        in.dl = &pd;
    }
    struct policy_out o = policy_decide(&in);
    log_debug("%s: %s", r->target, policy_act_name(o.act));
    return apply(r, &o, &e);
}

/* A resumed request: what it was waiting for may have happened. */
static enum MHD_Result resume(struct req *r)
{
    struct server *s = r->s;
    switch (r->phase) {
    case REQ_WAIT_INDEX:
        if (!r->index_waited && s->ix && indexer_pending(s->ix) > 0) {
            answer_suspend(&r->ans);
            return MHD_YES;
        }
        r->index_waited = true;
        loop_timer_stop(s->loop, &r->index_timer);
        req_set_phase(r, REQ_PARSED);
        return drive(r);
    case REQ_WAIT_DL:
        return drive(r);
    case REQ_WAIT_CHECK:
        req_set_phase(r, REQ_PARSED);
        return drive(r);
    case REQ_NEW:
    case REQ_PARSED:
    case REQ_ANSWERED:
    default:
        return MHD_YES;
    }
}

/* ---- the first call of a request ---- */

static const struct sockaddr *client_of(struct req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->ans.conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(r->client, sizeof r->client, "?");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                  sizeof r->client);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                  sizeof r->client);
    return sa;
}

/* The checks every request passes before it is parsed. NULL = go on. */
static const char *method_refusal(const struct req *r, unsigned *status)
{
    *status = MHD_HTTP_METHOD_NOT_ALLOWED;
    if (strcmp(r->method, "CONNECT") == 0)
        return "CONNECT is not supported; apt-dht serves plain http archive URLs";
    if (strcmp(r->method, "GET") != 0 && !r->ans.head)
        return "only GET and HEAD are served";
    *status = MHD_HTTP_FORBIDDEN;
    if (strcmp(r->target, "/") == 0)
        return "apt-dht-proxy serves Debian archive paths only; point apt at it as a proxy";
    return NULL;
}

static enum MHD_Result first_call(struct req *r, const char *url)
{
    struct server *s = r->s;
    struct url_target t;
    const char *why = NULL;
    unsigned st;
    const struct sockaddr *sa = client_of(r);
    if (s->status && status_route(url)) { /* /~/status, /~/health, /metrics */
        req_set_phase(r, REQ_ANSWERED);
        return status_answer(s->status, &r->ans, r->method, url, sa);
    }
    s->stats.requests++;
    if ((why = method_refusal(r, &st)) != NULL)
        return refuse(r, st, why);
    int pr = url_parse(url, &t);
    if (pr == -ENAMETOOLONG)
        return refuse(r, MHD_HTTP_URI_TOO_LONG, "request target too long");
    if (pr < 0)
        return refuse(r, MHD_HTTP_BAD_REQUEST, "malformed or unsafe request path");
    if (MHD_get_connection_values(r->ans.conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
        return refuse(r, MHD_HTTP_BAD_REQUEST, "query strings are not served");
    if (t.form == URL_PEER) {
        if (!sa || !cidr_match_any(s->conf.peers, s->conf.n_peers, sa))
            return refuse(r, MHD_HTTP_FORBIDDEN, "client not allowed to use the peer service");
        req_set_phase(r, REQ_ANSWERED); /* the peer route is uploads.h's */
        return uploads_serve(s->up, &r->ans, sa, t.sha256, &r->upload);
    }
    if (!sa || !cidr_match_any(s->conf.allowed, s->conf.n_allowed, sa))
        return refuse(r, MHD_HTTP_FORBIDDEN, "client not in allowed_clients");
    if ((st = router_resolve(s->router, &t, &r->route, &why)) != 0)
        return refuse(r, st, why);
    if (s->cat) /* apt asked for an index: its suite is in use (expiry by reference) */
        catalogue_index_asked(s->cat, r->route.key);
    return drive(r);
}

/* ---- libmicrohttpd's callbacks ---- */

/* The client will not reuse the connection: "Connection: close", or HTTP/1.0 without
 * keep-alive. */
static bool wants_close(struct MHD_Connection *c, const char *version)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    if (h && strcasestr(h, "close"))
        return true;
    return strcmp(version, MHD_HTTP_VERSION_1_0) == 0 && !(h && strcasestr(h, "keep-alive"));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r) {
        /* The head is in. A client that keeps its connection is answered from the next
         * call on: libmicrohttpd treats a response queued before the request is fully
         * read as "early" and closes the connection after it. One that asked to close
         * is answered now (it may half-close its side, which the next read would take
         * for a hang-up). */
        httpd_head_arrived(c);
        if (!(r = req_new(s, c, url, method)))
            return MHD_NO;
        *con_cls = r;
        if (!wants_close(c, version))
            return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body on GET/HEAD is ignored */
        return MHD_YES;
    }
    if (s->rs.stopping && r->phase != REQ_ANSWERED)
        return refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE, "apt-dht-proxy is stopping");
    if (r->phase == REQ_NEW) {
        req_set_phase(r, REQ_PARSED);
        return first_call(r, url);
    }
    return resume(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    req_unlink(r);
    unsigned status = r->ans.status;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == MHD_HTTP_OK)
        status = 499; /* cut short (client gone or upstream failed) */
    log_request(r->client, r->method, r->target, status, r->ans.bytes, r->ans.source,
                loop_now_ms() - r->start_ms);
    stats_served(&s->stats, status, r->ans.bytes, r->ans.source);
    if (r->upload && status < 300)
        s->stats.uploads++;
    if (s->status)
        status_note(s->status, c, r->client, r->method, r->target, status, r->ans.bytes);
    if (r->dl && r->watch) {
        dl_unwatch(r->dl, r->watch);
        r->watch = NULL;
    }
    loop_timer_stop(s->loop, &r->index_timer);
    loop_timer_stop(s->loop, &r->ans.pace_timer);
    uploads_end(s->up, r->upload);
    answer_unref(&r->ans);
}

static void on_index_event(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct server *s = ud;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* nothing to read: a spurious wake-up */
    }
    for (struct req *r = s->reqs; r; r = r->next)
        if (r->phase == REQ_WAIT_INDEX)
            answer_resume(&r->ans);
}

/* ---- what the fetcher reports ---- */

static void on_peer_result(void *ud, const struct sockaddr *peer, enum peer_result r,
                           uint64_t bytes, uint64_t ms)
{
    struct server *s = ud;
    if (s->p2p)
        p2p_peer_result(s->p2p, peer, r, bytes, ms);
}

static uint32_t peer_deadline_ms(void *ud, const struct sockaddr *peer)
{
    struct server *s = ud;
    return s->p2p ? p2p_peer_deadline_ms(s->p2p, peer) : 250;
}

static void on_peer_rtt(void *ud, const struct sockaddr *peer, uint64_t connect_us,
                        uint64_t headers_us)
{
    struct server *s = ud;
    if (s->p2p)
        p2p_peer_rtt(s->p2p, peer, connect_us, headers_us);
}

static void on_bytes(void *ud, bool from_peer, size_t n)
{
    struct server *s = ud;
    if (from_peer)
        s->stats.bytes_from_peers += n;
    else
        s->stats.bytes_from_mirror += n;
}

static void on_verify(void *ud, bool from_peer, bool expected, bool ok)
{
    struct stats *st = &((struct server *)ud)->stats;
    int o = from_peer ? STATS_FROM_PEER : STATS_FROM_MIRROR;
    if (!ok)
        st->mismatches[o]++;
    else if (expected)
        st->verified[o]++;
    else
        st->unverifiable++;
    if (ok && !from_peer)
        st->last_mirror_ok_s = (int64_t)time(NULL);
}

static void on_commit(void *ud, const char *key, const char *path, const uint8_t sha256[32])
{
    struct server *s = ud;
    catalogue_added(s->cat, key, path, sha256);
}

static bool is_self_addr(void *ud, const char *ip, unsigned port)
{
    struct server *s = ud;
    return router_is_self_addr(s->router, ip, port);
}

/* The fetcher's upstream.proxy, no_proxy (curl wants one comma-separated string) and
 * ca_file, and the check of where a mirror transfer connected. 0 or -ENOMEM. */
static int set_upstream(struct server *s, const struct config *cfg)
{
    size_t len = 1;
    for (size_t i = 0; i < cfg->n_upstream_no_proxy; i++)
        len += strlen(cfg->upstream_no_proxy[i]) + 1;
    char *np = cfg->n_upstream_no_proxy ? malloc(len) : NULL;
    if (cfg->n_upstream_no_proxy && !np)
        return -ENOMEM;
    for (size_t i = 0, at = 0; i < cfg->n_upstream_no_proxy; i++)
        at += (size_t)snprintf(np + at, len - at, "%s%s", i ? "," : "", cfg->upstream_no_proxy[i]);
    struct fetch_upstream u = {cfg->upstream_proxy, np, cfg->upstream_ca_file, is_self_addr, s};
    int r = fetcher_set_upstream(s->fetcher, &u);
    free(np);
    return r;
}

static void sync_uploads(struct server *s)
{
    uploads_set(s->up, s->p2p, s->router, s->conf.max_uploads, s->port);
}

int server_reconfigure(struct server *s, const struct config *cfg)
{
    struct router *rt = NULL;
    bool restart = server_conf_needs_restart(&s->conf, cfg);
    if (s->httpd && router_new(&rt, cfg, s->port) < 0)
        return -ENOMEM;
    if (server_conf_copy(&s->conf, cfg, true) < 0) {
        router_free(rt);
        return -ENOMEM;
    }
    if (rt) {
        router_free(s->router);
        s->router = rt;
    }
    s->rs.upload_kib_s = cfg->peer_upload_kib_s;
    sync_uploads(s);
    struct conns_limits lim = server_conf_limits(cfg);
    if (s->httpd)
        httpd_set_limits(s->httpd, &lim);
    negcache_set_ttl(s->neg, cfg->negative_ttl_s);
    fetcher_reconfigure(s->fetcher, cfg->connect_timeout_s, cfg->stall_timeout_s);
    if (set_upstream(s, cfg) < 0)
        log_warn("reload: upstream.proxy, no_proxy and ca_file not applied (out of memory)");
    fetcher_set_ceilings(s->fetcher, cfg->cache_max_object, cfg->cache_max_index);
    log_info("reload: clients, backends, upstream timeouts, negative cache, peer budget and "
             "upload limits applied%s",
             restart ? "; listen address, port, max_connections and idle_timeout need a restart"
                     : "");
    return 0;
}

/* ---- lifecycle ---- */

int server_new(struct server **out, const struct config *cfg, struct loop *l, struct cache *c,
               struct hashdb *db, struct indexer *ix, struct catalogue *cat)
{
    struct server *s = calloc(1, sizeof *s);
    char ua[64];
    int r = -ENOMEM;
    if (!s)
        return -ENOMEM;
    s->loop = l;
    s->cache = c;
    s->db = db;
    s->ix = ix;
    s->cat = cat;
    s->start_cfg = cfg;
    responder_init(&s->rs, l, &s->stats, cfg->peer_upload_kib_s);
    snprintf(ua, sizeof ua, "apt-dht/%s", aptdht_version());
    struct fetch_opts fo = {
        .connect_timeout_s = cfg->connect_timeout_s,
        .stall_timeout_s = cfg->stall_timeout_s,
        .max_object = cfg->cache_max_object,
        .max_index = cfg->cache_max_index,
        .user_agent = ua,
        .on_commit = on_commit,
        .on_peer_result = on_peer_result,
        .peer_deadline_ms = peer_deadline_ms,
        .on_peer_rtt = on_peer_rtt,
        .on_bytes = on_bytes,
        .on_verify = on_verify,
        .ud = s,
    };
    if (server_conf_copy(&s->conf, cfg, false) < 0 || negcache_new(&s->neg, cfg->negative_ttl_s) < 0)
        goto fail;
    if ((r = fetcher_new(&s->fetcher, l, c, &fo)) < 0 || (r = set_upstream(s, cfg)) < 0)
        goto fail;
    struct uploads_env ue = {c, s->fetcher, db, pull_start, s};
    if ((r = uploads_new(&s->up, &ue)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    server_free(s);
    return r;
}

/* Who is at sa, for the connection budgets: an apt client, a peer only, or nobody. */
static int audience(void *cls, const struct sockaddr *sa)
{
    struct server *s = cls;
    if (cidr_match_any(s->conf.allowed, s->conf.n_allowed, sa))
        return 1;
    if (s->status && status_admits(s->status, sa))
        return 0;
    return cidr_match_any(s->conf.peers, s->conf.n_peers, sa) ? 0 : -1;
}

int server_start(struct server *s)
{
    const struct config *cfg = s->start_cfg;
    struct httpd_conf hc = {
        .addresses = (const char *const *)cfg->listen_addresses,
        .n_addresses = cfg->n_listen_addresses,
        .fds = s->listen_fds,
        .n_fds = s->n_listen_fds,
        .local_only = s->conf.dht_off,
        .port = s->conf.listen_port,
        .max_connections = s->conf.max_connections,
        .idle_timeout_s = s->conf.idle_timeout_s,
        .limits = server_conf_limits(cfg),
        .stats = &s->stats,
    };
    struct httpd_calls calls = {on_request, on_completed, audience, s};
    int r = httpd_start(&s->httpd, s->loop, &hc, &calls, &s->rs.kick);
    if (r < 0)
        return r;
    s->port = httpd_port(s->httpd);
    sync_uploads(s);
    if ((r = router_new(&s->router, cfg, s->port)) < 0)
        return r;
    s->start_cfg = NULL; /* the caller may free it from now on */
    if (s->ix && (r = loop_add_fd(s->loop, indexer_event_fd(s->ix), EPOLLIN, on_index_event, s)) < 0)
        return r;
    s->ix_added = s->ix != NULL;
    return 0;
}

void server_quiesce(struct server *s)
{
    if (s->httpd)
        httpd_quiesce(s->httpd);
}

bool server_drained(const struct server *s, bool grace_over)
{
    return !s->reqs && (grace_over || !s->httpd || httpd_connections(s->httpd) == 0);
}

void server_set_listen_fds(struct server *s, const int *fds, size_t n)
{
    s->n_listen_fds = n < HTTPD_MAX_LISTEN ? n : HTTPD_MAX_LISTEN;
    memcpy(s->listen_fds, fds, s->n_listen_fds * sizeof *fds);
}

void server_set_p2p(struct server *s, struct p2p *p2p)
{
    s->p2p = p2p;
    sync_uploads(s);
}

void server_set_status(struct server *s, struct status *st)
{
    s->status = st;
}

void server_view(const struct server *s, struct server_view *v)
{
    *v = (struct server_view){
        .stats = &s->stats,
        .router = s->router,
        .fetcher = s->fetcher,
        .neg = s->neg,
        .ix = s->ix,
        .uploads = uploads_count(s->up),
        .uploads_bulk = uploads_bulk(s->up),
        .max_uploads = s->conf.max_uploads,
        .peer_budget_ms = s->conf.peer_budget_ms,
        .port = s->port,
        .listen_address = s->conf.listen_address,
        .peers_on = s->p2p != NULL,
        .cat = s->cat,
    };
}

uint16_t server_port(const struct server *s)
{
    return s->port;
}

const struct stats *server_stats(const struct server *s)
{
    return &s->stats;
}

/* MHD must see every connection resumed before it stops; while stopping, nothing
 * suspends again, nothing new starts, and every request ends with an answer. */
static void end_requests(struct server *s)
{
    for (int i = 0; i < 8; i++) {
        bool any = false;
        for (struct req *r = s->reqs; r; r = r->next) {
            any |= r->ans.suspended;
            answer_resume(&r->ans);
        }
        httpd_run(s->httpd);
        if (!any)
            break;
    }
}

void server_free(struct server *s)
{
    if (!s)
        return;
    s->rs.stopping = true;
    for (struct req *r = s->reqs; r; r = r->next)
        answer_resume(&r->ans);
    fetcher_free(s->fetcher); /* readers see DL_FAILED */
    s->fetcher = NULL;
    if (s->httpd)
        end_requests(s);
    if (s->ix_added)
        loop_del_fd(s->loop, indexer_event_fd(s->ix));
    httpd_free(s->httpd); /* every connection closes: on_completed for each request */
    uploads_free(s->up);
    negcache_free(s->neg);
    router_free(s->router);
    server_conf_done(&s->conf);
    free(s);
}

/* status-explain.c - /~/status/explain?u=URL-OR-PATH: what the daemon knows of one file.
 *
 * The facts are gathered the way the request pipeline gathers them (the route, the hash
 * index entry or by-hash name, the cache entry, the negative cache, the indexer's queue)
 * and handed to the same policy_decide, so "where a request would get it from" is the
 * answer a request would really get, not a second opinion. Who holds the file is asked
 * of the DHT there and then: the response is queued at once with a callback body, the
 * connection suspends until the lookup ends (at most EXPLAIN_WAIT_MS), and the page is
 * written when its last fact is in. Nothing here changes any state: the lookup is not
 * counted, no holder's standing changes, nothing is fetched. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/negcache.h"
#include "apt-dht-proxy/policy.h"
#include "apt-dht-proxy/respond.h"
#include "apt-dht-proxy/router.h"
#include "apt-dht-proxy/status-int.h"

#define EXPLAIN_WAIT_MS 4000
#define EXPLAIN_MAX_INPUT 2048
#define EXPLAIN_HOLDERS 64

struct explain {
    struct status *st; /* NULL once the status module is gone */
    struct answer *a;
    struct explain *prev, *next;
    bool linked;         /* in st->explains */
    int handle;          /* the DHT lookup while it runs; 0 = none */
    bool done;           /* every fact is in: the page can be written */
    bool timed_out;
    struct loop_timer deadline;
    uint64_t lookup_start_ms, lookup_ms;
    struct tbuf page;
    bool written;
    size_t pos;
    /* the facts */
    char input[EXPLAIN_MAX_INPUT + 1];
    struct url_target t;
    unsigned refused;    /* the router's status (403...), 0 = routed */
    const char *refused_why;
    struct route route;
    struct hashdb_entry e;
    bool have_expect, by_hash_name, cached, cached_sha, cached_matches, neg_hit, in_flight;
    bool linkable; /* not cached, but its content is under another key (catalogue_adopt) */
    bool peers_eligible, lookup_ran;
    uint8_t cached_sha256[32];
    struct policy_out decision;
    struct sockaddr_storage holders[EXPLAIN_HOLDERS];
    size_t n_holders;
};

/* ---- the input ---- */

/* Decodes a query value (percent escapes, '+' for space). 0, -EINVAL or -E2BIG. */
static int decode_query(const char *raw, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = raw; *p; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = hex_digit((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : hex_digit((unsigned char)p[2]);
            if (lo < 0)
                return -EINVAL;
            c = hi << 4 | lo;
            p += 2;
        }
        if (c == 0)
            return -EINVAL;
        if (o + 1 >= n)
            return -E2BIG;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* ---- the facts ---- */

static void find_in_flight(void *ud, const struct dl_view *v)
{
    struct explain *x = ud;
    if (strcmp(v->key, x->route.key) == 0)
        x->in_flight = true;
}

static void gather(struct explain *x, const struct server_view *sv)
{
    struct status *st = x->st;
    uint8_t h[32];
    struct policy_in in = {.cls = x->route.cls};
    const char *base = strrchr(x->route.key, '/');
    base = base ? base + 1 : x->route.key;
    in.release_name = !strcmp(base, "InRelease") || !strcmp(base, "Release") ||
                      !strcmp(base, "Release.gpg");
    if (st->db && hashdb_lookup(st->db, x->route.key, &x->e) == 0 &&
        (x->e.have_sha256 || x->e.have_sha1)) {
        x->have_expect = true;
    } else if (url_by_hash_sha256(x->route.path, h)) {
        memset(&x->e, 0, sizeof x->e);
        x->e.size = UINT64_MAX;
        x->e.have_sha256 = true;
        memcpy(x->e.sha256, h, 32);
        x->have_expect = x->by_hash_name = true;
    }
    x->cached = cache_has(st->cache, x->route.key);
    x->linkable = !x->cached && x->have_expect && x->e.have_sha256 &&
                  cache_has_sha256(st->cache, x->e.sha256);
    if (x->linkable) { /* what the request would find once catalogue_adopt links it */
        x->cached = true;
        memcpy(x->cached_sha256, x->e.sha256, 32);
    }
    x->cached_sha = x->linkable || (x->cached && cache_sha256(st->cache, x->route.key, x->cached_sha256));
    x->cached_matches = x->cached_sha && x->have_expect && x->e.have_sha256 &&
                        memcmp(x->cached_sha256, x->e.sha256, 32) == 0;
    x->neg_hit = negcache_has(sv->neg, x->route.key, loop_now_ms());
    fetcher_each(sv->fetcher, find_in_flight, x, SIZE_MAX);
    in.have_expect = x->have_expect;
    in.expect_sha256 = x->have_expect && x->e.have_sha256;
    in.cached = x->cached;
    in.cached_matches = x->cached_matches;
    in.neg_hit = x->neg_hit;
    in.index_pending = sv->ix && indexer_pending(sv->ix) > 0;
    x->decision = policy_decide(&in);
    /* the same test as the pipeline's for asking peers */
    x->peers_eligible = sv->peers_on && in.expect_sha256 && x->e.size != UINT64_MAX &&
                        x->route.cls == URL_IMMUTABLE && sv->peer_budget_ms > 0;
}

/* The SHA-256 the DHT knows the file by: the expected one, else the cached copy's. */
static const uint8_t *dht_sha(const struct explain *x)
{
    if (x->t.form == URL_PEER)
        return x->t.sha256;
    if (x->have_expect && x->e.have_sha256)
        return x->e.sha256;
    return x->cached_sha ? x->cached_sha256 : NULL;
}

/* ---- the page ---- */

static void hex_out(struct tbuf *b, const uint8_t *p, size_t n)
{
    char hex[65];
    hex_encode(p, n, hex);
    tbuf_printf(b, "<code>%s</code>", hex);
}

static void row(struct tbuf *b, const char *k)
{
    tbuf_printf(b, "<tr><th>%s</th><td>", k);
}

static void write_route(struct explain *x, struct tbuf *b)
{
    static const char *const forms[] = {"proxy form (absolute URL)",
                                        "origin form (a backend name or a host in the path)",
                                        "peer form"};
    row(b, "Request form");
    tbuf_puts(b, forms[x->t.form]);
    tbuf_puts(b, "</td></tr>\n");
    if (x->refused) {
        row(b, "Route");
        tbuf_printf(b, "<span class=\"bad\">refused (%u): ", x->refused);
        tbuf_html(b, x->refused_why ? x->refused_why : "");
        tbuf_puts(b, "</span></td></tr>\n");
        return;
    }
    row(b, "Cache key");
    tbuf_puts(b, "<code id=\"explain-key\">");
    tbuf_html(b, x->route.key);
    tbuf_puts(b, "</code></td></tr>\n");
    row(b, "Mirrors, in order");
    for (size_t i = 0; i < x->route.n_urls; i++) {
        tbuf_puts(b, i ? "<br><code>" : "<code>");
        tbuf_html(b, x->route.urls[i]);
        tbuf_puts(b, "</code>");
    }
    tbuf_printf(b, "</td></tr>\n");
    row(b, "Class");
    tbuf_puts(b, x->route.cls == URL_IMMUTABLE
                     ? "immutable: same name, same bytes; served from the cache once there"
                     : "volatile: revalidated with the mirror, or checked against InRelease");
    tbuf_puts(b, "</td></tr>\n");
}

static void write_knowledge(struct explain *x, struct tbuf *b)
{
    row(b, "Expected");
    if (!x->have_expect) {
        tbuf_puts(b, "<span id=\"explain-expect\" data-known=\"0\">nothing: no index this proxy "
                     "parsed lists it, so it is fetched from mirrors only and not verified"
                     "</span>");
    } else {
        tbuf_puts(b, "<span id=\"explain-expect\" data-known=\"1\">");
        if (x->e.have_sha256) {
            tbuf_puts(b, "SHA-256 ");
            hex_out(b, x->e.sha256, 32);
        } else {
            tbuf_puts(b, "SHA-1 ");
            hex_out(b, x->e.sha1, 20);
        }
        if (x->e.size != UINT64_MAX)
            tbuf_printf(b, ", %llu bytes", (unsigned long long)x->e.size);
        tbuf_puts(b, x->by_hash_name ? ", from its by-hash name"
                                     : ", from the hash index (the signed Release, Packages "
                                       "and Sources files that passed through this proxy)");
        tbuf_puts(b, "</span>");
    }
    tbuf_puts(b, "</td></tr>\n");
    row(b, "Cached");
    tbuf_printf(b, "<span id=\"explain-cached\" data-cached=\"%d\">", x->cached);
    if (!x->cached)
        tbuf_puts(b, "no");
    else if (x->linkable)
        tbuf_puts(b, "yes, under another name with the expected SHA-256 (one file for both)");
    else if (x->cached_matches)
        tbuf_puts(b, "yes, and its SHA-256 is the expected one");
    else if (x->cached_sha && x->have_expect && x->e.have_sha256)
        tbuf_puts(b, "yes, but its SHA-256 is not the one now expected");
    else
        tbuf_puts(b, "yes");
    tbuf_puts(b, "</span></td></tr>\n");
    const uint8_t *sha = dht_sha(x);
    row(b, "DHT key");
    if (sha)
        hex_out(b, sha, 20);
    else
        tbuf_puts(b, "none: no SHA-256 is known, so it is never asked of peers");
    tbuf_puts(b, "</td></tr>\n");
    row(b, "Now");
    tbuf_printf(b, "%s%s", x->in_flight ? "a download of it is in progress; " : "",
                x->neg_hit ? "the mirror answered 404 for it recently (negative cache)"
                           : "no recent 404 from the mirror");
    tbuf_puts(b, "</td></tr>\n");
}

static void write_holders(struct explain *x, struct tbuf *b)
{
    struct status *st = x->st;
    char label[64];
    uint64_t now = loop_now_ms();
    tbuf_puts(b, "<h2>Who holds it now</h2>\n");
    if (!st || !st->p2p) {
        tbuf_puts(b, "<p>The DHT is off on this host (dht.mode: off).</p>\n");
        return;
    }
    if (!x->lookup_ran) {
        tbuf_puts(b, "<p>Not looked up: no SHA-256 is known for this file.</p>\n");
        return;
    }
    tbuf_printf(b, "<p id=\"explain-lookup\" data-holders=\"%zu\">A DHT lookup %s after %llu ms "
                   "with %zu holder(s).</p>\n",
                x->n_holders, x->timed_out ? "was still running" : "ended",
                (unsigned long long)x->lookup_ms, x->n_holders);
    if (!x->n_holders)
        return;
    tbuf_puts(b, "<table id=\"holders\"><tr><th>Holder</th><th>State</th></tr>\n");
    for (size_t i = 0; i < x->n_holders; i++) {
        struct p2p_peer_view v;
        const struct sockaddr *sa = (const struct sockaddr *)&x->holders[i];
        status_sa_label(&x->holders[i], label, sizeof label);
        tbuf_puts(b, "<tr class=\"holder\"><td>");
        tbuf_html(b, label);
        tbuf_puts(b, "</td><td>");
        if (p2p_is_self(st->p2p, sa))
            tbuf_puts(b, "this host");
        else if (!p2p_peer_view(st->p2p, sa, &v))
            tbuf_puts(b, "not tried yet");
        else if (v.banned_until_ms > now)
            tbuf_puts(b, "<span class=\"bad\">banned</span> (served data that failed "
                         "verification)");
        else if (v.backoff_until_ms > now)
            tbuf_puts(b, "<span class=\"warn\">backed off</span> (failed recently)");
        else
            tbuf_printf(b, "usable; %llu files fetched from it", (unsigned long long)v.files_ok);
        tbuf_puts(b, "</td></tr>\n");
    }
    tbuf_puts(b, "</table>\n");
}

static void write_decision(struct explain *x, struct tbuf *b)
{
    const struct policy_out *o = &x->decision;
    tbuf_printf(b, "<h2>Where a request would get it from</h2>\n<p id=\"explain-decision\" "
                   "data-act=\"%s\">",
                policy_act_name(o->act));
    switch (o->act) {
    case ACT_SERVE_CACHED:
        tbuf_puts(b, "From the cache, at once.");
        break;
    case ACT_FETCH:
        if (x->in_flight)
            tbuf_puts(b, "It would join the download in progress. ");
        if (x->peers_eligible)
            tbuf_puts(b, "From peers on the LAN first (the holders above, within "
                         "peers.budget), each verified before a byte goes to apt; then ");
        tbuf_printf(b, "%s the mirrors in order%s%s.", x->peers_eligible ? "from" : "From",
                    o->conditional ? ", asking whether the cached copy is still current" : "",
                    o->verify_first ? ", verified before delivery"
                    : o->use_expect ? ", its last byte held back until the hash checks"
                                    : ", unverified (no hash known)");
        break;
    case ACT_WAIT_INDEX:
        tbuf_puts(b, "It would wait (at most 10 s) for the indexer to finish parsing the "
                     "indices queued now, then decide again.");
        break;
    default:
        tbuf_printf(b, "It would be refused with %u", o->status);
        if (o->reason) {
            tbuf_puts(b, ": ");
            tbuf_html(b, o->reason);
        }
        tbuf_puts(b, ".");
        break;
    }
    tbuf_puts(b, "</p>\n");
}

static void write_form(struct tbuf *b, const char *value)
{
    tbuf_puts(b, "<form action=\"/~/status/explain\" method=\"get\"><input type=\"text\" "
                 "name=\"u\" value=\"");
    tbuf_html(b, value);
    tbuf_puts(b, "\" placeholder=\"http://mirror.example/debian/pool/main/... or "
                 "/BACKEND/pool/main/...\"> <button type=\"submit\">Explain</button></form>\n");
}

static void write_page(struct explain *x)
{
    struct tbuf *b = &x->page;
    status_html_begin(b, "Explain a file");
    write_form(b, x->input);
    tbuf_puts(b, "<p>You asked about <code id=\"explain-input\">");
    tbuf_html(b, x->input);
    tbuf_puts(b, "</code>.</p>\n<h2>What apt-dht knows of it</h2>\n<table>\n");
    write_route(x, b);
    if (!x->refused && x->t.form != URL_PEER)
        write_knowledge(x, b);
    tbuf_puts(b, "</table>\n");
    write_holders(x, b);
    if (!x->refused && x->t.form != URL_PEER)
        write_decision(x, b);
    status_html_end(b);
    x->written = true;
}

/* ---- the response ---- */

static void explain_end(struct explain *x)
{
    struct status *st = x->st;
    if (st) {
        if (x->handle > 0 && st->p2p)
            p2p_cancel(st->p2p, x->handle);
        loop_timer_stop(st->loop, &x->deadline);
        if (x->linked && x->prev)
            x->prev->next = x->next;
        else if (x->linked)
            st->explains = x->next;
        if (x->linked && x->next)
            x->next->prev = x->prev;
    }
    x->linked = false;
    x->handle = 0;
    x->st = NULL;
}

static void explain_free(struct explain *x)
{
    explain_end(x);
    route_done(&x->route);
    tbuf_done(&x->page);
    free(x);
}

static void finish(struct explain *x)
{
    if (x->done)
        return;
    x->done = true;
    x->lookup_ms = loop_now_ms() - x->lookup_start_ms;
    if (x->st)
        loop_timer_stop(x->st->loop, &x->deadline);
    answer_resume(x->a);
}

static void on_holders(void *ud, const struct sockaddr_storage *peers, size_t n, bool done)
{
    struct explain *x = ud;
    for (size_t i = 0; i < n && x->n_holders < EXPLAIN_HOLDERS; i++)
        x->holders[x->n_holders++] = peers[i];
    if (done) {
        x->handle = 0; /* p2p forgets the lookup itself */
        finish(x);
    }
}

static void on_deadline(struct loop *l, struct loop_timer *t, void *ud)
{
    struct explain *x = ud;
    if (x->handle > 0 && x->st && x->st->p2p)
        p2p_cancel(x->st->p2p, x->handle);
    x->handle = 0;
    x->timed_out = true;
    finish(x);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct explain *x = cls;
    if (x->a->rs->stopping)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!x->done) {
        answer_suspend(x->a);
        return 0;
    }
    if (!x->written)
        write_page(x);
    if (tbuf_failed(&x->page))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (x->pos >= x->page.len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = x->page.len - x->pos < max ? x->page.len - x->pos : max;
    memcpy(buf, x->page.p + x->pos, n);
    x->pos += n;
    x->a->bytes += n;
    return (ssize_t)n;
}

static void release(void *cls)
{
    struct explain *x = cls;
    struct answer *a = x->a;
    explain_free(x);
    answer_unref(a);
}

/* The page now, when no lookup is needed. */
static enum MHD_Result send_now(struct explain *x)
{
    struct answer *a = x->a;
    write_page(x);
    enum MHD_Result r = status_send(a, MHD_HTTP_OK, "text/html; charset=utf-8", &x->page);
    explain_free(x);
    return r;
}

/* The page later, when the lookup ends. */
static enum MHD_Result send_later(struct explain *x)
{
    struct status *st = x->st;
    struct answer *a = x->a;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, x, release);
    if (!resp) {
        explain_free(x);
        return answer_error(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    answer_ref(a); /* the response's */
    x->next = st->explains;
    if (st->explains)
        st->explains->prev = x;
    st->explains = x;
    x->linked = true;
    x->lookup_start_ms = loop_now_ms();
    loop_timer_start(st->loop, &x->deadline, EXPLAIN_WAIT_MS);
    x->lookup_ran = true;
    int h = p2p_find_all(st->p2p, dht_sha(x), on_holders, x);
    if (h < 0)
        finish(x); /* the page says no holder was found */
    else if (!x->done)
        x->handle = h;
    status_headers(resp, "text/html; charset=utf-8");
    snprintf(a->source, sizeof a->source, "status");
    a->status = MHD_HTTP_OK;
    enum MHD_Result r = MHD_queue_response(a->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result bad_input(struct answer *a, const char *input, const char *why)
{
    struct tbuf b;
    tbuf_init(&b);
    status_html_begin(&b, "Explain a file");
    write_form(&b, input);
    tbuf_puts(&b, "<p class=\"bad\" id=\"explain-error\">");
    tbuf_html(&b, why);
    tbuf_puts(&b, "</p>\n");
    status_html_end(&b);
    return status_send(a, MHD_HTTP_BAD_REQUEST, "text/html; charset=utf-8", &b);
}

static int parse_input(struct explain *x)
{
    const char *in = x->input;
    while (*in == ' ')
        in++;
    return url_parse(in, &x->t);
}

enum MHD_Result status_explain(struct status *st, struct answer *a, const char *raw)
{
    struct server_view sv;
    struct explain *x;
    if (!raw || !*raw) { /* the form alone */
        struct tbuf b;
        tbuf_init(&b);
        status_html_begin(&b, "Explain a file");
        write_form(&b, "");
        tbuf_puts(&b, "<p>Give a URL as apt asks for it (through the proxy, as "
                      "<code>http://mirror.example/debian/pool/...</code>), or a path as apt "
                      "asks for it by backend name (<code>/debian/pool/...</code>), or a peer "
                      "path <code>/~/sha256/HEX</code>.</p>\n");
        status_html_end(&b);
        return status_send(a, MHD_HTTP_OK, "text/html; charset=utf-8", &b);
    }
    if (!(x = calloc(1, sizeof *x)))
        return answer_error(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    x->st = st;
    x->a = a;
    loop_timer_init(&x->deadline, on_deadline, x);
    int r = decode_query(raw, x->input, sizeof x->input);
    if (r == 0 && (r = parse_input(x)) < 0) {
        free(x);
        return bad_input(a, raw, r == -ENAMETOOLONG ? "That URL or path is too long."
                                 : r == -EPROTONOSUPPORT
                                     ? "Only http:// and https:// URLs are archive URLs."
                                     : "That is not a URL or path apt would ask for: it must "
                                       "start with http://, https:// or /, and its segments "
                                       "must be plain file names (no '.', '..', empty or "
                                       "encoded '/' segments, no control bytes).");
    }
    if (r < 0) {
        free(x);
        return bad_input(a, "", r == -E2BIG ? "The query is too long."
                                            : "The query has a bad percent escape.");
    }
    server_view(st->server, &sv);
    if (x->t.form != URL_PEER) {
        x->refused = router_resolve(sv.router, &x->t, &x->route, &x->refused_why);
        if (!x->refused)
            gather(x, &sv);
    }
    if (!st->p2p || x->refused || !dht_sha(x))
        return send_now(x);
    return send_later(x);
}

void status_explain_free_all(struct status *st)
{
    /* The server frees first, and with it every response that still reads a page; what
     * is left (nothing, normally) is cut loose so its release touches nothing of ours. */
    while (st->explains)
        explain_end(st->explains);
}

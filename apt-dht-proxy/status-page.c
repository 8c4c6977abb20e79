/* status-page.c - the status page: HTML with inline CSS and one inline SVG, no script.
 *
 * The page answers "is it working, and how much does it save?" first (the health line and
 * four figures), then shows the detail a person would look for next, one section each.
 * Every string that came from outside the daemon (request targets, User-Agents, peer
 * labels, log lines, which quote paths) goes through tbuf_html; numbers are printed by
 * the page itself. Figures a test reads carry their exact value in a data- attribute
 * beside the rounded one a person reads. */
#include "aptdht-config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/status-int.h"
#include "apt-dht-proxy/version.h"

#define PAGE_PEERS 64
#define PAGE_NODES 64
#define PAGE_DOWNLOADS 64
#define CHART_W 1440 /* one unit per minute */
#define CHART_H 200

/* ---- small pieces ---- */

static void esc(struct tbuf *b, const char *s)
{
    tbuf_html(b, s);
}

static void ago(struct tbuf *b, uint64_t now_ms, uint64_t then_ms)
{
    if (!then_ms || then_ms > now_ms) {
        tbuf_puts(b, "never");
        return;
    }
    tbuf_duration(b, (now_ms - then_ms) / 1000);
    tbuf_puts(b, " ago");
}

static void wall_time(struct tbuf *b, int64_t ms)
{
    char t[32];
    struct tm tm;
    time_t s = (time_t)(ms / 1000);
    localtime_r(&s, &tm);
    strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
    tbuf_puts(b, t);
}

/* A table cell holding a byte count: rounded for people, exact in data-bytes. */
static void td_bytes(struct tbuf *b, const char *id, uint64_t n)
{
    tbuf_puts(b, "<td class=\"n\"");
    if (id)
        tbuf_printf(b, " id=\"%s\"", id);
    tbuf_printf(b, " data-bytes=\"%llu\">", (unsigned long long)n);
    tbuf_bytes(b, n);
    tbuf_puts(b, "</td>");
}

static void td_count(struct tbuf *b, const char *id, uint64_t n)
{
    tbuf_puts(b, "<td class=\"n\"");
    if (id)
        tbuf_printf(b, " id=\"%s\"", id);
    tbuf_printf(b, " data-count=\"%llu\">%llu</td>", (unsigned long long)n,
                (unsigned long long)n);
}

static void td_text(struct tbuf *b, const char *s)
{
    tbuf_puts(b, "<td>");
    esc(b, s);
    tbuf_puts(b, "</td>");
}

static unsigned percent(uint64_t part, uint64_t whole)
{
    return whole ? (unsigned)((part * 100 + whole / 2) / whole) : 0;
}

/* ---- the frame every page shares ---- */

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;"
    "color:#1b1f23;background:#fff}"
    "h1{font-size:22px;margin:16px 0 4px}h2{font-size:17px;margin:28px 0 8px;"
    "border-bottom:1px solid #d0d7de;padding-bottom:4px}"
    "nav a{margin-right:14px}table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eaeef2;"
    "vertical-align:top;overflow-wrap:anywhere}"
    "th{background:#f6f8fa;font-weight:600}td.n{text-align:right;white-space:nowrap;"
    "font-variant-numeric:tabular-nums}"
    ".health{padding:10px 14px;border-radius:6px;margin:10px 0;font-weight:600}"
    ".ok{background:#dafbe1;color:#0a3622}.fail{background:#ffebe9;color:#67060c}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}"
    ".card{flex:1 1 200px;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px}"
    ".card .v{font-size:26px;font-weight:700}.card .k{color:#57606a}"
    ".muted{color:#57606a}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700}"
    ".legend span{display:inline-block;margin-right:16px}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
    "svg{width:100%;height:auto;border:1px solid #eaeef2}"
    "input[type=text]{width:70%;padding:4px}code{font-size:13px}";

void status_html_begin(struct tbuf *b, const char *title)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    tbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                 "<title>");
    esc(b, title);
    tbuf_puts(b, " - ");
    esc(b, host);
    tbuf_printf(b, "</title><style>%s</style></head><body>\n<h1>", css);
    esc(b, title);
    tbuf_puts(b, " <span class=\"muted\">on ");
    esc(b, host);
    tbuf_puts(b, "</span></h1>\n<nav><a href=\"/~/status\">Status</a>"
                 "<a href=\"/~/status/explain\">Explain a file</a>"
                 "<a href=\"/metrics\">Metrics</a><a href=\"/~/status.json\">JSON</a>"
                 "<a href=\"/~/health\">Health</a></nav>\n");
}

void status_html_end(struct tbuf *b)
{
    tbuf_printf(b, "<p class=\"muted\">apt-dht-proxy %s. This page is read-only.</p>\n"
                   "</body></html>\n",
                aptdht_version());
}

/* ---- what it is, and whether it works ---- */

static void section_daemon(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    char start[32];
    struct tm tm;
    time_t t0 = (time_t)st->start_wall;
    localtime_r(&t0, &tm);
    strftime(start, sizeof start, "%Y-%m-%d %H:%M:%S", &tm);
    tbuf_printf(b, "<div class=\"health %s\" id=\"health\" data-status=\"%u\">",
                s->health_status == 200 ? "ok" : "fail", s->health_status);
    esc(b, s->health);
    tbuf_puts(b, "</div>\n<table><tr><th>Version</th><td>");
    esc(b, aptdht_version());
    tbuf_puts(b, "</td><th>Up</th><td id=\"uptime\" data-seconds=\"");
    tbuf_printf(b, "%llu\">", (unsigned long long)s->uptime_s);
    tbuf_duration(b, s->uptime_s);
    tbuf_printf(b, " (since %s)</td></tr>\n<tr><th>Config</th><td>", start);
    esc(b, st->config_file ? st->config_file : "built-in defaults");
    tbuf_puts(b, "</td><th>Listening</th><td>");
    esc(b, s->sv.listen_address ? s->sv.listen_address : (s->have_p2p ? "0.0.0.0" : "127.0.0.1"));
    tbuf_printf(b, " port %u</td></tr>\n<tr><th>DHT</th><td id=\"dht-state\" data-state=\"%s\">",
                s->sv.port, status_dht_state(s));
    if (!s->have_p2p) {
        tbuf_puts(b, "OFF (dht.mode: off)</td><th></th><td></td></tr></table>\n");
        return;
    }
    char id[41];
    for (int i = 0; i < 20; i++)
        snprintf(id + 2 * i, 3, "%02x", s->ps.id[i]);
    tbuf_printf(b, "%s, dialect %s</td><th>Node id</th><td><code>%s</code></td></tr>\n",
                status_dht_state(s), p2p_dialect(st->p2p), id);
    tbuf_printf(b, "<tr><th>Routing table</th><td id=\"dht-nodes\" data-count=\"%u\">%u nodes "
                   "(%u good) in %u buckets</td><th>Stored here</th><td>%u values under %u "
                   "keys; %u files announced</td></tr></table>\n",
                s->ps.nodes, s->ps.nodes, s->ps.nodes_good, s->ps.buckets, s->ps.values_stored,
                s->ps.keys_stored, s->ps.announced);
}

static void card(struct tbuf *b, const char *id, const char *key, uint64_t bytes, bool is_bytes,
                 const char *unit)
{
    tbuf_printf(b, "<div class=\"card\"><div class=\"v\" id=\"%s\" data-value=\"%llu\">", id,
                (unsigned long long)bytes);
    if (is_bytes)
        tbuf_bytes(b, bytes);
    else
        tbuf_printf(b, "%llu%s", (unsigned long long)bytes, unit);
    tbuf_printf(b, "</div><div class=\"k\">%s</div></div>", key);
}

static void section_cards(const struct status_sum *s, struct tbuf *b)
{
    struct status_window day;
    status_window(s, WIN_DAY, &day);
    uint64_t lan = day.cache + day.peer;
    tbuf_puts(b, "<div class=\"cards\">");
    card(b, "card-saved", "mirror bytes saved, last 24 h", day.saved, true, "");
    card(b, "card-share", "of apt's bytes came from the cache or the LAN, last 24 h",
         percent(lan, day.total), false, " %");
    card(b, "card-peers", "from peers on the LAN, last 24 h", day.peer, true, "");
    card(b, "card-verified", "files verified against the signed indices",
         s->st.verified[STATS_FROM_PEER] + s->st.verified[STATS_FROM_MIRROR], false, "");
    tbuf_puts(b, "</div>\n");
}

/* ---- what it saved ---- */

static void saved_row(struct tbuf *b, const char *what, const char *id, const uint64_t v[3])
{
    static const char *const win[] = {"start", "hour", "day"};
    char cell[64];
    tbuf_printf(b, "<tr><th>%s</th>", what);
    for (int i = 0; i < 3; i++) {
        snprintf(cell, sizeof cell, "%s-%s", id, win[i]);
        td_bytes(b, cell, v[i]);
    }
    tbuf_puts(b, "</tr>\n");
}

static void section_saved(const struct status_sum *s, struct tbuf *b)
{
    struct status_window w[3];
    for (int i = 0; i < 3; i++)
        status_window(s, i, &w[i]);
#define ROW(what, id, field) \
    saved_row(b, what, id, (const uint64_t[3]){w[0].field, w[1].field, w[2].field})
    tbuf_puts(b, "<h2>What it saved</h2>\n<table><tr><th></th><th class=\"n\">since start"
                 "</th><th class=\"n\">last hour</th><th class=\"n\">last 24 h</th></tr>\n");
    ROW("to apt, from the cache", "served-cache", cache);
    ROW("to apt, from peers", "served-peer", peer);
    ROW("to apt, from mirrors", "served-mirror", mirror);
    ROW("to apt, in all", "served-total", total);
    ROW("fetched from mirrors", "from-mirror", from_mirror);
    ROW("mirror bytes saved", "saved", saved);
    ROW("uploaded to peers", "uploaded", uploaded);
#undef ROW
    const struct stats *st = &s->st;
    uint64_t asked = st->hits + st->misses;
    tbuf_puts(b, "</table>\n<table><tr><th>Answers to apt</th><th class=\"n\">from the cache"
                 "</th><th class=\"n\">from peers</th><th class=\"n\">from mirrors</th>"
                 "<th class=\"n\">requests in all</th><th class=\"n\">errors (5xx)</th>"
                 "<th class=\"n\">hit ratio</th></tr>\n<tr><td></td>");
    td_count(b, "requests-cache", st->served_requests[STATS_CACHE]);
    td_count(b, "requests-peer", st->served_requests[STATS_PEER]);
    td_count(b, "requests-mirror", st->served_requests[STATS_MIRROR]);
    td_count(b, "requests", st->requests);
    td_count(b, "errors", st->errors);
    tbuf_printf(b, "<td class=\"n\" id=\"hit-ratio\">%u %% (%llu hits, %llu misses, "
                   "%llu revalidated)</td></tr></table>\n",
                percent(st->hits, asked), (unsigned long long)st->hits,
                (unsigned long long)st->misses, (unsigned long long)st->revalidated);
}

/* ---- the picture: stacked areas of bytes per minute, one unit of width per minute ---- */

static void chart_area(struct tbuf *b, const uint64_t *base, const uint64_t *top, double scale,
                       const char *color, const char *id)
{
    tbuf_printf(b, "<path id=\"%s\" fill=\"%s\" d=\"M0 %d", id, color, CHART_H);
    for (int i = 0; i < CHART_W; i++)
        tbuf_printf(b, "L%d %.1f", i, CHART_H - (double)top[i] * scale);
    tbuf_printf(b, "L%d %.1f", CHART_W, CHART_H - (double)top[CHART_W - 1] * scale);
    for (int i = CHART_W - 1; i >= 0; i--)
        tbuf_printf(b, "L%d %.1f", i + 1, CHART_H - (double)base[i] * scale);
    tbuf_puts(b, "L0 ");
    tbuf_printf(b, "%.1fZ\"/>", CHART_H - (double)base[0] * scale);
}

static void section_chart(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    static const enum history_series series[3] = {HIST_SERVED_CACHE, HIST_SERVED_PEER,
                                                  HIST_SERVED_MIRROR};
    static const char *const colors[3] = {"#2da44e", "#0969da", "#bf8700"};
    static const char *const names[3] = {"from the cache", "from peers", "from mirrors"};
    static const char *const ids[3] = {"chart-cache", "chart-peer", "chart-mirror"};
    uint64_t (*stack)[CHART_W] = calloc(4, sizeof *stack); /* 0 = zero, then cumulative */
    if (!stack) {
        b->failed = true;
        return;
    }
    uint64_t v[CHART_W], peak = 0;
    for (int k = 0; k < 3; k++) {
        /* the closed minutes, then the minute in progress at the right edge */
        history_get(st->hist, series[k], s->now_min, v, CHART_W - 1);
        v[CHART_W - 1] = history_pending(st->hist, series[k], s->totals);
        for (int i = 0; i < CHART_W; i++)
            stack[k + 1][i] = stack[k][i] + v[i];
    }
    for (int i = 0; i < CHART_W; i++)
        peak = stack[3][i] > peak ? stack[3][i] : peak;
    double scale = peak ? (double)(CHART_H - 10) / (double)peak : 0;
    tbuf_puts(b, "<h2>Bytes to apt per minute, last 24 hours</h2>\n<p class=\"legend\">");
    for (int k = 0; k < 3; k++)
        tbuf_printf(b, "<span><i class=\"sw\" style=\"background:%s\"></i>%s</span>", colors[k],
                    names[k]);
    tbuf_puts(b, "<span class=\"muted\">peak: ");
    tbuf_bytes(b, peak);
    tbuf_printf(b, " per minute</span></p>\n<svg id=\"chart\" " /* inline in HTML: no xmlns needed */
                   "viewBox=\"0 0 %d %d\" preserveAspectRatio=\"none\" role=\"img\" "
                   "aria-label=\"bytes to apt per minute by source, last 24 hours\">",
                CHART_W, CHART_H + 20);
    for (int h = 0; h <= 24; h += 6) /* hour lines and labels: 24 h ago ... now */
        tbuf_printf(b, "<line x1=\"%d\" y1=\"0\" x2=\"%d\" y2=\"%d\" stroke=\"#d0d7de\"/>"
                       "<text x=\"%d\" y=\"%d\" font-size=\"16\" fill=\"#57606a\" "
                       "text-anchor=\"%s\">%s%d h</text>",
                    h * 60, h * 60, CHART_H, h * 60, CHART_H + 17,
                    h == 0 ? "start" : h == 24 ? "end" : "middle", h == 24 ? "" : "-", 24 - h);
    for (int k = 0; k < 3; k++)
        chart_area(b, stack[k], stack[k + 1], scale, colors[k], ids[k]);
    tbuf_puts(b, "</svg>\n");
    free(stack);
}

/* ---- the LAN ---- */

static const char *agent_of(struct status *st, const char *label)
{
    char addr[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(label, ':');
    size_t n = colon ? (size_t)(colon - label) : strlen(label);
    if (label[0] == '[' && n >= 2) { /* [v6]:port */
        label++;
        n -= 2;
    }
    snprintf(addr, sizeof addr, "%.*s", (int)n, label);
    for (size_t i = 0; i < STATUS_CLIENTS; i++)
        if (st->seen[i].last_ms && st->seen[i].peer && strcmp(st->seen[i].addr, addr) == 0)
            return st->seen[i].agent;
    return "";
}

static void peer_state(struct tbuf *b, const struct p2p_peer_view *v, uint64_t now)
{
    if (v->banned_until_ms > now) {
        tbuf_puts(b, "<td class=\"bad\">banned for another ");
        tbuf_duration(b, (v->banned_until_ms - now) / 1000);
    } else if (v->backoff_until_ms > now) {
        tbuf_puts(b, "<td class=\"warn\">backed off for another ");
        tbuf_duration(b, (v->backoff_until_ms - now) / 1000);
    } else {
        tbuf_puts(b, "<td>usable");
    }
    tbuf_puts(b, "</td>");
}

static void section_peers(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    struct p2p_peer_view *pv = calloc(PAGE_PEERS, sizeof *pv);
    if (!pv) {
        b->failed = true;
        return;
    }
    size_t n = p2p_peers(st->p2p, pv, PAGE_PEERS);
    tbuf_printf(b, "<h2>Peers on the LAN</h2>\n<p class=\"muted\">Hosts this proxy fetched from "
                   "(or tried to): %zu shown; %u banned and %u backed off now.</p>\n",
                n, s->ps.banned, s->ps.backed_off);
    tbuf_puts(b, "<table id=\"peers\"><tr><th>Peer</th><th>Label (its User-Agent)</th>"
                 "<th>Last heard</th><th class=\"n\">Speed</th><th class=\"n\">Files</th>"
                 "<th class=\"n\">Bytes</th><th class=\"n\">Failed</th><th class=\"n\">Bad</th>"
                 "<th>State</th><th>Why</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const struct p2p_peer_view *v = &pv[i];
        const char *state = v->banned_until_ms > s->now_ms    ? "banned"
                            : v->backoff_until_ms > s->now_ms ? "backed-off"
                                                              : "usable";
        tbuf_puts(b, "<tr class=\"peer\" data-label=\"");
        esc(b, v->label);
        tbuf_printf(b, "\" data-state=\"%s\">", state);
        td_text(b, v->label);
        td_text(b, agent_of(st, v->label));
        tbuf_puts(b, "<td>");
        ago(b, s->now_ms, v->last_ms);
        tbuf_puts(b, "</td><td class=\"n\">");
        if (v->bytes_per_s > 0) {
            tbuf_bytes(b, (uint64_t)v->bytes_per_s);
            tbuf_puts(b, "/s");
        }
        tbuf_puts(b, "</td>");
        td_count(b, NULL, v->files_ok);
        td_bytes(b, NULL, v->bytes_ok);
        td_count(b, NULL, v->failures);
        td_count(b, NULL, v->bad);
        peer_state(b, v, s->now_ms);
        td_text(b, v->why);
        tbuf_puts(b, "</tr>\n");
    }
    tbuf_puts(b, "</table>\n");
    free(pv);
}

static void section_nodes(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    struct p2p_node *nodes = calloc(PAGE_NODES, sizeof *nodes);
    char label[64];
    if (!nodes) {
        b->failed = true;
        return;
    }
    size_t n = p2p_nodes(st->p2p, nodes, PAGE_NODES);
    tbuf_printf(b, "<h2>DHT nodes</h2>\n<table id=\"nodes\"><tr><th>Node</th><th>Id</th>"
                   "<th>State</th><th>Last reply</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        status_sa_label(&nodes[i].addr, label, sizeof label);
        tbuf_puts(b, "<tr>");
        td_text(b, label);
        tbuf_printf(b, "<td><code>%02x%02x%02x%02x...</code></td><td>%s</td><td>",
                    nodes[i].id[0], nodes[i].id[1], nodes[i].id[2], nodes[i].id[3],
                    nodes[i].good ? "good" : "questionable");
        ago(b, s->now_ms, nodes[i].last_reply_ms);
        tbuf_puts(b, "</td></tr>\n");
    }
    tbuf_puts(b, "</table>\n");
    free(nodes);
}

/* ---- downloads in progress ---- */

struct dl_ctx {
    struct tbuf *b;
    uint64_t now;
};

static void dl_row(void *ud, const struct dl_view *v)
{
    struct dl_ctx *c = ud;
    struct tbuf *b = c->b;
    uint64_t ms = c->now > v->transfer_ms ? c->now - v->transfer_ms : 0;
    tbuf_puts(b, "<tr class=\"download\">");
    td_text(b, v->key);
    td_text(b, v->awaiting_peers ? "waiting for the DHT to name a peer"
               : v->source[0]    ? v->source
                                 : "starting");
    tbuf_puts(b, "<td class=\"n\">");
    tbuf_bytes(b, v->received);
    if (v->total >= 0) {
        tbuf_puts(b, " of ");
        tbuf_bytes(b, (uint64_t)v->total);
    }
    tbuf_puts(b, "</td><td class=\"n\">");
    if (ms > 0 && v->source[0]) {
        tbuf_bytes(b, v->received * 1000 / ms);
        tbuf_puts(b, "/s");
    }
    tbuf_printf(b, "</td><td class=\"n\">%u</td><td class=\"n\">", v->readers);
    tbuf_duration(b, (c->now - v->started_ms) / 1000);
    tbuf_puts(b, "</td></tr>\n");
}

static void section_downloads(const struct status_sum *s, struct tbuf *b)
{
    struct dl_ctx c = {b, s->now_ms};
    tbuf_printf(b, "<h2>Downloads in progress</h2>\n<table id=\"downloads\" data-count=\"%zu\">"
                   "<tr><th>File</th><th>Source</th><th class=\"n\">Bytes so far</th>"
                   "<th class=\"n\">Rate</th><th class=\"n\">Clients</th>"
                   "<th class=\"n\">For</th></tr>\n",
                s->downloads);
    fetcher_each(s->sv.fetcher, dl_row, &c, PAGE_DOWNLOADS);
    tbuf_puts(b, "</table>\n");
    if (s->downloads == 0)
        tbuf_puts(b, "<p class=\"muted\">None.</p>\n");
}

/* ---- the cache and verification ---- */

static void section_cache(const struct status_sum *s, struct tbuf *b)
{
    tbuf_puts(b, "<h2>The cache</h2>\n<table><tr><th>Used</th>");
    td_bytes(b, "cache-used", s->cache_used);
    tbuf_printf(b, "<td>%u %% of cache.max_size ", percent(s->cache_used, s->cache_max));
    tbuf_bytes(b, s->cache_max);
    tbuf_printf(b, "</td></tr>\n<tr><th>Files</th>");
    td_count(b, "cache-files", s->cache_files);
    tbuf_puts(b, "<td></td></tr>\n<tr><th>Evicted</th>");
    td_count(b, "cache-evictions", s->evictions);
    tbuf_puts(b, "<td>files dropped to make room</td></tr>\n<tr><th>Expired</th>");
    td_count(b, "cache-expired", s->expired_files);
    tbuf_puts(b, "<td>files no index seen lists any more (cache.keep_unreferenced), ");
    tbuf_bytes(b, s->expired_bytes);
    tbuf_puts(b, " freed</td></tr>\n<tr><th>Disk free</th>");
    td_bytes(b, "disk-free", s->disk_free);
    tbuf_puts(b, "<td>of ");
    tbuf_bytes(b, s->disk_size);
    tbuf_puts(b, "</td></tr>\n<tr><th>State</th>");
    td_bytes(b, "state-size", s->state_db + s->state_wal);
    tbuf_printf(b, "<td>hash index and its WAL (");
    tbuf_bytes(b, s->state_wal);
    tbuf_printf(b, "), %u %% of the cache's size</td></tr></table>\n",
                percent(s->state_db + s->state_wal, s->cache_used));
}

static void section_verify(const struct status_sum *s, struct tbuf *b)
{
    const struct stats *st = &s->st;
    tbuf_puts(b, "<h2>Verification</h2>\n<table><tr><th></th><th class=\"n\">from peers</th>"
                 "<th class=\"n\">from mirrors</th></tr>\n<tr><th>Files that verified</th>");
    td_count(b, "verified-peer", st->verified[STATS_FROM_PEER]);
    td_count(b, "verified-mirror", st->verified[STATS_FROM_MIRROR]);
    tbuf_puts(b, "</tr>\n<tr><th>Mismatches (discarded)</th>");
    td_count(b, "mismatch-peer", st->mismatches[STATS_FROM_PEER]);
    td_count(b, "mismatch-mirror", st->mismatches[STATS_FROM_MIRROR]);
    tbuf_puts(b, "</tr>\n<tr><th>Unverifiable (no hash known: InRelease, files no index "
                 "lists)</th><td></td>");
    td_count(b, "unverifiable", st->unverifiable);
    tbuf_puts(b, "</tr></table>\n");
    if (!s->have_p2p)
        return;
    tbuf_printf(b, "<p>DHT lookups: %llu, %llu of them found peers. Transfers from peers: "
                   "%llu whole and verified, %llu failed, %llu with bad data.</p>\n",
                (unsigned long long)s->ps.lookups, (unsigned long long)s->ps.lookups_with_peers,
                (unsigned long long)s->ps.peer_ok, (unsigned long long)s->ps.peer_failed,
                (unsigned long long)s->ps.peer_bad);
}

/* ---- who asked, what failed, what went wrong ---- */

static int by_last_seen(const void *a, const void *b)
{
    const struct status_client *x = *(const struct status_client *const *)a;
    const struct status_client *y = *(const struct status_client *const *)b;
    return (y->last_ms > x->last_ms) - (y->last_ms < x->last_ms);
}

static void section_clients(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    const struct status_client *seen[STATUS_CLIENTS];
    size_t n = 0;
    for (size_t i = 0; i < STATUS_CLIENTS; i++)
        if (st->seen[i].last_ms)
            seen[n++] = &st->seen[i];
    qsort(seen, n, sizeof seen[0], by_last_seen);
    tbuf_puts(b, "<h2>Who asked</h2>\n<table id=\"clients\"><tr><th>Address</th><th>As</th>"
                 "<th>User-Agent</th><th class=\"n\">Requests</th><th class=\"n\">Bytes</th>"
                 "<th>Last seen</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const struct status_client *c = seen[i];
        tbuf_puts(b, "<tr class=\"client\">");
        td_text(b, c->addr);
        td_text(b, c->peer ? "peer" : "client");
        td_text(b, c->agent);
        td_count(b, NULL, c->requests);
        td_bytes(b, NULL, c->bytes);
        tbuf_puts(b, "<td>");
        ago(b, s->now_ms, c->last_ms);
        tbuf_puts(b, "</td></tr>\n");
    }
    tbuf_puts(b, "</table>\n");
}

static void section_fails(struct status *st, struct tbuf *b)
{
    tbuf_printf(b, "<h2>Recent failed requests</h2>\n<table id=\"fails\"><tr><th>When</th>"
                   "<th>Client</th><th>Request</th><th class=\"n\">Status</th>"
                   "<th>User-Agent</th></tr>\n");
    for (size_t k = 0; k < st->n_fails; k++) {
        const struct status_fail *f =
            &st->fails[(st->fail_next + STATUS_FAILS - 1 - k) % STATUS_FAILS];
        tbuf_puts(b, "<tr class=\"fail\"><td>");
        wall_time(b, f->time_ms);
        tbuf_puts(b, "</td>");
        td_text(b, f->client);
        tbuf_puts(b, "<td><code>");
        esc(b, f->method);
        tbuf_puts(b, " ");
        esc(b, f->target);
        tbuf_printf(b, "</code></td><td class=\"n\">%u</td>", f->status);
        td_text(b, f->agent);
        tbuf_puts(b, "</tr>\n");
    }
    tbuf_puts(b, "</table>\n");
}

static void section_warnings(struct tbuf *b)
{
    struct log_entry *e = calloc(LOG_RECENT_MAX, sizeof *e);
    if (!e) {
        b->failed = true;
        return;
    }
    size_t n = log_recent(e, LOG_RECENT_MAX);
    tbuf_printf(b, "<h2>Recent warnings and errors</h2>\n<p class=\"muted\">%llu errors and "
                   "%llu warnings since start; the last %d are kept.</p>\n"
                   "<table id=\"warnings\"><tr><th>When</th><th>Level</th><th>Message</th>"
                   "</tr>\n",
                (unsigned long long)log_count(LOG_LEVEL_ERROR),
                (unsigned long long)log_count(LOG_LEVEL_WARN), LOG_RECENT_MAX);
    for (size_t i = 0; i < n; i++) {
        tbuf_puts(b, "<tr><td>");
        wall_time(b, e[i].time_ms);
        tbuf_printf(b, "</td><td class=\"%s\">%s</td>",
                    e[i].level == LOG_LEVEL_ERROR ? "bad" : "warn",
                    e[i].level == LOG_LEVEL_ERROR ? "error" : "warning");
        td_text(b, e[i].msg);
        tbuf_puts(b, "</tr>\n");
    }
    tbuf_puts(b, "</table>\n");
    free(e);
}

void status_page(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    status_html_begin(b, "apt-dht status");
    section_daemon(st, s, b);
    section_cards(s, b);
    section_saved(s, b);
    section_chart(st, s, b);
    if (st->p2p) {
        section_peers(st, s, b);
        section_nodes(st, s, b);
    }
    section_downloads(s, b);
    section_cache(s, b);
    section_verify(s, b);
    section_clients(st, s, b);
    section_fails(st, b);
    section_warnings(b);
    tbuf_puts(b, "<h2>Explain a file</h2>\n<form action=\"/~/status/explain\" method=\"get\">"
                 "<input type=\"text\" name=\"u\" placeholder=\"a URL apt asks for, or a "
                 "path such as /debian/pool/main/h/hello/hello_2.10-3_amd64.deb\">"
                 " <button type=\"submit\">Explain</button></form>\n");
    status_html_end(b);
}

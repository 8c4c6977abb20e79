/* status-report.c - the status summary for programs (JSON) and for a terminal (text).
 *
 * Both are what `apt-dht-proxy status` prints (with --json, and without); the JSON object
 * is flat where it can be, byte counts are exact integers, and strings from the network
 * are escaped to plain ASCII. */
#include "aptdht-config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/status-int.h"
#include "apt-dht-proxy/version.h"

static void json_str(struct tbuf *b, const char *key, const char *v, bool comma)
{
    tbuf_printf(b, "\"%s\":\"", key);
    tbuf_json(b, v);
    tbuf_puts(b, comma ? "\"," : "\"");
}

static void json_num(struct tbuf *b, const char *key, uint64_t v, bool comma)
{
    tbuf_printf(b, "\"%s\":%llu%s", key, (unsigned long long)v, comma ? "," : "");
}

static void json_window(struct tbuf *b, const struct status_sum *s, const char *key, int which,
                        bool comma)
{
    struct status_window w;
    status_window(s, which, &w);
    tbuf_printf(b, "\"%s\":{", key);
    json_num(b, "cache_bytes", w.cache, true);
    json_num(b, "peer_bytes", w.peer, true);
    json_num(b, "mirror_bytes", w.mirror, true);
    json_num(b, "served_bytes", w.total, true);
    json_num(b, "fetched_from_mirror_bytes", w.from_mirror, true);
    json_num(b, "mirror_bytes_saved", w.saved, true);
    json_num(b, "uploaded_bytes", w.uploaded, false);
    tbuf_puts(b, comma ? "}," : "}");
}

static void json_peers(struct status *st, struct tbuf *b, uint64_t now)
{
    struct p2p_peer_view pv[64];
    size_t n = st->p2p ? p2p_peers(st->p2p, pv, 64) : 0;
    tbuf_puts(b, "\"peers\":[");
    for (size_t i = 0; i < n; i++) {
        tbuf_puts(b, i ? ",{" : "{");
        json_str(b, "label", pv[i].label, true);
        json_str(b, "state",
                 pv[i].banned_until_ms > now    ? "banned"
                 : pv[i].backoff_until_ms > now ? "backed-off"
                                                : "usable",
                 true);
        json_num(b, "files", pv[i].files_ok, true);
        json_num(b, "bytes", pv[i].bytes_ok, true);
        json_num(b, "failures", pv[i].failures, true);
        json_num(b, "bad", pv[i].bad, true);
        json_str(b, "why", pv[i].why, false);
        tbuf_puts(b, "}");
    }
    tbuf_puts(b, "],");
}

void status_report_json(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    const struct stats *c = &s->st;
    tbuf_puts(b, "{");
    json_str(b, "version", aptdht_version(), true);
    json_num(b, "uptime_seconds", s->uptime_s, true);
    json_str(b, "config_file", st->config_file ? st->config_file : "", true);
    json_num(b, "port", s->sv.port, true);
    json_num(b, "health_status", s->health_status, true);
    json_str(b, "health", s->health, true);
    json_str(b, "dht_state", status_dht_state(s), true);
    if (s->have_p2p) {
        json_str(b, "dht_dialect", p2p_dialect(st->p2p), true);
        json_num(b, "dht_nodes", s->ps.nodes, true);
        json_num(b, "dht_values_stored", s->ps.values_stored, true);
        json_num(b, "announced_files", s->ps.announced, true);
    }
    json_window(b, s, "since_start", WIN_START, true);
    json_window(b, s, "last_hour", WIN_HOUR, true);
    json_window(b, s, "last_day", WIN_DAY, true);
    tbuf_puts(b, "\"requests\":{");
    json_num(b, "total", c->requests, true);
    json_num(b, "cache", c->served_requests[STATS_CACHE], true);
    json_num(b, "peer", c->served_requests[STATS_PEER], true);
    json_num(b, "mirror", c->served_requests[STATS_MIRROR], true);
    json_num(b, "hits", c->hits, true);
    json_num(b, "misses", c->misses, true);
    json_num(b, "revalidated", c->revalidated, true);
    json_num(b, "errors", c->errors, true);
    json_num(b, "uploads", c->uploads, false);
    tbuf_puts(b, "},\"verification\":{");
    json_num(b, "verified_from_peers", c->verified[STATS_FROM_PEER], true);
    json_num(b, "verified_from_mirrors", c->verified[STATS_FROM_MIRROR], true);
    json_num(b, "mismatches_from_peers", c->mismatches[STATS_FROM_PEER], true);
    json_num(b, "mismatches_from_mirrors", c->mismatches[STATS_FROM_MIRROR], true);
    json_num(b, "unverifiable", c->unverifiable, false);
    tbuf_puts(b, "},\"cache\":{");
    json_num(b, "used_bytes", s->cache_used, true);
    json_num(b, "max_bytes", s->cache_max, true);
    json_num(b, "files", s->cache_files, true);
    json_num(b, "evictions", s->evictions, true);
    json_num(b, "disk_free_bytes", s->disk_free, true);
    json_num(b, "state_bytes", s->state_db + s->state_wal, true);
    json_num(b, "state_wal_bytes", s->state_wal, false);
    tbuf_puts(b, "},");
    json_peers(st, b, s->now_ms);
    json_num(b, "downloads_in_progress", s->downloads, true);
    json_num(b, "warnings", log_count(LOG_LEVEL_WARN), true);
    json_num(b, "errors", log_count(LOG_LEVEL_ERROR), false);
    tbuf_puts(b, "}\n");
}

/* ---- text ---- */

static void text_window(struct tbuf *b, const struct status_sum *s, const char *name, int which)
{
    struct status_window w;
    status_window(s, which, &w);
    tbuf_printf(b, "  %-12s to apt ", name);
    tbuf_bytes(b, w.total);
    tbuf_puts(b, " (cache ");
    tbuf_bytes(b, w.cache);
    tbuf_puts(b, ", peers ");
    tbuf_bytes(b, w.peer);
    tbuf_puts(b, ", mirrors ");
    tbuf_bytes(b, w.mirror);
    tbuf_puts(b, "); mirror bytes saved ");
    tbuf_bytes(b, w.saved);
    tbuf_puts(b, "; uploaded ");
    tbuf_bytes(b, w.uploaded);
    tbuf_puts(b, "\n");
}

/* Text from the network in a terminal: control bytes would move the cursor. */
static void text_safe(struct tbuf *b, const char *s)
{
    for (; *s; s++)
        tbuf_add(b, (unsigned char)*s < 0x20 || *s == 0x7f ? "?" : s, 1);
}

void status_report_text(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    const struct stats *c = &s->st;
    tbuf_printf(b, "apt-dht-proxy %s, up ", aptdht_version());
    tbuf_duration(b, s->uptime_s);
    tbuf_printf(b, ", port %u, config %s\n", s->sv.port,
                st->config_file ? st->config_file : "(built-in defaults)");
    tbuf_puts(b, "health:   ");
    text_safe(b, s->health);
    tbuf_printf(b, "\ndht:      %s", status_dht_state(s));
    if (s->have_p2p)
        tbuf_printf(b, " (%s), %u nodes, %u values stored, %u files announced; %u peers "
                       "banned, %u backed off",
                    p2p_dialect(st->p2p), s->ps.nodes, s->ps.values_stored, s->ps.announced,
                    s->ps.banned, s->ps.backed_off);
    tbuf_puts(b, "\nsaved:\n");
    text_window(b, s, "since start", WIN_START);
    text_window(b, s, "last hour", WIN_HOUR);
    text_window(b, s, "last 24 h", WIN_DAY);
    tbuf_printf(b, "requests: %llu (%llu hits, %llu misses, %llu errors); %llu uploads to peers\n",
                (unsigned long long)c->requests, (unsigned long long)c->hits,
                (unsigned long long)c->misses, (unsigned long long)c->errors,
                (unsigned long long)c->uploads);
    tbuf_printf(b, "verified: %llu from peers, %llu from mirrors; mismatches %llu from peers, "
                   "%llu from mirrors; %llu unverifiable\n",
                (unsigned long long)c->verified[STATS_FROM_PEER],
                (unsigned long long)c->verified[STATS_FROM_MIRROR],
                (unsigned long long)c->mismatches[STATS_FROM_PEER],
                (unsigned long long)c->mismatches[STATS_FROM_MIRROR],
                (unsigned long long)c->unverifiable);
    tbuf_puts(b, "cache:    ");
    tbuf_bytes(b, s->cache_used);
    tbuf_puts(b, " of ");
    tbuf_bytes(b, s->cache_max);
    tbuf_printf(b, " in %llu files, %llu evicted; disk free ", (unsigned long long)s->cache_files,
                (unsigned long long)s->evictions);
    tbuf_bytes(b, s->disk_free);
    tbuf_puts(b, "; state ");
    tbuf_bytes(b, s->state_db + s->state_wal);
    tbuf_printf(b, "\nnow:      %zu downloads in progress; %llu warnings and %llu errors "
                   "logged\n",
                s->downloads, (unsigned long long)log_count(LOG_LEVEL_WARN),
                (unsigned long long)log_count(LOG_LEVEL_ERROR));
}

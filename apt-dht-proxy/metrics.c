/* metrics.c - /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Names follow Prometheus's conventions: the apt_dht_ prefix, base units in the name
 * (_bytes, _seconds), _total on counters and never on gauges, one HELP and TYPE line per
 * family, labels for the dimensions that add up (source, result, reason). The standard
 * process_* family is read from /proc/self. Every value is read from the same summary, so
 * one scrape is one moment. */
#include "aptdht-config.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/metrics.h"
#include "apt-dht-proxy/status-int.h"
#include "apt-dht-proxy/version.h"

static void family(struct tbuf *b, const char *name, const char *type, const char *help)
{
    tbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct tbuf *b, const char *name, const char *labels, uint64_t v)
{
    tbuf_printf(b, "%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "",
                labels ? "}" : "", (unsigned long long)v);
}

static void one(struct tbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    family(b, name, type, help);
    sample(b, name, NULL, v);
}

/* A family with one sample per source: cache, peer, mirror. */
static void by_source(struct tbuf *b, const char *name, const char *help, const uint64_t v[3])
{
    family(b, name, "counter", help);
    sample(b, name, "source=\"cache\"", v[STATS_CACHE]);
    sample(b, name, "source=\"peer\"", v[STATS_PEER]);
    sample(b, name, "source=\"mirror\"", v[STATS_MIRROR]);
}

static void by_origin(struct tbuf *b, const char *name, const char *help, const uint64_t v[2])
{
    family(b, name, "counter", help);
    sample(b, name, "source=\"peer\"", v[STATS_FROM_PEER]);
    sample(b, name, "source=\"mirror\"", v[STATS_FROM_MIRROR]);
}

static void http_metrics(const struct status_sum *s, struct tbuf *b)
{
    const struct stats *c = &s->st;
    one(b, "apt_dht_requests_total", "counter",
        "Requests from apt clients and peers (the status pages not included).", c->requests);
    family(b, "apt_dht_cache_requests_total", "counter",
           "Decisions on apt requests for files: served from the cache (hit), fetched "
           "(miss), revalidated with the mirror.");
    sample(b, "apt_dht_cache_requests_total", "result=\"hit\"", c->hits);
    sample(b, "apt_dht_cache_requests_total", "result=\"miss\"", c->misses);
    sample(b, "apt_dht_cache_requests_total", "result=\"revalidated\"", c->revalidated);
    one(b, "apt_dht_server_errors_total", "counter", "Answers with a 5xx status.", c->errors);
    by_source(b, "apt_dht_served_requests_total",
              "Successful answers to apt, by where the body came from.", c->served_requests);
    by_source(b, "apt_dht_served_bytes_total",
              "Body bytes sent to apt, by where the body came from.", c->served_bytes);
    family(b, "apt_dht_upstream_bytes_total", "counter",
           "Body bytes received, by source (peer bytes include those that failed "
           "verification).");
    sample(b, "apt_dht_upstream_bytes_total", "source=\"peer\"", c->bytes_from_peers);
    sample(b, "apt_dht_upstream_bytes_total", "source=\"mirror\"", c->bytes_from_mirror);
    one(b, "apt_dht_uploads_total", "counter", "Files sent to peers.", c->uploads);
    one(b, "apt_dht_uploaded_bytes_total", "counter", "Body bytes sent to peers.",
        c->bytes_uploaded);
    one(b, "apt_dht_uploads_active", "gauge", "Uploads to peers in progress.", s->sv.uploads);
    one(b, "apt_dht_uploads_bulk", "gauge",
        "Uploads to peers whose socket is in the bulk band now (SO_PRIORITY read back).",
        s->sv.uploads_bulk);
    one(b, "apt_dht_downloads_active", "gauge", "Downloads in progress (shared by their readers).",
        s->downloads);
    by_origin(b, "apt_dht_verified_files_total",
              "Whole files that matched the size and hash the signed indices give.", c->verified);
    by_origin(b, "apt_dht_verification_failures_total",
              "Whole files that did not match and were discarded.", c->mismatches);
    one(b, "apt_dht_unverifiable_files_total", "counter",
        "Files from mirrors with no expected hash (stored as received).", c->unverifiable);
    one(b, "apt_dht_last_mirror_success_timestamp_seconds", "gauge",
        "When a whole file last came from a mirror (Unix time; 0 = never).",
        (uint64_t)(c->last_mirror_ok_s > 0 ? c->last_mirror_ok_s : 0));
}

static void p2p_metrics(const struct status_sum *s, struct tbuf *b)
{
    static const char *const states[] = {"alone", "active", "no_network", "faulted"};
    const struct p2p_stats *p = &s->ps;
    family(b, "apt_dht_dht_state", "gauge", "The DHT node's state (1 for the current one).");
    for (int i = 0; i < 4; i++) {
        char l[40];
        snprintf(l, sizeof l, "state=\"%s\"", states[i]);
        sample(b, "apt_dht_dht_state", l, s->have_p2p && p->dht_state == i);
    }
    if (!s->have_p2p)
        return;
    one(b, "apt_dht_dht_nodes", "gauge", "Nodes in the routing table (good and questionable).",
        p->nodes);
    one(b, "apt_dht_dht_stored_values", "gauge", "Values other nodes stored on this node.",
        p->values_stored);
    one(b, "apt_dht_announced_files", "gauge", "Files this node announces as their holder.",
        p->announced);
    family(b, "apt_dht_peers", "gauge", "Peers this proxy fetched from, by state.");
    sample(b, "apt_dht_peers", "state=\"banned\"", p->banned);
    sample(b, "apt_dht_peers", "state=\"backed_off\"", p->backed_off);
    one(b, "apt_dht_lookups_total", "counter", "DHT lookups for files.", p->lookups);
    one(b, "apt_dht_lookups_with_peers_total", "counter", "DHT lookups that found peers.",
        p->lookups_with_peers);
    family(b, "apt_dht_peer_transfers_total", "counter", "Transfers from peers, by result.");
    sample(b, "apt_dht_peer_transfers_total", "result=\"ok\"", p->peer_ok);
    sample(b, "apt_dht_peer_transfers_total", "result=\"failed\"", p->peer_failed);
    sample(b, "apt_dht_peer_transfers_total", "result=\"bad_data\"", p->peer_bad);
    family(b, "apt_dht_peer_failures_total", "counter",
           "Transfers from peers that failed, by reason.");
    sample(b, "apt_dht_peer_failures_total", "reason=\"unreachable_or_error\"", p->peer_failed);
    sample(b, "apt_dht_peer_failures_total", "reason=\"bad_data\"", p->peer_bad);
    family(b, "apt_dht_lookup_duration_seconds", "histogram",
           "How long finished DHT lookups took.");
    uint64_t cum = 0;
    for (int i = 0; i <= P2P_LOOKUP_BUCKETS; i++) {
        char l[40];
        cum += p->lookup_buckets[i];
        if (i < P2P_LOOKUP_BUCKETS)
            snprintf(l, sizeof l, "le=\"%g\"", p2p_lookup_bounds_s[i]);
        else
            snprintf(l, sizeof l, "le=\"+Inf\"");
        sample(b, "apt_dht_lookup_duration_seconds_bucket", l, cum);
    }
    tbuf_printf(b, "apt_dht_lookup_duration_seconds_sum %.3f\n", (double)p->lookup_ms_sum / 1000);
    sample(b, "apt_dht_lookup_duration_seconds_count", NULL, p->lookups_done);
}

static void cache_metrics(const struct status_sum *s, struct tbuf *b)
{
    one(b, "apt_dht_cache_bytes", "gauge", "Bytes in cached files.", s->cache_used);
    one(b, "apt_dht_cache_limit_bytes", "gauge", "cache.max_size.", s->cache_max);
    one(b, "apt_dht_cache_files", "gauge", "Files in the cache.", s->cache_files);
    one(b, "apt_dht_cache_evictions_total", "counter", "Files evicted to make room.",
        s->evictions);
    one(b, "apt_dht_cache_disk_free_bytes", "gauge",
        "Free bytes on the cache's file system (for unprivileged users).", s->disk_free);
    one(b, "apt_dht_state_bytes", "gauge", "Bytes of the hash index and its WAL (state_dir).",
        s->state_db + s->state_wal);
    one(b, "apt_dht_state_wal_bytes", "gauge", "Bytes of the hash index's WAL.", s->state_wal);
    one(b, "apt_dht_cache_expired_files_total", "counter",
        "Files removed because no index seen within cache.keep_unreferenced lists them.",
        s->expired_files);
    one(b, "apt_dht_cache_expired_bytes_total", "counter", "Bytes those removals freed.",
        s->expired_bytes);
    one(b, "apt_dht_healthy", "gauge", "1 when /~/health answers 200.", s->health_status == 200);
    family(b, "apt_dht_log_messages_total", "counter", "Warnings and errors logged.");
    sample(b, "apt_dht_log_messages_total", "level=\"error\"", log_count(LOG_LEVEL_ERROR));
    sample(b, "apt_dht_log_messages_total", "level=\"warning\"", log_count(LOG_LEVEL_WARN));
}

/* ---- process_* ---- */

bool metrics_proc_stat(const char *text, double *cpu_s, uint64_t *vsize, uint64_t *rss_pages,
                       uint64_t *start_ticks)
{
    /* comm (field 2) is in parentheses and may hold spaces: fields are counted after
     * its last ')' */
    const char *p = strrchr(text, ')');
    unsigned long long v[22]; /* fields 3 to 24 */
    int n = 0;
    if (!p)
        return false;
    p++;
    while (n < 22) {
        char *end;
        while (*p == ' ')
            p++;
        if (n == 0) { /* field 3, the state, is a letter */
            if (!*p)
                return false;
            while (*p && *p != ' ')
                p++;
            v[n++] = 0;
            continue;
        }
        v[n++] = strtoull(p, &end, 10);
        if (end == p)
            return false; /* short or not numbers */
        p = end;
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    *cpu_s = (double)(v[11] + v[12]) / (double)hz; /* utime, stime: fields 14, 15 */
    *start_ticks = v[19];                          /* starttime: field 22 */
    *vsize = v[20];                                /* field 23 */
    *rss_pages = v[21];                            /* field 24 */
    return true;
}

static uint64_t boot_time_s(void)
{
    char line[256];
    uint64_t bt = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0)
            bt = strtoull(line + 6, NULL, 10);
    fclose(f);
    return bt;
}

static uint64_t open_fds(void)
{
    uint64_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* less the one opendir holds */
}

static void process_metrics(struct tbuf *b)
{
    char text[1024];
    double cpu = 0;
    uint64_t vsize = 0, rss = 0, start = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    if (metrics_proc_stat(text, &cpu, &vsize, &rss, &start)) {
        long hz = sysconf(_SC_CLK_TCK);
        family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        tbuf_printf(b, "process_cpu_seconds_total %.2f\n", cpu);
        one(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size.", vsize);
        one(b, "process_resident_memory_bytes", "gauge", "Resident memory size.",
            rss * (uint64_t)sysconf(_SC_PAGESIZE));
        family(b, "process_start_time_seconds", "gauge", "Start time (Unix time).");
        tbuf_printf(b, "process_start_time_seconds %.2f\n",
                    (double)boot_time_s() + (double)start / (double)(hz > 0 ? hz : 100));
    }
    struct rlimit rl;
    one(b, "process_open_fds", "gauge", "Open file descriptors.", open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        one(b, "process_max_fds", "gauge", "The limit of open file descriptors.",
            (uint64_t)rl.rlim_cur);
}

void metrics_render(struct status *st, const struct status_sum *s, struct tbuf *b)
{
    family(b, "apt_dht_build_info", "gauge", "The running version (always 1).");
    tbuf_puts(b, "apt_dht_build_info{version=\"");
    tbuf_label(b, aptdht_version());
    tbuf_puts(b, "\"} 1\n");
    one(b, "apt_dht_uptime_seconds", "gauge", "Seconds since the daemon started.", s->uptime_s);
    http_metrics(s, b);
    p2p_metrics(s, b);
    cache_metrics(s, b);
    process_metrics(b);
}

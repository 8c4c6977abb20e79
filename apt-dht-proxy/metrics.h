/* metrics.h - /metrics, the daemon's counters in the Prometheus text format. The page
 * itself is rendered by metrics_render (status-int.h) from the status summary; what is
 * here is the piece that parses, so it can be tested alone. */
#ifndef APT_DHT_METRICS_H
#define APT_DHT_METRICS_H

#include <stdbool.h>
#include <stdint.h>

/* Reads /proc/PID/stat's text: CPU seconds (user + system), virtual size in bytes, resident
 * pages, and the start time in clock ticks after boot. false if the text is not that. */
bool metrics_proc_stat(const char *text, double *cpu_s, uint64_t *vsize, uint64_t *rss_pages,
                       uint64_t *start_ticks);

#endif

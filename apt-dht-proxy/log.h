/* log.h - apt-dht-proxy's logging: one process-wide sink (stderr in the foreground,
 * syslog when daemonised) with a level threshold. Request lines go through log_request
 * so every request is one line with the same fields. */
#ifndef APT_DHT_LOG_H
#define APT_DHT_LOG_H

#include <stddef.h>
#include <stdint.h>

/* In order of severity: a message is kept when its level is at most the threshold. */
enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Sets the threshold; messages above it are dropped. use_syslog: send to syslog. */
void log_setup(enum log_level level, int use_syslog);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* The last LOG_RECENT_MAX warnings and errors are kept in memory, whatever the threshold,
 * for the status page. A copy of one: */
#define LOG_RECENT_MAX 100
struct log_entry {
    int64_t time_ms; /* wall clock, ms since the epoch */
    enum log_level level;
    char msg[256];   /* control characters already replaced, truncated */
};
/* Copies up to max recent entries into out, newest first; returns how many. Safe from
 * any thread (the indexer thread logs too). */
size_t log_recent(struct log_entry *out, size_t max);
/* Errors or warnings logged since start (0 for the other levels). */
uint64_t log_count(enum log_level level);

/* One line per request: client, method, path, status, bytes sent, where the body came
 * from ("cache", "mirror", "peer ADDR", "-"), and milliseconds from request to end. */
void log_request(const char *client, const char *method, const char *path, unsigned status,
                 uint64_t bytes, const char *source, uint64_t ms);

#endif

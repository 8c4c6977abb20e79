/* log.h - apt-dht-proxy's logging: one process-wide sink (stderr in the foreground,
 * syslog when daemonised) with a level threshold. Request lines go through log_request
 * so every request is one line with the same fields. */
#ifndef APT_DHT_LOG_H
#define APT_DHT_LOG_H

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

/* One line per request: client, method, path, status, bytes sent, where the body came
 * from ("cache", "mirror", "peer ADDR", "-"), and milliseconds from request to end. */
void log_request(const char *client, const char *method, const char *path, unsigned status,
                 uint64_t bytes, const char *source, uint64_t ms);

#endif

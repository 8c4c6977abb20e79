/* log.c - level-filtered log lines to stderr or syslog.
 * The daemon is one thread apart from the indexer, and each line is written with a single
 * write so lines from the two never interleave. This is the one piece of process-wide state
 * in the daemon: a logger is configured once for the process, like stderr itself. */
#include "aptdht-config.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/log.h"

static enum log_level threshold = LOG_LEVEL_INFO;
static int to_syslog;

void log_setup(enum log_level level, int use_syslog)
{
    threshold = level;
    if (use_syslog && !to_syslog)
        openlog("apt-dht-proxy", LOG_PID, LOG_DAEMON);
    to_syslog = use_syslog;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

/* Control characters in a log line would let a client forge lines; they become '?'. */
static void scrub(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vlog(enum log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    if (level > threshold)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    scrub(msg);
    if (to_syslog) {
        syslog(syslog_prio[level], "%s", msg);
        return;
    }
    char line[2200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], msg);
    if (n > (int)sizeof line - 1)
        n = sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void log_request(const char *client, const char *method, const char *path, unsigned status,
                 uint64_t bytes, const char *source, uint64_t ms)
{
    log_msg(LOG_LEVEL_INFO, "%s %s %s %u %llu %s %llums", client, method, path, status,
            (unsigned long long)bytes, source, (unsigned long long)ms);
}

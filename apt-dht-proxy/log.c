/* log.c - level-filtered log lines to stderr or syslog.
 * The daemon is one thread apart from the indexer, and each line is written with a single
 * write so lines from the two never interleave. This is the one piece of process-wide state
 * in the daemon: a logger is configured once for the process, like stderr itself.
 * Warnings and errors also go into a small ring (the status page's "recent problems"),
 * under a mutex because both threads log; nothing else here takes a lock. */
#include "aptdht-config.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/log.h"

static enum log_level threshold = LOG_LEVEL_INFO;
static int to_syslog;

/* The ring of recent warnings and errors: next is where the next one goes. */
static struct {
    pthread_mutex_t lock;
    struct log_entry e[LOG_RECENT_MAX];
    size_t next, n;
    uint64_t counts[LOG_LEVEL_WARN + 1];
} recent = {.lock = PTHREAD_MUTEX_INITIALIZER};

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

static void keep(enum log_level level, const char *msg, const struct timespec *ts)
{
    if (level > LOG_LEVEL_WARN)
        return; /* request lines and the like take no lock */
    pthread_mutex_lock(&recent.lock);
    recent.counts[level]++;
    struct log_entry *e = &recent.e[recent.next];
    e->time_ms = (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
    e->level = level;
    size_t n = strnlen(msg, sizeof e->msg - 1); /* cut to size: the ring keeps the start */
    memcpy(e->msg, msg, n);
    e->msg[n] = '\0';
    recent.next = (recent.next + 1) % LOG_RECENT_MAX;
    if (recent.n < LOG_RECENT_MAX)
        recent.n++;
    pthread_mutex_unlock(&recent.lock);
}

size_t log_recent(struct log_entry *out, size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&recent.lock);
    for (; k < recent.n && k < max; k++)
        out[k] = recent.e[(recent.next + LOG_RECENT_MAX - 1 - k) % LOG_RECENT_MAX];
    pthread_mutex_unlock(&recent.lock);
    return k;
}

uint64_t log_count(enum log_level level)
{
    pthread_mutex_lock(&recent.lock);
    uint64_t n = level <= LOG_LEVEL_WARN ? recent.counts[level] : 0;
    pthread_mutex_unlock(&recent.lock);
    return n;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vlog(enum log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    struct timespec ts;
    if (level > threshold && level > LOG_LEVEL_WARN)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    scrub(msg);
    clock_gettime(CLOCK_REALTIME, &ts);
    keep(level, msg, &ts);
    if (level > threshold)
        return;
    if (to_syslog) {
        syslog(syslog_prio[level], "%s", msg);
        return;
    }
    char line[2200];
    struct tm tm;
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

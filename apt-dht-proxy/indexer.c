/* indexer.c - the background thread that turns fetched indices into hash knowledge.
 *
 * Model: a fixed ring of jobs guarded by one mutex, one worker thread with its own hashdb
 * connection. The event loop only opens the file and appends (key, kind, fd) to the ring;
 * the open descriptor pins the content, so the cache may rename a newer file over the
 * name at once. The worker does all reading, decompression and SQLite writing. `busy`
 * covers the job being parsed outside the lock, so drain waits for it too.
 * The worker blocks every signal: the daemon receives signals through a signalfd in the
 * loop, which only works if no other thread can take them. */
#include "aptdht-config.h"
#include "apt-dht-proxy/index.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INDEXER_QUEUE_MAX 32 /* jobs; an `apt update` queues a few per suite */

struct ix_job {
    char *key;
    enum index_kind kind;
    int fd;
};

struct indexer {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job arrived, or stop */
    pthread_cond_t idle; /* a job finished */
    bool started, stop, busy;
    size_t head, n; /* ring: q[head], ..., q[(head + n - 1) % MAX] */
    struct ix_job q[INDEXER_QUEUE_MAX];
    pthread_t thread;
    struct hashdb *db;
    int event_fd; /* eventfd: counts finished jobs, read by the event loop */
};

static void job_done(struct ix_job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->key);
    j->key = NULL;
    j->fd = -1;
}

static void run_job(struct indexer *ix, struct ix_job *j)
{
    int rc = index_parse_fd(ix->db, j->key, j->kind, j->fd, NULL);
    if (rc < 0)
        fprintf(stderr, "apt-dht-proxy: indexing %s failed: %s\n", j->key, strerror(-rc));
    job_done(j);
}

static void *worker(void *arg)
{
    struct indexer *ix = arg;
    pthread_mutex_lock(&ix->mu);
    for (;;) {
        while (ix->n == 0 && !ix->stop)
            pthread_cond_wait(&ix->wake, &ix->mu);
        if (ix->stop)
            break;
        struct ix_job j = ix->q[ix->head];
        ix->head = (ix->head + 1) % INDEXER_QUEUE_MAX;
        ix->n--;
        ix->busy = true;
        pthread_mutex_unlock(&ix->mu);
        run_job(ix, &j);
        pthread_mutex_lock(&ix->mu);
        ix->busy = false;
        pthread_cond_broadcast(&ix->idle);
        uint64_t one = 1;
        if (write(ix->event_fd, &one, sizeof one) < 0) {
            /* the counter is only a wake-up; a full counter already wakes the loop */
        }
    }
    pthread_mutex_unlock(&ix->mu);
    return NULL;
}

static int start_thread(struct indexer *ix)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits "all blocked" */
    int rc = pthread_create(&ix->thread, NULL, worker, ix);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    ix->started = true;
    return 0;
}

int indexer_new(struct indexer **out, const char *db_path)
{
    int rc = -ENOMEM;
    struct indexer *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return rc;
    ix->event_fd = -1;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->wake, NULL);
    pthread_cond_init(&ix->idle, NULL);
    ix->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ix->event_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = hashdb_open(&ix->db, db_path)) < 0 || (rc = start_thread(ix)) < 0)
        goto fail;
    *out = ix;
    return 0;
fail:
    indexer_free(ix);
    return rc;
}

int indexer_submit(struct indexer *ix, const char *key, enum index_kind kind, const char *file_path)
{
    if (!ix || !key || !file_path || (kind == INDEX_NONE && index_kind_of(key) == INDEX_NONE))
        return -EINVAL;
    struct ix_job j = {.key = strdup(key), .kind = kind, .fd = -1};
    int rc = -ENOMEM;
    if (!j.key)
        goto fail;
    if ((j.fd = open(file_path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    pthread_mutex_lock(&ix->mu);
    rc = ix->stop ? -ESHUTDOWN : ix->n == INDEXER_QUEUE_MAX ? -EAGAIN : 0;
    if (rc == 0) {
        ix->q[(ix->head + ix->n) % INDEXER_QUEUE_MAX] = j;
        ix->n++;
        pthread_cond_signal(&ix->wake);
    }
    pthread_mutex_unlock(&ix->mu);
    if (rc == 0)
        return 0;
fail:
    job_done(&j);
    return rc;
}

int indexer_event_fd(const struct indexer *ix)
{
    return ix->event_fd;
}

size_t indexer_pending(struct indexer *ix)
{
    pthread_mutex_lock(&ix->mu);
    size_t n = ix->n + (ix->busy ? 1 : 0);
    pthread_mutex_unlock(&ix->mu);
    return n;
}

void indexer_drain(struct indexer *ix)
{
    if (!ix)
        return;
    pthread_mutex_lock(&ix->mu);
    while (ix->started && (ix->n > 0 || ix->busy))
        pthread_cond_wait(&ix->idle, &ix->mu);
    pthread_mutex_unlock(&ix->mu);
}

void indexer_free(struct indexer *ix)
{
    if (!ix)
        return;
    pthread_mutex_lock(&ix->mu);
    ix->stop = true;
    pthread_cond_broadcast(&ix->wake);
    pthread_mutex_unlock(&ix->mu);
    if (ix->started)
        pthread_join(ix->thread, NULL);
    for (; ix->n > 0; ix->n--, ix->head = (ix->head + 1) % INDEXER_QUEUE_MAX)
        job_done(&ix->q[ix->head]);
    hashdb_free(ix->db);
    if (ix->event_fd >= 0)
        close(ix->event_fd);
    pthread_cond_destroy(&ix->idle);
    pthread_cond_destroy(&ix->wake);
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

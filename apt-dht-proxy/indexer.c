/* indexer.c - the background thread that turns fetched indices into hash knowledge, and
 * the database's one writer.
 *
 * Model: three queues guarded by one mutex, one worker thread with the writer's hashdb
 * connection. The event loop only appends: a record of what the cache holds, or an open
 * descriptor of an index (it pins the content, so the cache may rename a newer file over
 * the name at once). The worker does all reading, decompression and SQLite writing, in
 * the order records, Releases (urgent), Packages and Sources (bulk). A bulk parse calls
 * back every INDEX_TICK_BYTES with its stage paused (index.h); the worker then writes the
 * records and Releases that arrived meanwhile, so they wait for a tick, never for a whole
 * Packages. A record is never dropped: a batch the database refuses goes back to the
 * head of its queue and is tried again INDEXER_RETRY_MS later.
 * running[] names the parses under way (a bulk one, and an urgent one run from its tick),
 * so pending and drain count them and a newer version of a key can tell it must queue.
 * Records are also the sightings of indices (apt asked for one). A sweep (expiry by
 * reference, hashdb_sweep) is the lowest work: it runs when nothing else waits, and
 * its list of unlisted files waits for the loop to take it (indexer_sweep_result).
 * The worker blocks every signal: the daemon receives signals through a signalfd in the
 * loop, which only works if no other thread can take them. */
#include "aptdht-config.h"
#include "apt-dht-proxy/index.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "apt-dht-proxy/log.h"

#define INDEXER_QUEUE_MAX 256 /* parses waiting per queue; an `apt update` queues a few per suite */
#define INDEXER_BATCH_MAX 4096 /* records per transaction */
#define INDEXER_RETRY_MS 1000  /* pause after a batch the database refused */
#define INDEXER_BUSY_RETRIES 2 /* merge attempts after the first -EBUSY (each waits
                                * HASHDB_WRITER_BUSY_MS) */
#define INDEXER_KEY_MAX 8192   /* bytes of a record's key, as hashdb takes */
#define INDEXER_WAL_PAGES 1000 /* WAL size past which a batch of records checkpoints */
#define INDEXER_SWEEP_MAX 100000 /* unlisted files handed over per sweep; the rest next time */

struct ix_job {
    struct ix_job *next;
    char *key;
    enum index_kind kind;
    int fd;
    bool have_sha;
    uint8_t sha256[32];
};

enum rec_op {
    REC_PUT,  /* hashdb_cached_put */
    REC_DEL,  /* hashdb_cached_del */
    REC_SEEN, /* hashdb_index_seen: key is an index's name, size the time (unix seconds) */
};

struct ix_rec {
    struct ix_rec *next;
    enum rec_op op;
    uint64_t size;
    uint8_t sha256[32];
    char key[]; /* NUL-terminated */
};

struct jobq {
    struct ix_job *head, *tail;
    size_t n;
};

struct recq {
    struct ix_rec *head, *tail;
    size_t n;
};

struct indexer {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* work arrived, or stop (CLOCK_MONOTONIC for the timed wait) */
    pthread_cond_t idle; /* a parse finished or a batch was written */
    bool started, stop;
    struct jobq urgent, bulk;
    struct recq recs;
    size_t writing;          /* records taken by the worker, not yet committed */
    const char *running[2];  /* keys of the parses under way: bulk, urgent */
    uint64_t retry_at_ms;    /* records wait until then after a refused batch; 0 = now */
    pthread_t thread;
    struct hashdb *db;
    int event_fd; /* eventfd: counts finished parses, read by the event loop */
    int64_t sweep_keep_s;  /* the sweep asked for: its keep_unreferenced */
    bool sweep_wanted, sweeping, swept;
    struct indexer_expired *expired; /* the last sweep's result, for the loop */
    struct hashdb_sweep_stats sweep_stats;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- queues (all under mu) ---- */

static void job_free(struct ix_job *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    free(j->key);
    free(j);
}

static void jobq_push(struct jobq *q, struct ix_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static struct ix_job *jobq_pop(struct jobq *q)
{
    struct ix_job *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    return j;
}

static bool jobq_has(const struct jobq *q, const char *key)
{
    for (const struct ix_job *j = q->head; j; j = j->next)
        if (strcmp(j->key, key) == 0)
            return true;
    return false;
}

static void recq_push(struct recq *q, struct ix_rec *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
}

/* Takes up to max records from the head, as a list of *n. */
static struct ix_rec *recq_take(struct recq *q, size_t max, size_t *n)
{
    struct ix_rec *first = q->head, *last = NULL;
    *n = 0;
    for (struct ix_rec *r = first; r && *n < max; r = r->next) {
        last = r;
        (*n)++;
    }
    if (!last)
        return NULL;
    q->head = last->next;
    if (!q->head)
        q->tail = NULL;
    last->next = NULL;
    q->n -= *n;
    return first;
}

/* Puts a refused batch back in front of what arrived since, in its order. */
static void recq_unshift(struct recq *q, struct ix_rec *list, size_t n)
{
    struct ix_rec *last = list;
    while (last->next)
        last = last->next;
    last->next = q->head;
    q->head = list;
    if (!q->tail)
        q->tail = last;
    q->n += n;
}

static void recs_free(struct ix_rec *r)
{
    while (r) {
        struct ix_rec *next = r->next;
        free(r);
        r = next;
    }
}

/* ---- the worker's work (called with mu held; each unlocks around SQLite) ---- */

/* With mu held; the checkpoint runs without it. */
static void checkpoint(struct indexer *ix)
{
    pthread_mutex_unlock(&ix->mu);
    int rc = hashdb_checkpoint(ix->db);
    if (rc < 0)
        log_debug("hash database: WAL checkpoint: %s", strerror(-rc));
    pthread_mutex_lock(&ix->mu);
}

static bool records_due(const struct indexer *ix)
{
    return ix->recs.n > 0 && (ix->retry_at_ms == 0 || mono_ms() >= ix->retry_at_ms);
}

/* One transaction for the whole batch: all or nothing. */
static int apply_records(struct hashdb *db, const struct ix_rec *r)
{
    int rc = hashdb_begin(db);
    for (; rc == 0 && r; r = r->next)
        rc = r->op == REC_DEL    ? hashdb_cached_del(db, r->key)
             : r->op == REC_SEEN ? hashdb_index_seen(db, r->key, (int64_t)r->size)
                                 : hashdb_cached_put(db, r->key, r->size, r->sha256);
    if (rc == 0 && (rc = hashdb_commit(db)) == 0)
        return 0;
    hashdb_rollback(db);
    return rc;
}

static void write_records(struct indexer *ix)
{
    size_t n;
    struct ix_rec *batch = recq_take(&ix->recs, INDEXER_BATCH_MAX, &n);
    ix->writing = n;
    pthread_mutex_unlock(&ix->mu);
    int rc = apply_records(ix->db, batch);
    pthread_mutex_lock(&ix->mu);
    ix->writing = 0;
    if (rc < 0) {
        if (ix->retry_at_ms == 0)
            log_warn("hash database: %zu records of cached files wait: %s; trying again", n,
                     strerror(-rc));
        recq_unshift(&ix->recs, batch, n);
        ix->retry_at_ms = mono_ms() + INDEXER_RETRY_MS;
    } else {
        if (ix->retry_at_ms != 0)
            log_info("hash database: the records of cached files are written again");
        ix->retry_at_ms = 0;
        recs_free(batch);
    }
    pthread_cond_broadcast(&ix->idle);
    if (rc == 0 && hashdb_wal_pages(ix->db) > INDEXER_WAL_PAGES)
        checkpoint(ix);
}

/* Failures that the same bytes would meet again: recorded with the content's digest, so
 * the start-up does not parse the same bomb at every restart. */
static bool lasting_failure(int rc)
{
    return rc == -EFBIG || rc == -EOVERFLOW || rc == -ETIME || rc == -EBADMSG || rc == -EIO ||
           rc == -ENOTSUP || rc == -EINVAL;
}

static void report(struct indexer *ix, const struct ix_job *j, int rc, const struct index_stats *st)
{
    char name[INDEX_KEY_MAX];
    if (rc == 0) {
        log_debug("index %s: %zu entries (%zu rows changed), %zu malformed skipped", j->key,
                  st->records, st->changed, st->skipped);
        return;
    }
    if (rc == -ECANCELED) {
        log_debug("index %s: parse stopped by the shutdown; parsed again at start", j->key);
        return;
    }
    log_warn("index %s: rejected, nothing learnt from it: %s", j->key, index_strerror(rc));
    if (!lasting_failure(rc) || !j->have_sha || index_origin(j->key, j->kind, name, sizeof name) < 0)
        return;
    int r = hashdb_index_set(ix->db, name, j->sha256, rc);
    if (r < 0)
        log_debug("index %s: its rejection was not recorded (%s): parsed again at start", j->key,
                  strerror(-r));
}

static int bulk_tick(void *ud);
static int urgent_tick(void *ud);

/* slot 0: a job the worker took; 1: an urgent job run from a bulk job's tick. */
static void run_job(struct indexer *ix, struct ix_job *j, int slot)
{
    struct index_stats st;
    struct index_opts o = {
        .sha256 = j->have_sha ? j->sha256 : NULL,
        .busy_retries = INDEXER_BUSY_RETRIES,
        .tick = slot == 0 ? bulk_tick : urgent_tick,
        .ud = ix,
    };
    ix->running[slot] = j->key;
    pthread_mutex_unlock(&ix->mu);
    log_debug("index %s: parsing", j->key);
    int rc = index_parse(ix->db, j->key, j->kind, j->fd, &o, &st);
    report(ix, j, rc, &st);
    pthread_mutex_lock(&ix->mu);
    if (slot == 0)
        checkpoint(ix);
    ix->running[slot] = NULL;
    job_free(j);
    pthread_cond_broadcast(&ix->idle);
    uint64_t one = 1;
    if (write(ix->event_fd, &one, sizeof one) < 0) {
        /* the counter is only a wake-up; a full counter already wakes the loop */
    }
}

/* A bulk parse's tick: its stage is paused, so the records and Releases that arrived
 * meanwhile are written now. */
static int bulk_tick(void *ud)
{
    struct indexer *ix = ud;
    struct ix_job *j;
    pthread_mutex_lock(&ix->mu);
    if (!ix->stop && records_due(ix))
        write_records(ix);
    while (!ix->stop && (j = jobq_pop(&ix->urgent)))
        run_job(ix, j, 1);
    int rc = ix->stop ? -ECANCELED : 0;
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static int urgent_tick(void *ud)
{
    struct indexer *ix = ud;
    pthread_mutex_lock(&ix->mu);
    int rc = ix->stop ? -ECANCELED : 0;
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static void expired_free(struct indexer_expired *x)
{
    while (x) {
        struct indexer_expired *next = x->next;
        free(x);
        x = next;
    }
}

struct sweep_ctx {
    struct indexer_expired *head;
    size_t n;
};

static int collect_expired(void *ud, const char *key, uint64_t size, const uint8_t sha256[32])
{
    struct sweep_ctx *x = ud;
    size_t kl = strlen(key);
    if (x->n >= INDEXER_SWEEP_MAX)
        return 0;
    struct indexer_expired *e = malloc(sizeof *e + kl + 1);
    if (!e)
        return -ENOMEM;
    e->size = size;
    memcpy(e->sha256, sha256, 32);
    memcpy(e->key, key, kl + 1);
    e->next = x->head;
    x->head = e;
    x->n++;
    return 0;
}

/* With mu held; the sweep runs without it. */
static void run_sweep(struct indexer *ix)
{
    struct sweep_ctx x = {0};
    struct hashdb_sweep_stats st;
    int64_t keep = ix->sweep_keep_s;
    ix->sweep_wanted = false;
    ix->sweeping = true;
    pthread_mutex_unlock(&ix->mu);
    int rc = hashdb_sweep(ix->db, keep, collect_expired, &x, &st);
    if (rc < 0) {
        log_warn("hash database: expiry sweep: %s; tried again later", strerror(-rc));
        expired_free(x.head);
        x.head = NULL;
        memset(&st, 0, sizeof st);
    }
    pthread_mutex_lock(&ix->mu);
    checkpoint(ix);
    expired_free(ix->expired); /* a result the loop never took is stale now */
    ix->expired = x.head;
    ix->sweep_stats = st;
    ix->sweeping = false;
    ix->swept = true;
    pthread_cond_broadcast(&ix->idle);
}

/* Sleeps until there is work: a parse, records due, or records due later (a timed wait). */
static void wait_for_work(struct indexer *ix)
{
    while (!ix->stop && ix->urgent.n == 0 && ix->bulk.n == 0 && !records_due(ix) &&
           !ix->sweep_wanted) {
        if (ix->recs.n == 0) {
            pthread_cond_wait(&ix->wake, &ix->mu);
            continue;
        }
        struct timespec ts = {.tv_sec = (time_t)(ix->retry_at_ms / 1000),
                              .tv_nsec = (long)(ix->retry_at_ms % 1000) * 1000000};
        pthread_cond_timedwait(&ix->wake, &ix->mu, &ts);
    }
}

/* At shutdown: the records still queued get two more chances (each may wait the writer's
 * busy timeout); what the database still refuses is reported, not silently lost. */
static void flush_records(struct indexer *ix)
{
    for (int tries = 0; tries < 2 && ix->recs.n > 0; tries++) {
        ix->retry_at_ms = 0;
        while (ix->recs.n > 0 && records_due(ix))
            write_records(ix);
    }
    if (ix->recs.n > 0)
        log_error("hash database: %zu records of cached files could not be written; those "
                  "files are announced again once downloaded again", ix->recs.n);
}

static void *worker(void *arg)
{
    struct indexer *ix = arg;
    struct ix_job *j;
    pthread_mutex_lock(&ix->mu);
    for (;;) {
        wait_for_work(ix);
        if (ix->stop)
            break;
        if (records_due(ix))
            write_records(ix);
        else if ((j = jobq_pop(&ix->urgent)) || (j = jobq_pop(&ix->bulk)))
            run_job(ix, j, 0);
        else if (ix->sweep_wanted)
            run_sweep(ix);
    }
    flush_records(ix);
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
    pthread_condattr_t ca;
    struct indexer *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return rc;
    ix->event_fd = -1;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ix->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&ix->idle, NULL);
    ix->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ix->event_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = hashdb_open_writer(&ix->db, db_path)) < 0 || (rc = start_thread(ix)) < 0)
        goto fail;
    *out = ix;
    return 0;
fail:
    indexer_free(ix);
    return rc;
}

/* ---- what the loop calls ---- */

int indexer_submit_fd(struct indexer *ix, const char *key, enum index_kind kind, int fd,
                      const uint8_t *sha256)
{
    int rc = -EINVAL;
    struct ix_job *j = NULL;
    if (kind == INDEX_NONE && key)
        kind = index_kind_of(key);
    if (!ix || !key || fd < 0 || kind == INDEX_NONE)
        goto fail;
    rc = -ENOMEM;
    if (!(j = calloc(1, sizeof *j)) || !(j->key = strdup(key)))
        goto fail;
    j->kind = kind;
    j->fd = fd;
    fd = -1;
    if ((j->have_sha = sha256 != NULL))
        memcpy(j->sha256, sha256, 32);
    struct jobq *q = kind == INDEX_RELEASE ? &ix->urgent : &ix->bulk;
    pthread_mutex_lock(&ix->mu);
    rc = ix->stop ? -ESHUTDOWN : q->n >= INDEXER_QUEUE_MAX ? -EAGAIN : 0;
    if (rc == 0) {
        jobq_push(q, j);
        pthread_cond_signal(&ix->wake);
    }
    pthread_mutex_unlock(&ix->mu);
    if (rc == 0)
        return 0;
fail:
    if (fd >= 0)
        close(fd);
    job_free(j);
    return rc;
}

int indexer_submit(struct indexer *ix, const char *key, enum index_kind kind,
                   const char *file_path, const uint8_t *sha256)
{
    if (!ix || !key || !file_path || (kind == INDEX_NONE && index_kind_of(key) == INDEX_NONE))
        return -EINVAL;
    int fd = open(file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return indexer_submit_fd(ix, key, kind, fd, sha256);
}

static int queue_record(struct indexer *ix, const char *key, enum rec_op op, uint64_t size,
                        const uint8_t *sha256)
{
    size_t n = key ? strlen(key) : 0;
    if (!ix || n == 0 || n > INDEXER_KEY_MAX || size > (uint64_t)INT64_MAX)
        return -EINVAL;
    struct ix_rec *r = malloc(sizeof *r + n + 1);
    if (!r)
        return -ENOMEM;
    r->op = op;
    r->size = size;
    if (sha256)
        memcpy(r->sha256, sha256, 32);
    memcpy(r->key, key, n + 1);
    pthread_mutex_lock(&ix->mu);
    int rc = ix->stop ? -ESHUTDOWN : 0;
    if (rc == 0) {
        recq_push(&ix->recs, r);
        pthread_cond_signal(&ix->wake);
    }
    pthread_mutex_unlock(&ix->mu);
    if (rc < 0)
        free(r);
    return rc;
}

int indexer_cached_put(struct indexer *ix, const char *key, uint64_t size,
                       const uint8_t sha256[32])
{
    return sha256 ? queue_record(ix, key, REC_PUT, size, sha256) : -EINVAL;
}

int indexer_cached_del(struct indexer *ix, const char *key)
{
    return queue_record(ix, key, REC_DEL, 0, NULL);
}

int indexer_index_seen(struct indexer *ix, const char *name, int64_t now_s)
{
    return now_s > 0 ? queue_record(ix, name, REC_SEEN, (uint64_t)now_s, NULL) : -EINVAL;
}

int indexer_sweep(struct indexer *ix, int64_t keep_s)
{
    if (!ix || keep_s <= 0)
        return -EINVAL;
    pthread_mutex_lock(&ix->mu);
    int rc = ix->stop ? -ESHUTDOWN : 0;
    if (rc == 0) {
        ix->sweep_keep_s = keep_s;
        ix->sweep_wanted = true;
        pthread_cond_signal(&ix->wake);
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

bool indexer_sweep_result(struct indexer *ix, struct indexer_expired **list,
                          struct hashdb_sweep_stats *st)
{
    pthread_mutex_lock(&ix->mu);
    bool done = ix->swept;
    *list = done ? ix->expired : NULL;
    if (done) {
        *st = ix->sweep_stats;
        ix->expired = NULL;
        ix->swept = false;
    }
    pthread_mutex_unlock(&ix->mu);
    return done;
}

bool indexer_sweeping(struct indexer *ix)
{
    pthread_mutex_lock(&ix->mu);
    bool busy = ix->sweep_wanted || ix->sweeping;
    pthread_mutex_unlock(&ix->mu);
    return busy;
}

void indexer_expired_free(struct indexer_expired *list)
{
    expired_free(list);
}

int indexer_event_fd(const struct indexer *ix)
{
    return ix->event_fd;
}

static size_t running(const struct indexer *ix)
{
    return (ix->running[0] != NULL) + (ix->running[1] != NULL);
}

size_t indexer_pending(struct indexer *ix)
{
    pthread_mutex_lock(&ix->mu);
    size_t n = ix->urgent.n + ix->bulk.n + running(ix);
    pthread_mutex_unlock(&ix->mu);
    return n;
}

bool indexer_queued(struct indexer *ix, const char *key)
{
    pthread_mutex_lock(&ix->mu);
    bool q = jobq_has(&ix->urgent, key) || jobq_has(&ix->bulk, key);
    for (int i = 0; i < 2 && !q; i++)
        q = ix->running[i] && strcmp(ix->running[i], key) == 0;
    pthread_mutex_unlock(&ix->mu);
    return q;
}

void indexer_drain(struct indexer *ix)
{
    if (!ix)
        return;
    pthread_mutex_lock(&ix->mu);
    while (ix->started && (ix->urgent.n > 0 || ix->bulk.n > 0 || running(ix) > 0 ||
                           ix->recs.n > 0 || ix->writing > 0))
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
    struct ix_job *j;
    while ((j = jobq_pop(&ix->urgent)) || (j = jobq_pop(&ix->bulk)))
        job_free(j);
    recs_free(ix->recs.head);
    expired_free(ix->expired);
    hashdb_free(ix->db);
    if (ix->event_fd >= 0)
        close(ix->event_fd);
    pthread_cond_destroy(&ix->idle);
    pthread_cond_destroy(&ix->wake);
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

/* hasher.c - whole-file SHA-256 on one worker thread (see hasher.h for the model).
 *
 * Two singly linked FIFO lists under one mutex: `todo` (the loop appends, the thread
 * takes) and `done` (the thread appends, the loop takes). The thread counts each finished
 * job on an eventfd; the loop's callback drains `done` and calls back for each result.
 * The queue has no fixed bound: its callers submit at most one job per cache entry. The
 * worker blocks every signal, so the loop's signalfd receives them all. */
#include "aptdht-config.h"
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "apt-dht-proxy/hasher.h"
#include "apt-dht-proxy/loop.h"

struct hjob {
    struct hjob *next;
    struct hasher_result res;
    char path[];
};

struct hjob_list {
    struct hjob *head, *tail;
};

struct hasher {
    struct loop *loop;
    void (*done)(void *ud, const struct hasher_result *r);
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job arrived, or stop */
    struct hjob_list todo, done_list;
    unsigned pending; /* queued or running (the loop's count: done results not yet seen) */
    bool started, stop;
    pthread_t thread;
    int event_fd; /* -1 = none */
};

static void list_push(struct hjob_list *l, struct hjob *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct hjob *list_take_all(struct hjob_list *l)
{
    struct hjob *j = l->head;
    l->head = l->tail = NULL;
    return j;
}

static void list_free(struct hjob *j)
{
    while (j) {
        struct hjob *next = j->next;
        free(j);
        j = next;
    }
}

int hasher_file(const char *path, uint64_t *size, uint8_t sha256[32])
{
    unsigned char buf[1 << 16];
    int r = 0;
    uint64_t n = 0;
    unsigned len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (!ctx || fd < 0) {
        r = !ctx ? -ENOMEM : -errno;
        goto out;
    }
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        r = -EIO;
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r = -errno;
            goto out;
        }
        if (got == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)got);
        n += (uint64_t)got;
    }
    if (!EVP_DigestFinal_ex(ctx, sha256, &len) || len != 32)
        r = -EIO;
    *size = n;
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    return r;
}

static void *worker(void *arg)
{
    struct hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->todo.head && !h->stop)
            pthread_cond_wait(&h->wake, &h->mu);
        if (h->stop)
            break;
        struct hjob *j = h->todo.head;
        h->todo.head = j->next;
        if (!h->todo.head)
            h->todo.tail = NULL;
        pthread_mutex_unlock(&h->mu);
        j->res.err = hasher_file(j->path, &j->res.size, j->res.sha256);
        pthread_mutex_lock(&h->mu);
        list_push(&h->done_list, j);
        uint64_t one = 1;
        if (write(h->event_fd, &one, sizeof one) < 0) {
            /* the counter cannot overflow in practice; the loop drains the list anyway */
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void on_event(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct hasher *h = ud;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* nothing to read: a spurious wake-up */
    }
    pthread_mutex_lock(&h->mu);
    struct hjob *j = list_take_all(&h->done_list);
    pthread_mutex_unlock(&h->mu);
    while (j) {
        struct hjob *next = j->next;
        h->pending--;
        h->done(h->ud, &j->res);
        free(j);
        j = next;
    }
}

static void *start_thread(struct hasher *h, int *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    *err = pthread_create(&h->thread, NULL, worker, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return *err ? NULL : h;
}

int hasher_new(struct hasher **out, struct loop *l,
               void (*done)(void *ud, const struct hasher_result *r), void *ud)
{
    struct hasher *h = calloc(1, sizeof *h);
    int err = 0;
    if (!h)
        return -ENOMEM;
    h->loop = l;
    h->done = done;
    h->ud = ud;
    h->event_fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->wake, NULL);
    if ((h->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        err = -errno;
        goto fail;
    }
    if ((err = loop_add_fd(l, h->event_fd, EPOLLIN, on_event, h)) < 0)
        goto fail;
    if (!start_thread(h, &err)) {
        err = -err;
        goto fail;
    }
    h->started = true;
    *out = h;
    return 0;
fail:
    hasher_free(h);
    return err;
}

void hasher_free(struct hasher *h)
{
    if (!h)
        return;
    if (h->started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    if (h->event_fd >= 0) {
        loop_del_fd(h->loop, h->event_fd);
        close(h->event_fd);
    }
    list_free(list_take_all(&h->todo));
    list_free(list_take_all(&h->done_list));
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int hasher_submit(struct hasher *h, const char *path, void *tag)
{
    size_t n = strlen(path);
    struct hjob *j = calloc(1, sizeof *j + n + 1);
    if (!j)
        return -ENOMEM;
    memcpy(j->path, path, n + 1);
    j->res.tag = tag;
    pthread_mutex_lock(&h->mu);
    list_push(&h->todo, j);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->mu);
    h->pending++;
    return 0;
}

unsigned hasher_pending(const struct hasher *h)
{
    return h->pending;
}

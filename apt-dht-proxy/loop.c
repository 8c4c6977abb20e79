/* loop.c - epoll + timers + signalfd.
 *
 * Model: one epoll fd; each registered fd has one callback. Timers are embedded in their
 * owners and armed ones sit in a binary min-heap by deadline (there is one per waiting
 * request, so there can be thousands); the wait timeout is the nearest deadline, also
 * bounded by the prepare hooks (libmicrohttpd's timeout).
 * Signals arrive as reads on a signalfd, so no handler runs at an arbitrary point. */
#include "aptdht-config.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/loop.h"

struct fd_slot {
    loop_fd_cb cb; /* NULL = free slot */
    void *ud;
};

struct signal_slot {
    int signo;
    loop_signal_cb cb;
    void *ud;
};

struct prepare_slot {
    loop_prepare_cb cb;
    void *ud;
};

struct loop {
    int epfd;
    int sigfd; /* -1 until the first signal is added */
    sigset_t sigmask;
    struct fd_slot *fds; /* indexed by fd */
    size_t n_fds;
    struct loop_timer **heap; /* armed timers, heap[0] the nearest deadline */
    size_t n_heap, cap_heap;
    struct signal_slot sigs[8];
    size_t n_sigs;
    struct prepare_slot prep[4];
    size_t n_prep;
    uint64_t turn; /* waits returned so far */
    int stop;
};

uint64_t loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int loop_new(struct loop **out)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->sigfd = -1;
    sigemptyset(&l->sigmask);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = -errno;
        free(l);
        return e;
    }
    *out = l;
    return 0;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_heap; i++)
        l->heap[i]->slot = 0; /* owners may outlive the loop: leave their timers idle */
    free(l->heap);
    if (l->sigfd >= 0)
        close(l->sigfd);
    if (l->epfd >= 0)
        close(l->epfd);
    free(l->fds);
    free(l);
}

static int grow_fds(struct loop *l, int fd)
{
    if ((size_t)fd < l->n_fds)
        return 0;
    size_t n = l->n_fds ? l->n_fds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct fd_slot *p = realloc(l->fds, n * sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p + l->n_fds, 0, (n - l->n_fds) * sizeof *p);
    l->fds = p;
    l->n_fds = n;
    return 0;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud)
{
    if (fd < 0 || !cb)
        return -EINVAL;
    int r = grow_fds(l, fd);
    if (r < 0)
        return r;
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    l->fds[fd].cb = cb;
    l->fds[fd].ud = ud;
    return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del_fd(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_fds)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd].cb = NULL;
    l->fds[fd].ud = NULL;
}

/* ---- the timer heap ---- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->due_ms < b->due_ms;
}

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0 && timer_before(t, l->heap[(i - 1) / 2])) {
        heap_set(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && timer_before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!timer_before(l->heap[c], t))
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
    size_t i = t->slot - 1;
    struct loop_timer *last = l->heap[--l->n_heap];
    t->slot = 0;
    if (i == l->n_heap)
        return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->slot - 1);
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *ud)
{
    memset(t, 0, sizeof *t);
    t->cb = cb;
    t->ud = ud;
}

bool loop_timer_armed(const struct loop_timer *t)
{
    return t->slot != 0;
}

int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
    loop_timer_stop(l, t);
    if (l->n_heap == l->cap_heap) {
        size_t n = l->cap_heap ? l->cap_heap * 2 : 16;
        struct loop_timer **p = realloc(l->heap, n * sizeof *p);
        if (!p)
            return -ENOMEM;
        l->heap = p;
        l->cap_heap = n;
    }
    t->due_ms = loop_now_ms() + delay_ms;
    heap_set(l, l->n_heap++, t);
    heap_up(l, l->n_heap - 1);
    return 0;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (t->slot)
        heap_remove(l, t);
}

static void on_signalfd(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
        for (size_t i = 0; i < l->n_sigs; i++)
            if (l->sigs[i].signo == (int)si.ssi_signo)
                l->sigs[i].cb(l, (int)si.ssi_signo, l->sigs[i].ud);
    }
}

int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *ud)
{
    if (l->n_sigs == sizeof l->sigs / sizeof l->sigs[0])
        return -ENOSPC;
    sigaddset(&l->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
        return -errno;
    int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (l->sigfd < 0) {
        int r = loop_add_fd(l, fd, EPOLLIN, on_signalfd, NULL);
        if (r < 0) {
            close(fd);
            return r;
        }
        l->sigfd = fd;
    }
    l->sigs[l->n_sigs++] = (struct signal_slot){signo, cb, ud};
    return 0;
}

int loop_add_prepare(struct loop *l, loop_prepare_cb cb, void *ud)
{
    if (l->n_prep == sizeof l->prep / sizeof l->prep[0])
        return -ENOSPC;
    l->prep[l->n_prep++] = (struct prepare_slot){cb, ud};
    return 0;
}

void loop_del_prepare(struct loop *l, loop_prepare_cb cb, void *ud)
{
    for (size_t i = 0; i < l->n_prep; i++) {
        if (l->prep[i].cb == cb && l->prep[i].ud == ud) {
            memmove(&l->prep[i], &l->prep[i + 1], (l->n_prep - i - 1) * sizeof l->prep[0]);
            l->n_prep--;
            return;
        }
    }
}

/* Fires every timer that is due. Each is disarmed before its callback runs, so the
 * callback may start or stop any timer, itself included. */
static void run_timers(struct loop *l)
{
    uint64_t now = loop_now_ms();
    while (l->n_heap > 0 && l->heap[0]->due_ms <= now) {
        struct loop_timer *t = l->heap[0];
        heap_remove(l, t);
        t->cb(l, t, t->ud);
    }
}

/* The prepare hooks run first: they may do work (libmicrohttpd runs resumed requests)
 * that adds timers, which the wait must then honour. */
static int wait_timeout(struct loop *l)
{
    int64_t best = -1;
    for (size_t i = 0; i < l->n_prep; i++) {
        int64_t d = l->prep[i].cb(l, l->prep[i].ud);
        if (d >= 0 && (best < 0 || d < best))
            best = d;
    }
    uint64_t now = loop_now_ms();
    if (l->n_heap > 0) {
        uint64_t due = l->heap[0]->due_ms;
        int64_t d = due > now ? (int64_t)(due - now) : 0;
        if (best < 0 || d < best)
            best = d;
    }
    if (best > 60000 || best < 0)
        best = 60000; /* wake at least once a minute */
    return (int)best;
}

int loop_run(struct loop *l)
{
    struct epoll_event evs[64];
    l->stop = 0;
    while (!l->stop) {
        int n = epoll_wait(l->epfd, evs, 64, wait_timeout(l));
        l->turn++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n && !l->stop; i++) {
            int fd = evs[i].data.fd;
            if ((size_t)fd < l->n_fds && l->fds[fd].cb)
                l->fds[fd].cb(l, fd, evs[i].events, l->fds[fd].ud);
        }
        run_timers(l);
    }
    return 0;
}

uint64_t loop_turn(const struct loop *l)
{
    return l->turn;
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

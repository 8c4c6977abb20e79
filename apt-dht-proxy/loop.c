/* loop.c - epoll + timers + signalfd.
 *
 * Model: one epoll fd; each registered fd has one callback. Timers live in a small list
 * (the daemon has a handful: curl's, the DHT's, housekeeping), and the wait timeout is
 * the nearest deadline, also bounded by the prepare hooks (libmicrohttpd's timeout).
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

struct loop_timer {
    uint64_t due_ms;
    loop_timer_cb cb;
    void *ud;
    struct loop_timer *prev, *next;
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
    struct loop_timer *timers;
    struct signal_slot sigs[8];
    size_t n_sigs;
    struct prepare_slot prep[4];
    size_t n_prep;
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
    while (l->timers) {
        struct loop_timer *t = l->timers;
        l->timers = t->next;
        free(t);
    }
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

struct loop_timer *loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb cb, void *ud)
{
    struct loop_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->due_ms = loop_now_ms() + delay_ms;
    t->cb = cb;
    t->ud = ud;
    t->next = l->timers;
    if (l->timers)
        l->timers->prev = t;
    l->timers = t;
    return t;
}

static void timer_unlink(struct loop *l, struct loop_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    if (!t)
        return;
    timer_unlink(l, t);
    free(t);
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

/* Fires every timer that is due; a callback may add or cancel timers, so the scan
 * restarts after each one. */
static void run_timers(struct loop *l)
{
    uint64_t now = loop_now_ms();
    for (;;) {
        struct loop_timer *t = l->timers;
        while (t && t->due_ms > now)
            t = t->next;
        if (!t)
            return;
        timer_unlink(l, t);
        loop_timer_cb cb = t->cb;
        void *ud = t->ud;
        free(t);
        cb(l, NULL, ud);
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
    for (struct loop_timer *t = l->timers; t; t = t->next) {
        int64_t d = t->due_ms > now ? (int64_t)(t->due_ms - now) : 0;
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

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

/* loop.h - the daemon's one event loop (epoll + timers + signalfd), in the manner of
 * redis's ae.c: every subsystem registers its fds and deadlines here, nothing else waits.
 * Times are milliseconds of CLOCK_MONOTONIC. */
#ifndef APT_DHT_LOOP_H
#define APT_DHT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_timer;

/* events: EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP bits as epoll reports them. */
typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *ud);
typedef void (*loop_timer_cb)(struct loop *l, struct loop_timer *t, void *ud);
typedef void (*loop_signal_cb)(struct loop *l, int signo, void *ud);
/* Called before each wait; returns the longest the loop may sleep (ms, -1 = no limit). */
typedef int64_t (*loop_prepare_cb)(struct loop *l, void *ud);

int loop_new(struct loop **out);
void loop_free(struct loop *l);

uint64_t loop_now_ms(void);

/* Registers fd for events (EPOLLIN|EPOLLOUT...); 0 or negative errno. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud);
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
void loop_del_fd(struct loop *l, int fd);

/* A timer lives inside its owner, in the manner of libuv's uv_timer_t: the loop never
 * allocates or frees one, so no pointer to it can dangle. Its fields are the loop's. A
 * zero-filled timer is valid and idle; loop_timer_init sets its callback. */
struct loop_timer {
    uint64_t due_ms;
    size_t slot; /* index in the loop's heap + 1; 0 = not armed */
    loop_timer_cb cb;
    void *ud;
};

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *ud);

/* Arms t to fire once at now + delay_ms (re-arms it if it is armed already). The
 * callback gets t, already disarmed, and may start it again. 0 or -ENOMEM. */
int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms);

/* Disarms t. Idempotent: stopping a timer that fired, was stopped or never started does
 * nothing. An owner stops its timers before it frees itself. */
void loop_timer_stop(struct loop *l, struct loop_timer *t);

bool loop_timer_armed(const struct loop_timer *t);

/* Blocks signo and delivers it through the loop (SIGTERM, SIGINT, SIGHUP). */
int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *ud);

/* Adds a hook run before every wait (at most 4). */
int loop_add_prepare(struct loop *l, loop_prepare_cb cb, void *ud);
/* Removes the hook added with the same cb and ud (nothing if there is none). */
void loop_del_prepare(struct loop *l, loop_prepare_cb cb, void *ud);

/* How many waits have returned: work done under one value of it ran between two waits,
 * with no chance for other fds in between (a budget per turn keeps one busy fd from
 * starving the others). */
uint64_t loop_turn(const struct loop *l);

/* Runs until loop_stop; returns 0 or a negative errno if epoll fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif

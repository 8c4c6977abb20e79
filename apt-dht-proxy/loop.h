/* loop.h - the daemon's one event loop (epoll + timers + signalfd), in the manner of
 * redis's ae.c: every subsystem registers its fds and deadlines here, nothing else waits.
 * Times are milliseconds of CLOCK_MONOTONIC. */
#ifndef APT_DHT_LOOP_H
#define APT_DHT_LOOP_H

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

/* One-shot timer firing at now + delay_ms; the handle is valid until it fires or is
 * cancelled. loop_timer_cancel accepts NULL. */
struct loop_timer *loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb cb, void *ud);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/* Blocks signo and delivers it through the loop (SIGTERM, SIGINT, SIGHUP). */
int loop_add_signal(struct loop *l, int signo, loop_signal_cb cb, void *ud);

/* Adds a hook run before every wait (at most 4). */
int loop_add_prepare(struct loop *l, loop_prepare_cb cb, void *ud);

/* Runs until loop_stop; returns 0 or a negative errno if epoll fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif

/* httpd.h - libmicrohttpd on the daemon's event loop.
 *
 * The HTTP daemon runs in external-epoll mode: its epoll fd is one fd of the loop, and a
 * prepare hook runs it once more before every wait when a suspended connection has been
 * resumed (libmicrohttpd only processes those inside MHD_run) and bounds the wait by its
 * own timeout. Connections are admitted by audience (apt client or peer) within the
 * budgets of conns.h. Requests go to the caller's handlers; the raw request target is
 * handed over undecoded (url.h decodes it once, with its own limits). */
#ifndef APT_DHT_HTTPD_H
#define APT_DHT_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include "apt-dht-proxy/conns.h"
#include "apt-dht-proxy/stats.h"

struct httpd;
struct loop;

#define HTTPD_MAX_LISTEN 8        /* listening sockets (CONFIG_MAX_LISTEN addresses) */
#define HTTPD_LISTEN_FDS_START 3  /* systemd's SD_LISTEN_FDS_START */

struct httpd_conf {
    const char *const *addresses; /* numeric IPv4/IPv6, one listener each; none: 0.0.0.0,
                                     or 127.0.0.1 if local_only */
    size_t n_addresses;
    const int *fds;           /* inherited listening sockets; when n_fds > 0 they are used
                                 instead of addresses and port */
    size_t n_fds;
    bool local_only;          /* the default address is loopback (dht.mode off) */
    uint16_t port;            /* 0 = any free port (httpd_port tells) */
    uint32_t max_connections; /* libmicrohttpd's pool */
    uint32_t idle_timeout_s;  /* libmicrohttpd's inactivity timeout */
    struct conns_limits limits;
    struct stats *stats;      /* counts the connections accepted */
};

struct httpd_calls {
    MHD_AccessHandlerCallback request;
    MHD_RequestCompletedCallback completed;
    /* Who is at sa: 1 an apt client, 0 a peer only, -1 nobody we answer (refused). */
    int (*audience)(void *cls, const struct sockaddr *sa);
    void *cls;
};

/* Binds, listens (or takes the inherited sockets) and joins the loop; *kick is the flag
 * the caller sets when it resumes a connection. 0, -EINVAL (address not numeric),
 * -EADDRINUSE, -E2BIG (more than HTTPD_MAX_LISTEN), -ENOTSOCK, -ENOMEM. */
int httpd_start(struct httpd **out, struct loop *l, const struct httpd_conf *conf,
                const struct httpd_calls *calls, bool *kick);
uint16_t httpd_port(const struct httpd *h);
void httpd_set_limits(struct httpd *h, const struct conns_limits *lim);

/* The request head on c is complete (its header deadline is over). */
void httpd_head_arrived(struct MHD_Connection *c);

/* Stops accepting connections (the open ones carry on): the first step of a graceful
 * stop. An inherited socket keeps queueing connections for the next instance. */
void httpd_quiesce(struct httpd *h);
/* Connections open now, on every listener. */
unsigned httpd_connections(const struct httpd *h);

/* One run of libmicrohttpd now (the shutdown sequence drives it by hand). */
void httpd_run(struct httpd *h);

/* Leaves the loop and stops the daemon: every connection closes, completed handlers
 * run; an inherited socket is closed here but not shut down (its owner keeps it and its
 * queue). Accepts NULL. */
void httpd_free(struct httpd *h);

/* Socket activation (the protocol of sd_listen_fds(3), without libsystemd): when
 * LISTEN_PID is this process, the LISTEN_FDS sockets from fd 3 on, each checked to be a
 * listening TCP socket (IPv4 or IPv6), are written into fds (made close-on-exec). The
 * variables are then removed from the environment. Returns how many (0: none were
 * passed, or they were for another process), -E2BIG (more than max), -ENOTSOCK (one of
 * them is not a listening TCP socket). */
int httpd_listen_fds(int *fds, size_t max);

#endif

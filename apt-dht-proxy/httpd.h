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

struct httpd_conf {
    const char *address;      /* numeric IPv4/IPv6; NULL: 0.0.0.0, or 127.0.0.1 if local_only */
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

/* Binds, listens and joins the loop; *kick is the flag the caller sets when it resumes a
 * connection. 0, -EINVAL (address not numeric), -EADDRINUSE, -ENOMEM. */
int httpd_start(struct httpd **out, struct loop *l, const struct httpd_conf *conf,
                const struct httpd_calls *calls, bool *kick);
uint16_t httpd_port(const struct httpd *h);
void httpd_set_limits(struct httpd *h, const struct conns_limits *lim);

/* The request head on c is complete (its header deadline is over). */
void httpd_head_arrived(struct MHD_Connection *c);

/* One run of libmicrohttpd now (the shutdown sequence drives it by hand). */
void httpd_run(struct httpd *h);

/* Leaves the loop and stops the daemon: every connection closes, completed handlers
 * run. Accepts NULL. */
void httpd_free(struct httpd *h);

#endif

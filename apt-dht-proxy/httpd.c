/* httpd.c - libmicrohttpd driven by the event loop, with connection budgets (httpd.h). */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include "apt-dht-proxy/httpd.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"

#define MHD_WAIT_MAX_MS 1000 /* longest the loop sleeps without running MHD */
/* libmicrohttpd's memory per connection: the request head and the read and write
 * buffers. libmicrohttpd zeroes the whole pool between two requests, so all of it stays
 * resident while a keep-alive connection waits for its next request: this is what 1,000
 * idle connections cost (64 KiB made it 66 MB; 8 KiB, 11 MB). apt's request heads are a
 * few hundred bytes; an encoded 4 KiB target (URL_MAX_TARGET) still fits, and a head that
 * does not is answered 431. */
#define HTTPD_CONN_POOL (8 * 1024)

struct httpd {
    struct loop *loop;
    struct MHD_Daemon *mhd;
    int epfd;             /* MHD's epoll fd, in the loop; -1 = not added */
    bool *kick;
    struct httpd_calls calls;
    struct conns *conns;
    struct stats *stats;
    uint16_t port;
};

static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s); /* url_parse decodes, once, with its own limits */
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t len)
{
    struct httpd *h = cls;
    int who = h->calls.audience(h->calls.cls, sa);
    return who >= 0 && conns_admit(h->conns, sa, who == 1) ? MHD_YES : MHD_NO;
}

/* Every connection is counted against its address and audience while it is open. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct httpd *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conns_closed(h->conns, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ai || !ai->client_addr)
        return;
    bool apt = h->calls.audience(h->calls.cls, ai->client_addr) == 1;
    h->stats->connections++;
    *socket_context = conns_opened(h->conns, ai->client_addr, apt, fi ? fi->connect_fd : -1);
}

void httpd_head_arrived(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci)
        conns_requested(ci->socket_context);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_debug("http: %s", msg);
}

static void on_ready(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct httpd *h = ud;
    MHD_run(h->mhd);
}

/* Before each wait: let MHD work off anything pending (resumed connections), and tell
 * the loop how long MHD may sleep; never without a bound: with no timeout of its own,
 * MHD may still have work only its next run does (it takes up listening again once a
 * full connection pool has room, for one), and nothing else would wake the loop. */
static int64_t on_prepare(struct loop *l, void *ud)
{
    struct httpd *h = ud;
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (!h->mhd)
        return -1;
    for (int i = 0; i < 4 && *h->kick; i++) {
        *h->kick = false;
        MHD_run(h->mhd);
    }
    for (int i = 0; i < 4; i++) {
        if (MHD_get_timeout(h->mhd, &t) != MHD_YES)
            return MHD_WAIT_MAX_MS;
        if (t > 0)
            return t < MHD_WAIT_MAX_MS ? (int64_t)t : MHD_WAIT_MAX_MS;
        MHD_run(h->mhd);
    }
    return 0;
}

static int listen_addr(const struct httpd_conf *c, struct sockaddr_storage *ss, unsigned *flags)
{
    const char *a = c->address ? c->address : c->local_only ? "127.0.0.1" : "0.0.0.0";
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, a, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(c->port);
        return 0;
    }
    if (inet_pton(AF_INET6, a, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(c->port);
        *flags |= MHD_USE_IPv6;
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
            *flags |= MHD_USE_DUAL_STACK;
        return 0;
    }
    log_error("listen.address '%s' is not an IP address", a);
    return -EINVAL;
}

static struct MHD_Daemon *start_mhd(struct httpd *h, const struct httpd_conf *c, unsigned flags,
                                    struct sockaddr_storage *ss)
{
    /* SIGPIPE is ignored process-wide by main(); telling MHD so lets it use sendfile(2).
     * No MHD_OPTION_LISTENING_ADDRESS_REUSE: SO_REUSEADDR (a quick restart) but never
     * SO_REUSEPORT, so a second instance on a port in use fails to start instead of
     * taking half the connections. */
    return MHD_start_daemon(
        flags, c->port, accept_policy, h, h->calls.request, h->calls.cls,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
        MHD_OPTION_NOTIFY_COMPLETED, h->calls.completed, h->calls.cls,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_UNESCAPE_CALLBACK, keep_raw,
        NULL, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTPD_CONN_POOL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections, MHD_OPTION_END);
}

int httpd_start(struct httpd **out, struct loop *l, const struct httpd_conf *conf,
                const struct httpd_calls *calls, bool *kick)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct httpd *h = calloc(1, sizeof *h);
    int r = -ENOMEM;
    if (!h)
        return r;
    *h = (struct httpd){.loop = l, .epfd = -1, .kick = kick, .calls = *calls, .stats = conf->stats};
    if ((r = conns_new(&h->conns, l, &conf->limits)) < 0 || (r = listen_addr(conf, &ss, &flags)) < 0)
        goto fail;
    r = -EADDRINUSE;
    if (!(h->mhd = start_mhd(h, conf, flags, &ss)))
        goto fail;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = pi ? pi->port : conf->port;
    r = -EIO;
    if (!di || di->epoll_fd < 0 || (r = loop_add_fd(l, di->epoll_fd, EPOLLIN, on_ready, h)) < 0)
        goto fail;
    h->epfd = di->epoll_fd;
    if ((r = loop_add_prepare(l, on_prepare, h)) < 0)
        goto fail;
    *out = h;
    return 0;
fail:
    httpd_free(h);
    return r;
}

uint16_t httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_set_limits(struct httpd *h, const struct conns_limits *lim)
{
    conns_set_limits(h->conns, lim);
}

void httpd_run(struct httpd *h)
{
    MHD_run(h->mhd);
}

void httpd_free(struct httpd *h)
{
    if (!h)
        return;
    loop_del_prepare(h->loop, on_prepare, h);
    if (h->epfd >= 0)
        loop_del_fd(h->loop, h->epfd);
    if (h->mhd)
        MHD_stop_daemon(h->mhd); /* closes every connection: conns_closed for each */
    h->mhd = NULL;
    conns_free(h->conns);
    free(h);
}

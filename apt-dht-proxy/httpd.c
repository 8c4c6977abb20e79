/* httpd.c - libmicrohttpd driven by the event loop, with connection budgets (httpd.h):
 * a daemon per listening socket, bound here per listen.address or inherited from
 * systemd's socket activation. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
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

/* One libmicrohttpd daemon per listening socket (MHD takes one each), all sharing the
 * connection budgets and the handlers. */
struct listener {
    struct MHD_Daemon *mhd;
    int epfd;       /* MHD's epoll fd, in the loop; -1 = not added */
    int fd;         /* an inherited socket (socket activation); -1 = MHD's own */
    int quiesced;   /* the listening socket MHD gave back (httpd_quiesce); -1 = none */
};

struct httpd {
    struct loop *loop;
    struct listener ls[HTTPD_MAX_LISTEN];
    size_t n;
    bool *kick;
    struct httpd_calls calls;
    struct conns *conns;
    struct stats *stats;
    uint16_t port;
    unsigned open;  /* connections open, on every listener */
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
        h->open -= h->open > 0;
        conns_closed(h->conns, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    h->open++; /* counted down at CLOSED, which every connection gets */
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
    struct listener *li = ud;
    MHD_run(li->mhd);
}

static void run_all(struct httpd *h)
{
    for (size_t i = 0; i < h->n; i++)
        MHD_run(h->ls[i].mhd);
}

/* How long one daemon may sleep: its own timeout, bounded; 0 = run it again now. */
static int64_t mhd_wait(struct MHD_Daemon *mhd)
{
    MHD_UNSIGNED_LONG_LONG t = 0;
    for (int i = 0; i < 4; i++) {
        if (MHD_get_timeout(mhd, &t) != MHD_YES)
            return MHD_WAIT_MAX_MS;
        if (t > 0)
            return t < MHD_WAIT_MAX_MS ? (int64_t)t : MHD_WAIT_MAX_MS;
        MHD_run(mhd);
    }
    return 0;
}

/* Before each wait: let MHD work off anything pending (resumed connections), and tell
 * the loop how long MHD may sleep; never without a bound: with no timeout of its own,
 * MHD may still have work only its next run does (it takes up listening again once a
 * full connection pool has room, for one), and nothing else would wake the loop. A
 * resumed connection may be on any listener: the kick runs them all. */
static int64_t on_prepare(struct loop *l, void *ud)
{
    struct httpd *h = ud;
    int64_t wait = MHD_WAIT_MAX_MS;
    if (h->n == 0)
        return -1;
    for (int i = 0; i < 4 && *h->kick; i++) {
        *h->kick = false;
        run_all(h);
    }
    for (size_t i = 0; i < h->n; i++) {
        int64_t w = mhd_wait(h->ls[i].mhd);
        wait = w < wait ? w : wait;
    }
    return wait;
}

static int listen_addr(const struct httpd_conf *c, const char *a, struct sockaddr_storage *ss,
                       unsigned *flags)
{
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

/* A daemon on the socket MHD binds for ss, or (fd >= 0) on an inherited listening socket. */
static struct MHD_Daemon *start_mhd(struct httpd *h, const struct httpd_conf *c, unsigned flags,
                                    struct sockaddr_storage *ss, int fd)
{
    /* SIGPIPE is ignored process-wide by main(); telling MHD so lets it use sendfile(2).
     * No MHD_OPTION_LISTENING_ADDRESS_REUSE: SO_REUSEADDR (a quick restart) but never
     * SO_REUSEPORT, so a second instance on a port in use fails to start instead of
     * taking half the connections. */
    struct MHD_OptionItem where[] = {
        fd >= 0 ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL}
                : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ss},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(
        flags, c->port, accept_policy, h, h->calls.request, h->calls.cls,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h, MHD_OPTION_ARRAY, where,
        MHD_OPTION_NOTIFY_COMPLETED, h->calls.completed, h->calls.cls,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_UNESCAPE_CALLBACK, keep_raw,
        NULL, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTPD_CONN_POOL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections, MHD_OPTION_END);
}

/* The port a socket is bound to (0 = unknown); *v6 tells its family. */
static uint16_t bound_port(int fd, bool *v6)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    *v6 = ss.ss_family == AF_INET6;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* One listener: on inherited socket fd, or bound to address a; joins the loop. */
static int add_listener(struct httpd *h, const struct httpd_conf *c, const char *a, int fd)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct listener *li = &h->ls[h->n];
    int r;
    if (fd < 0 && (r = listen_addr(c, a, &ss, &flags)) < 0)
        return r;
    bool v6 = false;
    uint16_t inherited_port = fd >= 0 ? bound_port(fd, &v6) : 0;
    if (fd >= 0 && inherited_port == 0)
        return -ENOTSOCK;
    if (v6)
        flags |= MHD_USE_IPv6; /* systemd's ListenStream=PORT is [::]:PORT, both families */
    *li = (struct listener){.epfd = -1, .fd = fd, .quiesced = -1};
    if (!(li->mhd = start_mhd(h, c, flags, &ss, fd))) {
        if (a)
            log_error("cannot listen on %s port %u", a, c->port);
        return -EADDRINUSE;
    }
    h->n++;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(li->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(li->mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (h->n == 1)
        h->port = fd >= 0 ? inherited_port : pi && pi->port ? pi->port : c->port;
    if (!di || di->epoll_fd < 0 || (r = loop_add_fd(h->loop, di->epoll_fd, EPOLLIN, on_ready, li)) < 0)
        return -EIO;
    li->epfd = di->epoll_fd;
    return 0;
}

/* Every listener: the inherited sockets if there are any, else one per address. A second
 * address listens on the port the first got (listen.port 0 picks it once). */
static int add_listeners(struct httpd *h, struct httpd_conf c)
{
    static const char *const loopback[] = {"127.0.0.1"}, *const any[] = {"0.0.0.0"};
    const char *const *as = c.n_addresses ? c.addresses : c.local_only ? loopback : any;
    size_t n = c.n_fds ? c.n_fds : c.n_addresses ? c.n_addresses : 1;
    int r = 0;
    if (n > HTTPD_MAX_LISTEN)
        return -E2BIG;
    for (size_t i = 0; i < n && r == 0; i++) {
        r = add_listener(h, &c, c.n_fds ? NULL : as[i], c.n_fds ? c.fds[i] : -1);
        c.port = h->port;
    }
    return r;
}

int httpd_start(struct httpd **out, struct loop *l, const struct httpd_conf *conf,
                const struct httpd_calls *calls, bool *kick)
{
    struct httpd *h = calloc(1, sizeof *h);
    int r = -ENOMEM;
    if (!h)
        return r;
    *h = (struct httpd){.loop = l, .kick = kick, .calls = *calls, .stats = conf->stats};
    if ((r = conns_new(&h->conns, l, &conf->limits)) < 0 || (r = add_listeners(h, *conf)) < 0 ||
        (r = loop_add_prepare(l, on_prepare, h)) < 0)
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
    run_all(h);
}

/* An inherited socket outlives this process (systemd or a launcher holds it and keeps
 * queueing connections during a restart): MHD is made to let go of it first, so that
 * stopping never shuts it down, and only this process's descriptor is closed. */
static void listener_stop(struct httpd *h, struct listener *li)
{
    if (li->epfd >= 0)
        loop_del_fd(h->loop, li->epfd);
    if (li->mhd && li->fd >= 0 && li->quiesced < 0)
        li->quiesced = MHD_quiesce_daemon(li->mhd);
    if (li->mhd)
        MHD_stop_daemon(li->mhd); /* closes every connection: conns_closed for each */
    if (li->quiesced >= 0) /* ours to close, once MHD is done with it */
        close(li->quiesced);
    li->mhd = NULL;
    li->epfd = -1;
    li->quiesced = -1;
}

void httpd_quiesce(struct httpd *h)
{
    for (size_t i = 0; i < h->n; i++) {
        struct listener *li = &h->ls[i];
        if (li->mhd && li->quiesced < 0)
            li->quiesced = MHD_quiesce_daemon(li->mhd);
    }
}

unsigned httpd_connections(const struct httpd *h)
{
    return h->open;
}

void httpd_free(struct httpd *h)
{
    if (!h)
        return;
    loop_del_prepare(h->loop, on_prepare, h);
    for (size_t i = 0; i < h->n; i++)
        listener_stop(h, &h->ls[i]);
    conns_free(h->conns);
    free(h);
}

/* ---- socket activation ---- */

/* A socket systemd (or a launcher) may hand us: TCP, listening, IPv4 or IPv6. */
static bool is_tcp_listener(int fd)
{
    int type = 0, acc = 0;
    socklen_t tl = sizeof type, al = sizeof acc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
           getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == 0 && acc &&
           getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
           (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* A decimal environment value, whole, 1..max; 0 when absent or malformed. */
static unsigned long env_number(const char *name, unsigned long max)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v)
        return 0;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    return errno || *end || n > max ? 0 : n;
}

int httpd_listen_fds(int *fds, size_t max)
{
    unsigned long pid = env_number("LISTEN_PID", (unsigned long)INT32_MAX);
    unsigned long n = env_number("LISTEN_FDS", 1024);
    int r = 0;
    if (!getenv("LISTEN_FDS"))
        return 0;
    if (pid != (unsigned long)getpid()) /* meant for another process (or malformed) */
        r = 0;
    else if (n == 0 || n > max)
        r = -E2BIG;
    for (unsigned long i = 0; r >= 0 && pid == (unsigned long)getpid() && i < n; i++) {
        int fd = HTTPD_LISTEN_FDS_START + (int)i;
        if (!is_tcp_listener(fd)) {
            r = -ENOTSOCK;
            break;
        }
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* the fetcher's children, if any, never get it */
        fds[i] = fd;
        r = (int)i + 1;
    }
    /* as sd_listen_fds(1): the variables are for this process only */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return r;
}

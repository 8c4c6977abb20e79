/* node-main.c - apt-dht-node: a DHT node on the command line.
 *
 *   apt-dht-node [--mode apt-dht|bep5] [--bind ADDR] [--port N] [--bootstrap HOST:PORT]...
 *                [--state FILE] [--lan-discovery] [--resolve-only] [--stats] [--timeout SEC]
 *                (run | ping HOST:PORT | get KEY | announce KEY PORT | dump)
 *
 * `run` keeps a node in the foreground until SIGTERM/SIGINT (SIGUSR1 dumps the node to
 * stderr), saving --state on exit. The one-shot commands start an ephemeral node (port 0
 * unless --port), join through the bootstrap nodes, the state file or the LAN, do their
 * work and exit: 0 on success, 1 with a one-line reason on stderr, 2 on bad arguments.
 * `dump` prints the node id and routing table saved in --state. `get` and `ping` nodes
 * are resolve-only so that they never enter other nodes' routing tables.
 *
 * The program is a small poll loop around the library: one UDP socket per address
 * family (and one per family for LAN discovery), a monotonic clock in milliseconds,
 * and signal handlers that only record (signals stay blocked outside ppoll). */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "dht/dht.h"

#define MAX_BOOT 16
#define USAGE "usage: apt-dht-node [--mode apt-dht|bep5] [--bind ADDR] [--port N] " \
              "[--bootstrap HOST:PORT]... [--state FILE] [--lan-discovery] [--resolve-only] " \
              "[--stats] [--timeout SEC] (run | ping HOST:PORT | get KEY | announce KEY PORT | dump)"

enum cmd { CMD_RUN, CMD_PING, CMD_GET, CMD_ANNOUNCE, CMD_DUMP };

struct opts {
    enum dht_dialect mode;
    const char *bind, *state;
    long port;                      /* -1 = default */
    const char *boot[MAX_BOOT];
    int nboot, lan, resolve_only, stats;
    long timeout_s;
    enum cmd cmd;
    const char *target;             /* ping HOST:PORT */
    uint8_t key[DHT_ID_LEN];
    long ann_port;
};

struct app {
    struct opts o;
    struct dht *dht;
    int fd4, fd6, lan4, lan6;
    uint16_t port;
    int finished, status;           /* one-shot result */
    int lookup_started, announce_started;
    size_t peers;
};

static volatile sig_atomic_t got_stop, got_dump;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        got_dump = 1;
    else
        got_stop = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int usage_error(const char *why)
{
    fprintf(stderr, "apt-dht-node: %s; %s\n", why, USAGE);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_key(const char *s, uint8_t *key)
{
    if (strlen(s) != 2 * DHT_ID_LEN)
        return -EINVAL;
    for (int i = 0; i < 2 * DHT_ID_LEN; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -EINVAL;
        key[i / 2] = (uint8_t)(i % 2 ? key[i / 2] | v : v << 4);
    }
    return 0;
}

/* Resolves HOST:PORT or [V6]:PORT into up to max addresses. Returns the count or <0. */
static int resolve(const char *hp, struct sockaddr_storage *out, int max)
{
    char host[256];
    const char *colon = strrchr(hp, ':'), *h = hp;
    size_t hl;
    long port;
    if (!colon || parse_long(colon + 1, 1, 65535, &port) < 0)
        return -EINVAL;
    hl = (size_t)(colon - hp);
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        h = hp + 1;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -ENOENT;
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(&out[n], ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    freeaddrinfo(res);
    return n ? n : -ENOENT;
}

/* Options without a value. Returns 1 when a was one of them. */
static int parse_flag(struct opts *o, const char *a)
{
    if (strcmp(a, "--lan-discovery") == 0)
        o->lan = 1;
    else if (strcmp(a, "--resolve-only") == 0)
        o->resolve_only = 1;
    else if (strcmp(a, "--stats") == 0)
        o->stats = 1;
    else
        return 0;
    return 1;
}

/* Option a with its value v. Returns 0 or the usage exit status. */
static int parse_option(struct opts *o, const char *a, const char *v)
{
    if (strcmp(a, "--mode") == 0) {
        if (strcmp(v, "apt-dht") == 0)
            o->mode = DHT_DIALECT_APT;
        else if (strcmp(v, "bep5") == 0)
            o->mode = DHT_DIALECT_BEP5;
        else
            return usage_error("--mode must be apt-dht or bep5");
    } else if (strcmp(a, "--bind") == 0) {
        o->bind = v;
    } else if (strcmp(a, "--port") == 0) {
        if (parse_long(v, 0, 65535, &o->port) < 0)
            return usage_error("bad --port");
    } else if (strcmp(a, "--bootstrap") == 0) {
        if (o->nboot >= MAX_BOOT)
            return usage_error("too many --bootstrap");
        if (!strrchr(v, ':'))
            return usage_error("--bootstrap needs HOST:PORT");
        o->boot[o->nboot++] = v;
    } else if (strcmp(a, "--state") == 0) {
        o->state = v;
    } else if (strcmp(a, "--timeout") == 0) {
        if (parse_long(v, 1, 86400, &o->timeout_s) < 0)
            return usage_error("bad --timeout");
    } else {
        return usage_error("unknown option");
    }
    return 0;
}

/* The command c and its left arguments args[0..left). Returns 0 or the usage exit
 * status. */
static int parse_command(struct opts *o, const char *c, char **args, int left)
{
    if (strcmp(c, "run") == 0 && left == 0) {
        o->cmd = CMD_RUN;
    } else if (strcmp(c, "dump") == 0 && left == 0) {
        o->cmd = CMD_DUMP;
        if (!o->state)
            return usage_error("dump needs --state FILE (or send SIGUSR1 to a running node)");
    } else if (strcmp(c, "ping") == 0 && left == 1) {
        o->cmd = CMD_PING;
        o->target = args[0];
        if (!strrchr(o->target, ':'))
            return usage_error("ping needs HOST:PORT");
    } else if (strcmp(c, "get") == 0 && left == 1) {
        o->cmd = CMD_GET;
        if (parse_key(args[0], o->key) < 0)
            return usage_error("KEY must be 40 hex digits");
    } else if (strcmp(c, "announce") == 0 && left == 2) {
        o->cmd = CMD_ANNOUNCE;
        if (parse_key(args[0], o->key) < 0)
            return usage_error("KEY must be 40 hex digits");
        if (parse_long(args[1], 1, 65535, &o->ann_port) < 0)
            return usage_error("PORT must be 1..65535");
    } else {
        return usage_error("unknown command or wrong number of arguments");
    }
    return 0;
}

/* Options first, then the command. Returns 0 or the usage exit status (2). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    int i = 1, rc;
    memset(o, 0, sizeof(*o));
    o->port = -1;
    o->timeout_s = 30;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (parse_flag(o, a))
            continue;
        if (!v)
            return usage_error("option needs a value");
        i++;
        rc = parse_option(o, a, v);
        if (rc)
            return rc;
    }
    if (i >= argc)
        return usage_error("missing command");
    return parse_command(o, argv[i], argv + i + 1, argc - i - 1);
}

static int send_cb(void *ud, const void *buf, size_t len, const struct sockaddr *to,
                   socklen_t tolen)
{
    struct app *app = ud;
    int fd = to->sa_family == AF_INET6 ? app->fd6 : app->fd4;
    if (fd < 0)
        return -EAFNOSUPPORT;
    if (sendto(fd, buf, len, 0, to, tolen) < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    return 0;
}

static int open_udp(int family, const char *addr, uint16_t port, int reuse)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    int one = 1;
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        if (addr && inet_pton(AF_INET, addr, &s->sin_addr) != 1)
            return -EINVAL;
        len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(port);
        if (addr && inet_pton(AF_INET6, addr, &s->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof(*s);
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (reuse)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Binds the DHT sockets: --bind picks one family, otherwise both (same port). */
static int open_sockets(struct app *app)
{
    struct in6_addr tmp6;
    uint16_t port = app->o.port > 0 ? (uint16_t)app->o.port : 0;
    if (app->o.port < 0 && app->o.cmd == CMD_RUN)
        port = 9977;
    const char *b = app->o.bind;
    int want6 = !b || inet_pton(AF_INET6, b, &tmp6) == 1;
    int want4 = !b || !want6;
    if (want4) {
        app->fd4 = open_udp(AF_INET, b, port, 0);
        if (app->fd4 < 0 && b)
            return app->fd4;
        if (app->fd4 >= 0)
            port = local_port(app->fd4);
    }
    if (want6) {
        app->fd6 = open_udp(AF_INET6, b, port, 0);
        if (app->fd6 < 0 && b)
            return app->fd6;
        if (app->fd6 < 0 && !want4)
            return app->fd6;
        if (app->fd6 >= 0)
            port = local_port(app->fd6);
    }
    if (app->fd4 < 0 && app->fd6 < 0)
        return app->fd4;
    app->port = port;
    return 0;
}

static void open_lan(struct app *app)
{
    app->lan4 = open_udp(AF_INET, NULL, DHT_LAN_PORT, 1);
    if (app->lan4 >= 0) {
        struct ip_mreq mr = {0};
        inet_pton(AF_INET, DHT_LAN_GROUP4, &mr.imr_multiaddr);
        if (setsockopt(app->lan4, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
            close(app->lan4);
            app->lan4 = -1;
        }
    }
    app->lan6 = open_udp(AF_INET6, NULL, DHT_LAN_PORT, 1);
    if (app->lan6 >= 0) {
        struct ipv6_mreq mr = {0};
        inet_pton(AF_INET6, DHT_LAN_GROUP6, &mr.ipv6mr_multiaddr);
        if (setsockopt(app->lan6, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr)) < 0) {
            close(app->lan6);
            app->lan6 = -1;
        }
    }
    if (app->lan4 < 0 && app->lan6 < 0)
        fprintf(stderr, "apt-dht-node: LAN discovery unavailable (no multicast)\n");
}

static void lan_announce(struct app *app)
{
    char buf[512];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (app->lan4 >= 0 && app->fd4 >= 0) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(DHT_LAN_PORT);
        inet_pton(AF_INET, DHT_LAN_GROUP4, &s->sin_addr);
        int n = dht_lan_build(app->dht, DHT_FAMILY_V4, buf, sizeof(buf));
        if (n > 0)
            sendto(app->fd4, buf, (size_t)n, 0, (struct sockaddr *)s, sizeof(*s));
    }
    if (app->lan6 >= 0 && app->fd6 >= 0) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        memset(&ss, 0, sizeof(ss));
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(DHT_LAN_PORT);
        inet_pton(AF_INET6, DHT_LAN_GROUP6, &s->sin6_addr);
        int n = dht_lan_build(app->dht, DHT_FAMILY_V6, buf, sizeof(buf));
        if (n > 0)
            sendto(app->fd6, buf, (size_t)n, 0, (struct sockaddr *)s, sizeof(*s));
    }
}

static void print_addr(FILE *f, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        fprintf(f, "%s:%u\n", ip, ntohs(s->sin_port));
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        fprintf(f, "[%s]:%u\n", ip, ntohs(s->sin6_port));
    }
}

static void on_ping(void *ud, const struct sockaddr *from, const uint8_t *id)
{
    struct app *app = ud;
    app->finished = 1;
    if (!id) {
        fprintf(stderr, "apt-dht-node: no answer from %s\n", app->o.target);
        app->status = 1;
        return;
    }
    for (int i = 0; i < DHT_ID_LEN; i++)
        printf("%02x", id[i]);
    printf("\n");
    app->status = 0;
}

static void on_lookup(void *ud, const struct dht_lookup_result *r)
{
    struct app *app = ud;
    for (size_t i = 0; i < r->n; i++)
        print_addr(stdout, &r->peers[i]);
    fflush(stdout);
    app->peers += r->n;
    if (!r->done)
        return;
    app->finished = 1;
    app->status = app->peers ? 0 : 1;
    if (app->o.stats)
        fprintf(stderr, "lookup: queries=%u rounds=%u peers=%zu\n", r->queries, r->rounds,
                app->peers);
    if (!app->peers)
        fprintf(stderr, "apt-dht-node: no peers found (%u nodes asked)\n", r->queries);
}

static void on_announce(void *ud, const uint8_t *key, int stored)
{
    struct app *app = ud;
    app->finished = 1;
    app->status = stored > 0 ? 0 : 1;
    if (stored > 0)
        printf("stored on %d nodes\n", stored);
    else
        fprintf(stderr, "apt-dht-node: no node accepted the announcement\n");
}

/* Starts the one-shot work once the node has joined (or right away for ping). */
static int start_work(struct app *app)
{
    struct dht_stats st;
    int r = 0;
    if (app->o.cmd == CMD_PING && !app->lookup_started) {
        struct sockaddr_storage ss[2];
        app->lookup_started = 1;
        int n = resolve(app->o.target, ss, 2);
        if (n < 0) {
            fprintf(stderr, "apt-dht-node: cannot resolve %s\n", app->o.target);
            return -1;
        }
        int i = 0;
        while (i < n - 1 && ((ss[i].ss_family == AF_INET6 && app->fd6 < 0) ||
                             (ss[i].ss_family == AF_INET && app->fd4 < 0)))
            i++;
        r = dht_ping(app->dht, (struct sockaddr *)&ss[i], sizeof(ss[i]), on_ping, app);
        if (r < 0)
            fprintf(stderr, "apt-dht-node: cannot ping %s: %s\n", app->o.target, strerror(-r));
        return r;
    }
    dht_get_stats(app->dht, &st);
    if (dht_state(app->dht) != DHT_ACTIVE || st.lookups_active > 0)
        return 0; /* joining: wait for the own-id lookup to settle */
    if (app->o.cmd == CMD_GET && !app->lookup_started) {
        app->lookup_started = 1;
        r = dht_lookup(app->dht, app->o.key, on_lookup, app);
    } else if (app->o.cmd == CMD_ANNOUNCE && !app->announce_started) {
        app->announce_started = 1;
        r = dht_announce(app->dht, app->o.key, (uint16_t)app->o.ann_port, on_announce, app);
    }
    if (r < 0)
        fprintf(stderr, "apt-dht-node: %s\n", strerror(-r));
    return r < 0 ? -1 : 0;
}

static void read_socket(struct app *app, int fd, int lan)
{
    uint8_t buf[DHT_MAX_PACKET + 1];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
        if (n < 0)
            return;
        if (lan)
            dht_lan_input(app->dht, buf, (size_t)n, (struct sockaddr *)&from, flen);
        else
            dht_input(app->dht, buf, (size_t)n, (struct sockaddr *)&from, flen, now_ms());
    }
}

static int loop(struct app *app, sigset_t *orig)
{
    uint64_t start = now_ms(), next = start, next_lan = start;
    uint64_t deadline = start + (uint64_t)app->o.timeout_s * 1000;
    while (!got_stop && !app->finished) {
        uint64_t now = now_ms();
        if (now >= next)
            dht_periodic(app->dht, now, &next);
        if (app->o.lan && now >= next_lan) {
            lan_announce(app);
            next_lan = now + DHT_LAN_INTERVAL_MS;
        }
        if (got_dump) {
            got_dump = 0;
            dht_dump(app->dht, stderr);
        }
        if (app->o.cmd != CMD_RUN) {
            if (start_work(app) < 0)
                return 1;
            if (app->finished)
                break;
            if (now >= deadline) {
                fprintf(stderr, "apt-dht-node: timed out after %ld s (%s)\n", app->o.timeout_s,
                        dht_state(app->dht) == DHT_ACTIVE ? "DHT joined"
                                                          : "no DHT node answered");
                return 1;
            }
        }
        struct pollfd pf[4] = {{app->fd4, POLLIN, 0}, {app->fd6, POLLIN, 0},
                               {app->lan4, POLLIN, 0}, {app->lan6, POLLIN, 0}};
        uint64_t wake = next < next_lan || !app->o.lan ? next : next_lan;
        if (app->o.cmd != CMD_RUN && wake > now + 100)
            wake = now + 100; /* one-shots re-check their progress often */
        struct timespec ts = {0, 0};
        if (wake > now) {
            ts.tv_sec = (time_t)((wake - now) / 1000);
            ts.tv_nsec = (long)((wake - now) % 1000) * 1000000;
        }
        if (ppoll(pf, 4, &ts, orig) < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < 4; i++)
            if (pf[i].fd >= 0 && (pf[i].revents & POLLIN))
                read_socket(app, pf[i].fd, i >= 2);
    }
    return app->o.cmd == CMD_RUN ? 0 : app->status;
}

static int add_bootstraps(struct app *app)
{
    int added = 0;
    for (int i = 0; i < app->o.nboot; i++) {
        struct sockaddr_storage ss[4];
        int n = resolve(app->o.boot[i], ss, 4);
        if (n < 0) {
            fprintf(stderr, "apt-dht-node: cannot resolve bootstrap %s\n", app->o.boot[i]);
            continue;
        }
        for (int k = 0; k < n; k++) {
            if ((ss[k].ss_family == AF_INET && app->fd4 < 0) ||
                (ss[k].ss_family == AF_INET6 && app->fd6 < 0))
                continue;
            added += dht_add_bootstrap(app->dht, (struct sockaddr *)&ss[k], sizeof(ss[k])) == 0;
        }
    }
    return added;
}

static int make_node(struct app *app, int with_sockets)
{
    struct dht_config cfg;
    dht_config_init(&cfg);
    cfg.dialect = app->o.mode;
    cfg.port = app->port;
    /* One-shot nodes stay out of other nodes' tables (BEP 43 ro): they vanish soon. */
    cfg.resolve_only = app->o.resolve_only || app->o.cmd == CMD_GET || app->o.cmd == CMD_PING ||
                       app->o.cmd == CMD_ANNOUNCE;
    cfg.families = (app->fd4 >= 0 ? DHT_FAMILY_V4 : 0) | (app->fd6 >= 0 ? DHT_FAMILY_V6 : 0);
    if (!with_sockets)
        cfg.families = 0;
    cfg.send = send_cb;
    cfg.ud = app;
    int r = dht_new(&cfg, now_ms(), &app->dht);
    if (r < 0) {
        fprintf(stderr, "apt-dht-node: cannot create node: %s\n", strerror(-r));
        return -1;
    }
    if (app->o.state) {
        r = dht_load(app->dht, app->o.state);
        if (r < 0 && !(r == -ENOENT && with_sockets)) {
            fprintf(stderr, "apt-dht-node: cannot load %s: %s\n", app->o.state, strerror(-r));
            return -1;
        }
    }
    return 0;
}

/* --help and --version, anywhere on the line. Returns 1 when one was answered. */
static int info_flag(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s\n", USAGE);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("apt-dht-node %s\n", dht_version());
            return 1;
        }
    }
    return 0;
}

/* `dump`: a node without sockets, loaded from --state and printed. Returns the exit
 * status. */
static int run_dump(struct app *app)
{
    int rc = make_node(app, 0) < 0 ? 1 : 0;
    if (!rc)
        dht_dump(app->dht, stdout);
    dht_free(app->dht);
    return rc;
}

/* The stop and dump signals stay blocked except inside ppoll (orig is the mask to wait
 * with), so their handlers can only interrupt the wait. */
static void setup_signals(sigset_t *orig)
{
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, orig);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* get and announce need somewhere to start: a bootstrap address, the LAN or a node
 * from the state file. Returns 0, or -1 after saying why. */
static int check_joinable(struct app *app, int boots)
{
    struct dht_stats st;
    if (app->o.cmd != CMD_GET && app->o.cmd != CMD_ANNOUNCE)
        return 0;
    dht_get_stats(app->dht, &st);
    if (!boots && !app->o.lan && st.nodes_questionable + st.nodes_good == 0) {
        fprintf(stderr, "apt-dht-node: no bootstrap node (use --bootstrap, --state or "
                "--lan-discovery)\n");
        return -1;
    }
    return 0;
}

static void close_sockets(struct app *app)
{
    int fds[4] = {app->fd4, app->fd6, app->lan4, app->lan6};
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int main(int argc, char **argv)
{
    struct app app = {.fd4 = -1, .fd6 = -1, .lan4 = -1, .lan6 = -1, .status = 1};
    sigset_t orig;
    if (info_flag(argc, argv))
        return 0;
    int rc = parse_args(argc, argv, &app.o);
    if (rc)
        return rc;
    if (app.o.cmd == CMD_DUMP)
        return run_dump(&app);
    setup_signals(&orig);
    rc = open_sockets(&app);
    if (rc < 0) {
        fprintf(stderr, "apt-dht-node: cannot bind: %s\n", strerror(-rc));
        return 1;
    }
    rc = 1;
    if (make_node(&app, 1) < 0)
        goto out;
    if (app.o.lan)
        open_lan(&app);
    if (check_joinable(&app, add_bootstraps(&app)) < 0)
        goto out;
    if (app.o.cmd == CMD_RUN)
        fprintf(stderr, "apt-dht-node: %s node listening on port %u\n",
                app.o.mode == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht", app.port);
    rc = loop(&app, &orig);
    if (app.o.state && app.o.cmd != CMD_PING) {
        int r = dht_save(app.dht, app.o.state);
        if (r < 0)
            fprintf(stderr, "apt-dht-node: cannot save %s: %s\n", app.o.state, strerror(-r));
    }
out:
    dht_free(app.dht);
    close_sockets(&app);
    return rc;
}

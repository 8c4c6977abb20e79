/* p2p.c - the DHT node inside the daemon.
 *
 * dht/ does no I/O: this file owns its UDP sockets (IPv4, and IPv6 where the host has
 * it), reads datagrams into dht_input, sends what the library asks through sendto, and
 * keeps one loop timer at the library's next deadline. LAN discovery is a multicast
 * socket per family joined on every multicast-capable interface (a lab network may have
 * no default route, so the group is joined and sent to per interface, never through the
 * routing table). The routing table is saved in the state dir every 10 minutes and at exit.
 *
 * Joining goes through the library's bootstrap providers: the static list of the config
 * (names resolved once, at start), the nodes of the table saved at the last shutdown, and
 * LAN discovery (an announcement that the other nodes answer). The node asks all of them
 * whenever it is alone, with back-off.
 *
 * The peers a lookup finds go through the peer table of p2p-peers.c (not ourselves, not
 * banned or backed off, near and fast first) before the caller sees them. This is the
 * only file of the daemon that includes dht/dht.h. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p-int.h"
#include "dht/dht.h"

#define SAVE_EVERY_MS (10u * 60 * 1000)
#define IFS_EVERY_MS 60000u

struct lookup_ctx {
    struct p2p *p;
    int handle;
    p2p_peers_fn cb;
    void *ud;
    bool all;          /* p2p_find_all: no filter, not counted */
    uint64_t start_ms;
    struct lookup_ctx *prev, *next;
};

const double p2p_lookup_bounds_s[P2P_LOOKUP_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                        0.25,  0.5,  1,     2.5,  5};

static struct p2p_conf conf_of(const struct config *cfg)
{
    return (struct p2p_conf){cfg->dht_mode, cfg->dht_port, cfg->dht_lan_discovery,
                             cfg->dht_resolve_only, cfg->dht_ttl_s, cfg->n_dht_bootstrap};
}

static void lan_announce(struct p2p *p);
static bool is_lan_fd(const struct p2p *p, int fd);
static void lan_input(struct p2p *p, const uint8_t *buf, size_t n,
                      const struct sockaddr_storage *from, socklen_t fl);

/* ---- the node's I/O ---- */

static void kick(struct p2p *p);

static void on_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    struct p2p *p = ud;
    kick(p);
}

/* Runs the library's periodic work and sleeps until its next deadline. */
static void kick(struct p2p *p)
{
    uint64_t now = loop_now_ms(), next = now + 1000;
    dht_periodic(p->dht, now, &next);
    loop_timer_start(p->loop, &p->timer, next > now ? next - now : 0);
}

static int send_cb(void *ud, const void *buf, size_t len, const struct sockaddr *to, socklen_t tolen)
{
    struct p2p *p = ud;
    int fd = to->sa_family == AF_INET6 ? p->fd6 : p->fd4;
    if (fd < 0)
        return -EAFNOSUPPORT;
    ssize_t w = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, to, tolen);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return -errno;
    return 0;
}

static void on_state(void *ud, enum dht_state old, enum dht_state st)
{
    static const char *const names[] = {"alone", "active", "no network", "faulted"};
    log_info("dht: %s -> %s", names[old & 3], names[st & 3]);
}

/* Every node heard on one of this host's subnets joins the roster the owner of a key is
 * ranked among (roster.h). */
static void on_node(void *ud, const uint8_t id[DHT_ID_LEN], const struct sockaddr *sa,
                    socklen_t salen, int replied)
{
    struct p2p *p = ud;
    if (p2p_peers_near(p, sa))
        roster_heard(&p->roster, id, sa, salen, loop_now_ms());
}

static void on_udp(struct loop *l, int fd, uint32_t events, void *ud)
{
    struct p2p *p = ud;
    uint8_t buf[DHT_MAX_PACKET + 1];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0)
            break;
        p2p_peer_heard(p, (struct sockaddr *)&from);
        if (is_lan_fd(p, fd))
            lan_input(p, buf, (size_t)n, &from, fl);
        else
            dht_input(p->dht, buf, (size_t)n, (struct sockaddr *)&from, fl, loop_now_ms());
    }
    kick(p);
}

static int open_udp(int family, const char *addr, uint16_t port, bool reuse)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        if (addr && inet_pton(AF_INET, addr, &v4->sin_addr) != 1)
            return -EINVAL;
        len = sizeof *v4;
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        if (addr && inet_pton(AF_INET6, addr, &v6->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof *v6;
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (reuse) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ---- LAN discovery ---- */

/* IPv4 and IPv6 alike: one socket per family bound to DHT_LAN_PORT, the group joined
 * on every multicast-capable interface, announcements sent on each of them in turn
 * (hop limit 1: they never leave the link), and what arrives handed to dht_lan_input,
 * which pings the sender from the node's socket of the same family. The IPv6 group is
 * BEP 14's site-scoped ff15::efc0:988f (hop limit 1 keeps it on the link) rather than
 * a link-scoped ff02:: group: to a link-scoped group, a sender that does not choose its
 * source (apt-dht-node does not) goes out from its fe80:: address (RFC 6724, rule 2),
 * and a link-local address, meaningless without its zone, can be neither a DHT contact
 * others are told of nor a peer URL. The daemon names its source anyway (IPV6_PKTINFO:
 * the interface's first address that is not link-local) and ignores link-local
 * announcers. */

static bool is_lan_fd(const struct p2p *p, int fd)
{
    return fd >= 0 && (fd == p->lan4 || fd == p->lan6);
}

static void join_group4(struct p2p *p, unsigned ifindex)
{
    struct ip_mreqn m;
    memset(&m, 0, sizeof m);
    inet_pton(AF_INET, DHT_LAN_GROUP4, &m.imr_multiaddr);
    m.imr_ifindex = (int)ifindex;
    if (setsockopt(p->lan4, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0 &&
        errno != EADDRINUSE)
        log_debug("lan: cannot join %s on interface %u: %s", DHT_LAN_GROUP4, ifindex,
                  strerror(errno));
}

static void join_group6(struct p2p *p, unsigned ifindex)
{
    struct ipv6_mreq m;
    memset(&m, 0, sizeof m);
    inet_pton(AF_INET6, DHT_LAN_GROUP6, &m.ipv6mr_multiaddr);
    m.ipv6mr_interface = ifindex;
    if (setsockopt(p->lan6, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m) < 0 &&
        errno != EADDRINUSE)
        log_debug("lan: cannot join %s on interface %u: %s", DHT_LAN_GROUP6, ifindex,
                  strerror(errno));
}

/* Joins the groups on every multicast interface with an address of the family (an
 * interface listed once per address: a second join says EADDRINUSE, harmlessly). */
static void join_groups(struct p2p *p)
{
    for (size_t i = 0; i < p->n_ifs; i++) {
        if (!p->ifs[i].multicast)
            continue;
        if (p->ifs[i].family == AF_INET && p->lan4 >= 0)
            join_group4(p, p->ifs[i].ifindex);
        else if (p->ifs[i].family == AF_INET6 && p->lan6 >= 0)
            join_group6(p, p->ifs[i].ifindex);
    }
}

static void lan_announce4(struct p2p *p)
{
    char buf[512];
    int n = dht_lan_build(p->dht, DHT_FAMILY_V4, buf, sizeof buf);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(DHT_LAN_PORT)};
    if (n <= 0)
        return;
    inet_pton(AF_INET, DHT_LAN_GROUP4, &to.sin_addr);
    for (size_t i = 0; i < p->n_ifs; i++) {
        if (p->ifs[i].family != AF_INET || !p->ifs[i].multicast)
            continue;
        struct ip_mreqn m = {.imr_ifindex = (int)p->ifs[i].ifindex};
        if (setsockopt(p->lan4, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m) == 0)
            sendto(p->lan4, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
    }
}

/* Whether ifs[i] is the first usable IPv6 address of its interface: one that is not
 * link-local (the source of the announcement, see above). */
static bool first_v6_source(const struct p2p *p, size_t i)
{
    const struct local_if *l = &p->ifs[i];
    if (l->family != AF_INET6 || !l->multicast || IN6_IS_ADDR_LINKLOCAL(l->addr))
        return false;
    for (size_t j = 0; j < i; j++)
        if (p->ifs[j].family == AF_INET6 && p->ifs[j].ifindex == l->ifindex &&
            !IN6_IS_ADDR_LINKLOCAL(p->ifs[j].addr))
            return false;
    return true;
}

/* Sends buf to the IPv6 group out of interface ifindex from source address src. */
static void send_from6(struct p2p *p, const char *buf, size_t n, unsigned ifindex,
                       const uint8_t src[16])
{
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(DHT_LAN_PORT)};
    union {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                         .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof ctl.buf};
    inet_pton(AF_INET6, DHT_LAN_GROUP6, &to.sin6_addr);
    memset(&ctl, 0, sizeof ctl);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
    struct in6_pktinfo *pi = (struct in6_pktinfo *)(void *)CMSG_DATA(c);
    memcpy(&pi->ipi6_addr, src, 16);
    pi->ipi6_ifindex = ifindex;
    if (sendmsg(p->lan6, &msg, MSG_DONTWAIT) < 0)
        log_debug("lan: cannot announce on interface %u: %s", ifindex, strerror(errno));
}

static void lan_announce6(struct p2p *p)
{
    char buf[512];
    int n = dht_lan_build(p->dht, DHT_FAMILY_V6, buf, sizeof buf);
    if (n <= 0)
        return;
    for (size_t i = 0; i < p->n_ifs; i++)
        if (first_v6_source(p, i))
            send_from6(p, buf, (size_t)n, p->ifs[i].ifindex, p->ifs[i].addr);
}

static void lan_announce(struct p2p *p)
{
    if (p->lan4 >= 0)
        lan_announce4(p);
    if (p->lan6 >= 0)
        lan_announce6(p);
}

/* A datagram on a LAN discovery socket. Another node announced itself: answer with our
 * own announcement (at most every 10 s), so a node that just started - or a
 * resolve-only one, which answers no query - learns of us now rather than at our next
 * round. Announcements from link-local sources are ignored (see above). */
static void lan_input(struct p2p *p, const uint8_t *buf, size_t n,
                      const struct sockaddr_storage *from, socklen_t fl)
{
    uint64_t now = loop_now_ms();
    if (from->ss_family == AF_INET6 &&
        IN6_IS_ADDR_LINKLOCAL(&((const struct sockaddr_in6 *)(const void *)from)->sin6_addr))
        return;
    if (dht_lan_input(p->dht, buf, n, (const struct sockaddr *)from, fl) > 0 &&
        now >= p->lan_last_ms + 10000) {
        p->lan_last_ms = now;
        lan_announce(p);
    }
}

/* Announces on the LAN at start-up, then at growing intervals up to the library's. */
static void on_lan_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    struct p2p *p = ud;
    lan_announce(p);
    p->lan_interval_ms = p->lan_interval_ms ? p->lan_interval_ms * 2 : 2000;
    if (p->lan_interval_ms > DHT_LAN_INTERVAL_MS)
        p->lan_interval_ms = DHT_LAN_INTERVAL_MS;
    loop_timer_start(p->loop, &p->lan_timer, p->lan_interval_ms);
}

static void on_ifs_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    struct p2p *p = ud;
    p2p_ifs_refresh(p);
    join_groups(p); /* interfaces come and go */
    loop_timer_start(p->loop, &p->ifs_timer, IFS_EVERY_MS);
}

/* One family's socket: bound to the port, its own datagrams looped back (another
 * node of this host hears them; ours are recognised by their cookie), hop limit 1. */
static int open_lan_fd(struct p2p *p, int family)
{
    int one = 1, fd = open_udp(family, NULL, DHT_LAN_PORT, true);
    if (fd < 0)
        return fd;
    if (family == AF_INET) {
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one);
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &one, sizeof one);
    } else {
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one);
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &one, sizeof one);
    }
    int r = loop_add_fd(p->loop, fd, EPOLLIN, on_udp, p);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* LAN discovery in each family the node has a socket for; either one is enough. */
static int open_lan(struct p2p *p)
{
    int r4 = p->fd4 >= 0 ? open_lan_fd(p, AF_INET) : -EAFNOSUPPORT;
    int r6 = p->fd6 >= 0 ? open_lan_fd(p, AF_INET6) : -EAFNOSUPPORT;
    p->lan4 = r4 >= 0 ? r4 : -1;
    p->lan6 = r6 >= 0 ? r6 : -1;
    if (r4 < 0 && r6 < 0)
        return r4 != -EAFNOSUPPORT ? r4 : r6;
    if (r6 < 0 && p->fd6 >= 0)
        log_info("lan: no IPv6 discovery: %s", strerror(-r6));
    join_groups(p);
    return 0;
}

/* ---- bootstrap providers (dht.h): asked by the node while it is alone ---- */

static void provide_static(struct dht *dht, void *ctx)
{
    struct p2p *p = ctx;
    for (int i = 0; i < p->nboot; i++)
        dht_add_bootstrap(dht, (struct sockaddr *)&p->boot[i], p->bootlen[i]);
}

static void provide_saved(struct dht *dht, void *ctx)
{
    struct p2p *p = ctx;
    for (int i = 0; i < p->nsaved; i++)
        dht_add_bootstrap(dht, (struct sockaddr *)&p->saved[i], p->savedlen[i]);
}

/* Announces on the LAN; the other nodes answer with theirs (on_udp), and their
 * announcements reach dht_lan_input, which adds them as bootstrap addresses. */
static void provide_lan(struct dht *dht, void *ctx)
{
    lan_announce(ctx);
}

/* Remembers the nodes of the saved table, to offer them again after an outage. */
static void snapshot_saved(struct p2p *p)
{
    struct dht_node_info info[8]; /* a few: they share the node's 32 bootstrap slots */
    int n = dht_get_nodes(p->dht, info, 8);
    for (int i = 0; i < n && p->nsaved < 32; i++) {
        p->saved[p->nsaved] = info[i].addr;
        p->savedlen[p->nsaved++] = info[i].addr.ss_family == AF_INET6
                                       ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in);
    }
}

/* ---- start, stop ---- */

static void on_save_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    struct p2p *p = ud;
    int r = dht_save(p->dht, p->state_path);
    if (r < 0)
        log_warn("dht: cannot save %s: %s", p->state_path, strerror(-r));
    loop_timer_start(p->loop, &p->save_timer, SAVE_EVERY_MS);
}

static void add_bootstrap(struct p2p *p, const char *hostport)
{
    char host[300];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return;
    if (hostport[0] == '[')
        snprintf(host, sizeof host, "%.*s", (int)(colon - hostport - 2), hostport + 1);
    else
        snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res, *a;
    int r = getaddrinfo(host, colon + 1, &hints, &res);
    if (r != 0) {
        log_warn("dht: bootstrap %s: %s", hostport, gai_strerror(r));
        return;
    }
    for (a = res; a && p->nboot < 32; a = a->ai_next) {
        if ((a->ai_family == AF_INET && p->fd4 >= 0) || (a->ai_family == AF_INET6 && p->fd6 >= 0)) {
            memcpy(&p->boot[p->nboot], a->ai_addr, a->ai_addrlen);
            p->bootlen[p->nboot++] = a->ai_addrlen;
        }
    }
    freeaddrinfo(res);
}

static int open_sockets(struct p2p *p, const struct config *cfg)
{
    const char *a = cfg->listen_address;
    struct in6_addr probe;
    bool v6_only = a && inet_pton(AF_INET6, a, &probe) == 1 && !IN6_IS_ADDR_UNSPECIFIED(&probe);
    bool v6_any = a && inet_pton(AF_INET6, a, &probe) == 1 && IN6_IS_ADDR_UNSPECIFIED(&probe);
    p->fd4 = v6_only ? -EAFNOSUPPORT : open_udp(AF_INET, v6_any ? NULL : a, p->udp_port, false);
    p->fd6 = (v6_only || v6_any || !a) ? open_udp(AF_INET6, v6_only ? a : NULL, p->udp_port, false)
                                       : -EAFNOSUPPORT;
    if (p->fd4 < 0 && p->fd6 < 0) {
        log_error("dht: cannot bind UDP port %u: %s", p->udp_port, strerror(-p->fd4));
        return p->fd4;
    }
    if (p->fd4 >= 0 && loop_add_fd(p->loop, p->fd4, EPOLLIN, on_udp, p) < 0)
        return -EIO;
    if (p->fd6 >= 0 && loop_add_fd(p->loop, p->fd6, EPOLLIN, on_udp, p) < 0)
        return -EIO;
    return 0;
}

/* The three ways into the DHT: the static list, the saved table's nodes, the LAN. */
static void add_providers(struct p2p *p, const struct config *cfg)
{
    snapshot_saved(p);
    for (size_t i = 0; i < cfg->n_dht_bootstrap; i++)
        add_bootstrap(p, cfg->dht_bootstrap[i]);
    struct dht_bootstrap_provider prov_static = {"static", provide_static, p},
                                  prov_saved = {"saved", provide_saved, p},
                                  prov_lan = {"lan", provide_lan, p};
    if (p->nboot)
        dht_add_provider(p->dht, &prov_static);
    if (p->nsaved)
        dht_add_provider(p->dht, &prov_saved);
    if (!cfg->dht_lan_discovery)
        return;
    int r = open_lan(p);
    if (r < 0) {
        log_warn("dht: LAN discovery unavailable: %s", strerror(-r));
        return;
    }
    dht_add_provider(p->dht, &prov_lan);
    /* and announce on a schedule of its own, so later nodes hear of this one */
    p->lan_interval_ms = 2000;
    loop_timer_start(p->loop, &p->lan_timer, p->lan_interval_ms);
}

int p2p_new(struct p2p **out, const struct config *cfg, struct loop *l, uint16_t http_port)
{
    struct p2p *p = calloc(1, sizeof *p);
    struct dht_config dc;
    int r = -ENOMEM;
    if (!p)
        return r;
    p->loop = l;
    p->conf = conf_of(cfg);
    loop_timer_init(&p->timer, on_timer, p);
    loop_timer_init(&p->lan_timer, on_lan_timer, p);
    loop_timer_init(&p->save_timer, on_save_timer, p);
    loop_timer_init(&p->ifs_timer, on_ifs_timer, p);
    p->fd4 = p->fd6 = p->lan4 = p->lan6 = -1;
    p->http_port = http_port;
    p->udp_port = cfg->dht_port ? cfg->dht_port : http_port;
    p->resolve_only = cfg->dht_resolve_only;
    snprintf(p->state_path, sizeof p->state_path, "%s/dht-%s.state", cfg->state_dir,
             cfg->dht_mode == DHT_MODE_BEP5 ? "bep5" : "apt-dht");
    if (strmap_new(&p->peers) < 0)
        goto fail;
    p2p_ifs_refresh(p);
    if ((r = open_sockets(p, cfg)) < 0)
        goto fail;
    dht_config_init(&dc);
    dc.dialect = cfg->dht_mode == DHT_MODE_BEP5 ? DHT_DIALECT_BEP5 : DHT_DIALECT_APT;
    dc.port = p->udp_port;
    dc.families = (p->fd4 >= 0 ? DHT_FAMILY_V4 : 0) | (p->fd6 >= 0 ? DHT_FAMILY_V6 : 0);
    dc.resolve_only = cfg->dht_resolve_only;
    dc.value_ttl_s = cfg->dht_ttl_s;
    dc.send = send_cb;
    dc.on_state = on_state;
    dc.on_node = on_node;
    dc.ud = p;
    if ((r = dht_new(&dc, loop_now_ms(), &p->dht)) < 0)
        goto fail;
    r = dht_load(p->dht, p->state_path);
    if (r < 0 && r != -ENOENT)
        log_warn("dht: ignoring %s: %s", p->state_path, strerror(-r));
    add_providers(p, cfg);
    loop_timer_start(l, &p->save_timer, SAVE_EVERY_MS);
    loop_timer_start(l, &p->ifs_timer, IFS_EVERY_MS);
    kick(p);
    log_info("dht: %s node on UDP port %u%s%s", cfg->dht_mode == DHT_MODE_BEP5 ? "bep5" : "apt-dht",
             p->udp_port, cfg->dht_lan_discovery ? ", LAN discovery" : "",
             p->resolve_only ? ", resolve-only" : "");
    *out = p;
    return 0;
fail:
    p2p_free(p);
    return r;
}

void p2p_free(struct p2p *p)
{
    if (!p)
        return;
    while (p->lookups) {
        struct lookup_ctx *x = p->lookups;
        p->lookups = x->next;
        if (p->dht)
            dht_cancel(p->dht, x->handle);
        x->cb(x->ud, NULL, 0, true);
        free(x);
    }
    if (p->dht) {
        int r = dht_save(p->dht, p->state_path);
        if (r < 0)
            log_warn("dht: cannot save %s: %s", p->state_path, strerror(-r));
        dht_free(p->dht);
    }
    loop_timer_stop(p->loop, &p->timer);
    loop_timer_stop(p->loop, &p->lan_timer);
    loop_timer_stop(p->loop, &p->save_timer);
    loop_timer_stop(p->loop, &p->ifs_timer);
    int fds[] = {p->fd4, p->fd6, p->lan4, p->lan6};
    for (size_t i = 0; i < 4; i++) {
        if (fds[i] >= 0) {
            loop_del_fd(p->loop, fds[i]);
            close(fds[i]);
        }
    }
    strmap_free(p->peers, free);
    free(p);
}

/* ---- lookups and announcements ---- */

static void lookup_unlink(struct p2p *p, struct lookup_ctx *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        p->lookups = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void count_lookup(struct p2p *p, uint64_t ms)
{
    size_t b = 0;
    while (b < P2P_LOOKUP_BUCKETS && (double)ms > p2p_lookup_bounds_s[b] * 1000)
        b++;
    p->st.lookup_buckets[b]++;
    p->st.lookups_done++;
    p->st.lookup_ms_sum += ms;
}

/* Copies into out (at most max) the holders whose address is not one the node holds for
 * dead: a holder's HTTP port is its DHT port, so a holder whose DHT node stopped
 * answering (dht_addr_failed) is a host gone, and asking it would cost the download a
 * connection timeout. It is asked again once anything is heard from it. */
static size_t drop_dead_holders(struct p2p *p, const struct sockaddr_storage *in, size_t n,
                                struct sockaddr_storage *out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        socklen_t len = in[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                    : sizeof(struct sockaddr_in);
        if (dht_addr_failed(p->dht, (const struct sockaddr *)&in[i], len) == 1)
            log_debug("dht: skipping a holder whose node does not answer");
        else
            out[k++] = in[i];
    }
    return k;
}

static void on_lookup(void *ud, const struct dht_lookup_result *res)
{
    struct lookup_ctx *x = ud;
    struct p2p *p = x->p;
    uint64_t now = loop_now_ms();
    struct sockaddr_storage peers[P2P_ORDER_MAX], alive[2 * P2P_ORDER_MAX];
    const struct sockaddr_storage *in = res->peers;
    size_t n_in = res->n;
    if (!x->all) {
        n_in = drop_dead_holders(p, res->peers, res->n, alive, 2 * P2P_ORDER_MAX);
        in = alive;
    }
    size_t n = p2p_peers_order(p, in, n_in, x->all, peers, P2P_ORDER_MAX);
    bool done = res->done != 0;
    if (n && !x->all)
        p->st.lookups_with_peers++;
    if (done && !x->all)
        count_lookup(p, now - x->start_ms);
    if (done || n)
        log_debug("dht: lookup %02x%02x%02x%02x: %zu peer(s) of %zu%s after %llu ms (%u "
                  "queries, %u rounds)", res->key[0], res->key[1], res->key[2], res->key[3],
                  n, res->n, done ? ", done" : "", (unsigned long long)(now - x->start_ms),
                  res->queries, res->rounds);
    if (done)
        lookup_unlink(p, x);
    x->cb(x->ud, peers, n, done);
    if (done)
        free(x);
}

static int find(struct p2p *p, const uint8_t sha256[32], p2p_peers_fn cb, void *ud, bool all)
{
    struct lookup_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->p = p;
    x->cb = cb;
    x->ud = ud;
    x->all = all;
    x->start_ms = loop_now_ms();
    x->next = p->lookups;
    if (p->lookups)
        p->lookups->prev = x;
    p->lookups = x;
    int h = dht_lookup(p->dht, sha256, on_lookup, x); /* key = first 160 bits */
    if (h <= 0) {
        lookup_unlink(p, x);
        free(x);
        return h < 0 ? h : -EIO;
    }
    x->handle = h;
    if (!all)
        p->st.lookups++;
    /* The node's work runs from the loop, not from here: a lookup that ends at once (a
     * node alone has nobody to ask) must not call back before p2p_find returns. */
    loop_timer_start(p->loop, &p->timer, 0);
    return h;
}

int p2p_find(struct p2p *p, const uint8_t sha256[32], p2p_peers_fn cb, void *ud)
{
    return find(p, sha256, cb, ud, false);
}

int p2p_find_all(struct p2p *p, const uint8_t sha256[32], p2p_peers_fn cb, void *ud)
{
    return find(p, sha256, cb, ud, true);
}

void p2p_cancel(struct p2p *p, int handle)
{
    for (struct lookup_ctx *x = p->lookups; x; x = x->next) {
        if (x->handle == handle) {
            dht_cancel(p->dht, handle);
            lookup_unlink(p, x);
            free(x);
            return;
        }
    }
}

void p2p_announce(struct p2p *p, const uint8_t sha256[32])
{
    if (p->resolve_only)
        return;
    log_debug("dht: announcing %02x%02x%02x%02x on port %u", sha256[0], sha256[1], sha256[2],
              sha256[3], p->http_port);
    if (dht_announce(p->dht, sha256, p->http_port, NULL, NULL) == 0) {
        p->st.announced++;
        kick(p);
    }
}

void p2p_unannounce(struct p2p *p, const uint8_t sha256[32])
{
    if (!p->resolve_only && dht_unannounce(p->dht, sha256) == 0 && p->st.announced)
        p->st.announced--;
}

void p2p_reconfigure(struct p2p *p, const struct config *cfg)
{
    struct p2p_conf c = conf_of(cfg);
    if (c.mode != p->conf.mode || c.port != p->conf.port ||
        c.lan_discovery != p->conf.lan_discovery || c.resolve_only != p->conf.resolve_only ||
        c.ttl_s != p->conf.ttl_s || c.n_bootstrap != p->conf.n_bootstrap)
        log_warn("reload: dht settings changed; they take effect at the next restart");
}

void p2p_get_stats(const struct p2p *p, struct p2p_stats *st)
{
    struct dht_stats ds;
    *st = p->st;
    dht_get_stats(p->dht, &ds);
    p2p_peers_count(p, &st->banned, &st->backed_off);
    st->dht_state = (int)dht_state(p->dht);
    st->nodes = ds.nodes_good + ds.nodes_questionable;
    st->nodes_good = ds.nodes_good;
    st->buckets = ds.buckets;
    st->keys_stored = ds.keys_stored;
    st->values_stored = ds.values_stored;
    memcpy(st->id, dht_id(p->dht), sizeof st->id);
}

size_t p2p_nodes(const struct p2p *p, struct p2p_node *out, size_t max)
{
    struct dht_node_info info[64];
    int n = dht_get_nodes(p->dht, info, max < 64 ? max : 64);
    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].addr = info[i].addr;
        memcpy(out[i].id, info[i].id, sizeof out[i].id);
        out[i].good = info[i].good == 1;
        out[i].last_reply_ms = info[i].last_reply_ms;
    }
    return n > 0 ? (size_t)n : 0;
}

size_t p2p_lan_nodes(struct p2p *p, struct p2p_node *out, size_t max, uint8_t self_id[20])
{
    static struct roster_entry live[ROSTER_MAX];
    uint64_t now = loop_now_ms();
    size_t n = roster_live(&p->roster, now, live, ROSTER_MAX), k = 0;
    memcpy(self_id, dht_id(p->dht), 20);
    for (size_t i = 0; i < n && k < max; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&live[i].addr;
        socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        if (memcmp(live[i].id, self_id, 20) == 0 || dht_addr_failed(p->dht, sa, len) == 1)
            continue;
        memset(&out[k], 0, sizeof out[k]);
        out[k].addr = live[i].addr;
        memcpy(out[k].id, live[i].id, 20);
        out[k].good = true;
        out[k].last_reply_ms = live[i].heard_ms;
        k++;
    }
    return k;
}

const char *p2p_dialect(const struct p2p *p)
{
    return p->conf.mode == DHT_MODE_BEP5 ? "bep5" : "apt-dht";
}

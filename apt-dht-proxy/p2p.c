/* p2p.c - the DHT node inside the daemon.
 *
 * dht/ does no I/O: this file owns its UDP sockets (IPv4, and IPv6 where the host has
 * it), reads datagrams into dht_input, sends what the library asks through sendto, and
 * keeps one loop timer at the library's next deadline. LAN discovery is a multicast
 * socket joined on every multicast-capable interface (a lab network may have no default
 * route, so the group is joined and sent to per interface, never through the routing
 * table). The routing table is saved in the state dir every 10 minutes and at exit.
 *
 * Joining goes through the library's bootstrap providers: the static list of the config
 * (names resolved once, at start), the nodes of the table saved at the last shutdown, and
 * LAN discovery (an announcement that the other nodes answer). The node asks all of them
 * whenever it is alone, with back-off.
 *
 * Peers learnt from lookups are filtered and ordered here: never ourselves, never one
 * that served bad data (banned for an hour), not one that just failed (backed off,
 * doubling from 30 s to 10 min), same subnet first, then the fastest seen. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"
#include "dht/dht.h"

#define MAX_IFS 32
#define BAN_MS (60u * 60 * 1000)
#define BACKOFF_MIN_MS 30000u
#define BACKOFF_MAX_MS (10u * 60 * 1000)
#define SAVE_EVERY_MS (10u * 60 * 1000)
#define IFS_EVERY_MS 60000u
#define MAX_PEER_INFO 4096

struct local_if {
    sa_family_t family;
    uint8_t addr[16], mask[16];
    unsigned ifindex;
    bool multicast;
};

struct peer_info {
    uint64_t banned_until_ms, backoff_until_ms; /* 0 = not */
    unsigned failures;                          /* in a row */
    double bytes_per_ms;                        /* moving average; 0 = not measured */
    char label[64];                             /* "ADDR:PORT" */
    /* for the status page */
    uint64_t last_ms;                           /* last result; 0 = never */
    uint64_t files_ok, bytes_ok, n_failed, n_bad;
    const char *why;                            /* the last problem, a static string */
};

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

/* The settings a node is built with; none of them can change under a running node. */
struct p2p_conf {
    int mode;
    uint16_t port;
    bool lan_discovery, resolve_only;
    uint32_t ttl_s;
    size_t n_bootstrap;
};

static struct p2p_conf conf_of(const struct config *cfg)
{
    return (struct p2p_conf){cfg->dht_mode, cfg->dht_port, cfg->dht_lan_discovery,
                             cfg->dht_resolve_only, cfg->dht_ttl_s, cfg->n_dht_bootstrap};
}

struct p2p {
    struct loop *loop;
    struct dht *dht;
    int fd4, fd6, lan4;
    uint16_t http_port, udp_port;
    bool resolve_only;
    struct p2p_conf conf; /* the dht.* settings it started with (p2p_reconfigure) */
    struct loop_timer timer, lan_timer, save_timer, ifs_timer;
    uint64_t lan_interval_ms;
    uint64_t lan_last_ms; /* when we last answered another node's announcement */
    char state_path[PATH_MAX];
    struct local_if ifs[MAX_IFS];
    size_t n_ifs;
    struct strmap *peers; /* label -> struct peer_info */
    /* bootstrap providers' sources: the static list (resolved once, at start) and the
     * nodes of the table saved at the last shutdown */
    struct sockaddr_storage boot[32], saved[32];
    socklen_t bootlen[32], savedlen[32];
    int nboot, nsaved;
    struct lookup_ctx *lookups;
    struct p2p_stats st;
};

/* ---- addresses ---- */

static int sa_label(const struct sockaddr *sa, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        return snprintf(out, n, "%s:%u", host, ntohs(v4->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        return snprintf(out, n, "[%s]:%u", host, ntohs(v6->sin6_port));
    }
    return snprintf(out, n, "?");
}

int p2p_peer_url(const struct sockaddr *peer, const uint8_t sha256[32], char *out, size_t n)
{
    char label[80], hex[65];
    sa_label(peer, label, sizeof label);
    hex_encode(sha256, 32, hex);
    int w = snprintf(out, n, "http://%s/~/sha256/%s", label, hex);
    return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static const uint8_t *sa_bytes(const struct sockaddr *sa, size_t *len)
{
    if (sa->sa_family == AF_INET) {
        *len = 4;
        return (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    }
    *len = 16;
    return (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
}

static uint16_t sa_port(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET
               ? ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port)
               : ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

static void refresh_ifs(struct p2p *p)
{
    struct ifaddrs *all, *i;
    p->n_ifs = 0;
    if (getifaddrs(&all) < 0)
        return;
    for (i = all; i && p->n_ifs < MAX_IFS; i = i->ifa_next) {
        if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct local_if *l = &p->ifs[p->n_ifs++];
        size_t len = 0;
        memset(l, 0, sizeof *l);
        l->family = i->ifa_addr->sa_family;
        memcpy(l->addr, sa_bytes(i->ifa_addr, &len), len);
        if (i->ifa_netmask)
            memcpy(l->mask, sa_bytes(i->ifa_netmask, &len), len);
        l->ifindex = if_nametoindex(i->ifa_name);
        l->multicast = (i->ifa_flags & IFF_MULTICAST) && !(i->ifa_flags & IFF_LOOPBACK);
    }
    freeifaddrs(all);
}

static bool is_self(const struct p2p *p, const struct sockaddr *sa)
{
    size_t len;
    const uint8_t *a = sa_bytes(sa, &len);
    if (sa_port(sa) != p->http_port)
        return false;
    for (size_t i = 0; i < p->n_ifs; i++)
        if (p->ifs[i].family == sa->sa_family && memcmp(p->ifs[i].addr, a, len) == 0)
            return true;
    return false;
}

static bool same_subnet(const struct p2p *p, const struct sockaddr *sa)
{
    size_t len;
    const uint8_t *a = sa_bytes(sa, &len);
    for (size_t i = 0; i < p->n_ifs; i++) {
        const struct local_if *l = &p->ifs[i];
        if (l->family != sa->sa_family)
            continue;
        size_t k = 0;
        while (k < len && (a[k] & l->mask[k]) == (l->addr[k] & l->mask[k]))
            k++;
        if (k == len)
            return true;
    }
    return false;
}

/* ---- peer health ---- */

struct prune_ctx {
    uint64_t now;
    const char *labels[MAX_PEER_INFO];
    size_t n;
};

static void prune_one(const char *key, void *value, void *ud)
{
    struct prune_ctx *x = ud;
    const struct peer_info *pi = value;
    if (pi->banned_until_ms <= x->now && pi->backoff_until_ms <= x->now && x->n < MAX_PEER_INFO)
        x->labels[x->n++] = key;
}

/* The map is bounded: when full, peers with no ban or back-off running are forgotten
 * (their speed is all that is lost), so bans keep working however many peers come. */
static void peers_prune(struct p2p *p)
{
    struct prune_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return;
    x->now = loop_now_ms();
    strmap_each(p->peers, prune_one, x);
    for (size_t i = 0; i < x->n; i++)
        free(strmap_del(p->peers, x->labels[i]));
    free(x);
}

static struct peer_info *peer_get(struct p2p *p, const struct sockaddr *sa, bool create)
{
    char label[64];
    sa_label(sa, label, sizeof label);
    struct peer_info *pi = strmap_get(p->peers, label);
    if (pi || !create)
        return pi;
    if (strmap_count(p->peers) >= MAX_PEER_INFO)
        peers_prune(p);
    if (strmap_count(p->peers) >= MAX_PEER_INFO)
        return NULL; /* thousands of peers banned at once: the newest goes unrecorded */
    pi = calloc(1, sizeof *pi);
    if (!pi)
        return NULL;
    snprintf(pi->label, sizeof pi->label, "%s", label);
    if (strmap_put(p->peers, pi->label, pi, NULL) < 0) {
        free(pi);
        return NULL;
    }
    return pi;
}

void p2p_peer_result(struct p2p *p, const struct sockaddr *peer, enum peer_result r,
                     uint64_t bytes, uint64_t ms)
{
    struct peer_info *pi = peer_get(p, peer, true);
    uint64_t now = loop_now_ms();
    if (!pi)
        return;
    pi->last_ms = now;
    switch (r) {
    case PEER_OK:
        p->st.peer_ok++;
        pi->files_ok++;
        pi->bytes_ok += bytes;
        pi->failures = 0;
        pi->backoff_until_ms = 0;
        if (ms > 0 && bytes > 0) {
            double speed = (double)bytes / (double)ms;
            pi->bytes_per_ms = pi->bytes_per_ms > 0 ? 0.7 * pi->bytes_per_ms + 0.3 * speed : speed;
        }
        break;
    case PEER_BAD_DATA:
        p->st.peer_bad++;
        pi->n_bad++;
        pi->why = "served data that failed verification";
        pi->banned_until_ms = now + BAN_MS;
        log_warn("peer %s served data that failed verification: banned for %u minutes", pi->label,
                 BAN_MS / 60000);
        break;
    case PEER_FAILED:
    default: {
        p->st.peer_failed++;
        pi->n_failed++;
        pi->why = "refused, unreachable, an HTTP error or too slow";
        uint64_t b = BACKOFF_MIN_MS << (pi->failures < 5 ? pi->failures : 5);
        pi->failures++;
        pi->backoff_until_ms = now + (b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS);
        log_info("peer %s failed; not asked again for %llu s", pi->label,
                 (unsigned long long)((b < BACKOFF_MAX_MS ? b : BACKOFF_MAX_MS) / 1000));
        break;
    }
    }
}

static bool peer_usable(struct p2p *p, const struct sockaddr *sa, uint64_t now)
{
    struct peer_info *pi = peer_get(p, sa, false);
    return !pi || (pi->banned_until_ms <= now && pi->backoff_until_ms <= now);
}

struct ranked {
    struct sockaddr_storage sa;
    int near;
    double speed;
};

static int by_rank(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->near != y->near)
        return y->near - x->near;
    return (y->speed > x->speed) - (y->speed < x->speed);
}

static void lan_announce(struct p2p *p);

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
        if (fd == p->lan4) {
            /* Another node announced itself: answer with our own announcement (at most
             * every 10 s), so a node that just started - or a resolve-only one, which
             * answers no query - learns of us now rather than at our next round. */
            uint64_t now = loop_now_ms();
            if (dht_lan_input(p->dht, buf, (size_t)n, (struct sockaddr *)&from, fl) > 0 &&
                now >= p->lan_last_ms + 10000) {
                p->lan_last_ms = now;
                lan_announce(p);
            }
        } else
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

static void join_groups(struct p2p *p)
{
    struct ip_mreqn m;
    memset(&m, 0, sizeof m);
    inet_pton(AF_INET, DHT_LAN_GROUP4, &m.imr_multiaddr);
    for (size_t i = 0; i < p->n_ifs; i++) {
        if (p->ifs[i].family != AF_INET || !p->ifs[i].multicast)
            continue;
        m.imr_ifindex = (int)p->ifs[i].ifindex;
        if (setsockopt(p->lan4, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0 &&
            errno != EADDRINUSE)
            log_debug("lan: cannot join the group on interface %u: %s", p->ifs[i].ifindex,
                      strerror(errno));
    }
}

static void lan_announce(struct p2p *p)
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
    refresh_ifs(p);
    if (p->lan4 >= 0)
        join_groups(p); /* interfaces come and go */
    loop_timer_start(p->loop, &p->ifs_timer, IFS_EVERY_MS);
}

static int open_lan(struct p2p *p)
{
    int one = 1, ttl = 1;
    p->lan4 = open_udp(AF_INET, NULL, DHT_LAN_PORT, true);
    if (p->lan4 < 0)
        return p->lan4;
    setsockopt(p->lan4, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one);
    setsockopt(p->lan4, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    join_groups(p);
    return loop_add_fd(p->loop, p->lan4, EPOLLIN, on_udp, p);
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
    p->fd4 = p->fd6 = p->lan4 = -1;
    p->http_port = http_port;
    p->udp_port = cfg->dht_port ? cfg->dht_port : http_port;
    p->resolve_only = cfg->dht_resolve_only;
    snprintf(p->state_path, sizeof p->state_path, "%s/dht-%s.state", cfg->state_dir,
             cfg->dht_mode == DHT_MODE_BEP5 ? "bep5" : "apt-dht");
    if (strmap_new(&p->peers) < 0)
        goto fail;
    refresh_ifs(p);
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
    int fds[] = {p->fd4, p->fd6, p->lan4};
    for (size_t i = 0; i < 3; i++) {
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

static void on_lookup(void *ud, const struct dht_lookup_result *res)
{
    struct lookup_ctx *x = ud;
    struct p2p *p = x->p;
    struct ranked r[64];
    size_t n = 0;
    uint64_t now = loop_now_ms();
    for (size_t i = 0; i < res->n && n < 64; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&res->peers[i];
        if (!x->all && (is_self(p, sa) || !peer_usable(p, sa, now)))
            continue;
        struct peer_info *pi = peer_get(p, sa, false);
        r[n].sa = res->peers[i];
        r[n].near = same_subnet(p, sa);
        r[n].speed = pi ? pi->bytes_per_ms : 0;
        n++;
    }
    if (!x->all)
        qsort(r, n, sizeof r[0], by_rank);
    struct sockaddr_storage peers[64];
    for (size_t i = 0; i < n; i++)
        peers[i] = r[i].sa;
    bool done = res->done != 0;
    if (n && !x->all)
        p->st.lookups_with_peers++;
    if (done && !x->all)
        count_lookup(p, now - x->start_ms);
    if (done || n)
        log_debug("dht: lookup %02x%02x%02x%02x: %zu peer(s) of %zu%s (%u queries, %u rounds)",
                  res->key[0], res->key[1], res->key[2], res->key[3], n, res->n,
                  done ? ", done" : "", res->queries, res->rounds);
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

struct count_ctx {
    uint64_t now;
    unsigned banned, backed_off;
};

static void count_one(const char *key, void *value, void *ud)
{
    struct count_ctx *c = ud;
    const struct peer_info *pi = value;
    if (pi->banned_until_ms > c->now)
        c->banned++;
    else if (pi->backoff_until_ms > c->now)
        c->backed_off++;
}

void p2p_get_stats(const struct p2p *p, struct p2p_stats *st)
{
    struct dht_stats ds;
    struct count_ctx c = {.now = loop_now_ms()};
    *st = p->st;
    dht_get_stats(p->dht, &ds);
    strmap_each(p->peers, count_one, &c);
    st->banned = c.banned;
    st->backed_off = c.backed_off;
    st->dht_state = (int)dht_state(p->dht);
    st->nodes = ds.nodes_good + ds.nodes_questionable;
    st->nodes_good = ds.nodes_good;
    st->buckets = ds.buckets;
    st->keys_stored = ds.keys_stored;
    st->values_stored = ds.values_stored;
    memcpy(st->id, dht_id(p->dht), sizeof st->id);
}

/* ---- what the status page reads ---- */

static void view_of(const struct peer_info *pi, struct p2p_peer_view *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->label, sizeof v->label, "%s", pi->label);
    v->last_ms = pi->last_ms;
    v->bytes_per_s = pi->bytes_per_ms * 1000;
    v->files_ok = pi->files_ok;
    v->bytes_ok = pi->bytes_ok;
    v->failures = pi->n_failed;
    v->bad = pi->n_bad;
    v->banned_until_ms = pi->banned_until_ms;
    v->backoff_until_ms = pi->backoff_until_ms;
    v->why = pi->why ? pi->why : "";
}

struct views_ctx {
    struct p2p_peer_view *out;
    size_t n, max;
};

/* Keeps the max most recently heard, in that order (insertion into a sorted array). */
static void view_one(const char *key, void *value, void *ud)
{
    struct views_ctx *c = ud;
    const struct peer_info *pi = value;
    size_t i = c->n;
    if (i == c->max) {
        if (c->max == 0 || c->out[i - 1].last_ms >= pi->last_ms)
            return;
        i--; /* drop the oldest */
    } else {
        c->n++;
    }
    while (i > 0 && c->out[i - 1].last_ms < pi->last_ms) {
        c->out[i] = c->out[i - 1];
        i--;
    }
    view_of(pi, &c->out[i]);
}

size_t p2p_peers(struct p2p *p, struct p2p_peer_view *out, size_t max)
{
    struct views_ctx c = {out, 0, max};
    strmap_each(p->peers, view_one, &c);
    return c.n;
}

bool p2p_peer_view(struct p2p *p, const struct sockaddr *sa, struct p2p_peer_view *out)
{
    struct peer_info *pi = peer_get(p, sa, false);
    if (pi)
        view_of(pi, out);
    return pi != NULL;
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

const char *p2p_dialect(const struct p2p *p)
{
    return p->conf.mode == DHT_MODE_BEP5 ? "bep5" : "apt-dht";
}

bool p2p_is_self(const struct p2p *p, const struct sockaddr *sa)
{
    return is_self(p, sa);
}

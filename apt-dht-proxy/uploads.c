/* uploads.c - the peer route (see uploads.h).
 *
 * Each upload in progress is a record in one list: the file's SHA-256 and the HTTP
 * address of the peer it goes to, which is what a 503 names as relays. That peer is
 * downloading the file (that is why it asks), so it relays what it has received. The
 * address is the peer's own listening one, taken from the routing table (its HTTP port
 * is its DHT port); a peer not in the table is named with this host's port, the lab's
 * and every default install's. The requester is never named to itself.
 *
 * A relay holds a reference to the download and counts itself as one of its relays
 * (dl_relay_count), so that a peer's bytes wake it as they arrive; a watcher resumes
 * the suspended connection. */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/pkt_sched.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apt-dht-proxy/cidr.h"
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/router.h"
#include "apt-dht-proxy/uploads.h"
#include "apt-dht-proxy/url.h"

struct upload {
    struct uploads *u;
    uint8_t sha256[32];
    struct sockaddr_storage to; /* the peer's HTTP address, for relay hints */
    struct dl *dl;              /* a relay's download (referenced), else NULL */
    struct dl_watch *watch;
    bool listed; /* in u->list and counted (until uploads_end) */
    int sock;    /* the connection's socket while the answer goes out, else -1 */
    bool bulk;   /* sock is in the bulk band (mark_later) */
    struct loop *loop;
    struct loop_timer bulk_timer;
    struct upload *prev, *next;
};

struct uploads {
    struct uploads_env env;
    struct p2p *p2p;
    unsigned max_uploads, n;
    uint16_t port; /* this host's HTTP port */
    const struct router *router;
    struct upload *list;
};

int uploads_new(struct uploads **out, const struct uploads_env *env)
{
    struct uploads *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->env = *env;
    *out = u;
    return 0;
}

void uploads_free(struct uploads *u)
{
    if (!u)
        return;
    while (u->list)
        uploads_end(u, u->list); /* records are freed with their answers */
    free(u);
}

void uploads_set(struct uploads *u, struct p2p *p2p, const struct router *rt, unsigned max_uploads,
                 uint16_t port)
{
    u->router = rt;
    u->port = port;
    u->p2p = p2p;
    u->max_uploads = max_uploads;
}

unsigned uploads_count(const struct uploads *u)
{
    return u->n;
}

unsigned uploads_bulk(const struct uploads *u)
{
    unsigned n = 0;
    for (const struct upload *up = u->list; up; up = up->next) {
        int prio = 0;
        socklen_t len = sizeof prio;
        if (up->bulk && getsockopt(up->sock, SOL_SOCKET, SO_PRIORITY, &prio, &len) == 0 &&
            prio == TC_PRIO_BULK)
            n++;
    }
    return n;
}

/* ---- the records ---- */

static void set_port(struct sockaddr_storage *sa, uint16_t port_be)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = port_be;
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = port_be;
}

/* The listening address of the peer at client: its routing-table entry's, else the
 * client's address with this host's port. */
static void peer_http_addr(struct uploads *u, const struct sockaddr *client,
                           struct sockaddr_storage *out)
{
    struct p2p_node nodes[64];
    size_t n = p2p_nodes(u->p2p, nodes, 64);
    memset(out, 0, sizeof *out);
    memcpy(out, client,
           client->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    for (size_t i = 0; i < n; i++) {
        if (sa_same_host((const struct sockaddr *)&nodes[i].addr, client)) {
            *out = nodes[i].addr;
            return;
        }
    }
    set_port(out, htons(u->port));
}

static struct upload *record_new(struct uploads *u, const struct sockaddr *client,
                                 const uint8_t sha256[32])
{
    struct upload *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->u = u;
    memcpy(up->sha256, sha256, 32);
    peer_http_addr(u, client, &up->to);
    up->listed = true;
    up->sock = -1;
    up->next = u->list;
    if (u->list)
        u->list->prev = up;
    u->list = up;
    u->n++;
    return up;
}

/* An upload's packets queue behind the host's other traffic once it is under way:
 * SO_PRIORITY TC_PRIO_BULK is the last band of Linux's default qdisc (pfifo_fast), so
 * this host's DHT messages, its 503s, the first bytes of its other answers and its users'
 * own traffic are not queued behind megabytes of file on a busy uplink. The first
 * UPLOADS_BULK_AFTER_MS of an answer keep the default band: a requester's first byte
 * does not wait behind the uploads already running. The socket is put back to the
 * default when the request completes (a kept-alive connection may ask again). */
static void set_priority(struct upload *up, int prio)
{
    if (up->sock >= 0 && setsockopt(up->sock, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio) == 0)
        up->bulk = prio == TC_PRIO_BULK;
}

static void on_bulk_timer(struct loop *l, struct loop_timer *t, void *ud)
{
    (void)l;
    (void)t;
    set_priority(ud, TC_PRIO_BULK);
}

static void unmark(struct upload *up)
{
    if (up->loop)
        loop_timer_stop(up->loop, &up->bulk_timer);
    if (up->bulk)
        set_priority(up, TC_PRIO_BESTEFFORT);
    up->sock = -1;
    up->bulk = false;
}

static void mark_later(struct upload *up, struct answer *a)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(a->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || a->head)
        return;
    up->sock = ci->connect_fd;
    up->loop = a->rs->loop;
    loop_timer_init(&up->bulk_timer, on_bulk_timer, up);
    loop_timer_start(up->loop, &up->bulk_timer, UPLOADS_BULK_AFTER_MS);
}

void uploads_end(struct uploads *u, struct upload *up)
{
    if (!up || !up->listed)
        return;
    if (up->prev)
        up->prev->next = up->next;
    else
        u->list = up->next;
    if (up->next)
        up->next->prev = up->prev;
    up->prev = up->next = NULL;
    up->listed = false;
    u->n--;
    unmark(up);
    if (up->dl && up->watch)
        dl_unwatch(up->dl, up->watch);
    up->watch = NULL;
}

void upload_free(struct upload *up)
{
    if (!up)
        return;
    if (up->listed)
        uploads_end(up->u, up);
    if (up->dl) {
        dl_relay_count(up->dl, -1);
        dl_unref(up->dl);
    }
    free(up);
}

/* ---- spreading the load ---- */

/* The peers this file goes to now, as "ADDR:PORT,..." (the requester left out); the
 * count of uploads of the file is returned, the list written to out. */
static unsigned going_to(struct uploads *u, const uint8_t sha256[32], const struct sockaddr *client,
                         char *out, size_t n)
{
    unsigned count = 0;
    size_t len = 0;
    out[0] = '\0';
    for (struct upload *up = u->list; up; up = up->next) {
        if (memcmp(up->sha256, sha256, 32) != 0)
            continue;
        count++;
        char host[INET6_ADDRSTRLEN];
        bool v4 = up->to.ss_family == AF_INET;
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&up->to;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&up->to;
        const void *ip = v4 ? (const void *)&a4->sin_addr : (const void *)&a6->sin6_addr;
        unsigned port = ntohs(v4 ? a4->sin_port : a6->sin6_port);
        if (sa_same_host((const struct sockaddr *)&up->to, client) ||
            !inet_ntop(up->to.ss_family, ip, host, sizeof host))
            continue;
        int w =
            snprintf(out + len, n - len, v4 ? "%s%s:%u" : "%s[%s]:%u", len ? "," : "", host, port);
        if (w < 0 || (size_t)w >= n - len) {
            out[len] = '\0';
            break;
        }
        len += (size_t)w;
    }
    return count;
}

/* ---- answering ---- */

static void on_relay_news(void *ud)
{
    answer_resume(ud);
}

static enum MHD_Result relay(struct answer *a, struct upload *up, struct dl *d, uint64_t size,
                             const char *key)
{
    up->dl = d; /* the reference passes to the record */
    dl_relay_count(d, +1);
    up->watch = dl_watch(d, on_relay_news, a);
    if (!up->watch)
        return answer_error(a, 500, "out of memory");
    log_info("%s: relaying %s to a peer while it arrives (from %s)", a->target, key,
             dl_source(d)[0] ? dl_source(d) : "a source not chosen yet");
    return answer_relay(a, d, size, key);
}

/* The requester's key, if it asks this host as the owner; NULL otherwise. */
static const char *pull_key(struct answer *a)
{
    const char *k = MHD_lookup_connection_value(a->conn, MHD_HEADER_KIND, "X-Apt-Dht-Fetch");
    return k && *k ? k : NULL;
}

/* The route of a cache key ("HOST/PATH"), as apt's proxy form of it would get. */
static int route_of_key(const struct router *r, const char *key, struct route *rt, const char **why)
{
    char raw[URL_MAX_TARGET], enc[URL_MAX_TARGET];
    struct url_target t;
    const char *slash = strchr(key, '/');
    int first = slash ? (int)(slash - key) : 0;
    *why = "X-Apt-Dht-Fetch: not a cache key this host can route";
    if (!r || !slash || slash == key || (size_t)first > URL_MAX_HOST ||
        url_encode_path(slash, enc, sizeof enc) < 0)
        return -EINVAL;
    /* "NAME/PATH" of a backend (or "HOST/PATH" in rewrite mode): the origin form */
    if (snprintf(raw, sizeof raw, "/%.*s%s", first, key, enc) < (int)sizeof raw &&
        url_parse(raw, &t) == 0 && t.form == URL_ORIGIN && router_resolve(r, &t, rt, why) == 0) {
        if (strcmp(rt->key, key) == 0)
            return 0;
        route_done(rt);
    }
    /* "HOST[:PORT]/PATH" of a host of its own: the proxy form */
    if (snprintf(raw, sizeof raw, "http://%.*s%s", first, key, enc) >= (int)sizeof raw ||
        url_parse(raw, &t) < 0 || t.form != URL_ABSOLUTE)
        return -EINVAL;
    return router_resolve(r, &t, rt, why) == 0 ? 0 : -EINVAL;
}

/* Whether this host's index lists key with exactly this SHA-256 and a size (*e). */
static const char *index_refusal(struct uploads *u, const char *key, const uint8_t sha256[32],
                                 struct hashdb_entry *e)
{
    if (!u->env.db || !u->env.pull)
        return "this host does not fetch for peers";
    if (strlen(key) >= URL_MAX_KEY)
        return "X-Apt-Dht-Fetch: key too long";
    if (hashdb_lookup(u->env.db, key, e) < 0 || !e->have_sha256 || e->size == UINT64_MAX)
        return "this host's indices do not list that key with a SHA-256 and a size";
    if (memcmp(e->sha256, sha256, 32) != 0)
        return "this host's indices give that key another SHA-256";
    return NULL;
}

/* A pull-through request: the download starts here only if this host's own index lists
 * key with exactly this SHA-256 and a size, and key routes here as an immutable file
 * under that same key. NULL with *why otherwise. */
static struct dl *pull(struct uploads *u, const char *key, const uint8_t sha256[32], uint64_t *size,
                       const char **why)
{
    struct hashdb_entry e;
    struct route rt;
    struct dl *d = NULL;
    if ((*why = index_refusal(u, key, sha256, &e)) != NULL)
        return NULL;
    if (route_of_key(u->router, key, &rt, why) < 0)
        return NULL;
    if (rt.cls != URL_IMMUTABLE)
        *why = "only immutable files are fetched for peers";
    else if (strcmp(rt.key, key) != 0)
        *why = "this host keeps that file under another key";
    else if (!(d = u->env.pull(u->env.ud, &rt, &e)))
        *why = "cannot start the download";
    route_done(&rt);
    *size = e.size;
    return d;
}

enum MHD_Result uploads_serve(struct uploads *u, struct answer *a, const struct sockaddr *client,
                              const uint8_t sha256[32], struct upload **out)
{
    struct stat st;
    char key[URL_MAX_KEY], relays[200];
    const char *why = "not shared by this peer";
    uint64_t size = 0;
    *out = NULL;
    if (!u->p2p)
        return answer_error(a, MHD_HTTP_NOT_FOUND, "peer sharing is off on this host");
    if (u->n >= u->max_uploads)
        return answer_error(a, MHD_HTTP_SERVICE_UNAVAILABLE, "too many uploads; try another peer");
    if (!a->head && going_to(u, sha256, client, relays, sizeof relays) >= UPLOADS_FANOUT &&
        relays[0])
        return answer_busy(a, relays);
    int fd = cache_open_sha256(u->env.cache, sha256, &st, key, sizeof key);
    struct dl *d = fd < 0 ? fetcher_find_sha256(u->env.fetcher, sha256, &size) : NULL;
    /* A plain request from the host this download comes from would make two hosts wait
     * on each other: declined. A pull-through request is served all the same: it comes
     * from a host that ranks us first, and that host declines our plain request (the
     * owner asks the next in rank), so our download moves on to the mirror. */
    if (d && !pull_key(a) && dl_source_is_host(d, client))
        return answer_error(a, MHD_HTTP_NOT_FOUND, "this host gets that file from you");
    if (d)
        dl_ref(d);
    const char *pk = fd < 0 && !d ? pull_key(a) : NULL;
    if (pk && (d = pull(u, pk, sha256, &size, &why)) != NULL)
        log_info("%s: fetching it for a peer that asked this host as its owner", pk);
    if (fd < 0 && !d)
        return answer_error(a, MHD_HTTP_NOT_FOUND, why);
    struct upload *up = record_new(u, client, sha256);
    if (!up) {
        if (fd >= 0)
            close(fd);
        dl_unref(d);
        return answer_error(a, 500, "out of memory");
    }
    *out = up;
    a->upload = true;
    mark_later(up, a);
    snprintf(a->source, sizeof a->source, "upload");
    if (fd >= 0)
        return answer_fd(a, fd, &st, key);
    return relay(a, up, d, size, pk ? pk : dl_key(d));
}

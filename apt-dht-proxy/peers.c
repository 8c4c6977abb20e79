/* peers.c - the DHT lookup behind one download (see peers.h). The lookup context holds
 * a reference to its download and watches it; when the download ends, a zero-delay timer
 * (outside the download's notification) cancels the lookup and frees the context.
 *
 * Holders the lookup finds have complete copies and go first. When it is over, the
 * nodes that rank above this one as the file's owner (owner.h) follow, best first,
 * skipping those banned or backed off: each is asked to fetch the file for us (it does
 * only if its own signed indices give the same SHA-256 and size) or to relay what it
 * has. When this node ranks first, the next in rank is asked only whether it has the
 * file in flight (it fetched it if it asked us before our own indices listed it), which
 * it declines at once otherwise; then the mirror. A download this node runs for another
 * host's pull-through request asks the same nodes only that question (two hosts whose
 * views of the LAN differ, or whose indices were not in step, may both have been asked
 * to fetch; the one that asks second finds the other's download in flight). A lone host
 * has nobody to ask: its cold path is unchanged. */
#include "aptdht-config.h"
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/fetch.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/owner.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/peers.h"

struct find_ctx {
    struct p2p *p2p;
    struct loop *loop;
    struct dl *d;          /* a reference, dropped when the lookup ends */
    struct dl_watch *watch;
    struct loop_timer end; /* the download ended: cancel the lookup (outside its notify) */
    int handle;            /* p2p_find's */
    bool forward;          /* ask the file's owners when the lookup is over */
    uint8_t sha256[32];
};

static void find_free(struct find_ctx *x)
{
    loop_timer_stop(x->loop, &x->end);
    if (x->watch)
        dl_unwatch(x->d, x->watch);
    dl_peers_done(x->d);
    dl_unref(x->d);
    free(x);
}

/* A node worth asking: not banned and not backed off (what a lookup's holders pass). */
static bool usable(struct p2p *p2p, const struct sockaddr *sa)
{
    struct p2p_peer_view v;
    uint64_t now = loop_now_ms();
    return !p2p_peer_view(p2p, sa, &v) || (v.banned_until_ms <= now && v.backoff_until_ms <= now);
}

static void add_owners(struct find_ctx *x)
{
    static struct p2p_node lan[OWNER_LAN_MAX];
    struct p2p_node owners[OWNER_MAX];
    uint8_t self[20];
    /* A download run for another host's pull-through request asks nobody to fetch for
     * it (no loops), only whether they have it in flight: a plain request. */
    bool pull = x->forward;
    size_t n = p2p_lan_nodes(x->p2p, lan, OWNER_LAN_MAX, self);
    size_t k = owner_rank(self, lan, n, x->sha256, owners, OWNER_MAX); /* key: first 160 bits */
    if (k == 0 && owner_runner_up(self, lan, n, x->sha256, owners)) {
        /* Ours, but the next in rank may be fetching it already: it did if it asked us
         * while our indices did not list the file yet (our apt was behind). A plain
         * request: it relays what it has in flight, or declines at once. */
        k = 1;
        pull = false;
    }
    for (size_t i = 0; i < k; i++) {
        char url[200];
        const struct sockaddr *sa = (const struct sockaddr *)&owners[i].addr;
        socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        if (usable(x->p2p, sa) && p2p_peer_url(sa, x->sha256, url, sizeof url) == 0 &&
            dl_add_owner(x->d, sa, len, url, pull) == 0)
            log_debug("%s: asking %s %s (%zu live LAN nodes)", dl_key(x->d),
                      pull ? "owner" : "whether it has it in flight:", url, n + 1);
    }
}

static void on_peers(void *ud, const struct sockaddr_storage *peers, size_t n, bool done)
{
    struct find_ctx *x = ud;
    for (size_t i = 0; i < n; i++) {
        char url[200];
        const struct sockaddr *sa = (const struct sockaddr *)&peers[i];
        socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        if (p2p_peer_url(sa, x->sha256, url, sizeof url) == 0)
            dl_add_peer(x->d, sa, len, url);
    }
    if (done)
        add_owners(x);
    if (done)
        find_free(x);
}

static void find_watch(void *ud)
{
    struct find_ctx *x = ud;
    enum dl_state st = dl_state(x->d);
    if ((st == DL_DONE || st == DL_FAILED) && !loop_timer_armed(&x->end))
        loop_timer_start(x->loop, &x->end, 0);
}

static void find_cancel(struct loop *l, struct loop_timer *t, void *ud)
{
    struct find_ctx *x = ud;
    log_debug("dht: lookup for %s cancelled: its download ended", dl_key(x->d));
    p2p_cancel(x->p2p, x->handle);
    find_free(x);
}

void peers_find(struct p2p *p2p, struct loop *l, struct dl *d, const uint8_t sha256[32],
                bool forward)
{
    if (!dl_claim_lookup(d))
        return;
    struct find_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        dl_peers_done(d);
        return;
    }
    dl_ref(d);
    x->p2p = p2p;
    x->loop = l;
    x->d = d;
    x->forward = forward;
    memcpy(x->sha256, sha256, 32);
    loop_timer_init(&x->end, find_cancel, x);
    x->watch = dl_watch(d, find_watch, x);
    int h = x->watch ? p2p_find(p2p, sha256, on_peers, x) : -ENOMEM;
    if (h < 0) {
        find_free(x);
        return;
    }
    x->handle = h;
}

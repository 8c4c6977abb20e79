/* policy.c - the decision for one apt request (see policy.h for the rules). Two stages:
 * before any download (serve, fetch, wait for the index, refuse) and on each piece of
 * news from the download (wait, stream, serve what it left in the cache, try another way,
 * fail). */
#include "aptdht-config.h"
#include "apt-dht-proxy/policy.h"

static struct policy_out act(enum policy_act a)
{
    return (struct policy_out){.act = a};
}

static struct policy_out refuse(unsigned status, const char *reason)
{
    return (struct policy_out){.act = ACT_REFUSE, .status = status, .reason = reason};
}

static struct policy_out fetch(bool use_expect, bool verify_first, bool conditional)
{
    return (struct policy_out){.act = ACT_FETCH,
                               .use_expect = use_expect,
                               .verify_first = verify_first,
                               .conditional = conditional};
}

/* A fetch of a file the cache should have had (revalidations are not misses). */
static struct policy_out miss(struct policy_out o)
{
    o.miss = true;
    return o;
}

static struct policy_out hit(void)
{
    return (struct policy_out){.act = ACT_SERVE_CACHED, .hit = true};
}

static struct policy_out first(const struct policy_in *in)
{
    if (in->neg_hit)
        return refuse(404, "not found on the mirror (remembered)");
    if (in->cls == URL_IMMUTABLE) {
        if (in->cached)
            return hit();
        if (!in->have_expect && !in->index_waited && in->index_pending)
            return act(ACT_WAIT_INDEX);
        return miss(fetch(in->have_expect, false, false));
    }
    if (in->have_expect && !in->release_name) {
        /* a newer InRelease of its suite is being parsed: the listed bytes may change */
        if (in->release_queued && !in->index_waited)
            return act(ACT_WAIT_INDEX);
        /* an index the last InRelease lists: only the listed bytes will do */
        if (in->expect_sha256 && in->cached && in->cached_matches)
            return hit();
        return miss(fetch(true, true, false));
    }
    return fetch(false, false, in->cached);
}

static struct policy_out failed(const struct policy_in *in, const struct policy_dl *d)
{
    bool hashed = in->have_expect && in->expect_sha256;
    if (!in->retried && d->status != 404 && !d->mismatch && !d->has_bytes && d->joined_late)
        return act(ACT_RETRY);
    if (d->mismatch && in->cls == URL_VOLATILE && !in->by_hash_tried && hashed)
        return act(ACT_BY_HASH);
    if (in->by_hash_tried)
        return refuse(502, "the mirror's copy disagrees with InRelease and its by-hash copy failed");
    if (d->status == 404)
        return (struct policy_out){.act = ACT_NOT_FOUND, .status = 404};
    /* the mirror failed: a volatile file may come from the cache, but an index whose hash
     * the last InRelease gives only if the cached copy has that hash */
    if (in->cls == URL_VOLATILE && !d->mismatch && in->cached && (!hashed || in->cached_matches))
        return act(ACT_SERVE_STALE);
    return refuse(d->status ? (unsigned)d->status : 502, NULL);
}

static struct policy_out news(const struct policy_in *in, const struct policy_dl *d)
{
    switch (d->state) {
    case DL_CONNECTING:
        return act(ACT_WAIT);
    case DL_STREAMING:
        /* verify_first, a peer, or nothing yet: headers go out with the first bytes (an
         * empty body waits for the end, so it too is checked first) */
        return act(d->has_bytes ? ACT_STREAM : ACT_WAIT);
    case DL_DONE:
        return act(ACT_SERVE_DONE);
    case DL_NOT_MODIFIED:
        return act(ACT_SERVE_REVALIDATED);
    case DL_FAILED:
    default:
        return failed(in, d);
    }
}

struct policy_out policy_decide(const struct policy_in *in)
{
    return in->dl ? news(in, in->dl) : first(in);
}

const char *policy_act_name(enum policy_act a)
{
    static const char *const names[] = {
        "serve-cached", "fetch",  "wait-index", "refuse",    "wait",      "stream",
        "serve-done",   "serve-revalidated",    "retry",     "by-hash",   "not-found",
        "serve-stale",
    };
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

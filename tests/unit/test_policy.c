/* test_policy.c - policy_decide, the request policy, as one table.
 *
 * policy_decide is a pure function of a struct policy_in (what the hash index, the cache,
 * the negative cache and the indexer say) and, once a download exists, a struct policy_dl
 * (its state). Each row below is one situation and the decision it must get; a row that
 * fails prints its index and name with what it got, so a broken rule is named, not just
 * counted. The rows follow the two stages of policy.c: the first decision (no download)
 * per file class, then the news from a download. */
#include "aptdht-config.h"
#include <stdio.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/policy.h"

struct row {
    const char *name;
    struct policy_in in; /* in.dl: NULL, or a struct policy_dl of static storage */
    struct policy_out want;
};

/* The file classes as policy_in fields. BY_HASH: a by-hash name gives its own SHA-256.
 * LISTED: an index whose hash the last InRelease gives. RELEASE: InRelease and Release. */
#define POOL .cls = URL_IMMUTABLE
#define BY_HASH .cls = URL_IMMUTABLE, .have_expect = true, .expect_sha256 = true
#define LISTED .cls = URL_VOLATILE, .have_expect = true, .expect_sha256 = true
#define RELEASE .cls = URL_VOLATILE, .release_name = true
#define UNKNOWN .cls = URL_VOLATILE
#define KNOWN .have_expect = true, .expect_sha256 = true
#define CACHED .cached = true, .cached_matches = true
#define STALE .cached = true, .cached_matches = false

/* A download's news, as a pointer to a file-scope compound literal (static storage). */
#define DL(...) .dl = &(const struct policy_dl){__VA_ARGS__}
#define FAILED(st) .state = DL_FAILED, .status = (st)

/* Expected decisions. */
#define HIT {.act = ACT_SERVE_CACHED, .hit = true}
#define FETCH_MISS(ue, vf) {.act = ACT_FETCH, .use_expect = (ue), .verify_first = (vf), .miss = true}
#define REVALIDATE(cond) {.act = ACT_FETCH, .conditional = (cond)}
#define DO(a) {.act = (a)}
#define NOT_FOUND {.act = ACT_NOT_FOUND, .status = 404}
/* REFUSE: the policy names the reason; REFUSE_DL: the download's own reason (NULL). */
#define REFUSE(st) {.act = ACT_REFUSE, .status = (st), .reason = "(policy's)"}
#define REFUSE_DL(st) {.act = ACT_REFUSE, .status = (st)}

static const struct row rows[] = {
    /* ---- first decision: an immutable pool file ---- */
    {"pool, cached", {POOL, CACHED}, HIT},
    {"pool, cached, hash known", {POOL, KNOWN, CACHED}, HIT},
    /* an immutable entry is verified when it is stored; its recorded hash is not rechecked */
    {"pool, cached not matching, hash known", {POOL, KNOWN, STALE}, HIT},
    {"pool, absent, hash known", {POOL, KNOWN}, FETCH_MISS(true, false)},
    {"pool, absent, only SHA-1 known", {POOL, .have_expect = true}, FETCH_MISS(true, false)},
    {"pool, absent, hash unknown", {POOL}, FETCH_MISS(false, false)},
    {"pool, absent, unknown, indexer pending", {POOL, .index_pending = true}, DO(ACT_WAIT_INDEX)},
    {"pool, absent, unknown, indexer pending, waited",
     {POOL, .index_pending = true, .index_waited = true},
     FETCH_MISS(false, false)},
    {"pool, absent, unknown, waited, queue empty", {POOL, .index_waited = true},
     FETCH_MISS(false, false)},
    {"pool, absent, known, indexer pending", {POOL, KNOWN, .index_pending = true},
     FETCH_MISS(true, false)},
    {"pool, cached, unknown, indexer pending", {POOL, CACHED, .index_pending = true}, HIT},
    {"pool, negative-cache hit", {POOL, .neg_hit = true}, REFUSE(404)},
    /* the negative cache is consulted before the cache */
    {"pool, negative-cache hit, cached", {POOL, CACHED, .neg_hit = true}, REFUSE(404)},
    {"pool, negative-cache hit, indexer pending", {POOL, .neg_hit = true, .index_pending = true},
     REFUSE(404)},

    /* ---- first decision: by-hash (immutable, its hash from the URL) ---- */
    {"by-hash, cached", {BY_HASH, CACHED}, HIT},
    {"by-hash, absent", {BY_HASH}, FETCH_MISS(true, false)},
    {"by-hash, absent, indexer pending", {BY_HASH, .index_pending = true},
     FETCH_MISS(true, false)},
    {"by-hash, negative-cache hit", {BY_HASH, .neg_hit = true}, REFUSE(404)},

    /* ---- first decision: an index listed in InRelease ---- */
    {"listed, cached matching", {LISTED, CACHED}, HIT},
    {"listed, cached not matching", {LISTED, STALE}, FETCH_MISS(true, true)},
    {"listed, absent", {LISTED}, FETCH_MISS(true, true)},
    {"listed, absent, indexer pending", {LISTED, .index_pending = true}, FETCH_MISS(true, true)},
    /* a newer InRelease of its suite waits for the indexer: wait for it, once */
    {"listed, cached matching, its Release queued", {LISTED, CACHED, .release_queued = true},
     DO(ACT_WAIT_INDEX)},
    {"listed, cached matching, its Release queued, waited",
     {LISTED, CACHED, .release_queued = true, .index_waited = true},
     HIT},
    /* only a SHA-1 listed: the cache records SHA-256, so its copy cannot be trusted */
    {"listed SHA-1 only, cached", {UNKNOWN, .have_expect = true, CACHED}, FETCH_MISS(true, true)},
    {"listed SHA-1 only, absent", {UNKNOWN, .have_expect = true}, FETCH_MISS(true, true)},
    {"listed, negative-cache hit", {LISTED, CACHED, .neg_hit = true}, REFUSE(404)},

    /* ---- first decision: InRelease / Release, revalidated each time ---- */
    {"release, cached", {RELEASE, CACHED}, REVALIDATE(true)},
    {"release, cached not matching", {RELEASE, STALE}, REVALIDATE(true)},
    {"release, absent", {RELEASE}, REVALIDATE(false)},
    {"release, hash known, cached", {RELEASE, KNOWN, CACHED}, REVALIDATE(true)},
    {"release, hash known, absent", {RELEASE, KNOWN}, REVALIDATE(false)},
    {"release, indexer pending, absent", {RELEASE, .index_pending = true}, REVALIDATE(false)},
    {"release, negative-cache hit", {RELEASE, .neg_hit = true}, REFUSE(404)},

    /* ---- first decision: a volatile file no index lists ---- */
    {"unknown volatile, cached", {UNKNOWN, CACHED}, REVALIDATE(true)},
    {"unknown volatile, cached not matching", {UNKNOWN, STALE}, REVALIDATE(true)},
    {"unknown volatile, absent", {UNKNOWN}, REVALIDATE(false)},
    {"unknown volatile, absent, indexer pending", {UNKNOWN, .index_pending = true},
     REVALIDATE(false)},
    {"unknown volatile, negative-cache hit", {UNKNOWN, .neg_hit = true}, REFUSE(404)},

    /* ---- news: the download's state ---- */
    {"connecting", {POOL, DL(.state = DL_CONNECTING)}, DO(ACT_WAIT)},
    {"connecting, volatile", {LISTED, DL(.state = DL_CONNECTING)}, DO(ACT_WAIT)},
    {"streaming, no bytes yet", {POOL, DL(.state = DL_STREAMING)}, DO(ACT_WAIT)},
    {"streaming, bytes", {POOL, DL(.state = DL_STREAMING, .has_bytes = true)}, DO(ACT_STREAM)},
    {"streaming, bytes, listed", {LISTED, DL(.state = DL_STREAMING, .has_bytes = true)},
     DO(ACT_STREAM)},
    {"streaming, joined late", {POOL, DL(.state = DL_STREAMING, .joined_late = true)},
     DO(ACT_WAIT)},
    {"done", {POOL, DL(.state = DL_DONE, .status = 200)}, DO(ACT_SERVE_DONE)},
    {"done, no bytes (empty file)", {UNKNOWN, DL(.state = DL_DONE, .status = 200)},
     DO(ACT_SERVE_DONE)},
    {"done, bytes", {LISTED, DL(.state = DL_DONE, .status = 200, .has_bytes = true)},
     DO(ACT_SERVE_DONE)},
    {"not modified", {RELEASE, CACHED, DL(.state = DL_NOT_MODIFIED, .status = 304)},
     DO(ACT_SERVE_REVALIDATED)},

    /* ---- news: a failed download of an immutable file ---- */
    {"pool failed 404", {POOL, DL(FAILED(404))}, NOT_FOUND},
    {"pool failed 500", {POOL, DL(FAILED(500))}, REFUSE_DL(500)},
    {"pool failed 504 (stalled)", {POOL, DL(FAILED(504))}, REFUSE_DL(504)},
    {"pool failed, no answer", {POOL, DL(FAILED(0))}, REFUSE_DL(502)},
    {"pool failed 500 after bytes", {POOL, DL(FAILED(500), .has_bytes = true)}, REFUSE_DL(500)},
    /* by-hash is for indices only: a pool file's mismatch is final */
    {"pool mismatch", {POOL, KNOWN, DL(FAILED(502), .mismatch = true)}, REFUSE_DL(502)},
    {"by-hash file mismatch", {BY_HASH, DL(FAILED(502), .mismatch = true)}, REFUSE_DL(502)},

    /* ---- news: joined a download that had started a second before ---- */
    {"joined late, failed 500", {POOL, DL(FAILED(500), .joined_late = true)}, DO(ACT_RETRY)},
    {"joined late, no answer", {POOL, DL(FAILED(0), .joined_late = true)}, DO(ACT_RETRY)},
    {"joined late, failed 500, retried", {POOL, .retried = true, DL(FAILED(500), .joined_late = true)},
     REFUSE_DL(500)},
    {"joined late, no answer, retried", {POOL, .retried = true, DL(FAILED(0), .joined_late = true)},
     REFUSE_DL(502)},
    {"joined late, 404", {POOL, DL(FAILED(404), .joined_late = true)}, NOT_FOUND},
    {"joined late, failed after bytes",
     {POOL, DL(FAILED(500), .joined_late = true, .has_bytes = true)},
     REFUSE_DL(500)},
    {"joined late, mismatch", {POOL, KNOWN, DL(FAILED(502), .joined_late = true, .mismatch = true)},
     REFUSE_DL(502)},
    {"joined late, listed, mismatch",
     {LISTED, DL(FAILED(502), .joined_late = true, .mismatch = true)},
     DO(ACT_BY_HASH)},
    {"joined late, volatile cached, failed",
     {UNKNOWN, CACHED, DL(FAILED(0), .joined_late = true)},
     DO(ACT_RETRY)},
    {"joined late, volatile cached, failed, retried",
     {UNKNOWN, CACHED, .retried = true, DL(FAILED(0), .joined_late = true)},
     DO(ACT_SERVE_STALE)},

    /* ---- news: the by-name index disagrees with InRelease ---- */
    {"listed mismatch", {LISTED, DL(FAILED(502), .mismatch = true)}, DO(ACT_BY_HASH)},
    {"listed mismatch, cached not matching", {LISTED, STALE, DL(FAILED(502), .mismatch = true)},
     DO(ACT_BY_HASH)},
    {"listed mismatch, by-hash tried",
     {LISTED, .by_hash_tried = true, DL(FAILED(502), .mismatch = true)},
     REFUSE(502)},
    {"listed, by-hash copy 404", {LISTED, .by_hash_tried = true, DL(FAILED(404))}, REFUSE(502)},
    {"listed, by-hash copy 500", {LISTED, .by_hash_tried = true, DL(FAILED(500))}, REFUSE(502)},
    {"listed, by-hash copy no answer", {LISTED, .by_hash_tried = true, DL(FAILED(0))}, REFUSE(502)},
    {"listed, by-hash tried, cached matching",
     {LISTED, CACHED, .by_hash_tried = true, DL(FAILED(0))},
     REFUSE(502)},
    /* a SHA-1-only listing cannot name a by-hash file */
    {"listed SHA-1 only, mismatch", {UNKNOWN, .have_expect = true, DL(FAILED(502), .mismatch = true)},
     REFUSE_DL(502)},
    /* ... and a mirror whose copy disagrees is not "down": the cached copy is not served */
    {"listed SHA-1 only, mismatch, cached",
     {UNKNOWN, .have_expect = true, CACHED, DL(FAILED(502), .mismatch = true)},
     REFUSE_DL(502)},

    /* ---- news: a volatile file whose mirror failed ---- */
    {"listed, mirror down, cached matching", {LISTED, CACHED, DL(FAILED(0))}, DO(ACT_SERVE_STALE)},
    {"listed, mirror down, cached not matching", {LISTED, STALE, DL(FAILED(0))}, REFUSE_DL(502)},
    {"listed, mirror down, absent", {LISTED, DL(FAILED(0))}, REFUSE_DL(502)},
    {"listed, mirror 500, cached matching", {LISTED, CACHED, DL(FAILED(500))},
     DO(ACT_SERVE_STALE)},
    {"listed, mirror 500, cached not matching", {LISTED, STALE, DL(FAILED(500))}, REFUSE_DL(500)},
    {"listed, mirror 404, cached matching", {LISTED, CACHED, DL(FAILED(404))}, NOT_FOUND},
    {"release, mirror down, cached", {RELEASE, CACHED, DL(FAILED(0))}, DO(ACT_SERVE_STALE)},
    {"release, mirror down, cached not matching", {RELEASE, STALE, DL(FAILED(0))},
     DO(ACT_SERVE_STALE)},
    {"release, mirror down, absent", {RELEASE, DL(FAILED(0))}, REFUSE_DL(502)},
    {"release, mirror 504, cached", {RELEASE, CACHED, DL(FAILED(504))}, DO(ACT_SERVE_STALE)},
    {"release, mirror 404, cached", {RELEASE, CACHED, DL(FAILED(404))}, NOT_FOUND},
    {"unknown volatile, mirror down, cached", {UNKNOWN, CACHED, DL(FAILED(0))},
     DO(ACT_SERVE_STALE)},
    {"unknown volatile, mirror down, cached not matching", {UNKNOWN, STALE, DL(FAILED(0))},
     DO(ACT_SERVE_STALE)},
    {"unknown volatile, mirror down, absent", {UNKNOWN, DL(FAILED(0))}, REFUSE_DL(502)},
    {"unknown volatile, mirror 500 after bytes, cached",
     {UNKNOWN, CACHED, DL(FAILED(500), .has_bytes = true)},
     DO(ACT_SERVE_STALE)},
    {"unknown volatile, mirror 404, cached", {UNKNOWN, CACHED, DL(FAILED(404))}, NOT_FOUND},
    /* an immutable file is never served stale (a cached one never reaches a download) */
    {"pool, mirror down, cached", {POOL, CACHED, DL(FAILED(0))}, REFUSE_DL(502)},
};

/* Compares one field; on a difference prints the row and the field, and fails. */
static bool same(size_t i, const char *field, long got, long want)
{
    if (got == want)
        return true;
    fprintf(stderr, "\n  row %zu (%s): %s = %ld, want %ld", i, rows[i].name, field, got, want);
    return false;
}

static bool row_passes(size_t i)
{
    const struct row *w = &rows[i];
    struct policy_out o = policy_decide(&w->in);
    bool ok = true;
    if (o.act != w->want.act) {
        fprintf(stderr, "\n  row %zu (%s): act = %s, want %s", i, w->name,
                policy_act_name(o.act), policy_act_name(w->want.act));
        ok = false;
    }
    ok &= same(i, "use_expect", o.use_expect, w->want.use_expect);
    ok &= same(i, "verify_first", o.verify_first, w->want.verify_first);
    ok &= same(i, "conditional", o.conditional, w->want.conditional);
    ok &= same(i, "hit", o.hit, w->want.hit);
    ok &= same(i, "miss", o.miss, w->want.miss);
    ok &= same(i, "status", o.status, w->want.status);
    /* who names the reason: the policy (a fixed string) or the download (NULL) */
    ok &= same(i, "reason set", o.reason != NULL, w->want.reason != NULL);
    return ok;
}

static void test_table(void)
{
    size_t n = sizeof rows / sizeof rows[0], failed = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = row_passes(i);
        CU_ASSERT(ok);
        failed += !ok;
    }
    if (failed)
        fprintf(stderr, "\n  %zu of %zu rows failed\n", failed, n);
}

/* The outputs the table does not cover: fields that belong to other actions stay clear. */
static void test_clean_outputs(void)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct policy_out o = policy_decide(&rows[i].in);
        bool fetch = o.act == ACT_FETCH;
        if (!fetch && (o.use_expect || o.verify_first || o.conditional || o.miss))
            fprintf(stderr, "\n  row %zu (%s): fetch fields set on %s", i, rows[i].name,
                    policy_act_name(o.act));
        CU_ASSERT(fetch || !(o.use_expect || o.verify_first || o.conditional || o.miss));
        /* a revalidation is never a miss, a verified-first fetch always uses the index */
        CU_ASSERT(!(o.conditional && o.miss));
        CU_ASSERT(!o.verify_first || o.use_expect);
        CU_ASSERT(o.act == ACT_SERVE_CACHED || !o.hit);
        CU_ASSERT(o.act == ACT_REFUSE || o.reason == NULL);
    }
}

static void test_act_names(void)
{
    CU_ASSERT_STRING_EQUAL(policy_act_name(ACT_SERVE_CACHED), "serve-cached");
    CU_ASSERT_STRING_EQUAL(policy_act_name(ACT_FETCH), "fetch");
    CU_ASSERT_STRING_EQUAL(policy_act_name(ACT_BY_HASH), "by-hash");
    CU_ASSERT_STRING_EQUAL(policy_act_name(ACT_SERVE_STALE), "serve-stale");
    CU_ASSERT_STRING_EQUAL(policy_act_name((enum policy_act)99), "?");
    for (int a = ACT_SERVE_CACHED; a <= ACT_SERVE_STALE; a++)
        CU_ASSERT_STRING_NOT_EQUAL(policy_act_name((enum policy_act)a), "?");
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"decision table", test_table},
        {"fields of other actions stay clear", test_clean_outputs},
        {"action names", test_act_names},
        {NULL, NULL},
    };
    return unit_run("policy", cases);
}

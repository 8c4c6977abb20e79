/* catalogue.c - cache membership and its side effects: hash index rows, DHT announcements,
 * index parsing. See catalogue.h for the model.
 *
 * The event loop never waits on the hash database's write lock. Records of what the cache
 * holds go to the indexer thread, the database's one writer, which never drops one. An
 * index goes to the indexer too, except a Release of at most CATALOGUE_LOOP_RELEASE_MAX
 * bytes: what apt asks next (its Packages, by name) is checked against it, so it is
 * parsed at once, here, through the loop's connection, which never waits: if the
 * database is busy that moment (the indexer is merging), the Release is handed to the
 * indexer like a large one. A parse of the same key already queued there keeps the
 * order: the newer version queues behind it.
 *
 * At start-up, an index whose parse did not finish (a crash, a kill -9, a shutdown
 * mid-parse) is parsed again: for each index (index_origin: a Release, or one
 * directory's Packages or Sources whatever its name) the newest cached copy is compared
 * with what the database says it last parsed to its end (hashdb_index_get); a copy whose
 * SHA-256 it does not name is queued. A parse commits its entries and that record in one
 * transaction, so there is no moment at which one is there without the other.
 *
 * Expiry by reference runs from a timer here: it takes the result of the indexer's last
 * sweep (the files no index seen within keep_unreferenced lists), removes those still
 * cached with the content the sweep saw, and asks for the next sweep. The sightings it
 * relies on come from parses and from catalogue_index_asked (apt's requests for
 * indices, sent at most once a minute per index). */
#include "aptdht-config.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/url.h"

/* Bytes of a Release parsed on the loop: Debian's and Ubuntu's InRelease files are
 * 100-300 KB, and one of 512 KiB takes about 10 ms to parse and merge (bench_index). A
 * larger one (a 31 MB InRelease stalled every client 5.9 s) is the indexer's. */
#define CATALOGUE_LOOP_RELEASE_MAX (512 * 1024)

#define CATALOGUE_SEEN_EVERY_S 60 /* a sighting of one index is recorded at most this often */
#define CATALOGUE_SEEN_MAX 4096   /* indices remembered for that; the map is emptied past it */

/* When a sighting of one index was last sent. */
struct seen {
    int64_t at_s; /* unix seconds */
    char name[];
};

struct catalogue {
    struct cache *cache;
    struct hashdb *db;    /* NULL: no hash knowledge */
    struct indexer *ix;   /* NULL: indices are not parsed, records written here */
    struct p2p *p2p;      /* NULL: not sharing */
    struct strmap *seen;  /* index name -> struct seen */
    struct loop *loop;    /* set by catalogue_set_expiry */
    struct loop_timer expiry;
    uint32_t keep_s;      /* cache.keep_unreferenced; 0 = no expiry */
    uint64_t expired_files, expired_bytes;
};

/* A file left the cache: forget its hash and stop announcing it. */
static void on_drop(void *ud, const char *key, const uint8_t *sha256)
{
    struct catalogue *cat = ud;
    int r = cat->ix ? indexer_cached_del(cat->ix, key) : cat->db ? hashdb_cached_del(cat->db, key) : 0;
    if (r < 0)
        log_warn("hash database: the drop of %s not recorded: %s", key, strerror(-r));
    if (cat->p2p && sha256)
        p2p_unannounce(cat->p2p, sha256);
}

int catalogue_new(struct catalogue **out, struct cache *c, struct hashdb *db,
                  struct indexer *ix)
{
    struct catalogue *cat = calloc(1, sizeof *cat);
    if (!cat)
        return -ENOMEM;
    cat->cache = c;
    cat->db = db;
    cat->ix = ix;
    if (strmap_new(&cat->seen) < 0) {
        free(cat);
        return -ENOMEM;
    }
    cache_on_drop(c, on_drop, cat);
    *out = cat;
    return 0;
}

void catalogue_set_p2p(struct catalogue *cat, struct p2p *p2p)
{
    cat->p2p = p2p;
}

void catalogue_free(struct catalogue *cat)
{
    if (!cat)
        return;
    cache_on_drop(cat->cache, NULL, NULL);
    if (cat->loop)
        loop_timer_stop(cat->loop, &cat->expiry);
    strmap_free(cat->seen, free);
    free(cat);
}

/* What kind of index key is, by name or, for by-hash copies, by their directory. */
static enum index_kind kind_of(const char *key)
{
    enum index_kind k = index_kind_of(key);
    uint8_t h[32];
    if (k != INDEX_NONE || !url_by_hash_sha256(key, h))
        return k;
    if (strstr(key, "/source/by-hash/"))
        return INDEX_SOURCES;
    if (strstr(key, "/binary-"))
        return INDEX_PACKAGES;
    return INDEX_NONE;
}

/* A small Release, here and now; false when the indexer must take it (busy database). */
static bool parse_here(struct catalogue *cat, const char *key, int fd, const uint8_t *sha)
{
    struct index_opts o = {.sha256 = sha};
    struct index_stats is;
    int r = index_parse(cat->db, key, INDEX_RELEASE, fd, &o, &is);
    if (r == -EBUSY && cat->ix && lseek(fd, 0, SEEK_SET) == 0) {
        log_debug("index %s: the hash database is busy: handed to the indexer", key);
        return false;
    }
    if (r < 0)
        log_warn("index %s: rejected, nothing learnt from it: %s", key, index_strerror(r));
    else
        log_debug("index %s: %zu records", key, is.records);
    return true;
}

/* Parses (or queues the parse of) the index key that fd holds; takes fd. */
static void dispatch(struct catalogue *cat, const char *key, enum index_kind k, int fd,
                     uint64_t size, const uint8_t *sha)
{
    if (k == INDEX_RELEASE && cat->db && size <= CATALOGUE_LOOP_RELEASE_MAX &&
        !(cat->ix && indexer_queued(cat->ix, key)) && parse_here(cat, key, fd, sha)) {
        close(fd);
        return;
    }
    if (!cat->ix) {
        close(fd);
        return;
    }
    int r = indexer_submit_fd(cat->ix, key, k, fd, sha);
    if (r < 0)
        log_warn("index %s: not queued (%s): parsed at the next start", key, strerror(-r));
}

static void record_cached(struct catalogue *cat, const char *key, uint64_t size,
                          const uint8_t sha256[32])
{
    int r = cat->ix ? indexer_cached_put(cat->ix, key, size, sha256)
                    : hashdb_cached_put(cat->db, key, size, sha256);
    if (r < 0)
        log_warn("hash database: %s not recorded: %s", key, strerror(-r));
}

void catalogue_added(struct catalogue *cat, const char *key, const char *path,
                     const uint8_t sha256[32])
{
    struct stat st;
    if (cat->db && stat(path, &st) == 0)
        record_cached(cat, key, (uint64_t)st.st_size, sha256);
    if (cat->p2p && url_classify(key) == URL_IMMUTABLE)
        p2p_announce(cat->p2p, sha256);
    enum index_kind k = kind_of(key);
    if (k == INDEX_NONE || !cat->db)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        log_warn("index %s: %s", key, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    dispatch(cat, key, k, fd, (uint64_t)st.st_size, sha256);
}

/* Whether the hash index names this content as the last complete parse of key's index. */
static bool parsed_content(struct catalogue *cat, const char *key, enum index_kind k,
                           const uint8_t sha256[32])
{
    char origin[INDEX_KEY_MAX];
    struct hashdb_index ix;
    return index_origin(key, k, origin, sizeof origin) == 0 &&
           hashdb_index_get(cat->db, origin, &ix) == 0 && ix.have_sha256 &&
           memcmp(ix.sha256, sha256, 32) == 0;
}

/* A file put at key from outside (import): an entry now, to be checked before it is served. */
static bool adopt_from_disk(struct catalogue *cat, const char *key, const uint8_t sha256[32])
{
    struct stat st;
    int fd = cache_open(cat->cache, key, &st);
    if (fd < 0)
        return false;
    close(fd);
    cache_set_sha256(cat->cache, key, sha256); /* a record: cache_check hashes it first */
    log_info("cache: %s found on disk (imported): checked before it is served", key);
    return true;
}

bool catalogue_adopt(struct catalogue *cat, const char *key, const uint8_t sha256[32])
{
    char path[PATH_MAX];
    struct stat st;
    int r = cache_link_sha256(cat->cache, sha256, key);
    bool linked = r == 0;
    /* -EEXIST from link(2): a file the cache does not know is at key (an import) */
    if (r < 0 && !((r == -ENOENT || r == -EEXIST) && adopt_from_disk(cat, key, sha256)))
        return false;
    if (linked)
        log_debug("cache: %s has the content of another entry: one file for both", key);
    snprintf(path, sizeof path, "%s/%s", cache_dir(cat->cache), key);
    if (cat->db && stat(path, &st) == 0)
        record_cached(cat, key, (uint64_t)st.st_size, sha256);
    if (!linked && cat->p2p && url_classify(key) == URL_IMMUTABLE)
        p2p_announce(cat->p2p, sha256);
    enum index_kind k = kind_of(key);
    if (k == INDEX_NONE || !cat->db || parsed_content(cat, key, k, sha256))
        return true;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0)
        dispatch(cat, key, k, fd, (uint64_t)st.st_size, sha256);
    else if (fd >= 0)
        close(fd);
    return true;
}

/* ---- expiry by reference ---- */

void catalogue_index_asked(struct catalogue *cat, const char *key)
{
    char origin[INDEX_KEY_MAX];
    enum index_kind k = kind_of(key);
    int64_t now = (int64_t)time(NULL);
    if (k == INDEX_NONE || !cat->db || !cat->seen || index_origin(key, k, origin, sizeof origin) < 0)
        return;
    struct seen *sn = strmap_get(cat->seen, origin);
    if (sn && now - sn->at_s < CATALOGUE_SEEN_EVERY_S)
        return;
    if (!sn) {
        if (strmap_count(cat->seen) >= CATALOGUE_SEEN_MAX) {
            strmap_free(cat->seen, free); /* forgetting only costs a write more */
            cat->seen = NULL;
            if (strmap_new(&cat->seen) < 0)
                return;
        }
        size_t n = strlen(origin);
        if (!(sn = malloc(sizeof *sn + n + 1)))
            return;
        memcpy(sn->name, origin, n + 1);
        if (strmap_put(cat->seen, sn->name, sn, NULL) < 0) {
            free(sn);
            return;
        }
    }
    sn->at_s = now;
    int r = cat->ix ? indexer_index_seen(cat->ix, origin, now) : hashdb_index_seen(cat->db, origin, now);
    if (r < 0)
        log_debug("index %s: its sighting not recorded: %s", origin, strerror(-r));
}

/* Removes what the sweep found, where the cache still has that content under the key. */
static void remove_expired(struct catalogue *cat, struct indexer_expired *list,
                           const struct hashdb_sweep_stats *st)
{
    uint64_t before = cache_used(cat->cache);
    size_t n = 0;
    uint8_t h[32];
    for (struct indexer_expired *e = list; e; e = e->next) {
        if (!cache_has(cat->cache, e->key) ||
            (cache_sha256(cat->cache, e->key, h) && memcmp(h, e->sha256, 32) != 0))
            continue; /* gone already, or stored again since with other content */
        log_debug("expiry: %s is listed by no index seen: removed", e->key);
        if (cache_remove(cat->cache, e->key) == 0)
            n++;
    }
    uint64_t after = cache_used(cat->cache), freed = before > after ? before - after : 0;
    cat->expired_files += n;
    cat->expired_bytes += freed;
    if (n || st->indices_forgotten)
        log_info("expiry: %zu files that no index seen in %u s lists removed, %llu KiB freed; "
                 "%zu indices of suites unseen as long forgotten",
                 n, cat->keep_s, (unsigned long long)(freed >> 10), st->indices_forgotten);
}

static uint64_t expiry_period_ms(uint32_t keep_s)
{
    uint32_t p = keep_s / 8;
    return (uint64_t)(p < 1 ? 1 : p > 3600 ? 3600 : p) * 1000u;
}

static void on_expiry(struct loop *l, struct loop_timer *t, void *ud)
{
    struct catalogue *cat = ud;
    struct indexer_expired *list;
    struct hashdb_sweep_stats st;
    if (indexer_sweep_result(cat->ix, &list, &st)) {
        remove_expired(cat, list, &st);
        indexer_expired_free(list);
    }
    if (!indexer_sweeping(cat->ix) && indexer_sweep(cat->ix, cat->keep_s) < 0)
        log_debug("expiry: the sweep was not queued");
    loop_timer_start(l, t, expiry_period_ms(cat->keep_s));
}

int catalogue_set_expiry(struct catalogue *cat, struct loop *l, uint32_t keep_s)
{
    if (!cat->ix)
        return keep_s ? -EINVAL : 0; /* the sweep is the indexer's */
    if (!cat->loop) {
        cat->loop = l;
        loop_timer_init(&cat->expiry, on_expiry, cat);
    }
    cat->keep_s = keep_s;
    if (keep_s == 0) {
        loop_timer_stop(l, &cat->expiry);
        return 0;
    }
    return loop_timer_start(l, &cat->expiry, expiry_period_ms(keep_s));
}

void catalogue_expiry_stats(const struct catalogue *cat, uint64_t *files, uint64_t *bytes)
{
    *files = cat->expired_files;
    *bytes = cat->expired_bytes;
}

/* ---- start-up ---- */

/* A cached copy of an index. */
struct copy {
    char *key, *origin;
    enum index_kind kind;
    time_t mtime;
    bool have_sha;
    uint8_t sha[32];
};

struct restore_ctx {
    struct catalogue *cat;
    size_t known, announced;
    struct copy *copies;
    size_t n, cap;
    bool oom;
};

static void add_copy(struct restore_ctx *x, const char *key, enum index_kind k, const uint8_t *sha)
{
    char origin[INDEX_KEY_MAX];
    if (index_origin(key, k, origin, sizeof origin) < 0)
        return;
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        struct copy *grown = realloc(x->copies, cap * sizeof *grown);
        if (!grown) {
            x->oom = true;
            return;
        }
        x->copies = grown;
        x->cap = cap;
    }
    struct copy *c = &x->copies[x->n];
    memset(c, 0, sizeof *c);
    c->kind = k;
    if (!(c->key = strdup(key)) || !(c->origin = strdup(origin))) {
        free(c->key);
        free(c->origin);
        x->oom = true;
        return;
    }
    if ((c->have_sha = sha != NULL))
        memcpy(c->sha, sha, 32);
    x->n++;
}

static void restore_entry(void *ud, const char *key, uint64_t size, bool immutable,
                          const uint8_t *sha)
{
    struct restore_ctx *x = ud;
    uint8_t h[32];
    uint64_t sz;
    enum index_kind k = kind_of(key);
    bool known = x->cat->db && hashdb_cached_get(x->cat->db, key, &sz, h) == 0 && sz == size;
    if (k != INDEX_NONE && x->cat->db)
        add_copy(x, key, k, known ? h : sha);
    if (!known)
        return;
    cache_set_sha256(x->cat->cache, key, h);
    x->known++;
    if (x->cat->p2p && immutable) {
        p2p_announce(x->cat->p2p, h);
        x->announced++;
    }
}

/* By index, newest first. */
static int copy_cmp(const void *a, const void *b)
{
    const struct copy *x = a, *y = b;
    int c = strcmp(x->origin, y->origin);
    if (c != 0)
        return c;
    return x->mtime < y->mtime ? 1 : x->mtime > y->mtime ? -1 : 0;
}

/* Whether the database names this content as the index's last complete parse. */
static bool parsed(struct catalogue *cat, const struct copy *c)
{
    struct hashdb_index ix;
    return c->have_sha && hashdb_index_get(cat->db, c->origin, &ix) == 0 && ix.have_sha256 &&
           memcmp(ix.sha256, c->sha, 32) == 0;
}

/* Parses again the newest copy of every index whose last parse did not finish. */
static size_t reparse_unfinished(struct catalogue *cat, struct restore_ctx *x)
{
    struct stat st;
    size_t queued = 0;
    if (x->n == 0)
        return 0;
    for (size_t i = 0; i < x->n; i++) {
        int fd = cache_open(cat->cache, x->copies[i].key, &st);
        if (fd >= 0) {
            x->copies[i].mtime = st.st_mtime;
            close(fd);
        }
    }
    qsort(x->copies, x->n, sizeof *x->copies, copy_cmp);
    for (size_t i = 0; i < x->n; i++) {
        const struct copy *c = &x->copies[i];
        if ((i > 0 && strcmp(c->origin, x->copies[i - 1].origin) == 0) || parsed(cat, c))
            continue;
        int fd = cache_open(cat->cache, c->key, &st);
        if (fd < 0)
            continue;
        log_debug("index %s: its last parse did not finish: parsed again", c->key);
        dispatch(cat, c->key, c->kind, fd, (uint64_t)st.st_size, c->have_sha ? c->sha : NULL);
        queued++;
    }
    return queued;
}

void catalogue_restore(struct catalogue *cat, size_t *known, size_t *announced)
{
    struct restore_ctx x = {.cat = cat};
    cache_each(cat->cache, restore_entry, &x);
    if (x.oom)
        log_warn("index: out of memory while listing cached indices; some not parsed again");
    size_t again = cat->db ? reparse_unfinished(cat, &x) : 0;
    if (again)
        log_info("index: %zu cached indices whose parse did not finish are parsed again", again);
    for (size_t i = 0; i < x.n; i++) {
        free(x.copies[i].key);
        free(x.copies[i].origin);
    }
    free(x.copies);
    *known = x.known;
    *announced = x.announced;
}

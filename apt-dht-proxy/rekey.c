/* rekey.c - start-up move of cache entries to their backend-name keys (see rekey.h).
 *
 * The walk collects (old, new) pairs first and moves afterwards, so nftw never walks a
 * tree that is changing under it. Each move is one rename(2) of a complete file, so a
 * crash mid-way leaves a valid cache that the next start goes on moving. The hash index
 * is changed in one transaction after the files moved: a record that names no file is
 * harmless (it goes when the file would), a file without a record is hashed before it is
 * first served. */
#define _GNU_SOURCE
#include "aptdht-config.h"
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/rekey.h"
#include "apt-dht-proxy/router.h"
#include "apt-dht-proxy/url.h"

struct move {
    char *from, *to; /* keys */
};

struct walk {
    const struct router *router;
    size_t dir_len;
    struct move *moves;
    size_t n, cap;
    int err;
};

/* nftw has no user pointer; the walk runs once, before the loop and any thread start. */
static struct walk *walk_ctx;

static int add_move(struct walk *w, const char *from, const char *to)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        struct move *p = realloc(w->moves, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        w->moves = p;
        w->cap = cap;
    }
    struct move *m = &w->moves[w->n];
    m->from = strdup(from);
    m->to = strdup(to);
    if (!m->from || !m->to) {
        free(m->from);
        free(m->to);
        return -ENOMEM;
    }
    w->n++;
    return 0;
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    struct walk *w = walk_ctx;
    char to[URL_MAX_KEY];
    (void)st;
    /* only a backend's mirror host, as a top directory, holds files to move */
    if (ftw->level == 1 && flag == FTW_D && !router_is_mirror_host(w->router, path + ftw->base))
        return FTW_SKIP_SUBTREE;
    if (flag != FTW_F)
        return FTW_CONTINUE;
    if (router_rekey(w->router, path + w->dir_len + 1, to, sizeof to) == 1 &&
        (w->err = add_move(w, path + w->dir_len + 1, to)) < 0)
        return FTW_STOP;
    return FTW_CONTINUE;
}

/* mkdir -p of the directories of key under dir. */
static int make_parents(const char *dir, const char *key)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, key);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int r = mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
        *p = '/';
        if (r < 0)
            return r;
    }
    return 0;
}

/* Moves one file; true when it moved, false when a copy was already there (dropped). */
static int move_file(const char *dir, const struct move *m)
{
    char from[PATH_MAX], to[PATH_MAX];
    struct stat st;
    int a = snprintf(from, sizeof from, "%s/%s", dir, m->from);
    int b = snprintf(to, sizeof to, "%s/%s", dir, m->to);
    if (a < 0 || b < 0 || (size_t)a >= sizeof from || (size_t)b >= sizeof to)
        return -ENAMETOOLONG;
    if (stat(to, &st) == 0)
        return unlink(from) < 0 ? -errno : 0;
    int r = make_parents(dir, m->to);
    if (r < 0)
        return r;
    return rename(from, to) < 0 ? -errno : 1;
}

/* The records follow the files: cached rows move, an index's old entries go. */
static int move_records(const struct config *cfg, const struct move *moves, size_t n)
{
    char path[PATH_MAX], origin[INDEX_KEY_MAX];
    struct hashdb *db = NULL;
    snprintf(path, sizeof path, "%s/hashes.db", cfg->state_dir);
    if (access(path, F_OK) < 0)
        return 0; /* no hash index yet: nothing recorded */
    int r = hashdb_open_writer(&db, path);
    if (r < 0 || (r = hashdb_begin(db)) < 0)
        goto done;
    for (size_t i = 0; r >= 0 && i < n; i++) {
        r = hashdb_cached_move(db, moves[i].from, moves[i].to);
        if (r == 0 && index_origin(moves[i].from, INDEX_NONE, origin, sizeof origin) == 0)
            r = hashdb_forget_origin(db, origin);
    }
    r = r < 0 ? r : hashdb_commit(db);
    if (r < 0)
        hashdb_rollback(db);
    else
        hashdb_checkpoint(db);
done:
    hashdb_free(db);
    return r < 0 ? r : 0;
}

/* Directories the moves emptied go (rmdir fails on the others, which stay). */
static int prune(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_DP && ftw->level > 0 && strcmp(path + ftw->base, ".tmp") != 0)
        rmdir(path);
    return FTW_CONTINUE;
}

static long move_all(const struct config *cfg, struct walk *w)
{
    long done = 0, moved = 0;
    int r = 0;
    for (size_t i = 0; i < w->n && r >= 0; i++) {
        r = move_file(cfg->cache_dir, &w->moves[i]);
        if (r >= 0) {
            done++;
            moved += r;
        } else {
            log_warn("cache: cannot move %s to %s: %s", w->moves[i].from, w->moves[i].to,
                     strerror(-r));
        }
    }
    int rr = move_records(cfg, w->moves, (size_t)done);
    if (rr < 0)
        log_warn("cache: the hash index did not follow the moved files (%s): they are "
                 "hashed again before they are served", strerror(-rr));
    nftw(cfg->cache_dir, prune, 32, FTW_PHYS | FTW_DEPTH | FTW_ACTIONRETVAL);
    log_info("cache: %ld files moved to their backend's name, %ld older copies dropped", moved,
             done - moved);
    return r < 0 ? r : done;
}

long rekey_cache(const struct config *cfg)
{
    struct router *router = NULL;
    struct walk w = {.dir_len = strlen(cfg->cache_dir)};
    struct stat st;
    long r = 0;
    if (cfg->n_backends == 0 || stat(cfg->cache_dir, &st) < 0)
        return 0; /* no backends, or no cache yet: nothing to move */
    if ((r = router_new(&router, cfg, cfg->listen_port)) < 0)
        return r;
    w.router = router;
    walk_ctx = &w;
    if (nftw(cfg->cache_dir, visit, 32, FTW_PHYS | FTW_ACTIONRETVAL) < 0 && !w.err)
        w.err = -errno;
    walk_ctx = NULL;
    r = w.err < 0 ? w.err : w.n ? move_all(cfg, &w) : 0;
    for (size_t i = 0; i < w.n; i++) {
        free(w.moves[i].from);
        free(w.moves[i].to);
    }
    free(w.moves);
    router_free(router);
    return r;
}

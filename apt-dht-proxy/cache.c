/* cache.c - entries on disk under their keys, an in-memory index for size and LRU.
 *
 * Invariant: every file under DIR except DIR/.tmp/ is complete. Only cache_commit
 * creates such files, and only by rename(2) of a finished temp file, which is atomic on
 * one file system; so a crash can leave debris only in DIR/.tmp/, which cache_scan
 * empties. The index (key -> size, LRU links) is rebuilt from the directory at start. */
#define _GNU_SOURCE
#include "aptdht-config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"

struct entry {
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t size;             /* bytes */
    int64_t last_use;          /* seconds (wall clock); orders the initial scan */
    bool immutable;
    bool have_sha256;
    uint8_t sha256[32];
    char sha_hex[65]; /* key of by_sha when have_sha256 */
    char key[];
};

/* One content, possibly under several keys (a .deb through two mirror names, an index by
 * name and by hash): served from any of them, unannounced when the last one goes. */
struct sha_ref {
    struct entry *e; /* one entry with this content */
    unsigned n;      /* how many entries have it */
    char hex[65];
};

struct cache {
    char *dir;
    uint64_t max_size; /* bytes */
    uint64_t used;     /* bytes in entries */
    struct strmap *map; /* key -> struct entry */
    struct strmap *by_sha; /* hex SHA-256 -> struct sha_ref (entries whose hash is known) */
    void (*on_drop)(void *ud, const char *key, const uint8_t *sha256);
    void *drop_ud;
    struct entry *head, *tail;
    unsigned tmp_seq;
    uint64_t evictions;
};

int cache_new(struct cache **out, const char *dir, uint64_t max_size)
{
    char tmp[PATH_MAX];
    struct cache *c = calloc(1, sizeof *c);
    int r = -ENOMEM;
    if (!c || !(c->dir = strdup(dir)) || strmap_new(&c->map) < 0 || strmap_new(&c->by_sha) < 0)
        goto fail;
    c->max_size = max_size;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        r = -errno;
        goto fail;
    }
    snprintf(tmp, sizeof tmp, "%s/.tmp", dir);
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    cache_free(c);
    return r;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    strmap_free(c->by_sha, free);
    strmap_free(c->map, free);
    free(c->dir);
    free(c);
}

const char *cache_dir(const struct cache *c)
{
    return c->dir;
}

uint64_t cache_used(const struct cache *c)
{
    return c->used;
}

uint64_t cache_max_size(const struct cache *c)
{
    return c->max_size;
}

uint64_t cache_evictions(const struct cache *c)
{
    return c->evictions;
}

size_t cache_count(const struct cache *c)
{
    return strmap_count(c->map);
}

void cache_set_max_size(struct cache *c, uint64_t max_size)
{
    c->max_size = max_size;
    cache_make_room(c, 0);
}

static void lru_unlink(struct cache *c, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(struct cache *c, struct entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

struct find_ctx {
    const struct entry *gone;
    struct entry *found;
};

static void find_same(const char *key, void *value, void *ud)
{
    struct find_ctx *x = ud;
    struct entry *e = value;
    if (!x->found && e != x->gone && e->have_sha256 && strcmp(e->sha_hex, x->gone->sha_hex) == 0)
        x->found = e;
}

/* Drops e's hold on its content; true if it was the last entry with that content. */
static bool sha_unref(struct cache *c, struct entry *e)
{
    struct sha_ref *ref = e->have_sha256 ? strmap_get(c->by_sha, e->sha_hex) : NULL;
    e->have_sha256 = false;
    if (!ref)
        return false;
    if (--ref->n == 0) {
        strmap_del(c->by_sha, ref->hex);
        free(ref);
        return true;
    }
    if (ref->e == e) { /* another entry has it: find it (rare, so a scan is fine) */
        struct find_ctx x = {e, NULL};
        strmap_each(c->map, find_same, &x);
        ref->e = x.found;
    }
    return false;
}

static void drop_entry(struct cache *c, struct entry *e)
{
    lru_unlink(c, e);
    strmap_del(c->map, e->key);
    bool had = e->have_sha256;
    bool last = sha_unref(c, e);
    c->used -= e->size;
    if (c->on_drop) /* the hash only when no other entry still holds that content */
        c->on_drop(c->drop_ud, e->key, had && last ? e->sha256 : NULL);
    free(e);
}

static void set_sha(struct cache *c, struct entry *e, const uint8_t sha256[32])
{
    char hex[65];
    hex_encode(sha256, 32, hex);
    if (e->have_sha256 && strcmp(hex, e->sha_hex) == 0)
        return;
    sha_unref(c, e);
    memcpy(e->sha256, sha256, 32);
    memcpy(e->sha_hex, hex, sizeof hex);
    struct sha_ref *ref = strmap_get(c->by_sha, hex);
    if (!ref) {
        if (!(ref = calloc(1, sizeof *ref)))
            return;
        memcpy(ref->hex, hex, sizeof hex);
        ref->e = e;
        if (strmap_put(c->by_sha, ref->hex, ref, NULL) < 0) {
            free(ref);
            return;
        }
    }
    ref->n++;
    if (!ref->e)
        ref->e = e;
    e->have_sha256 = true;
}

void cache_set_sha256(struct cache *c, const char *key, const uint8_t sha256[32])
{
    struct entry *e = strmap_get(c->map, key);
    if (e)
        set_sha(c, e, sha256);
}

void cache_on_drop(struct cache *c, void (*fn)(void *ud, const char *key, const uint8_t *sha256),
                   void *ud)
{
    c->on_drop = fn;
    c->drop_ud = ud;
}

struct each_ctx {
    void (*fn)(void *ud, const char *key, uint64_t size, bool immutable, const uint8_t *sha256);
    void *ud;
};

static void each_one(const char *key, void *value, void *ud)
{
    struct each_ctx *x = ud;
    struct entry *e = value;
    x->fn(x->ud, e->key, e->size, e->immutable, e->have_sha256 ? e->sha256 : NULL);
}

void cache_each(struct cache *c,
                void (*fn)(void *ud, const char *key, uint64_t size, bool immutable,
                           const uint8_t *sha256),
                void *ud)
{
    struct each_ctx x = {fn, ud};
    strmap_each(c->map, each_one, &x);
}

static int add_entry(struct cache *c, const char *key, uint64_t size, bool immutable,
                     int64_t last_use)
{
    struct entry *old = strmap_get(c->map, key);
    if (old)
        drop_entry(c, old);
    size_t kl = strlen(key);
    struct entry *e = calloc(1, sizeof *e + kl + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->key, key, kl + 1);
    e->size = size;
    e->immutable = immutable;
    e->last_use = last_use;
    if (strmap_put(c->map, e->key, e, NULL) < 0) {
        free(e);
        return -ENOMEM;
    }
    lru_push_front(c, e);
    c->used += size;
    return 0;
}

static int key_path(const struct cache *c, const char *key, char *out, size_t n)
{
    int w = snprintf(out, n, "%s/%s", c->dir, key);
    return (w < 0 || (size_t)w >= n) ? -ENAMETOOLONG : 0;
}

int cache_make_room(struct cache *c, uint64_t bytes)
{
    if (bytes > c->max_size)
        return -ENOSPC;
    struct entry *e = c->tail;
    while (e && c->used + bytes > c->max_size) {
        struct entry *prev = e->prev;
        if (e->immutable) {
            char path[PATH_MAX];
            if (key_path(c, e->key, path, sizeof path) == 0)
                unlink(path);
            log_debug("cache: evicted %s (%llu bytes)", e->key, (unsigned long long)e->size);
            drop_entry(c, e);
            c->evictions++;
        }
        e = prev;
    }
    return c->used + bytes > c->max_size ? -ENOSPC : 0;
}

int cache_open(struct cache *c, const char *key, struct stat *st)
{
    char path[PATH_MAX];
    if (key_path(c, key, path, sizeof path) < 0)
        return -ENOENT;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct entry *e = strmap_get(c->map, key);
    if (fd < 0) {
        int err = errno;
        if (e && err == ENOENT)
            drop_entry(c, e); /* removed behind our back */
        return err == ENOENT ? -ENOENT : -err; /* EMFILE and the like keep the entry */
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -ENOENT;
    }
    if (!e) {
        add_entry(c, key, (uint64_t)st->st_size, url_classify(key) == URL_IMMUTABLE,
                  (int64_t)time(NULL));
    } else {
        lru_unlink(c, e);
        lru_push_front(c, e);
        e->last_use = (int64_t)time(NULL);
    }
    return fd;
}

int cache_tmp_create(struct cache *c, char *path, size_t pathlen)
{
    int w = snprintf(path, pathlen, "%s/.tmp/dl-%u-XXXXXX", c->dir, ++c->tmp_seq);
    if (w < 0 || (size_t)w >= pathlen)
        return -ENAMETOOLONG;
    int fd = mkostemp(path, O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* mkdir -p for the directories of key under the cache dir. */
static int make_parents(const struct cache *c, const char *key)
{
    char path[PATH_MAX];
    if (key_path(c, key, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    size_t base = strlen(c->dir) + 1;
    for (char *p = path + base; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            int e = -errno;
            *p = '/';
            return e;
        }
        *p = '/';
    }
    return 0;
}

int cache_commit(struct cache *c, const char *tmp_path, const char *key, time_t mtime,
                 bool immutable, const uint8_t *sha256)
{
    char path[PATH_MAX];
    struct stat st;
    int r = key_path(c, key, path, sizeof path);
    if (r < 0 || (r = make_parents(c, key)) < 0)
        goto fail;
    if (stat(tmp_path, &st) < 0) {
        r = -errno;
        goto fail;
    }
    if (mtime > 0) {
        struct timespec ts[2] = {{.tv_nsec = UTIME_NOW}, {.tv_sec = mtime}};
        utimensat(AT_FDCWD, tmp_path, ts, 0);
    }
    if (rename(tmp_path, path) < 0) {
        r = -errno;
        goto fail;
    }
    r = add_entry(c, key, (uint64_t)st.st_size, immutable, (int64_t)time(NULL));
    struct entry *e = strmap_get(c->map, key);
    if (e && sha256)
        set_sha(c, e, sha256);
    cache_make_room(c, 0);
    return r;
fail:
    unlink(tmp_path);
    return r;
}

bool cache_has(const struct cache *c, const char *key)
{
    return strmap_get(c->map, key) != NULL;
}

bool cache_sha256(const struct cache *c, const char *key, uint8_t out[32])
{
    struct entry *e = strmap_get(c->map, key);
    if (!e || !e->have_sha256)
        return false;
    memcpy(out, e->sha256, 32);
    return true;
}

int cache_open_sha256(struct cache *c, const uint8_t sha256[32], struct stat *st, char *key_out,
                      size_t keylen)
{
    char hex[65];
    hex_encode(sha256, 32, hex);
    struct sha_ref *ref = strmap_get(c->by_sha, hex);
    struct entry *e = ref ? ref->e : NULL;
    if (!e)
        return -ENOENT;
    if (key_out)
        snprintf(key_out, keylen, "%s", e->key);
    char key[URL_MAX_KEY];
    snprintf(key, sizeof key, "%s", e->key); /* cache_open may drop e */
    return cache_open(c, key, st);
}

int cache_remove(struct cache *c, const char *key)
{
    char path[PATH_MAX];
    struct entry *e = strmap_get(c->map, key);
    if (e)
        drop_entry(c, e);
    if (key_path(c, key, path, sizeof path) < 0)
        return -ENOENT;
    return unlink(path) < 0 ? -errno : 0;
}

/* ---- start-up scan ---- */

struct scan_item {
    char *key;
    uint64_t size;
    int64_t atime;
};

struct scan_state {
    struct scan_item *items;
    size_t n, cap;
    size_t dir_len;
    int err;
};

/* nftw has no user pointer; the scan runs once, on one thread, before the loop starts. */
static struct scan_state *scan_ctx;

static int scan_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    struct scan_state *s = scan_ctx;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    const char *key = path + s->dir_len + 1;
    struct url_target t;
    char probe[URL_MAX_TARGET];
    /* Only names that url_parse would produce are entries; anything else is left alone. */
    if (snprintf(probe, sizeof probe, "/%s", key) >= (int)sizeof probe ||
        url_parse(probe, &t) != 0 || t.form != URL_ORIGIN)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct scan_item *p = realloc(s->items, cap * sizeof *p);
        if (!p) {
            s->err = -ENOMEM;
            return 1;
        }
        s->items = p;
        s->cap = cap;
    }
    s->items[s->n].key = strdup(key);
    if (!s->items[s->n].key) {
        s->err = -ENOMEM;
        return 1;
    }
    s->items[s->n].size = (uint64_t)st->st_size;
    s->items[s->n].atime = (int64_t)st->st_atime;
    s->n++;
    return 0;
}

static int by_atime(const void *a, const void *b)
{
    const struct scan_item *x = a, *y = b;
    return (x->atime > y->atime) - (x->atime < y->atime);
}

static int empty_tmp(struct cache *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.tmp", c->dir);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    int removed = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        log_info("cache: removed %d unfinished download(s) left from a previous run", removed);
    return 0;
}

long cache_scan(struct cache *c)
{
    struct scan_state s = {.dir_len = strlen(c->dir)};
    long r = empty_tmp(c);
    if (r < 0)
        return r;
    scan_ctx = &s;
    if (nftw(c->dir, scan_visit, 32, FTW_PHYS) < 0 && !s.err)
        s.err = -errno;
    scan_ctx = NULL;
    if (s.n) /* oldest first, so the newest ends at the head */
        qsort(s.items, s.n, sizeof *s.items, by_atime);
    for (size_t i = 0; i < s.n; i++) {
        if (!s.err)
            s.err = add_entry(c, s.items[i].key, s.items[i].size,
                              url_classify(s.items[i].key) == URL_IMMUTABLE, s.items[i].atime);
        free(s.items[i].key);
    }
    free(s.items);
    if (s.err)
        return s.err;
    cache_make_room(c, 0);
    return (long)strmap_count(c->map);
}

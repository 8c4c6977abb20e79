/* cache.c - entries on disk under their keys, an in-memory index for size and LRU.
 *
 * Invariant: every file under DIR except DIR/.tmp/ is complete. Only cache_commit
 * creates such files, and only by rename(2) of a finished temp file, which is atomic on
 * one file system; so a crash can leave debris only in DIR/.tmp/, which cache_scan
 * empties. The index (key -> size, LRU links) is rebuilt from the directory at start.
 *
 * Complete is not the same as intact: a disk flips bits, a file may have been stored
 * before the index knew its size, an administrator may copy files in. So an entry is
 * checked before it is served (cache_check): its size on disk against the one recorded
 * and the one the index gives, and its SHA-256 once per run, for entries whose bytes
 * this process has not hashed itself (those found by the start-up scan). The hash is
 * computed on the hasher's thread (hasher.h) while the request waits; an entry that
 * fails is dropped, so the next decision fetches it again.
 *
 * Downloads in progress reserve room as their bytes arrive (cache_reserve): eviction
 * happens for bytes that exist, never for what a response header announced.
 *
 * One content is stored once: a key that misses but whose content (SHA-256) is under
 * another key gets a hard link to that file (cache_link_sha256), so by-name and by-hash
 * copies of an index, or one .deb under two backends, are one file. The size accounting
 * counts each file (device and inode) once, however many keys name it: room is freed
 * when its last key goes. */
#define _GNU_SOURCE
#include "aptdht-config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/hasher.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"

struct entry {
    struct entry *prev, *next; /* LRU list: head is the most recently used */
    uint64_t size;             /* bytes */
    int64_t last_use;          /* seconds (wall clock); orders the initial scan */
    bool immutable;
    bool have_sha256;
    bool hashed; /* sha256 was computed from these bytes by this process (commit, check) */
    uint8_t sha256[32];
    char sha_hex[65];      /* key of by_sha when have_sha256 */
    struct check_job *job; /* its hash is being computed; NULL = none */
    int64_t unchecked_until; /* seconds (wall clock): no new check before (it failed) */
    char ino[40];            /* "DEV:INO" of its file, the key of by_ino */
    unsigned held;           /* 1 + its slot in cache.held while its file is held open */
    char key[];
};

/* Files of entries served lately, kept open: a hit takes a duplicate of the descriptor
 * (fstat and dup) instead of opening its path again. Slots are reused in turn. */
#define CACHE_HELD_MAX 64
struct held {
    struct entry *e; /* NULL = free */
    int fd;
};

/* One hash of an entry's file under way on the hasher's thread, and who waits for it. */
struct check_job {
    struct cache *c;
    struct entry *e; /* NULL once the entry left the cache: the result is dropped */
    struct cache_wait *waiters;
    struct check_job *prev, *next; /* the cache's jobs, freed with it */
};

struct cache_wait {
    struct check_job *job;
    void (*done)(void *ud);
    void *ud;
    struct cache_wait *next;
};

/* One content, possibly under several keys (a .deb through two mirror names, an index by
 * name and by hash): served from any of them, unannounced when the last one goes. */
struct sha_ref {
    struct entry *e; /* one entry with this content */
    unsigned n;      /* how many entries have it */
    char hex[65];
};

/* One file on disk and how many entries name it (hard links made by cache_link_sha256). */
struct ino_ref {
    unsigned n;
    char name[40];
};

struct cache {
    char *dir;
    uint64_t max_size; /* bytes */
    uint64_t used;     /* bytes in entries */
    struct strmap *map; /* key -> struct entry */
    struct strmap *by_sha; /* hex SHA-256 -> struct sha_ref (entries whose hash is known) */
    struct strmap *by_ino; /* "DEV:INO" -> struct ino_ref: keys that name one file */
    void (*on_drop)(void *ud, const char *key, const uint8_t *sha256);
    void *drop_ud;
    struct entry *head, *tail;
    unsigned tmp_seq;
    uint64_t reserved;       /* bytes held by downloads in progress (cache_reserve) */
    struct hasher *hasher;   /* NULL: checks hash on the caller's thread */
    struct check_job *jobs;  /* in progress */
    uint64_t evictions;
    struct held held[CACHE_HELD_MAX];
    unsigned n_held;         /* slots in use: a sixteenth of the open-file limit, at most */
    unsigned held_next;      /* the slot the next file held takes */
};

int cache_new(struct cache **out, const char *dir, uint64_t max_size)
{
    char tmp[PATH_MAX];
    struct cache *c = calloc(1, sizeof *c);
    int r = -ENOMEM;
    if (!c || !(c->dir = strdup(dir)) || strmap_new(&c->map) < 0 || strmap_new(&c->by_sha) < 0 ||
        strmap_new(&c->by_ino) < 0)
        goto fail;
    c->max_size = max_size;
    struct rlimit rl;
    rlim_t room = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 16 : 0;
    c->n_held = room < CACHE_HELD_MAX ? (unsigned)room : CACHE_HELD_MAX;
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

static void job_free(struct cache *c, struct check_job *j);

void cache_free(struct cache *c)
{
    if (!c)
        return;
    hasher_free(c->hasher); /* no result is delivered any more */
    while (c->jobs)
        job_free(c, c->jobs);
    for (unsigned i = 0; i < c->n_held; i++)
        if (c->held[i].e)
            close(c->held[i].fd);
    strmap_free(c->by_sha, free);
    strmap_free(c->by_ino, free);
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

/* Drops one name of a file; true if it was the last (its bytes leave the disk). */
static bool ino_unref(struct cache *c, const char *ino)
{
    struct ino_ref *ref = strmap_get(c->by_ino, ino);
    if (!ref || --ref->n > 0)
        return ref == NULL;
    strmap_del(c->by_ino, ref->name);
    free(ref);
    return true;
}

/* One more name of a file; true if it is the first (its bytes count). Without memory for
 * the record the file counts on its own (as it would without links). */
static bool ino_ref(struct cache *c, const char *ino)
{
    struct ino_ref *ref = strmap_get(c->by_ino, ino);
    if (ref) {
        ref->n++;
        return false;
    }
    if (!(ref = calloc(1, sizeof *ref)))
        return true;
    ref->n = 1;
    snprintf(ref->name, sizeof ref->name, "%s", ino);
    if (strmap_put(c->by_ino, ref->name, ref, NULL) < 0)
        free(ref);
    return true;
}

static void unhold(struct cache *c, struct entry *e)
{
    if (!e->held)
        return;
    struct held *h = &c->held[e->held - 1];
    close(h->fd);
    *h = (struct held){.e = NULL, .fd = -1};
    e->held = 0;
}

/* Keeps a duplicate of fd, e's file just opened, in the next slot. */
static void hold(struct cache *c, struct entry *e, int fd)
{
    if (c->n_held == 0 || e->held)
        return;
    unsigned i = c->held_next;
    c->held_next = (i + 1) % c->n_held;
    if (c->held[i].e)
        unhold(c, c->held[i].e);
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return;
    c->held[i] = (struct held){.e = e, .fd = d};
    e->held = i + 1;
}

static void drop_entry(struct cache *c, struct entry *e)
{
    unhold(c, e);
    if (e->job)
        e->job->e = NULL;
    lru_unlink(c, e);
    strmap_del(c->map, e->key);
    bool had = e->have_sha256;
    bool last = sha_unref(c, e);
    if (ino_unref(c, e->ino))
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
    if (!e)
        return;
    if (e->have_sha256 && memcmp(e->sha256, sha256, 32) != 0)
        e->hashed = false; /* a record, not what was computed: to be checked again */
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

static void ino_name(const struct stat *st, char *out, size_t n)
{
    snprintf(out, n, "%llx:%llx", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

/* st is the file's stat (its size, device and inode). */
static int add_entry(struct cache *c, const char *key, const struct stat *st, bool immutable,
                     int64_t last_use)
{
    uint64_t size = (uint64_t)st->st_size;
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
    ino_name(st, e->ino, sizeof e->ino);
    if (ino_ref(c, e->ino))
        c->used += size;
    return 0;
}

static int key_path(const struct cache *c, const char *key, char *out, size_t n)
{
    int w = snprintf(out, n, "%s/%s", c->dir, key);
    return (w < 0 || (size_t)w >= n) ? -ENAMETOOLONG : 0;
}

/* The entry's file goes, and the entry with it. */
static void remove_entry(struct cache *c, struct entry *e)
{
    char path[PATH_MAX];
    if (key_path(c, e->key, path, sizeof path) == 0)
        unlink(path);
    drop_entry(c, e);
}

int cache_make_room(struct cache *c, uint64_t bytes)
{
    if (bytes > c->max_size || c->reserved > c->max_size - bytes)
        return -ENOSPC;
    uint64_t room = c->max_size - bytes - c->reserved; /* what entries may use */
    struct entry *e = c->tail;
    while (e && c->used > room) {
        struct entry *prev = e->prev;
        if (e->immutable) {
            log_debug("cache: evicted %s (%llu bytes)", e->key, (unsigned long long)e->size);
            remove_entry(c, e);
            c->evictions++;
        }
        e = prev;
    }
    return c->used > room ? -ENOSPC : 0;
}

int cache_reserve(struct cache *c, uint64_t bytes)
{
    int r = cache_make_room(c, bytes);
    if (r == 0)
        c->reserved += bytes;
    return r;
}

void cache_release(struct cache *c, uint64_t bytes)
{
    c->reserved -= bytes < c->reserved ? bytes : c->reserved;
}

uint64_t cache_reserved(const struct cache *c)
{
    return c->reserved;
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
        add_entry(c, key, st, url_classify(key) == URL_IMMUTABLE, (int64_t)time(NULL));
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
    r = add_entry(c, key, &st, immutable, (int64_t)time(NULL));
    struct entry *e = strmap_get(c->map, key);
    if (e && sha256) {
        set_sha(c, e, sha256);
        e->hashed = true; /* computed from the bytes as they arrived */
    }
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

bool cache_hashed(const struct cache *c, const char *key)
{
    struct entry *e = strmap_get(c->map, key);
    return e && e->hashed;
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
    char key[URL_MAX_KEY];
    snprintf(key, sizeof key, "%s", e->key); /* cache_open and cache_check may drop e */
    /* a peer gets only bytes this process has hashed: anything else is checked first */
    int r = cache_check(c, key, NULL, NULL, NULL, NULL);
    if (r < 0)
        return r == -EINPROGRESS ? -EAGAIN : r;
    if (!strmap_get(c->by_sha, hex)) /* the check dropped it */
        return -ENOENT;
    if (key_out)
        snprintf(key_out, keylen, "%s", key);
    return cache_open(c, key, st);
}

bool cache_has_sha256(const struct cache *c, const uint8_t sha256[32])
{
    char hex[65];
    hex_encode(sha256, 32, hex);
    const struct sha_ref *ref = strmap_get(c->by_sha, hex);
    return ref && ref->e;
}

int cache_link_sha256(struct cache *c, const uint8_t sha256[32], const char *key)
{
    char hex[65], from[PATH_MAX], to[PATH_MAX];
    struct stat st;
    hex_encode(sha256, 32, hex);
    struct sha_ref *ref = strmap_get(c->by_sha, hex);
    struct entry *src = ref ? ref->e : NULL;
    if (!src)
        return -ENOENT;
    if (strmap_get(c->map, key))
        return -EEXIST;
    int r = key_path(c, src->key, from, sizeof from);
    if (r < 0 || (r = key_path(c, key, to, sizeof to)) < 0 || (r = make_parents(c, key)) < 0)
        return r;
    if (link(from, to) < 0)
        return -errno; /* EEXIST: a file the cache does not know is in the way */
    if (stat(to, &st) < 0 || (uint64_t)st.st_size != src->size) {
        unlink(to); /* the source changed behind our back: not the content we meant */
        return -ENOENT;
    }
    bool hashed = src->hashed;
    if ((r = add_entry(c, key, &st, url_classify(key) == URL_IMMUTABLE, (int64_t)time(NULL))) < 0) {
        unlink(to);
        return r;
    }
    struct entry *e = strmap_get(c->map, key);
    set_sha(c, e, sha256);
    e->hashed = hashed; /* the same bytes: hashed if the source's were */
    return 0;
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

/* ---- checks before an entry is served ---- */

#define CHECK_RETRY_S 60 /* after a check could not run (EMFILE...), serve unchecked this long */

static void unhash_same_file(const char *key, void *value, void *ud)
{
    struct entry *e = value, *bad = ud;
    (void)key;
    if (e != bad && strcmp(e->ino, bad->ino) == 0)
        e->hashed = false;
}

/* An entry that is not what it should be: logged, removed, to be fetched again. The
 * other names of its file (links) are hashed again before they are next served. */
static void damaged(struct cache *c, struct entry *e, const char *why)
{
    struct ino_ref *ref = strmap_get(c->by_ino, e->ino);
    log_warn("cache: %s %s; dropped, it will be fetched again", e->key, why);
    if (ref && ref->n > 1)
        strmap_each(c->map, unhash_same_file, e);
    remove_entry(c, e);
}

/* The same with "has A bytes, B" in the reason. */
static void wrong_size(struct cache *c, struct entry *e, uint64_t a, const char *b_what,
                       uint64_t b)
{
    char why[160];
    snprintf(why, sizeof why, "has %llu bytes, %s %llu", (unsigned long long)a, b_what,
             (unsigned long long)b);
    damaged(c, e, why);
}

/* What the hash of e's file says: it is intact (and now hashed), or it is dropped. */
static void apply_hash(struct cache *c, struct entry *e, int err, uint64_t size,
                       const uint8_t sha256[32])
{
    if (err == -ENOENT) {
        drop_entry(c, e); /* removed behind our back */
        return;
    }
    if (err == -EIO) {
        damaged(c, e, "cannot be read (I/O error)");
        return;
    }
    if (err < 0) { /* EMFILE and such: not the file's fault */
        log_warn("cache: cannot check %s: %s; served unchecked for %d s", e->key,
                 strerror(-err), CHECK_RETRY_S);
        e->unchecked_until = (int64_t)time(NULL) + CHECK_RETRY_S;
        return;
    }
    if (size != e->size) {
        wrong_size(c, e, size, "not the", e->size);
        return;
    }
    if (e->have_sha256 && memcmp(e->sha256, sha256, 32) != 0) {
        damaged(c, e, "no longer has the SHA-256 it was stored with");
        return;
    }
    set_sha(c, e, sha256);
    e->hashed = true;
}

static void job_free(struct cache *c, struct check_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        c->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (j->e)
        j->e->job = NULL;
    while (j->waiters) {
        struct cache_wait *w = j->waiters;
        j->waiters = w->next;
        free(w);
    }
    free(j);
}

static void on_hashed(void *ud, const struct hasher_result *r)
{
    struct cache *c = ud;
    struct check_job *j = r->tag;
    struct entry *e = j->e;
    if (e) {
        e->job = NULL;
        j->e = NULL;
        apply_hash(c, e, r->err, r->size, r->sha256);
    }
    /* each waiter is told once and its handle freed; it asks cache_check again */
    for (struct cache_wait *w = j->waiters, *next; w; w = next) {
        next = w->next;
        j->waiters = next;
        w->done(w->ud);
        free(w);
    }
    job_free(c, j);
}

int cache_start_checker(struct cache *c, struct loop *l)
{
    if (c->hasher)
        return 0;
    return hasher_new(&c->hasher, l, on_hashed, c);
}

unsigned cache_checks_pending(const struct cache *c)
{
    return c->hasher ? hasher_pending(c->hasher) : 0;
}

/* Starts the hash of e (or joins the one under way) with a waiter if done is given. */
static int start_hash(struct cache *c, struct entry *e, void (*done)(void *ud), void *ud,
                      struct cache_wait **wp)
{
    char path[PATH_MAX];
    struct check_job *j = e->job;
    struct cache_wait *w = NULL;
    if (!j) {
        if (key_path(c, e->key, path, sizeof path) < 0 || !(j = calloc(1, sizeof *j)))
            return -ENOMEM;
        if (hasher_submit(c->hasher, path, j) < 0) {
            free(j);
            return -ENOMEM;
        }
        j->c = c;
        j->e = e;
        j->next = c->jobs;
        if (c->jobs)
            c->jobs->prev = j;
        c->jobs = j;
        e->job = j;
        log_debug("cache: checking the SHA-256 of %s", e->key);
    }
    if (done) {
        if (!(w = calloc(1, sizeof *w)))
            return -ENOMEM; /* the job goes on; this caller cannot wait for it */
        *w = (struct cache_wait){j, done, ud, j->waiters};
        j->waiters = w;
    }
    if (wp)
        *wp = w;
    return -EINPROGRESS;
}

/* Hashes e on this thread (no checker thread): it ends hashed or dropped. */
static void hash_now(struct cache *c, struct entry *e)
{
    char path[PATH_MAX];
    uint8_t h[32];
    uint64_t size = 0;
    int err = key_path(c, e->key, path, sizeof path) < 0 ? -ENAMETOOLONG
                                                        : hasher_file(path, &size, h);
    apply_hash(c, e, err, size, h);
}

/* The checks of entry e, found under key, whose file, as it is now, has stat st. */
static int check_entry(struct cache *c, const char *key, struct entry *e, const struct stat *st,
                       const struct hashdb_entry *expect, void (*done)(void *ud), void *ud,
                       struct cache_wait **w)
{
    if ((uint64_t)st->st_size != e->size) {
        wrong_size(c, e, (uint64_t)st->st_size, "not the stored", e->size);
        return -ENOENT;
    }
    /* The index's word binds immutable files only: a volatile file that differs from
     * the index is outdated, not damaged, and the policy fetches the listed one. */
    const struct hashdb_entry *x = e->immutable ? expect : NULL;
    if (x && x->size != UINT64_MAX && x->size != e->size) {
        wrong_size(c, e, e->size, "the index says", x->size);
        return -ENOENT;
    }
    if (!e->hashed && (e->have_sha256 || (x && x->have_sha256)) &&
        e->unchecked_until <= (int64_t)time(NULL)) {
        if (c->hasher)
            return start_hash(c, e, done, ud, w);
        char k[PATH_MAX]; /* key may be e->key itself, which hashing may free */
        if (snprintf(k, sizeof k, "%s", key) >= (int)sizeof k)
            return -ENAMETOOLONG;
        hash_now(c, e);
        if (!(e = strmap_get(c->map, k)))
            return -ENOENT;
    }
    if (x && x->have_sha256 && e->hashed && memcmp(e->sha256, x->sha256, 32) != 0) {
        damaged(c, e, "does not have the SHA-256 the index gives");
        return -ENOENT;
    }
    return 0;
}

int cache_check(struct cache *c, const char *key, const struct hashdb_entry *expect,
                void (*done)(void *ud), void *ud, struct cache_wait **w)
{
    char path[PATH_MAX];
    struct stat st;
    struct entry *e = strmap_get(c->map, key);
    if (w)
        *w = NULL;
    if (!e || key_path(c, key, path, sizeof path) < 0)
        return -ENOENT;
    if (stat(path, &st) < 0) {
        if (errno != ENOENT)
            return -errno;
        drop_entry(c, e); /* removed behind our back */
        return -ENOENT;
    }
    return check_entry(c, key, e, &st, expect, done, ud, w);
}

/* e's file for serving: a duplicate of the one held open while it is still e's (not
 * unlinked: removed or replaced behind the cache's back), else opened by its path (which
 * forgets an entry whose file has gone) and then held. */
static int open_served(struct cache *c, struct entry *e, struct stat *st)
{
    if (e->held) {
        int fd = c->held[e->held - 1].fd;
        if (fstat(fd, st) == 0 && st->st_nlink > 0) {
            if ((fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
                return -errno;
            lru_unlink(c, e);
            lru_push_front(c, e);
            e->last_use = (int64_t)time(NULL);
            return fd;
        }
        unhold(c, e);
    }
    char key[PATH_MAX];
    snprintf(key, sizeof key, "%s", e->key);
    int fd = cache_open(c, key, st);
    if (fd >= 0 && (e = strmap_get(c->map, key)) != NULL)
        hold(c, e, fd);
    return fd;
}

int cache_check_open(struct cache *c, const char *key, const struct hashdb_entry *expect,
                     void (*done)(void *ud), void *ud, struct cache_wait **w, struct stat *st)
{
    if (w)
        *w = NULL;
    struct entry *e = strmap_get(c->map, key);
    if (!e)
        return -ENOENT;
    int fd = open_served(c, e, st);
    if (fd < 0)
        return fd;
    e = strmap_get(c->map, key);
    int r = e ? check_entry(c, key, e, st, expect, done, ud, w) : -ENOENT;
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

void cache_wait_cancel(struct cache_wait *w)
{
    if (!w)
        return;
    for (struct cache_wait **pp = &w->job->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            free(w);
            return;
        }
    }
}

/* ---- start-up scan ---- */

struct scan_item {
    char *key;
    struct stat st;
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
    s->items[s->n].st = *st;
    s->n++;
    return 0;
}

static int by_atime(const void *a, const void *b)
{
    const struct scan_item *x = a, *y = b;
    return (x->st.st_atime > y->st.st_atime) - (x->st.st_atime < y->st.st_atime);
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

/* Indexes every entry file under DIR. 0 or a negative errno. */
static int scan_files(struct cache *c)
{
    struct scan_state s = {.dir_len = strlen(c->dir)};
    scan_ctx = &s;
    if (nftw(c->dir, scan_visit, 32, FTW_PHYS) < 0 && !s.err)
        s.err = -errno;
    scan_ctx = NULL;
    if (s.n) /* oldest first, so the newest ends at the head */
        qsort(s.items, s.n, sizeof *s.items, by_atime);
    for (size_t i = 0; i < s.n; i++) {
        if (!s.err)
            s.err = add_entry(c, s.items[i].key, &s.items[i].st,
                              url_classify(s.items[i].key) == URL_IMMUTABLE,
                              (int64_t)s.items[i].st.st_atime);
        free(s.items[i].key);
    }
    free(s.items);
    return s.err;
}

long cache_scan(struct cache *c)
{
    long r = empty_tmp(c);
    if (r < 0 || (r = scan_files(c)) < 0)
        return r;
    cache_make_room(c, 0);
    return (long)strmap_count(c->map);
}

long cache_scan_only(struct cache *c)
{
    int r = scan_files(c);
    return r < 0 ? r : (long)strmap_count(c->map);
}

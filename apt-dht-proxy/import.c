/* import.c - `apt-dht-proxy import DIR` (see import.h for the model).
 *
 * The pool entries of the hash index are read once into a map by file name (a name may
 * be listed under several keys: two backends, two suites). Each file of DIR is then
 * copied into CACHE/.tmp/, and its copy (not the original, which may change while it is
 * read) is hashed and compared with the candidates of its name; the first key whose size
 * and SHA-256 match becomes an entry by rename(2), so the cache's invariant holds: every
 * entry is complete and verified. One file is imported under one key; the others the
 * daemon links to it when they are asked for (cache_link_sha256).
 *
 * Then a daemon running on this host is told: a HEAD request for each added file on
 * 127.0.0.1:listen.port makes it adopt the file at once (catalogue_adopt: its SHA-256
 * checked, then announced to the LAN). Without an answer there, the daemon finds the
 * files at its first request or its next start. */
#define _GNU_SOURCE
#include "aptdht-config.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/hasher.h"
#include "apt-dht-proxy/import.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/strmap.h"
#include "apt-dht-proxy/url.h"

/* One pool entry of the hash index, by its file name. */
struct cand {
    struct cand *next; /* other keys with the same file name */
    uint64_t size;
    uint8_t sha256[32];
    const char *name; /* points into key: its last segment */
    char key[];
};

struct importer {
    const struct config *cfg;
    struct strmap *by_name;
    struct hashdb *db;
    struct stat owner; /* of the cache dir: new files and directories are given to it */
    struct import_counts *n;
    char **added; /* keys added, for the running daemon */
    size_t n_added, cap_added;
};

static void cand_free(void *v)
{
    for (struct cand *c = v, *next; c; c = next) {
        next = c->next;
        free(c);
    }
}

static int add_cand(void *ud, const char *key, const struct hashdb_entry *e)
{
    struct importer *im = ud;
    size_t kl = strlen(key);
    if (!e->have_sha256 || e->size == UINT64_MAX)
        return 0;
    struct cand *c = calloc(1, sizeof *c + kl + 1);
    if (!c)
        return -ENOMEM;
    memcpy(c->key, key, kl + 1);
    c->size = e->size;
    memcpy(c->sha256, e->sha256, 32);
    const char *slash = strrchr(c->key, '/');
    c->name = slash ? slash + 1 : c->key;
    struct cand *head = strmap_get(im->by_name, c->name);
    if (head) { /* the head's key stays the map's key */
        c->next = head->next;
        head->next = c;
        return 0;
    }
    if (strmap_put(im->by_name, c->name, c, NULL) < 0) {
        free(c);
        return -ENOMEM;
    }
    return 0;
}

/* apt names a file of version EPOCH:VER "NAME_EPOCH%3aVER_ARCH.deb"; the pool has no epoch. */
static const struct cand *lookup_name(const struct importer *im, const char *name)
{
    char plain[NAME_MAX + 1];
    const struct cand *c = strmap_get(im->by_name, name);
    const char *us = strchr(name, '_'), *esc = strstr(name, "%3a");
    if (c || !us || !esc || esc < us)
        return c;
    snprintf(plain, sizeof plain, "%.*s%s", (int)(us + 1 - name), name, esc + 3);
    return strmap_get(im->by_name, plain);
}

/* Copies src into a new temp file of the cache; its path into tmp. 0 or a negative errno. */
static int copy_in(const struct importer *im, int src, char *tmp, size_t n)
{
    char buf[65536];
    ssize_t r = 0;
    snprintf(tmp, n, "%s/.tmp/import-XXXXXX", im->cfg->cache_dir);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = 0;
    while (err == 0 && (r = read(src, buf, sizeof buf)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || write(fd, buf, (size_t)r) != r) /* a regular file: a short write is ENOSPC */
            err = errno ? -errno : -EIO;
    }
    if (err == 0 && fchmod(fd, 0644) < 0)
        err = -errno;
    if (err == 0 && geteuid() == 0 && fchown(fd, im->owner.st_uid, im->owner.st_gid) < 0)
        err = -errno;
    close(fd);
    if (err < 0)
        unlink(tmp);
    return err;
}

/* mkdir -p of key's directories under the cache, owned as the cache dir. */
static int make_parents(const struct importer *im, const char *key)
{
    char path[PATH_MAX];
    int w = snprintf(path, sizeof path, "%s/%s", im->cfg->cache_dir, key);
    if (w < 0 || (size_t)w >= sizeof path)
        return -ENAMETOOLONG;
    for (char *p = path + strlen(im->cfg->cache_dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int r = 0;
        if (mkdir(path, 0755) == 0) {
            if (geteuid() == 0 && chown(path, im->owner.st_uid, im->owner.st_gid) < 0)
                r = -errno;
        } else if (errno != EEXIST) {
            r = -errno;
        }
        *p = '/';
        if (r < 0)
            return r;
    }
    return 0;
}

/* The candidate the copy at tmp is, by size and SHA-256; NULL with *why set. */
static const struct cand *match(const struct cand *c, const char *tmp, size_t **why,
                                struct import_counts *n)
{
    uint8_t h[32];
    uint64_t size = 0;
    bool sized = false;
    if (hasher_file(tmp, &size, h) < 0) {
        *why = &n->failed;
        return NULL;
    }
    for (; c; c = c->next) {
        sized |= c->size == size;
        if (c->size == size && memcmp(c->sha256, h, 32) == 0)
            return c;
    }
    *why = sized ? &n->corrupt : &n->wrong_size;
    return NULL;
}

static void remember(struct importer *im, const char *key)
{
    if (im->n_added == im->cap_added) {
        size_t cap = im->cap_added ? 2 * im->cap_added : 64;
        char **p = realloc(im->added, cap * sizeof *p);
        if (!p)
            return; /* the daemon finds it at its first request instead */
        im->added = p;
        im->cap_added = cap;
    }
    if ((im->added[im->n_added] = strdup(key)) != NULL)
        im->n_added++;
}

static size_t no_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* HEAD of key on the daemon, in the backend-name (or rewrite) form; true on a 200. */
static bool head_one(CURL *e, uint16_t port, const char *key)
{
    char enc[URL_MAX_KEY * 3 + 1], url[URL_MAX_KEY * 3 + 64];
    long code = 0;
    if (url_encode_path(key, enc, sizeof enc) < 0)
        return false;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/%s", port, enc);
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (curl_easy_perform(e) != CURLE_OK)
        return false;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    return code == 200;
}

/* Tells a daemon on this host of the files added; the count it took, -1 when none answered. */
static long tell_daemon(const struct importer *im)
{
    long took = 0;
    CURL *e = im->n_added && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? curl_easy_init() : NULL;
    if (!e)
        return 0;
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 2L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L); /* the daemon hashes the file first */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, no_body);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "apt-dht-proxy import");
    for (size_t i = 0; i < im->n_added; i++) {
        if (head_one(e, im->cfg->listen_port, im->added[i])) {
            took++;
        } else if (i == 0) {
            took = -1; /* no daemon here (or not on loopback) */
            break;
        }
    }
    curl_easy_cleanup(e);
    curl_global_cleanup();
    return took;
}

/* Imports one file of the directory; counts it under one reason. */
static void import_one(struct importer *im, int dirfd, const char *name)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    size_t *why = &im->n->failed;
    struct stat st;
    size_t len = strlen(name);
    if (len <= 4 || strcmp(name + len - 4, ".deb") != 0) {
        im->n->not_deb++;
        return;
    }
    const struct cand *c = lookup_name(im, name);
    if (!c) {
        log_info("import: %s: no index lists this name: skipped", name);
        im->n->unknown++;
        return;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || copy_in(im, fd, tmp, sizeof tmp) < 0) {
        log_warn("import: %s: cannot be read or copied: skipped", name);
        im->n->failed++;
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    const struct cand *m = match(c, tmp, &why, im->n);
    int w = m ? snprintf(path, sizeof path, "%s/%s", im->cfg->cache_dir, m->key) : -1;
    if (m && (size_t)w < sizeof path && access(path, F_OK) == 0) {
        why = &im->n->cached;
    } else if (m && (size_t)w < sizeof path && make_parents(im, m->key) == 0 &&
               rename(tmp, path) == 0) {
        int r = hashdb_cached_put(im->db, m->key, m->size, m->sha256);
        if (r < 0)
            log_warn("import: %s: its record was not written (%s): hashed before it is served",
                     m->key, strerror(-r));
        log_info("import: %s -> %s", name, m->key);
        im->n->added++;
        remember(im, m->key);
        return;
    } else if (why == &im->n->corrupt || why == &im->n->wrong_size) {
        log_warn("import: %s: %s: skipped", name,
                 why == &im->n->corrupt ? "its SHA-256 is not the index's (corrupt)"
                                        : "its size is not the index's");
    }
    unlink(tmp);
    (*why)++;
}

static int open_stores(struct importer *im)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof path, "%s/hashes.db", im->cfg->state_dir);
    if (access(path, F_OK) < 0) {
        log_error("import: no hash index at %s: nothing to verify against (let apt update "
                  "through the proxy first)", path);
        return -ENOENT;
    }
    int r = hashdb_open_writer(&im->db, path);
    if (r < 0) {
        log_error("import: hash index %s: %s", path, strerror(-r));
        return r;
    }
    snprintf(tmp, sizeof tmp, "%s/.tmp", im->cfg->cache_dir);
    if (stat(im->cfg->cache_dir, &im->owner) < 0 || (mkdir(tmp, 0700) < 0 && errno != EEXIST)) {
        r = -errno;
        log_error("import: cache dir %s: %s", im->cfg->cache_dir, strerror(-r));
        return r;
    }
    if (geteuid() == 0 && chown(tmp, im->owner.st_uid, im->owner.st_gid) < 0)
        log_warn("import: %s: cannot give it to the cache's owner", tmp);
    if ((r = strmap_new(&im->by_name)) < 0 || (r = hashdb_each_entry(im->db, "*/pool/*.deb", add_cand, im)) < 0)
        log_error("import: reading the hash index: %s", strerror(-r));
    return r < 0 ? r : 0;
}

int import_dir(const struct config *cfg, const char *dir, FILE *out, struct import_counts *n)
{
    struct importer im = {.cfg = cfg, .n = n};
    struct dirent *de;
    memset(n, 0, sizeof *n);
    DIR *d = opendir(dir);
    int r = d ? open_stores(&im) : -errno;
    if (!d)
        log_error("import: %s: %s", dir, strerror(-r));
    while (r == 0 && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            import_one(&im, dirfd(d), de->d_name);
    if (r == 0) {
        hashdb_checkpoint(im.db);
        long took = tell_daemon(&im);
        if (took >= 0 && im.n_added)
            log_info("import: the daemon on port %u took %ld of the %zu files added", cfg->listen_port,
                     took, im.n_added);
        else if (im.n_added)
            log_info("import: no daemon answered on 127.0.0.1:%u: it takes the files at their "
                     "first request or its next start", cfg->listen_port);
        fprintf(out, "import: %s: %zu added, %zu already cached, %zu unknown (no index lists "
                     "the name), %zu of the wrong size, %zu corrupt (SHA-256 differs), %zu not "
                     ".deb, %zu unreadable\n",
                dir, n->added, n->cached, n->unknown, n->wrong_size, n->corrupt, n->not_deb,
                n->failed);
    }
    if (d)
        closedir(d);
    strmap_free(im.by_name, cand_free);
    for (size_t i = 0; i < im.n_added; i++)
        free(im.added[i]);
    free(im.added);
    hashdb_free(im.db);
    return r;
}

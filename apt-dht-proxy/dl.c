/* dl.c - the shared download object (struct dl): one per cache key in flight.
 *
 * A dl is written by one transfer at a time and read by any number of HTTP responses.
 * Its body goes to a temp file in the cache (a memfd when the disk is full) and through
 * SHA-256 (and SHA-1 for archives that list only SHA-1) as it arrives; readers pread
 * that fd, so they see bytes as soon as they are written. Two rules keep an unverified
 * byte from reaching apt: while a peer is the source nothing is available until the
 * whole file has verified, and from a mirror the last byte of a file whose hash is known
 * is held back until the hash checks. A verified file is renamed into the cache.
 *
 * Sources are tried in order, and where the download stands is one named state
 * (enum dl_source, changed only by set_source): peers while the request awaits them,
 * each as the DHT lookup names it and within a time budget, then the mirrors in turn.
 * A peer late with its answer (its deadline comes from its measured round trip) keeps
 * its transfer while the next holder is asked beside it; the first of the two to send
 * a body byte writes the body and the other is cancelled, reported as failed only if it
 * had missed its deadline. Never more than two transfers, and the mirror only after the
 * budget, alone. A peer that fails or lies is reported and replaced.
 *
 * Resume: a transfer that dies mid-body (lost, stalled, below the speed floor) is
 * followed by the next source asked for the rest (Range: bytes=N-). A 206 must say
 * exactly that range of the file's size; a 200 starts the body over (dl_reset_body, the
 * one place a body starts over). The hashes run over the bytes in file order whoever
 * sent them. A body holding any byte from a peer (tainted) is readable only once the
 * whole file has verified. When such a body fails verification: if one peer sent all
 * of it, that peer is reported as a liar and the next source starts from byte 0; if
 * several sources sent parts, no one is blamed (any of them may have lied) and the body
 * starts over from the first mirror, once. A mirror's body resumes from the next mirror
 * only for immutable files (a volatile file may differ between mirrors); a mirror's
 * bytes already read by apt stay valid when a 200 starts the body over, since the
 * content is the same.
 *
 * Every download has a ceiling, the most bytes it may bring: the size the index gives
 * where it knows the file, else cache.max_object (immutable) or cache.max_index
 * (volatile; for InRelease and Release also apt's own 10 MB limit). A Content-Length
 * above it fails the download before a body byte; a body that grows past it fails when
 * it does. Room in the cache is taken as the bytes arrive, chunk by chunk as libcurl
 * hands them over (cache_reserve), so a header that lies about the size evicts nothing
 * for bytes that never come; a download the cache cannot make room for goes on, served
 * but not cached. When the disk is full the body moves to memory, and all downloads in
 * memory together hold at most MEMORY_TOTAL.
 *
 * Lifetime: the fetcher holds one reference until the download ends (dl_finish) and
 * each reader holds one; the fd stays open until the last reference goes, so readers
 * finish reading even after the file has been renamed into the cache or (on failure)
 * unlinked. A download outliving fetcher_free keeps the fetcher's struct alive
 * (fetcher.n_dls) for the memory accounting. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "apt-dht-proxy/fetch-int.h"
#include "apt-dht-proxy/mirrors.h"
#include "apt-dht-proxy/log.h"

#define MEMORY_TOTAL ((uint64_t)256 << 20) /* all downloads in memory (disk full), bytes */
#define RELEASE_MAX ((uint64_t)10000000)   /* apt's Acquire::MaxReleaseFileSize, bytes */

static const char *const source_name[] = {
    [SRC_NEW] = "new",     [SRC_AWAIT_PEER] = "awaiting-peers",
    [SRC_PEER] = "peer",   [SRC_MIRROR] = "mirror",
    [SRC_ENDED] = "ended",
};

/* The one place the source state changes. */
static void set_source(struct dl *d, enum dl_source src)
{
    if (d->src == src)
        return;
    log_debug("%s: source %s -> %s", d->key, source_name[d->src], source_name[src]);
    d->src = src;
}

static bool peer_phase(const struct dl *d)
{
    return d->src == SRC_AWAIT_PEER || d->src == SRC_PEER;
}

/* ---- ceilings, cache room, memory ---- */

static bool is_release_file(const char *key)
{
    const char *b = strrchr(key, '/');
    b = b ? b + 1 : key;
    return strcmp(b, "InRelease") == 0 || strcmp(b, "Release") == 0 ||
           strcmp(b, "Release.gpg") == 0;
}

/* The most bytes the download may bring (see the top of the file). */
static uint64_t ceiling_of(const struct fetcher *f, const struct dl_request *req)
{
    if (req->expect && req->expect->size != UINT64_MAX)
        return req->expect->size;
    if (req->immutable)
        return f->opts.max_object;
    uint64_t c = f->opts.max_index;
    return is_release_file(req->key) && c > RELEASE_MAX ? RELEASE_MAX : c;
}

/* Cache room for the bytes up to `upto`, taken as each chunk libcurl hands over arrives
 * (at most CURLOPT_BUFFERSIZE, 256 KiB), never ahead of the bytes; when the cache cannot
 * make room, the download goes on without being cached. */
static void take_room(struct dl *d, uint64_t upto)
{
    if (!d->cacheable || d->in_memory || upto <= d->reserved)
        return;
    uint64_t want = upto - d->reserved;
    if (cache_reserve(d->f->cache, want) == 0) {
        d->reserved += want;
        return;
    }
    d->cacheable = false;
    log_info("cache: no room for %s (%llu bytes so far): served without being cached", d->key,
             (unsigned long long)upto);
}

static void release_room(struct dl *d)
{
    if (d->reserved == 0)
        return;
    cache_release(d->f->cache, d->reserved);
    d->reserved = 0;
}

/* Memory for an in-memory body up to `upto` bytes, within MEMORY_TOTAL for all. */
static bool take_memory(struct dl *d, uint64_t upto)
{
    struct fetcher *f = d->f;
    if (upto <= d->mem_held)
        return true;
    if (f->mem_used + (upto - d->mem_held) > MEMORY_TOTAL)
        return false;
    f->mem_used += upto - d->mem_held;
    d->mem_held = upto;
    return true;
}

/* ---- lifetime ---- */

static int open_body(struct dl *d)
{
    int fd = cache_tmp_create(d->f->cache, d->tmp_path, sizeof d->tmp_path);
    if (fd < 0 && (fd == -ENOSPC || fd == -EDQUOT)) {
        d->tmp_path[0] = '\0';
        fd = memfd_create("apt-dht-download", MFD_CLOEXEC);
        if (fd < 0)
            fd = -errno;
        else
            d->in_memory = true;
    }
    if (fd < 0) {
        d->tmp_path[0] = '\0';
        log_error("fetch %s: cannot create the download's file: %s%s", d->key, strerror(-fd),
                  fd == -EMFILE ? " (EMFILE: the open-file limit)"
                  : fd == -ENFILE ? " (ENFILE: the system's open-file table)" : "");
        return fd;
    }
    if (d->in_memory) {
        d->cacheable = false;
        log_warn("cache disk full: %s is served without being cached", d->key);
    }
    d->fd = fd;
    return 0;
}

static int init(struct dl *d, const struct dl_request *req, const char *join_key)
{
    if (!(d->key = strdup(req->key)) || !(d->join_key = strdup(join_key)))
        return -ENOMEM;
    for (size_t i = 0; i < req->n_urls; i++)
        if (!(d->urls[d->n_urls++] = strdup(req->urls[i])))
            return -ENOMEM;
    mirrors_order(d->f->health, d->urls, d->n_urls, loop_now_ms()); /* failed ones last */
    d->immutable = req->immutable;
    d->cacheable = req->cacheable;
    d->verify_first = req->verify_first;
    if (req->expect) {
        d->have_expect = true;
        d->expect = *req->expect;
    }
    d->ims = req->if_modified_since;
    d->ceiling = ceiling_of(d->f, req);
    /* peers only with a known size: a peer's claimed length is never believed */
    d->await_peers = req->await_peers && req->expect && req->expect->size != UINT64_MAX;
    d->sha256 = EVP_MD_CTX_new();
    if (!d->sha256 || (d->have_expect && !d->expect.have_sha256 && !(d->sha1 = EVP_MD_CTX_new())))
        return -ENOMEM;
    return open_body(d);
}

static void on_budget(struct loop *l, struct loop_timer *t, void *ud);

int dl_new(struct dl **out, struct fetcher *f, const struct dl_request *req, const char *join_key)
{
    struct dl *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->f = f;
    d->fd = -1;
    d->total = -1;
    d->body_peer = -1;
    d->started_ms = loop_now_ms();
    d->refs = 1; /* the transfer's own */
    f->n_dls++;
    loop_timer_init(&d->budget_timer, on_budget, d);
    int r = init(d, req, join_key);
    if (r < 0) {
        dl_destroy(d);
        return r;
    }
    *out = d;
    return 0;
}

void dl_begin(struct dl *d, uint32_t peer_budget_ms)
{
    if (d->await_peers && loop_timer_start(d->f->loop, &d->budget_timer, peer_budget_ms) < 0)
        d->budget_over = true; /* no timer: no waiting for peers either */
    dl_next_source(d);
}

void dl_destroy(struct dl *d)
{
    struct fetcher *f = d->f;
    fetch_stop(d); /* the budget timer is stopped: dl_finish ran, or dl_begin never did */
    release_room(d);
    f->mem_used -= d->mem_held;
    if (d->fd >= 0)
        close(d->fd);
    if (d->tmp_path[0])
        unlink(d->tmp_path);
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->sha1);
    for (size_t i = 0; i < d->n_urls; i++)
        free(d->urls[i]);
    while (d->watchers) {
        struct dl_watch *w = d->watchers;
        d->watchers = w->next;
        free(w);
    }
    free(d->join_key);
    free(d->key);
    free(d);
    if (--f->n_dls == 0 && f->freed)
        free(f); /* fetcher_free ran while this download still had readers */
}

void dl_ref(struct dl *d)
{
    d->refs++;
}

void dl_unref(struct dl *d)
{
    if (d && --d->refs == 0)
        dl_destroy(d);
}

/* ---- readers and watchers ---- */

enum dl_state dl_state(const struct dl *d)
{
    return d->state;
}

int64_t dl_total(const struct dl *d)
{
    return d->total;
}

int dl_status(const struct dl *d)
{
    return d->status;
}

const char *dl_reason(const struct dl *d)
{
    return d->reason;
}

time_t dl_last_modified(const struct dl *d)
{
    return d->last_modified;
}

const char *dl_source(const struct dl *d)
{
    return d->source;
}

bool dl_hash_mismatch(const struct dl *d)
{
    return d->mismatch;
}

const char *dl_key(const struct dl *d)
{
    return d->key;
}

uint64_t dl_started_ms(const struct dl *d)
{
    return d->started_ms;
}

uint64_t dl_available(const struct dl *d)
{
    if (d->state == DL_DONE)
        return d->received;
    /* a body holding a peer's bytes is unverified until the download is DONE */
    if (d->verify_first || d->tainted || d->state == DL_CONNECTING || d->state == DL_NOT_MODIFIED)
        return 0;
    /* STREAMING, or FAILED after some bytes: the tail of a file whose hash is known
     * waits for the check, and stays back for good when it fails. */
    if (d->have_expect && d->total > 0 && d->received >= (uint64_t)d->total)
        return (uint64_t)d->total - 1;
    return d->received;
}

ssize_t dl_read(struct dl *d, uint64_t pos, void *buf, size_t n)
{
    if (d->fd < 0)
        return -EIO;
    ssize_t r = pread(d->fd, buf, n, (off_t)pos);
    return r < 0 ? -errno : r;
}

struct dl_watch *dl_watch(struct dl *d, void (*cb)(void *ud), void *ud)
{
    struct dl_watch *w = malloc(sizeof *w);
    if (!w)
        return NULL;
    *w = (struct dl_watch){cb, ud, d->watchers};
    d->watchers = w;
    return w;
}

void dl_unwatch(struct dl *d, struct dl_watch *w)
{
    for (struct dl_watch **pp = &d->watchers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            free(w);
            return;
        }
    }
}

void dl_notify(struct dl *d)
{
    for (struct dl_watch *w = d->watchers, *next; w; w = next) {
        next = w->next;
        w->cb(w->ud);
    }
}

void dl_set_reason(struct dl *d, int status, const char *fmt, ...)
{
    va_list ap;
    d->status = status;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
}

/* ---- the body ---- */

int dl_reset_body(struct dl *d)
{
    d->body_gen++; /* the one place a body starts over: relay responses can tell */
    d->state = DL_CONNECTING;
    d->mismatch = false;
    d->reason[0] = '\0';
    d->received = 0;
    d->total = -1;
    d->tainted = false;
    d->body_peer = -1;
    d->last_modified = 0;
    /* Only a file that holds bytes of an earlier attempt is truncated: ext4 writes a file
     * out at close() once it has been truncated to zero (auto_da_alloc), which would stall
     * the loop in close() and push every download to the disk at once. */
    struct stat st;
    if (fstat(d->fd, &st) < 0)
        return -errno;
    if (st.st_size > 0 && ftruncate(d->fd, 0) < 0)
        return -errno;
    if (lseek(d->fd, 0, SEEK_SET) < 0)
        return -errno;
    if (!EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL))
        return -EIO;
    if (d->sha1 && !EVP_DigestInit_ex(d->sha1, EVP_sha1(), NULL))
        return -EIO;
    return 0;
}

/* "bytes A-B/T" of a 206 answering "bytes=offset-": exactly the rest of a file of total
 * bytes. */
static bool range_is_rest(const char *cr, uint64_t offset, uint64_t total)
{
    unsigned long long a, b, t;
    char *end;
    if (strncmp(cr, "bytes ", 6) != 0)
        return false;
    errno = 0;
    a = strtoull(cr + 6, &end, 10);
    if (errno || end == cr + 6 || *end != '-')
        return false;
    const char *p = end + 1;
    b = strtoull(p, &end, 10);
    if (errno || end == p || *end != '/')
        return false;
    p = end + 1;
    t = strtoull(p, &end, 10);
    if (errno || end == p || *end != '\0')
        return false;
    return a == offset && t == total && b + 1 == t;
}

/* A 200: the whole file, of the size the index gives and within the ceiling. */
static bool whole_ok(struct dl *d, struct xfer *x, int64_t length)
{
    if (d->have_expect && d->expect.size != UINT64_MAX && length >= 0 &&
        (uint64_t)length != d->expect.size) {
        if (x->peer) {
            x->bad = true;
            log_warn("fetch %s: peer %s announces %lld bytes, the index %llu", d->key,
                     d->peers[x->idx].label, (long long)length, (unsigned long long)d->expect.size);
            return false;
        }
        d->mismatch = true;
        dl_set_reason(d, 502, "mirror's size differs from the index");
        return false;
    }
    if (length >= 0 && (uint64_t)length > d->ceiling) {
        dl_set_reason(d, 502, "the mirror announces %lld bytes, more than the %llu allowed",
                      (long long)length, (unsigned long long)d->ceiling);
        log_warn("fetch %s: %s", d->key, d->reason);
        return false;
    }
    x->restart = x->offset > 0; /* asked for the rest, sent all: the body starts over */
    return true;
}

bool dl_answer_ok(struct dl *d, struct xfer *x, int64_t length, const char *content_range)
{
    x->length = length;
    if (x->resp_status == 200)
        return whole_ok(d, x, length);
    /* a 206: the rest of the body as it stands, nothing else */
    uint64_t total = d->total >= 0 ? (uint64_t)d->total : 0;
    if (x->offset > 0 && d->total > 0 && range_is_rest(content_range, x->offset, total) &&
        (length < 0 || (uint64_t)length == total - x->offset))
        return true;
    log_warn("fetch %s: %s answered 206 \"%s\" to a request for bytes %llu-", d->key,
             x->peer ? d->peers[x->idx].label : d->urls[x->idx], content_range,
             (unsigned long long)x->offset);
    if (!x->peer)
        dl_set_reason(d, 502, "mirror answered a range other than the one asked");
    return false;
}

/* Which sources the body's bytes came from (see body_peer). */
static void note_contributor(struct dl *d, const struct xfer *x)
{
    if (x->peer) {
        d->tainted = true;
        d->body_peer = d->received == 0              ? (int)x->idx
                       : d->body_peer == (int)x->idx ? d->body_peer
                                                     : -2;
    } else if (d->received > 0 && d->body_peer != -1) {
        d->body_peer = -2;
    }
}

static void report_peer(struct dl *d, struct xfer *x, enum peer_result r);

bool dl_take_writer(struct dl *d, struct xfer *x)
{
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        struct xfer *y = &d->xf[i];
        if (y == x || !y->easy || y->doomed)
            continue;
        if (y->late) { /* it missed its deadline, and lost: silent, not merely slower */
            log_info("fetch %s: peer %s answered first; %s, past its deadline, is dropped", d->key,
                     x->peer ? d->peers[x->idx].label : "the mirror", d->peers[y->idx].label);
            report_peer(d, y, PEER_FAILED);
        } else if (y->peer && d->n_peers < DL_MAX_PEERS) {
            /* asked beside the winner and merely slower: it stays a source, next in line
             * should the winner fail or lie */
            struct dl_peer again = d->peers[y->idx];
            memmove(&d->peers[d->peer_idx + 1], &d->peers[d->peer_idx],
                    (d->n_peers - d->peer_idx) * sizeof d->peers[0]);
            d->peers[d->peer_idx] = again;
            d->n_peers++;
        }
        fetch_doom(y);
    }
    x->writer = true;
    if ((x->offset == 0 || x->restart) && dl_reset_body(d) < 0) {
        dl_set_reason(d, 502, "cannot start the download's file over");
        return false;
    }
    if (d->received == 0) {
        d->total = x->length;
        if (d->have_expect && d->expect.size != UINT64_MAX)
            d->total = (int64_t)d->expect.size;
    }
    note_contributor(d, x);
    d->last_modified = x->last_modified;
    snprintf(d->source, sizeof d->source, "%s %s", x->peer ? "peer" : "mirror",
             x->peer ? d->peers[x->idx].label : d->urls[x->idx]);
    /* no room is taken yet: eviction waits for the bytes themselves (take_room) */
    d->state = DL_STREAMING;
    dl_notify(d);
    return true;
}

/* The disk is full: the download goes on in an anonymous in-memory file, is served to its
 * readers from there, and is not cached. What was written so far is copied over. */
static int to_memory(struct dl *d)
{
    char buf[65536];
    off_t end = lseek(d->fd, 0, SEEK_CUR);
    if (end < 0 || !take_memory(d, d->total > 0 ? (uint64_t)d->total : (uint64_t)end))
        return -ENOSPC;
    int mfd = memfd_create("apt-dht-download", MFD_CLOEXEC);
    if (mfd < 0)
        return -errno;
    for (off_t pos = 0; pos < end;) {
        ssize_t r = pread(d->fd, buf, sizeof buf, pos);
        if (r <= 0 || write(mfd, buf, (size_t)r) != r) {
            close(mfd);
            return -EIO;
        }
        pos += r;
    }
    close(d->fd);
    if (d->tmp_path[0])
        unlink(d->tmp_path);
    d->tmp_path[0] = '\0';
    d->fd = mfd;
    d->in_memory = true;
    d->cacheable = false;
    release_room(d); /* none of it goes to the cache now */
    log_warn("cache disk full: %s is served without being cached", d->key);
    return 0;
}

/* Writes all n bytes; a full disk first evicts old entries, then moves to memory. */
static bool write_body(struct dl *d, const char *buf, size_t n)
{
    bool evicted = false;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(d->fd, buf + off, n - off);
        if (w < 0 && (errno == ENOSPC || errno == EDQUOT) && !d->in_memory) {
            if (!evicted && cache_make_room(d->f->cache, n + (64u << 20)) == 0) {
                evicted = true; /* evicted old entries; try again */
                continue;
            }
            if (to_memory(d) == 0)
                continue;
        }
        if (w < 0) {
            dl_set_reason(d, 502, "cannot write the download: %s", strerror(errno));
            log_error("fetch %s: %s", d->key, d->reason);
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

bool dl_append(struct dl *d, struct xfer *x, const char *buf, size_t n)
{
    if (d->total >= 0 && d->received + n > (uint64_t)d->total) {
        dl_set_reason(d, 502, "mirror sent more bytes than announced");
        return false;
    }
    if (d->received + n > d->ceiling) {
        dl_set_reason(d, 502, "the mirror sends more than the %llu bytes allowed",
                      (unsigned long long)d->ceiling);
        log_warn("fetch %s: %s", d->key, d->reason);
        return false;
    }
    if (d->in_memory && !take_memory(d, d->received + n)) {
        dl_set_reason(d, 502, "cache disk full, and downloads in memory hold all of the %llu MiB "
                      "they may", (unsigned long long)(MEMORY_TOTAL >> 20));
        log_warn("fetch %s: %s", d->key, d->reason);
        return false;
    }
    take_room(d, d->received + n);
    if (!write_body(d, buf, n))
        return false;
    EVP_DigestUpdate(d->sha256, buf, n);
    if (d->sha1)
        EVP_DigestUpdate(d->sha1, buf, n);
    if (x->peer && x->got == 0) /* the latency a LAN peer adds, for the benchmarks */
        log_info("fetch %s: first byte from peer %s %llu ms after the miss", d->key,
                 d->peers[x->idx].label, (unsigned long long)(loop_now_ms() - d->started_ms));
    d->received += n;
    x->got += n;
    if (d->f->opts.on_bytes)
        d->f->opts.on_bytes(d->f->opts.ud, x->peer, n);
    if (!d->tainted || d->relays)
        dl_notify(d); /* a peer's bytes reach apt only once verified; relays take them now */
    return true;
}

/* ---- verification and commit ---- */

static bool digest_matches(EVP_MD_CTX *ctx, const uint8_t *want, unsigned len)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    return EVP_DigestFinal_ex(ctx, md, &n) && n == len && memcmp(md, want, len) == 0;
}

/* Finalises the SHA-256 of the body into d->digest and checks the body against what
 * the index promised. */
static bool verify(struct dl *d)
{
    bool ok = d->total < 0 || d->received == (uint64_t)d->total;
    unsigned n = 0;
    d->have_digest = EVP_DigestFinal_ex(d->sha256, d->digest, &n) && n == 32;
    if (!ok || !d->have_expect)
        return ok;
    if (d->expect.have_sha256)
        return d->have_digest && memcmp(d->digest, d->expect.sha256, 32) == 0;
    if (d->expect.have_sha1)
        return digest_matches(d->sha1, d->expect.sha1, 20);
    return true;
}

static void report_peer(struct dl *d, struct xfer *x, enum peer_result r)
{
    struct dl_peer *p = &d->peers[x->idx];
    if (r == PEER_BAD_DATA)
        log_warn("fetch %s: peer %s sent bad data; trying the next source", d->key, p->label);
    else if (r != PEER_OK)
        log_warn("fetch %s: peer %s failed%s", d->key, p->label,
                 x->writer && x->got > 0 ? "; resuming from the next source" : "");
    if (d->f->opts.on_peer_result)
        d->f->opts.on_peer_result(d->f->opts.ud, (const struct sockaddr *)&p->sa, r, x->got,
                                  loop_now_ms() - x->start_ms);
}

static void commit(struct dl *d)
{
    struct fetcher *f = d->f;
    release_room(d); /* the entry counts from now on */
    int r = cache_commit(f->cache, d->tmp_path, d->key, d->last_modified, d->immutable,
                         d->have_digest ? d->digest : NULL);
    if (r < 0) {
        log_warn("cache: cannot store %s: %s", d->key, strerror(-r));
        return;
    }
    d->tmp_path[0] = '\0'; /* it is the cache entry now */
    if (f->opts.on_commit && d->have_digest && cache_has(f->cache, d->key)) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", cache_dir(f->cache), d->key);
        f->opts.on_commit(f->opts.ud, d->key, path, d->digest);
    }
}

/* The body starts over from the first mirror: a body of several sources failed, or a
 * resumed request found no mirror to answer it. Once per download; false: done that. */
static bool restart_from_mirrors(struct dl *d, const char *why)
{
    if (d->restarted)
        return false;
    log_warn("fetch %s: %s; starting over from the mirror, blaming no peer", d->key, why);
    d->restarted = true;
    d->budget_over = true; /* no peer is asked again */
    d->url_idx = 0;
    fetch_stop(d);
    if (dl_reset_body(d) < 0)
        return false;
    set_source(d, SRC_MIRROR);
    dl_next_source(d);
    return true;
}

/* The whole body failed its check and holds a peer's bytes (see the top of the file). */
static void bad_tainted_body(struct dl *d, struct xfer *x)
{
    if (d->body_peer >= 0 && x->peer && d->body_peer == (int)x->idx) {
        report_peer(d, x, PEER_BAD_DATA); /* it sent every byte: it lied */
        if (dl_reset_body(d) < 0) {
            dl_set_reason(d, 502, "cannot start the download's file over");
            dl_finish(d, DL_FAILED);
            return;
        }
        dl_next_source(d);
        return;
    }
    if (x->peer)
        report_peer(d, x, PEER_FAILED); /* its share may have been right: no ban */
    if (!restart_from_mirrors(d, "a file of several sources failed verification")) {
        d->mismatch = true;
        dl_set_reason(d, 502, "the file does not match the index (size or hash)");
        dl_finish(d, DL_FAILED);
    }
}

void dl_complete(struct dl *d, struct xfer *x)
{
    bool ok = verify(d);
    if (d->f->opts.on_verify)
        d->f->opts.on_verify(d->f->opts.ud, d->tainted, d->have_expect, ok);
    if (!ok && d->tainted) {
        bad_tainted_body(d, x);
        return;
    }
    if (!ok) {
        d->mismatch = true;
        dl_set_reason(d, 502, "mirror's file does not match the index (size or hash)");
        log_warn("fetch %s: hash mismatch from %s", d->key, d->source);
        dl_finish(d, DL_FAILED);
        return;
    }
    if (x->peer)
        report_peer(d, x, PEER_OK);
    d->status = 200;
    if (d->cacheable)
        commit(d);
    dl_finish(d, DL_DONE);
}

/* ---- the sources ---- */

/* Every running transfer is a late peer's. */
static bool all_late(const struct dl *d)
{
    size_t n = 0;
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        const struct xfer *x = &d->xf[i];
        if (!x->easy || x->doomed)
            continue;
        if (!x->peer || !x->late || x->answered)
            return false;
        n++;
    }
    return n > 0;
}

/* The oldest running transfer. */
static struct xfer *oldest(struct dl *d)
{
    struct xfer *o = NULL;
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        struct xfer *x = &d->xf[i];
        if (x->easy && !x->doomed && (!o || x->start_ms < o->start_ms))
            o = x;
    }
    return o;
}

/* Starts the next named peer. false: none is left, or it could not start (the download
 * has then failed). */
static bool start_next_peer(struct dl *d, bool *failed)
{
    *failed = false;
    if (d->peer_idx >= d->n_peers)
        return false;
    size_t i = d->peer_idx++;
    set_source(d, SRC_PEER);
    int r = fetch_start(d, true, i, d->received);
    if (r == 0)
        return true;
    if (r == -EBUSY) { /* both slots taken (one by a loser not yet reaped): later */
        d->peer_idx--;
        return false;
    }
    *failed = true;
    dl_finish(d, DL_FAILED);
    return false;
}

/* Holders are asked two at a time until one answers: a holder that departed (its link
 * dead) or is busy costs nothing when another is asked beside it, instead of its header
 * deadline or a 503's round trip; the first body byte wins and the other is dropped. An
 * owner asked to fetch for us (pull) is never doubled: that would be two mirror fetches
 * for the LAN. */
static void pair_up(struct dl *d)
{
    bool failed;
    if (d->budget_over || fetch_running(d) != 1 || d->peer_idx >= d->n_peers ||
        d->peers[d->peer_idx].pull)
        return;
    struct xfer *o = oldest(d);
    if (!o || !o->peer || o->answered || d->peers[o->idx].pull)
        return;
    if (start_next_peer(d, &failed))
        log_debug("fetch %s: asking %s beside %s", d->key, d->peers[d->peer_idx - 1].label,
                  d->peers[o->idx].label);
}

/* An owner asked to fetch for us is among the running transfers. */
static bool pull_running(const struct dl *d)
{
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        const struct xfer *x = &d->xf[i];
        if (x->easy && !x->doomed && x->peer && d->peers[x->idx].pull)
            return true;
    }
    return false;
}

/* The peers asked so far are late: ask the next one beside them. With both slots taken
 * by late peers, the older one has had two deadlines: it has failed, and gives way. */
static void hedge(struct dl *d)
{
    bool failed;
    if (d->budget_over || d->peer_idx >= d->n_peers || !all_late(d))
        return;
    /* An owner asked to fetch for us that is late is given its whole give-up time, not
     * hedged by the next owner: that one would fetch from the mirror too (a loaded host
     * can miss a header deadline, and the LAN would pay the file twice). */
    if (d->peers[d->peer_idx].pull && pull_running(d))
        return;
    if (fetch_running(d) == DL_MAX_XFERS) {
        struct xfer *o = oldest(d);
        report_peer(d, o, PEER_FAILED);
        fetch_cancel(o);
    }
    if (start_next_peer(d, &failed))
        log_debug("fetch %s: a holder is late; asking %s too", d->key,
                  d->peers[d->peer_idx - 1].label);
}

void dl_peer_late(struct dl *d, struct xfer *x)
{
    log_info("fetch %s: peer %s has not answered in %llu ms%s", d->key, d->peers[x->idx].label,
             (unsigned long long)(loop_now_ms() - x->start_ms),
             !d->budget_over && d->peer_idx < d->n_peers ? "; asking the next holder too" : "");
    hedge(d);
}

void dl_peer_failed(struct dl *d, struct xfer *x, enum peer_result r)
{
    bool was_writer = x->writer;
    fetch_cancel(x);
    report_peer(d, x, r);
    if (!was_writer && fetch_running(d) > 0) {
        hedge(d); /* the other goes on; and beside it the next, if it is late too */
        pair_up(d);
        return;
    }
    dl_next_source(d);
}

bool dl_resume_mirror(struct dl *d, struct xfer *x)
{
    if (d->received > 0 && d->tainted) { /* the rest of a peer's body */
        if (d->url_idx >= d->n_urls)
            return restart_from_mirrors(d, "no mirror resumed the file");
        dl_next_source(d);
        return true;
    }
    if (!d->immutable || d->received == 0 || d->total <= 0 || d->url_idx >= d->n_urls)
        return false;
    log_warn("fetch %s: %s; resuming from byte %llu from the next mirror", d->key, d->reason,
             (unsigned long long)d->received);
    d->reason[0] = '\0';
    dl_next_source(d);
    return true;
}

void dl_next_source(struct dl *d)
{
    bool failed;
    bool peers = d->src == SRC_NEW ? d->await_peers : peer_phase(d);
    /* once the budget is spent, a failed peer is not replaced, except by an owner or a
     * relay (quiet): they fetch the file once for the LAN, where a mirror would be one
     * more fetch */
    bool next_quiet = d->peer_idx < d->n_peers && d->peers[d->peer_idx].quiet;
    if (peers && (!d->budget_over || next_quiet)) {
        if (start_next_peer(d, &failed)) {
            pair_up(d);
            return;
        }
        if (failed)
            return;
        if (fetch_running(d) > 0)
            return; /* a late peer may still answer */
        if (!d->peers_done) {
            set_source(d, SRC_AWAIT_PEER); /* the lookup may still name one */
            return;
        }
    }
    if (fetch_running(d) > 0)
        return; /* the mirror starts alone: when the late peer answers or gives up */
    loop_timer_stop(d->f->loop, &d->budget_timer);
    if (d->url_idx < d->n_urls) {
        size_t i = d->url_idx++;
        set_source(d, SRC_MIRROR);
        d->reason[0] = '\0'; /* the last source's: this one's answer decides now */
        d->mismatch = false;
        if (fetch_start(d, false, i, d->received) < 0)
            dl_finish(d, DL_FAILED);
        return;
    }
    if (!d->reason[0])
        dl_set_reason(d, 502, "no source could provide the file");
    dl_finish(d, DL_FAILED);
}

static void on_budget(struct loop *l, struct loop_timer *t, void *ud)
{
    struct dl *d = ud;
    d->budget_over = true;
    if (!peer_phase(d))
        return;
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        const struct xfer *x = &d->xf[i];
        if (x->easy && !x->doomed && (x->writer || (x->peer && d->peers[x->idx].quiet)))
            return; /* a peer is sending (it is the only transfer), or an owner or relay
                     * is asked, the one mirror fetch for the LAN: let it go on (its own
                     * deadlines bound it) */
    }
    /* not the peers' fault that our budget ran out, unless they missed their deadline */
    for (size_t i = 0; i < DL_MAX_XFERS; i++) {
        struct xfer *x = &d->xf[i];
        if (!x->easy)
            continue;
        fetch_cancel(x);
        if (x->late)
            report_peer(d, x, PEER_FAILED);
    }
    dl_next_source(d);
}

int dl_add_peer_at(struct dl *d, size_t at, const struct sockaddr *sa, socklen_t salen,
                   const char *url)
{
    if (!peer_phase(d) || d->budget_over || d->n_peers == DL_MAX_PEERS ||
        salen > sizeof d->peers[0].sa || at > d->n_peers)
        return -EAGAIN;
    memmove(&d->peers[at + 1], &d->peers[at], (d->n_peers - at) * sizeof d->peers[0]);
    struct dl_peer *p = &d->peers[at];
    memset(p, 0, sizeof *p);
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    snprintf(p->url, sizeof p->url, "%s", url);
    const char *h = strstr(url, "://");
    const char *end = h ? strstr(h + 3, "/~/") : NULL;
    snprintf(p->label, sizeof p->label, "%.*s", end ? (int)(end - h - 3) : 0, h ? h + 3 : "");
    d->n_peers++;
    return 0;
}

/* A new peer to try: at once when the download waits for one, beside the others when
 * the peers asked are late. */
static void peer_added(struct dl *d)
{
    if (d->src == SRC_AWAIT_PEER) {
        dl_next_source(d);
    } else if (peer_phase(d)) {
        hedge(d);
        pair_up(d);
    }
}

int dl_add_peer(struct dl *d, const struct sockaddr *sa, socklen_t salen, const char *url)
{
    int r = dl_add_peer_at(d, d->n_peers, sa, salen, url);
    if (r == 0)
        peer_added(d);
    return r;
}

static bool peer_listed(const struct dl *d, const struct sockaddr *sa, socklen_t len)
{
    for (size_t i = 0; i < d->n_peers; i++)
        if (d->peers[i].salen == len && memcmp(&d->peers[i].sa, sa, len) == 0)
            return true;
    return false;
}

int dl_add_owner(struct dl *d, const struct sockaddr *sa, socklen_t salen, const char *url,
                 bool pull)
{
    if (peer_listed(d, sa, salen))
        return -EEXIST; /* a holder the lookup found: asked already, as a holder */
    int r = dl_add_peer_at(d, d->n_peers, sa, salen, url);
    if (r < 0)
        return r;
    d->peers[d->n_peers - 1].pull = pull;
    d->peers[d->n_peers - 1].quiet = true;
    peer_added(d);
    return 0;
}

bool dl_peer_is_listed(const struct dl *d, const struct sockaddr *sa, socklen_t len)
{
    return peer_listed(d, sa, len);
}

void dl_peer_declined(struct dl *d, struct xfer *x)
{
    log_debug("fetch %s: peer %s declined (%d)%s%s", d->key, d->peers[x->idx].label,
              x->resp_status, x->hints[0] ? "; relays: " : "", x->hints);
    fetch_cancel(x);
    if (x->hints[0])
        dl_add_hints(d, x);
    if (!x->writer && fetch_running(d) > 0) {
        hedge(d); /* the other goes on; and beside it the next, if it is late too */
        pair_up(d);
        return;
    }
    dl_next_source(d);
}

void dl_peers_done(struct dl *d)
{
    d->peers_done = true;
    if (d->src == SRC_AWAIT_PEER)
        dl_next_source(d);
}

bool dl_claim_lookup(struct dl *d)
{
    if (!d->await_peers || d->lookup_claimed || d->src == SRC_ENDED)
        return false;
    d->lookup_claimed = true;
    return true;
}

void dl_finish(struct dl *d, enum dl_state st)
{
    if (st == DL_FAILED)
        log_info("fetch %s: failed: %d %s", d->key, d->status ? d->status : 502,
                 d->reason[0] ? d->reason : "(no reason)");
    fetch_stop(d);
    release_room(d);
    if (d->tainted && st != DL_DONE)
        d->received = 0; /* a peer's bytes are unverified: none becomes readable */
    set_source(d, SRC_ENDED);
    loop_timer_stop(d->f->loop, &d->budget_timer);
    d->state = st;
    if (st != DL_DONE && d->tmp_path[0] && d->fd >= 0 && d->received == 0) {
        unlink(d->tmp_path);
        d->tmp_path[0] = '\0';
    }
    if (st == DL_FAILED && d->tmp_path[0]) {
        unlink(d->tmp_path); /* readers keep their fd; nothing reaches the cache */
        d->tmp_path[0] = '\0';
    }
    fetch_forget(d);
    dl_notify(d);
    dl_unref(d);
}

/* zread.c - decompressing reader over a borrowed file descriptor.
 *
 * Model: one fixed input buffer (`in`, with ipos..ilen unconsumed) feeds either a copy
 * loop (plain), zlib's inflate (gzip) or liblzma's stream decoder (xz). Each zread_read
 * call decodes until it has produced at least one byte or the data ends, so the caller's
 * buffer size alone bounds the work per call. The only "end" that is not an error is the
 * end the compressed format itself declares; running out of input earlier is -EIO.
 * The output bounds are checked as bytes come out, against the input read so far, so a
 * bomb costs the CPU of its first megabyte or so, never of its whole. */
#include "aptdht-config.h"
#include "apt-dht-proxy/zread.h"

#include <errno.h>
#include <limits.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define ZREAD_IN_CAP (64 * 1024)
/* liblzma memory limit: Debian's xz -9 needs ~65 MiB; anything above is hostile. */
#define ZREAD_XZ_MEMLIMIT ((uint64_t)256 << 20)

struct zread {
    int fd;
    enum zread_format fmt;
    bool in_eof;       /* read(2) returned 0 */
    bool done;         /* the format declared its end; further reads return 0 */
    bool member_end;   /* gzip: a member ended, another may follow */
    bool z_init, x_init;
    size_t ipos, ilen; /* unconsumed input is in[ipos..ilen) */
    uint64_t total_in;  /* bytes read from fd */
    uint64_t total_out;
    uint64_t max_out;  /* bytes of output allowed in all */
    uint64_t in_size;  /* bytes, from fstat at open; 0 = not a regular file */
    z_stream z;
    lzma_stream x;
    uint8_t in[ZREAD_IN_CAP];
};

/* Buffers at least `want` unconsumed bytes, reading as often as that takes, unless the
 * input ends first; a used-up buffer starts over at in[0], so want <= ZREAD_IN_CAP - ipos.
 * The decoders ask for 1 (one read(2), only when the buffer is empty), sniffing for the
 * longest magic number. 0 (check in_eof / ilen) or -errno. */
static int fill(struct zread *r, size_t want)
{
    if (r->ipos == r->ilen)
        r->ipos = r->ilen = 0;
    while (r->ilen - r->ipos < want && !r->in_eof) {
        ssize_t n = read(r->fd, r->in + r->ilen, sizeof(r->in) - r->ilen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            r->in_eof = true;
        r->ilen += (size_t)n;
        r->total_in += (uint64_t)n;
    }
    return 0;
}

static enum zread_format sniff(const uint8_t *p, size_t n, int *err)
{
    static const uint8_t xz[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    static const uint8_t zstd[4] = {0x28, 0xb5, 0x2f, 0xfd};
    *err = 0;
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return ZREAD_GZIP;
    if (n >= 6 && memcmp(p, xz, 6) == 0)
        return ZREAD_XZ;
    if ((n >= 3 && memcmp(p, "BZh", 3) == 0) || (n >= 4 && memcmp(p, zstd, 4) == 0) ||
        (n >= 3 && p[0] == 0x5d && p[1] == 0x00 && p[2] == 0x00))
        *err = -ENOTSUP;
    return ZREAD_PLAIN;
}

static int start_decoder(struct zread *r)
{
    if (r->fmt == ZREAD_GZIP) {
        /* 15 + 16: gzip wrapper only, largest window; the trailer CRC and length are checked. */
        if (inflateInit2(&r->z, 15 + 16) != Z_OK)
            return -ENOMEM;
        r->z_init = true;
    } else if (r->fmt == ZREAD_XZ) {
        if (lzma_stream_decoder(&r->x, ZREAD_XZ_MEMLIMIT, LZMA_CONCATENATED) != LZMA_OK)
            return -ENOMEM;
        r->x_init = true;
    }
    return 0;
}

/* Compressed output past ZREAD_RATIO times the input read so far (plus the slack): a
 * bomb. Plain input is its own output, bounded by max_out alone. */
static bool over_ratio(const struct zread *r)
{
    if (r->fmt == ZREAD_PLAIN || r->total_out <= ZREAD_RATIO_SLACK)
        return false;
    return (r->total_out - ZREAD_RATIO_SLACK) / ZREAD_RATIO > r->total_in;
}

int zread_open_fd(struct zread **out, int fd, enum zread_format fmt)
{
    int rc = -ENOMEM;
    struct stat st;
    struct zread *r = calloc(1, sizeof(*r));
    if (!r)
        goto fail;
    r->fd = fd;
    r->fmt = fmt;
    r->x = (lzma_stream)LZMA_STREAM_INIT;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        r->in_size = (uint64_t)st.st_size;
    if (fmt == ZREAD_SNIFF) {
        if ((rc = fill(r, 6)) < 0)
            goto fail;
        r->fmt = sniff(r->in, r->ilen, &rc);
        if (rc < 0)
            goto fail;
    }
    if ((rc = start_decoder(r)) < 0)
        goto fail;
    r->max_out = ZREAD_OUT_MAX;
    *out = r;
    return 0;
fail:
    zread_free(r);
    return rc;
}

static ssize_t plain_read(struct zread *r, uint8_t *out, size_t n)
{
    if (r->ipos == r->ilen) {
        int rc = fill(r, 1);
        if (rc < 0)
            return rc;
    }
    size_t k = r->ilen - r->ipos;
    if (k > n)
        k = n;
    memcpy(out, r->in + r->ipos, k);
    r->ipos += k;
    return (ssize_t)k;
}

/* One inflate step; sets member_end at the end of a gzip member. */
static int gz_step(struct zread *r)
{
    int rc = fill(r, 1);
    if (rc < 0)
        return rc;
    if (r->ipos == r->ilen)
        return -EIO; /* input ended inside a member: truncated */
    r->z.next_in = r->in + r->ipos;
    r->z.avail_in = (uInt)(r->ilen - r->ipos);
    int zr = inflate(&r->z, Z_NO_FLUSH);
    r->ipos = r->ilen - r->z.avail_in;
    if (zr == Z_STREAM_END)
        r->member_end = true;
    else if (zr != Z_OK && !(zr == Z_BUF_ERROR && r->z.avail_in == 0))
        return -EIO;
    return 0;
}

static ssize_t gz_read(struct zread *r, uint8_t *out, size_t n)
{
    uInt want = n > UINT_MAX ? UINT_MAX : (uInt)n;
    r->z.next_out = out;
    r->z.avail_out = want;
    while (r->z.avail_out == want && !r->done) {
        if (r->member_end) {
            /* Another member follows only if more input does. */
            int rc = fill(r, 1);
            if (rc < 0)
                return rc;
            if (r->ipos == r->ilen) {
                r->done = true;
                break;
            }
            if (inflateReset(&r->z) != Z_OK)
                return -EIO;
            r->member_end = false;
        }
        int rc = gz_step(r);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)(want - r->z.avail_out);
}

static ssize_t xz_read(struct zread *r, uint8_t *out, size_t n)
{
    r->x.next_out = out;
    r->x.avail_out = n;
    while (r->x.avail_out == n && !r->done) {
        int rc = fill(r, 1);
        if (rc < 0)
            return rc;
        r->x.next_in = r->in + r->ipos;
        r->x.avail_in = r->ilen - r->ipos;
        /* LZMA_FINISH once the input is exhausted: the decoder then reports a stream
         * that does not end properly as an error instead of waiting for more. */
        lzma_action act = (r->ipos == r->ilen && r->in_eof) ? LZMA_FINISH : LZMA_RUN;
        lzma_ret ret = lzma_code(&r->x, act);
        r->ipos = r->ilen - r->x.avail_in;
        if (ret == LZMA_STREAM_END)
            r->done = true;
        else if (ret != LZMA_OK)
            return -EIO;
    }
    return (ssize_t)(n - r->x.avail_out);
}

ssize_t zread_read(struct zread *r, void *buf, size_t n)
{
    ssize_t got;
    if (n == 0 || r->done)
        return 0;
    if (r->fmt == ZREAD_GZIP)
        got = gz_read(r, buf, n);
    else if (r->fmt == ZREAD_XZ)
        got = xz_read(r, buf, n);
    else
        got = plain_read(r, buf, n);
    if (got > 0) {
        r->total_out += (uint64_t)got;
        if (r->total_out > r->max_out || over_ratio(r))
            return -EFBIG;
    }
    return got;
}

uint64_t zread_limit(const struct zread *r)
{
    return r->max_out;
}

void zread_set_limit(struct zread *r, uint64_t max_out)
{
    if (max_out < r->max_out)
        r->max_out = max_out;
}

uint64_t zread_in_size(const struct zread *r)
{
    return r->in_size;
}

enum zread_format zread_format(const struct zread *r)
{
    return r->fmt;
}

void zread_free(struct zread *r)
{
    if (!r)
        return;
    if (r->z_init)
        inflateEnd(&r->z);
    if (r->x_init)
        lzma_end(&r->x);
    free(r);
}

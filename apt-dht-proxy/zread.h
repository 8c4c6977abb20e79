/* zread.h - a pull-style reader that yields the decompressed bytes of a plain, gzip or xz
 * file, so an index is parsed while it is inflated and never held whole in memory.
 *
 * The reader borrows a file descriptor (it never closes it) and reads it from its current
 * position. Corruption, a bad checksum and truncation (input ends before the compressed
 * stream does) all read as -EIO: the caller must treat everything read so far as untrusted
 * and discard it. */
#ifndef APT_DHT_ZREAD_H
#define APT_DHT_ZREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum zread_format {
    ZREAD_PLAIN = 0,
    ZREAD_GZIP,  /* RFC 1952, several members allowed (as `cat a.gz b.gz`) */
    ZREAD_XZ,    /* .xz, concatenated streams and stream padding allowed */
    ZREAD_SNIFF, /* decide from the magic bytes: 1f 8b = gzip, fd 37 7a 58 5a 00 = xz,
                  * bzip2 / zstd / lzma -> -ENOTSUP, anything else = plain */
};

/* Decompressed output is bounded against decompression bombs (-EFBIG past the bound):
 * at most ZREAD_OUT_MAX in all, and for compressed input at any moment at most
 * ZREAD_RATIO times the compressed bytes read so far plus ZREAD_RATIO_SLACK. Real
 * indices inflate 4-7x all along (Debian's Packages.xz about 5x, Packages.gz about 4x:
 * every few hundred bytes carry a fresh hash); a file of zeros or of one repeated stanza
 * inflates 100-1000x, so it is stopped within its first kilobytes instead of costing
 * seconds of CPU and a row per entry. The slack keeps tiny files (an empty Packages.gz
 * of 20 bytes, a one-stanza index) and a decoder's look-ahead clear of the ratio. */
#define ZREAD_OUT_MAX ((uint64_t)1 << 30)
#define ZREAD_RATIO 64
#define ZREAD_RATIO_SLACK ((uint64_t)1 << 20)

struct zread;

/* 0, -ENOMEM, -ENOTSUP (sniffed an unsupported compressor), -EIO (read error while sniffing). */
int zread_open_fd(struct zread **out, int fd, enum zread_format fmt);

/* The bound on the whole output in bytes (ZREAD_OUT_MAX), and a tighter one for callers
 * that know better (a bound above it is ignored). The ratio bound applies as well. */
uint64_t zread_limit(const struct zread *r);
void zread_set_limit(struct zread *r, uint64_t max_out);

/* Size of the input file as fstat(2) saw it at open (0 for pipes and the like). */
uint64_t zread_in_size(const struct zread *r);

/* Up to n decompressed bytes into buf: > 0 bytes, 0 at the clean end of the data, or a
 * negative errno (-EIO corrupt/truncated, -EFBIG over the output bound, read(2) errors). */
ssize_t zread_read(struct zread *r, void *buf, size_t n);

/* Format in use after sniffing (ZREAD_SNIFF resolved). */
enum zread_format zread_format(const struct zread *r);

/* Accepts NULL. Does not close the descriptor. */
void zread_free(struct zread *r);

#endif

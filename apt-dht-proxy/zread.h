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

/* Decompressed output beyond this is refused (-EFBIG): a bound against decompression
 * bombs, far above any real index (Debian's largest Packages is ~100 MiB). */
#define ZREAD_OUT_MAX ((uint64_t)2 << 30)

struct zread;

/* 0, -ENOMEM, -ENOTSUP (sniffed an unsupported compressor), -EIO (read error while sniffing). */
int zread_open_fd(struct zread **out, int fd, enum zread_format fmt);

/* Up to n decompressed bytes into buf: > 0 bytes, 0 at the clean end of the data, or a
 * negative errno (-EIO corrupt/truncated, -EFBIG over ZREAD_OUT_MAX, read(2) errors). */
ssize_t zread_read(struct zread *r, void *buf, size_t n);

/* Format in use after sniffing (ZREAD_SNIFF resolved). */
enum zread_format zread_format(const struct zread *r);

/* Accepts NULL. Does not close the descriptor. */
void zread_free(struct zread *r);

#endif

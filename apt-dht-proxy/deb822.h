/* deb822.h - a bounded, streaming tokenizer for the paragraph syntax of Debian's control
 * files (Release, Packages, Sources): "Field: value" lines, continuation lines that start
 * with a space or tab, paragraphs separated by blank lines.
 *
 * It walks either a memory buffer or bytes pulled from a read callback through one fixed
 * buffer, and hands out one classified line per call. Nothing is copied per line: the
 * name and value pointers of a token stay valid only until the next deb822_next call.
 * A line longer than DEB822_LINE_MAX is never looked at: it is skipped and reported as
 * DEB822_BAD, so callers can drop the paragraph that contained it. CR before LF is
 * dropped, so CRLF files read like LF files. */
#ifndef APT_DHT_DEB822_H
#define APT_DHT_DEB822_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DEB822_LINE_MAX (64 * 1024) /* bytes, without the line end */

enum deb822_tok {
    DEB822_EOF = 0, /* no more input */
    DEB822_FIELD,   /* name/name_len and value/value_len (value trimmed, may be empty) */
    DEB822_CONT,    /* continuation line: value/value_len trimmed */
    DEB822_END,     /* a paragraph ended (blank line or end of input after content) */
    DEB822_BAD,     /* over-long line, NUL byte, or a line that is neither field nor continuation */
};

/* Pull callback: up to n bytes into buf; > 0 bytes, 0 at end, negative errno on error. */
typedef ssize_t (*deb822_read_fn)(void *ctx, void *buf, size_t n);

struct deb822 {
    /* source: either mem (memory mode) or read/ctx with buf */
    const char *mem;
    size_t mem_len, mem_pos;
    deb822_read_fn read;
    void *ctx;
    char *buf;
    size_t cap, start, end, scan; /* buf[start..end) unconsumed; scan: no LF in [start..scan) */
    bool eof, skipping;
    bool in_para;
    bool dash_escaped; /* OpenPGP clearsigned text: a leading "- " is removed */
    size_t line_no;    /* 1-based number of the last line handed out */
    /* current token */
    const char *name, *value;
    size_t name_len, value_len;
};

/* Memory mode; never fails. */
void deb822_init_mem(struct deb822 *p, const char *buf, size_t len);
/* Streaming mode; allocates the line buffer. 0 or -ENOMEM. */
int deb822_init_reader(struct deb822 *p, deb822_read_fn fn, void *ctx);
void deb822_done(struct deb822 *p);

/* Next token (enum deb822_tok, >= 0) or the read callback's negative errno. */
int deb822_next(struct deb822 *p);

/* Next raw line (without its LF, nor a CR before it): 1 with *line and *len set, 0 at
 * the end, -E2BIG for a line over DEB822_LINE_MAX (skipped), or the read errno. */
int deb822_line(struct deb822 *p, const char **line, size_t *len);

/* Case-insensitive test of the current FIELD's name. */
bool deb822_is(const struct deb822 *p, const char *name);

#endif

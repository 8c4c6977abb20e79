/* tbuf.h - a growing text buffer for the pages the daemon writes (status, metrics), with
 * the escaping each format needs. Appending never fails visibly: on an allocation
 * failure, or past TBUF_MAX, the buffer is marked failed and ignores further text; the
 * writer checks tbuf_failed once at the end (and answers 500), so renderers stay plain
 * sequences of appends. */
#ifndef APT_DHT_TBUF_H
#define APT_DHT_TBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TBUF_MAX (8u << 20) /* the largest page, bytes */

struct tbuf {
    char *p;    /* NUL-terminated while not failed; NULL until the first append */
    size_t len, cap;
    bool failed;
};

void tbuf_init(struct tbuf *b);
void tbuf_done(struct tbuf *b);
/* Hands the text over (the caller frees it); the buffer is empty again. */
char *tbuf_take(struct tbuf *b, size_t *len);
bool tbuf_failed(const struct tbuf *b);

void tbuf_add(struct tbuf *b, const char *s, size_t n);
void tbuf_puts(struct tbuf *b, const char *s);
void tbuf_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* s as HTML text or a double-quoted attribute value: & < > " ' escaped, control bytes
 * and bytes that are not valid UTF-8 shown as U+FFFD. */
void tbuf_html(struct tbuf *b, const char *s);
/* s as the inside of a JSON string (quotes not added). */
void tbuf_json(struct tbuf *b, const char *s);
/* s as a Prometheus label value (backslash, double quote and newline escaped). */
void tbuf_label(struct tbuf *b, const char *s);

/* Human units: "1.5 GiB", "980 B"; "3 h 12 min", "45 s". */
void tbuf_bytes(struct tbuf *b, uint64_t n);
void tbuf_duration(struct tbuf *b, uint64_t seconds);

#endif

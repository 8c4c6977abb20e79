/* deb822.c - line splitting and classification for Debian control-file paragraphs.
 *
 * Model: two layers. deb822_line() cuts raw lines, from memory directly or from a fixed
 * buffer refilled by the read callback (a refill happens only when no LF is left, so the
 * memmove that compacts the buffer runs once per ~128 KiB, not once per line). A line
 * that has no LF within DEB822_LINE_MAX bytes is dropped while it streams past
 * (`skipping`), so memory stays bounded whatever the input. deb822_next() classifies each
 * line and tracks whether a paragraph is open, so every paragraph ends with DEB822_END,
 * the last one included. */
#include "aptdht-config.h"
#include "apt-dht-proxy/deb822.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEB822_READ_CHUNK (128 * 1024)

void deb822_init_mem(struct deb822 *p, const char *buf, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->mem = buf ? buf : "";
    p->mem_len = buf ? len : 0;
}

int deb822_init_reader(struct deb822 *p, deb822_read_fn fn, void *ctx)
{
    memset(p, 0, sizeof(*p));
    p->read = fn;
    p->ctx = ctx;
    p->cap = DEB822_LINE_MAX + DEB822_READ_CHUNK;
    p->buf = malloc(p->cap);
    return p->buf ? 0 : -ENOMEM;
}

void deb822_done(struct deb822 *p)
{
    if (!p)
        return;
    free(p->buf);
    p->buf = NULL;
}

static int mem_line(struct deb822 *p, const char **line, size_t *len)
{
    if (p->mem_pos >= p->mem_len)
        return 0;
    const char *s = p->mem + p->mem_pos;
    size_t left = p->mem_len - p->mem_pos;
    const char *nl = memchr(s, '\n', left);
    *line = s;
    *len = nl ? (size_t)(nl - s) : left;
    p->mem_pos += nl ? *len + 1 : left;
    return 1;
}

/* Hands out the buffered line that ends at `stop` (exclusive; next byte at `next`). */
static int take(struct deb822 *p, size_t stop, size_t next, const char **line, size_t *len)
{
    *line = p->buf + p->start;
    *len = stop - p->start;
    p->start = p->scan = next;
    if (p->skipping) {
        p->skipping = false; /* this was the tail of an over-long line */
        return -E2BIG;
    }
    return 1;
}

/* Makes room: drops an over-long partial line or moves the partial line to the front. */
static void compact(struct deb822 *p)
{
    if (p->end - p->start > DEB822_LINE_MAX) {
        p->skipping = true;
        p->start = p->scan = p->end = 0;
    } else if (p->start > 0) {
        memmove(p->buf, p->buf + p->start, p->end - p->start);
        p->end -= p->start;
        p->scan -= p->start;
        p->start = 0;
    }
}

static int stream_line(struct deb822 *p, const char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(p->buf + p->scan, '\n', p->end - p->scan);
        if (nl) {
            size_t stop = (size_t)(nl - p->buf);
            return take(p, stop, stop + 1, line, len);
        }
        p->scan = p->end;
        if (p->eof) {
            if (p->start == p->end && !p->skipping)
                return 0;
            return take(p, p->end, p->end, line, len);
        }
        compact(p);
        ssize_t n = p->read(p->ctx, p->buf + p->end, p->cap - p->end);
        if (n < 0)
            return (int)n;
        if (n == 0)
            p->eof = true;
        p->end += (size_t)n;
    }
}

int deb822_line(struct deb822 *p, const char **line, size_t *len)
{
    int rc = p->buf ? stream_line(p, line, len) : mem_line(p, line, len);
    if (rc <= 0 && rc != -E2BIG)
        return rc;
    p->line_no++;
    if (rc == -E2BIG || *len > DEB822_LINE_MAX)
        return -E2BIG;
    if (*len > 0 && (*line)[*len - 1] == '\r')
        (*len)--;
    return 1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*s)[*n - 1]))
        (*n)--;
}

/* "Name: value" -> FIELD, else BAD. Names are printable ASCII without ':' or spaces. */
static int classify_field(struct deb822 *p, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return DEB822_BAD;
    for (const char *c = l; c < colon; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return DEB822_BAD;
    p->name = l;
    p->name_len = (size_t)(colon - l);
    p->value = colon + 1;
    p->value_len = n - p->name_len - 1;
    trim(&p->value, &p->value_len);
    return DEB822_FIELD;
}

/* Classifies one raw line; -1 means "no token, read on" (blank outside a paragraph, comment). */
static int classify(struct deb822 *p, const char *l, size_t n)
{
    if (memchr(l, '\0', n))
        return DEB822_BAD;
    if (p->dash_escaped && n >= 2 && l[0] == '-' && l[1] == ' ') {
        l += 2;
        n -= 2;
    }
    const char *v = l;
    size_t vn = n;
    trim(&v, &vn);
    if (vn == 0) {
        bool was = p->in_para;
        p->in_para = false;
        return was ? DEB822_END : -1;
    }
    if (l[0] == '#')
        return -1;
    if (is_blank(l[0])) {
        p->value = v;
        p->value_len = vn;
        return p->in_para ? DEB822_CONT : DEB822_BAD;
    }
    return classify_field(p, l, n);
}

int deb822_next(struct deb822 *p)
{
    for (;;) {
        const char *l;
        size_t n;
        int rc = deb822_line(p, &l, &n);
        if (rc == 0) {
            bool was = p->in_para;
            p->in_para = false;
            return was ? DEB822_END : DEB822_EOF;
        }
        if (rc == -E2BIG) {
            p->in_para = true;
            return DEB822_BAD;
        }
        if (rc < 0)
            return rc;
        int tok = classify(p, l, n);
        if (tok < 0)
            continue;
        if (tok != DEB822_END)
            p->in_para = true;
        return tok;
    }
}

bool deb822_is(const struct deb822 *p, const char *name)
{
    size_t n = strlen(name);
    return p->name_len == n && strncasecmp(p->name, name, n) == 0;
}

/* tbuf.c - the text buffer and its escapers.
 *
 * Escaping is by whitelist of what may pass unchanged, byte by byte: for HTML, anything
 * that is not markup-significant, not a control byte and part of a valid UTF-8 sequence;
 * so text from the network (paths, User-Agents, peer labels, log lines) can only ever be
 * text on the page, whatever bytes it holds. */
#include "aptdht-config.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/tbuf.h"

void tbuf_init(struct tbuf *b)
{
    memset(b, 0, sizeof *b);
}

void tbuf_done(struct tbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *tbuf_take(struct tbuf *b, size_t *len)
{
    char *p = b->p;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

bool tbuf_failed(const struct tbuf *b)
{
    return b->failed;
}

static bool grow(struct tbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = cap <= TBUF_MAX ? realloc(b->p, cap) : NULL;
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tbuf_add(struct tbuf *b, const char *s, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tbuf_puts(struct tbuf *b, const char *s)
{
    tbuf_add(b, s, strlen(s));
}

void tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        tbuf_add(b, small, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0fu;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0; /* also stops at the NUL */
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    return n;
}

void tbuf_html(struct tbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            tbuf_puts(b, rep);
            p++;
            continue;
        }
        size_t n = utf8_len(p);
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
            tbuf_puts(b, "\xef\xbf\xbd"); /* U+FFFD */
            p++;
            continue;
        }
        tbuf_add(b, (const char *)p, n);
        p += n;
    }
}

void tbuf_json(struct tbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            tbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f || *p == '<' || *p == '>' || *p == '&')
            tbuf_printf(b, "\\u%04x", *p); /* bytes, not characters: plain ASCII out */
        else
            tbuf_add(b, (const char *)p, 1);
    }
}

void tbuf_label(struct tbuf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '"')
            tbuf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            tbuf_puts(b, "\\n");
        else
            tbuf_add(b, p, 1);
    }
}

void tbuf_bytes(struct tbuf *b, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        tbuf_printf(b, "%llu B", (unsigned long long)n);
    else
        tbuf_printf(b, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void tbuf_duration(struct tbuf *b, uint64_t s)
{
    if (s < 60)
        tbuf_printf(b, "%llu s", (unsigned long long)s);
    else if (s < 3600)
        tbuf_printf(b, "%llu min %llu s", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
    else if (s < 86400)
        tbuf_printf(b, "%llu h %llu min", (unsigned long long)(s / 3600),
                    (unsigned long long)(s % 3600 / 60));
    else
        tbuf_printf(b, "%llu d %llu h", (unsigned long long)(s / 86400),
                    (unsigned long long)(s % 86400 / 3600));
}

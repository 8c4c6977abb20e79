/* bencode.c - bounded bencode decoder and encoder.
 *
 * The decoder turns one datagram into a flat array of tokens (like a JSON tokenizer):
 * no allocation, at most `max` tokens, at most BEN_MAX_DEPTH nesting, canonical integers
 * and lengths only (no leading zeros, no "-0"), and nothing after the value. Each
 * container token records where its subtree ends, so walking a dict is a hop from
 * child to child. The encoder writes into a caller buffer and remembers overflow
 * instead of failing at every call. */
#include <errno.h>
#include <string.h>
#include "dht/dht-int.h"

struct ben_parser {
    const uint8_t *p, *end;
    struct ben_tok *toks;
    size_t n, max;
};

/* Parses a canonical decimal number ending at `term`; neg allowed for integers. */
static int parse_num(struct ben_parser *ps, char term, int allow_neg, int64_t *out)
{
    int neg = 0, digits = 0;
    int64_t v = 0;
    if (allow_neg && ps->p < ps->end && *ps->p == '-') {
        neg = 1;
        ps->p++;
    }
    const uint8_t *start = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (++digits > BEN_MAX_INT_DIGITS)
            return -EINVAL;
        v = v * 10 + (*ps->p - '0');
        ps->p++;
    }
    if (digits == 0 || ps->p >= ps->end || *ps->p != term)
        return -EINVAL;
    if (digits > 1 && *start == '0')
        return -EINVAL; /* leading zero */
    if (neg && v == 0)
        return -EINVAL; /* "-0" */
    ps->p++;
    *out = neg ? -v : v;
    return 0;
}

static int parse_value(struct ben_parser *ps, int depth);

static int parse_container(struct ben_parser *ps, size_t idx, int depth, int is_dict)
{
    uint32_t count = 0;
    ps->p++; /* 'l' or 'd' */
    for (;;) {
        if (ps->p >= ps->end)
            return -EINVAL;
        if (*ps->p == 'e') {
            ps->p++;
            break;
        }
        if (is_dict && (count % 2) == 0 && !(*ps->p >= '0' && *ps->p <= '9'))
            return -EINVAL; /* dict keys are strings */
        int r = parse_value(ps, depth + 1);
        if (r < 0)
            return r;
        count++;
    }
    if (is_dict && count % 2)
        return -EINVAL;
    ps->toks[idx].count = count;
    return 0;
}

static int parse_value(struct ben_parser *ps, int depth)
{
    if (depth > BEN_MAX_DEPTH)
        return -ELOOP;
    if (ps->p >= ps->end)
        return -EINVAL;
    if (ps->n >= ps->max)
        return -E2BIG;
    size_t idx = ps->n++;
    struct ben_tok *t = &ps->toks[idx];
    memset(t, 0, sizeof(*t));
    int r = 0;
    uint8_t c = *ps->p;
    if (c == 'i') {
        t->type = BEN_INT;
        ps->p++;
        r = parse_num(ps, 'e', 1, &t->i);
    } else if (c >= '0' && c <= '9') {
        int64_t n;
        t->type = BEN_STR;
        r = parse_num(ps, ':', 0, &n);
        if (r == 0 && (uint64_t)n > (uint64_t)(ps->end - ps->p))
            r = -EINVAL;
        if (r == 0) {
            t->s = ps->p;
            t->len = (size_t)n;
            ps->p += n;
        }
    } else if (c == 'l' || c == 'd') {
        t->type = c == 'l' ? BEN_LIST : BEN_DICT;
        r = parse_container(ps, idx, depth, c == 'd');
    } else {
        r = -EINVAL;
    }
    if (r < 0)
        return r;
    ps->toks[idx].next = (uint32_t)ps->n;
    return 0;
}

int ben_parse(const uint8_t *buf, size_t len, struct ben_tok *toks, size_t max)
{
    struct ben_parser ps = {buf, buf + len, toks, 0, max};
    if (!buf || max == 0)
        return -EINVAL;
    int r = parse_value(&ps, 0);
    if (r < 0)
        return r;
    if (ps.p != ps.end)
        return -EINVAL; /* trailing bytes */
    return (int)ps.n;
}

int ben_dict_get(const struct ben_tok *toks, int d, const char *key)
{
    if (d < 0 || toks[d].type != BEN_DICT)
        return -1;
    size_t klen = strlen(key);
    uint32_t i = (uint32_t)d + 1;
    for (uint32_t k = 0; k + 1 < toks[d].count; k += 2) {
        uint32_t v = toks[i].next;
        if (toks[i].len == klen && memcmp(toks[i].s, key, klen) == 0)
            return (int)v;
        i = toks[v].next;
    }
    return -1;
}

void benc_init(struct benc *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->err = 0;
}

static void put(struct benc *w, const void *s, size_t n)
{
    if (w->err || n > w->cap - w->len) {
        w->err = -ENOBUFS;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_num(struct benc *w, int64_t v, char term)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    tmp[--i] = term;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    put(w, tmp + i, sizeof(tmp) - (size_t)i);
}

void benc_str(struct benc *w, const void *s, size_t n)
{
    put_num(w, (int64_t)n, ':');
    put(w, s, n);
}

void benc_cstr(struct benc *w, const char *s)
{
    benc_str(w, s, strlen(s));
}

void benc_int(struct benc *w, int64_t v)
{
    put(w, "i", 1);
    put_num(w, v, 'e');
}

void benc_list(struct benc *w)
{
    put(w, "l", 1);
}

void benc_dict(struct benc *w)
{
    put(w, "d", 1);
}

void benc_end(struct benc *w)
{
    put(w, "e", 1);
}

int benc_finish(const struct benc *w)
{
    return w->err ? w->err : (int)w->len;
}

/* config-yaml.c - the generic half of the config loader: a bounded YAML document and
 * checked readers of its nodes.
 *
 * Model: libyaml loads the whole buffer into a node tree; config.c's schema then asks for
 * one value at a time (a text, a number, a boolean, one of some names, the pairs of a
 * mapping), and every refusal is a single message naming the file, the line of the node
 * and the dotted key. libyaml's own errors are turned into the same form: reader errors
 * (bad UTF-8, control bytes) carry only a byte offset, so the line is counted here. */
#include "aptdht-config.h"
#include "apt-dht-proxy/config-yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- messages ------------------------------------------------------------------------ */

void cy_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}

int cy_fail(struct cy *y, const yaml_node_t *node, const char *key, int rc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned long line = node ? (unsigned long)node->start_mark.line + 1 : 1;
    if (key)
        cy_error(y->err, y->errlen, "%s:%lu: key '%s': %s", y->name, line, key, msg);
    else
        cy_error(y->err, y->errlen, "%s:%lu: %s", y->name, line, msg);
    return rc;
}

void cy_key_path(char *out, const char *prefix, const char *name)
{
    snprintf(out, CONFIG_KEY_SHOWN, "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "",
             CONFIG_SHOW, name);
}

/* ---- the document ---------------------------------------------------------------------- */

/* Counts lines up to a byte offset. */
static unsigned long line_of(const char *buf, size_t len, size_t offset)
{
    unsigned long line = 1;
    for (size_t i = 0; i < offset && i < len; i++)
        line += buf[i] == '\n';
    return line;
}

static int yaml_failure(struct cy *y, const yaml_parser_t *p, const char *buf, size_t len)
{
    unsigned long line;
    if (p->error == YAML_MEMORY_ERROR)
        return -ENOMEM;
    if (p->error == YAML_READER_ERROR)
        line = line_of(buf, len, p->problem_offset);
    else
        line = (unsigned long)p->problem_mark.line + 1;
    if (p->context)
        cy_error(y->err, y->errlen, "%s:%lu: YAML: %s %s", y->name, line, p->problem,
                 p->context);
    else
        cy_error(y->err, y->errlen, "%s:%lu: YAML: %s", y->name, line,
                 p->problem ? p->problem : "syntax error");
    return -EINVAL;
}

/* After the first document: makes sure no second one follows. */
static int check_single_document(struct cy *y, yaml_parser_t *parser, const char *buf,
                                 size_t len)
{
    yaml_document_t extra;
    if (!yaml_document_get_root_node(&y->doc))
        return 0;
    if (!yaml_parser_load(parser, &extra))
        return yaml_failure(y, parser, buf, len);
    bool more = yaml_document_get_root_node(&extra) != NULL;
    unsigned long line = (unsigned long)extra.start_mark.line + 1;
    yaml_document_delete(&extra);
    if (more) {
        cy_error(y->err, y->errlen, "%s:%lu: only one YAML document is allowed", y->name, line);
        return -EINVAL;
    }
    return 0;
}

int cy_load(struct cy *y, const char *name, const char *buf, size_t len, char *err,
            size_t errlen)
{
    yaml_parser_t parser;
    int rc;
    memset(y, 0, sizeof(*y));
    y->name = name;
    y->err = err;
    y->errlen = errlen;
    if (len > CONFIG_MAX_FILE) {
        cy_error(err, errlen, "%s: larger than %d bytes", name, CONFIG_MAX_FILE);
        return -EFBIG;
    }
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""), len);
    if (!yaml_parser_load(&parser, &y->doc)) {
        rc = yaml_failure(y, &parser, buf, len);
    } else {
        y->loaded = true;
        rc = check_single_document(y, &parser, buf, len);
    }
    yaml_parser_delete(&parser);
    return rc;
}

void cy_done(struct cy *y)
{
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = false;
}

const yaml_node_t *cy_root(struct cy *y)
{
    return yaml_document_get_root_node(&y->doc);
}

const yaml_node_t *cy_node(struct cy *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

/* ---- nodes ------------------------------------------------------------------------------ */

const char *cy_type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a single value";
    }
}

bool cy_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

int cy_text(struct cy *y, const yaml_node_t *n, const char *key, char *buf)
{
    if (n->type != YAML_SCALAR_NODE)
        return cy_fail(y, n, key, -EINVAL, "expected a single value, found %s", cy_type_name(n));
    if (cy_is_null(n))
        return cy_fail(y, n, key, -EINVAL, "missing value");
    size_t len = n->data.scalar.length;
    const unsigned char *v = n->data.scalar.value;
    if (len > CONFIG_MAX_STRING)
        return cy_fail(y, n, key, -EINVAL, "value longer than %d bytes", CONFIG_MAX_STRING);
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] == 0x7f)
            return cy_fail(y, n, key, -EINVAL, "control character in value");
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (len == 0)
        return cy_fail(y, n, key, -EINVAL, "empty value");
    return 0;
}

int cy_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cy_number(struct cy *y, const yaml_node_t *n, const char *key, uint32_t min, uint32_t max,
              uint32_t *out)
{
    char buf[CONFIG_MAX_STRING + 1];
    uint64_t v;
    int rc = cy_text(y, n, key, buf);
    if (rc < 0)
        return rc;
    if (cy_decimal(buf, strlen(buf), UINT64_MAX, &v) < 0)
        return cy_fail(y, n, key, -EINVAL, "'%.*s' is not a plain decimal number", CONFIG_SHOW,
                       buf);
    if (v < min || v > max)
        return cy_fail(y, n, key, -ERANGE, "%llu is out of range (%lu..%lu)",
                       (unsigned long long)v, (unsigned long)min, (unsigned long)max);
    *out = (uint32_t)v;
    return 0;
}

int cy_bool(struct cy *y, const yaml_node_t *n, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "yes"}, *const no[] = {"false", "no"};
    char buf[CONFIG_MAX_STRING + 1];
    int rc = cy_text(y, n, key, buf);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < 2; i++) {
        if (strcasecmp(buf, yes[i]) == 0 || strcasecmp(buf, no[i]) == 0) {
            *out = strcasecmp(buf, yes[i]) == 0;
            return 0;
        }
    }
    return cy_fail(y, n, key, -EINVAL, "'%.*s' is not a boolean (true, false, yes, no)",
                   CONFIG_SHOW, buf);
}

int cy_enum(struct cy *y, const yaml_node_t *n, const char *key, const char *const *names,
            size_t count, const char *expected)
{
    char buf[CONFIG_MAX_STRING + 1];
    int rc = cy_text(y, n, key, buf);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(buf, names[i]) == 0)
            return (int)i;
    }
    return cy_fail(y, n, key, -EINVAL, "'%.*s' is not one of %s", CONFIG_SHOW, buf, expected);
}

/* The first key before p with the same text as name, or NULL. */
static const yaml_node_t *earlier_key(struct cy *y, const yaml_node_pair_t *start,
                                      const yaml_node_pair_t *p, const char *name)
{
    size_t len = strlen(name);
    for (const yaml_node_pair_t *q = start; q < p; q++) {
        const yaml_node_t *qk = cy_node(y, q->key);
        if (qk && qk->type == YAML_SCALAR_NODE && qk->data.scalar.length == len &&
            memcmp(qk->data.scalar.value, name, len) == 0)
            return qk;
    }
    return NULL;
}

int cy_walk(struct cy *y, const yaml_node_t *map, const char *prefix, cy_pair_fn fn, void *arg)
{
    const yaml_node_pair_t *start = map->data.mapping.pairs.start;
    const yaml_node_pair_t *top = map->data.mapping.pairs.top;
    char name[CONFIG_MAX_STRING + 1], path[CONFIG_KEY_SHOWN];
    for (const yaml_node_pair_t *p = start; p < top; p++) {
        const yaml_node_t *kn = cy_node(y, p->key), *vn = cy_node(y, p->value), *first;
        if (!kn || !vn)
            return cy_fail(y, NULL, prefix, -EINVAL, "malformed mapping");
        if (kn->type != YAML_SCALAR_NODE || cy_is_null(kn))
            return cy_fail(y, kn, prefix, -EINVAL, "a key must be a name, found %s",
                           cy_is_null(kn) ? "an empty key" : cy_type_name(kn));
        int rc = cy_text(y, kn, prefix, name);
        if (rc < 0)
            return rc;
        cy_key_path(path, prefix, name);
        if ((first = earlier_key(y, start, p, name)))
            return cy_fail(y, kn, path, -EINVAL, "duplicate key (first at line %lu)",
                           (unsigned long)first->start_mark.line + 1);
        if ((rc = fn(y, prefix, name, kn, vn, arg)) < 0)
            return rc;
    }
    return 0;
}

/* ---- the file ------------------------------------------------------------------------- */

/* Reads at most CONFIG_MAX_FILE + 1 bytes, so a too-large file is noticed. */
int cy_read_file(const char *path, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = NULL;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (;;) {
        if (n == cap || !buf) {
            if (buf)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > CONFIG_MAX_FILE) {
            rc = -EFBIG;
            goto fail;
        }
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
fail:
    close(fd);
    free(buf);
    return rc;
}

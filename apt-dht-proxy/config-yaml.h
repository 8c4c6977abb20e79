/* config-yaml.h - the generic half of the config loader, private to config.c: one YAML
 * document parsed from a bounded buffer (libyaml), errors as one "FILE:LINE: key 'a.b':
 * what is wrong" line, and readers that turn nodes into bounded, checked C values. It
 * knows none of apt-dht's keys: config.c holds the schema and walks the tree with these.
 * The prefix is cy_ (config YAML), kept short since config.c calls these on most lines.
 *
 * Every reader that fails has already written its message through cy_fail and returns a
 * negative errno, so callers only pass the code on. */
#ifndef APT_DHT_CONFIG_YAML_H
#define APT_DHT_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#define CONFIG_MAX_FILE (1024 * 1024)          /* bytes of YAML */
#define CONFIG_MAX_STRING 4096                 /* bytes in one scalar value */
#define CONFIG_SHOW 64                         /* bytes of a bad value quoted back in an error */
#define CONFIG_KEY_SHOWN (CONFIG_SHOW * 2 + 2) /* "section.name" as messages show it, NUL */

/* One loaded document and where its messages go. */
struct cy {
    yaml_document_t doc;
    bool loaded;      /* doc holds a document (cy_done deletes it) */
    const char *name; /* file name for messages */
    char *err;        /* may be NULL */
    size_t errlen;
};

/* Parses buf (at most CONFIG_MAX_FILE bytes, else -EFBIG) as exactly one YAML document.
 * 0, -EINVAL (syntax, encoding, a second document; the message names the line), -EFBIG
 * or -ENOMEM. *y is set up in every case: call cy_done. */
int cy_load(struct cy *y, const char *name, const char *buf, size_t len, char *err,
            size_t errlen);
void cy_done(struct cy *y);

/* The root node, NULL for an empty document. */
const yaml_node_t *cy_root(struct cy *y);
/* A node by the index libyaml stores in pairs and items; NULL if there is none. */
const yaml_node_t *cy_node(struct cy *y, int index);

/* Writes one line into err (if any); control bytes become '?' so neither a file name nor
 * a quoted value can split the line. */
void cy_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reports "NAME:LINE: key 'KEY': MESSAGE" for node (line 1 if NULL; no key part if key is
 * NULL) and returns rc. */
int cy_fail(struct cy *y, const yaml_node_t *node, const char *key, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* "a mapping", "a list" or "a single value", for messages. */
const char *cy_type_name(const yaml_node_t *n);

/* A plain (unquoted) empty, "~" or "null" scalar, or an explicit !!null. */
bool cy_is_null(const yaml_node_t *n);

/* Checks that n is a non-empty text scalar of at most CONFIG_MAX_STRING bytes without
 * control bytes (values end up in paths, URLs and log lines) and copies it NUL-terminated
 * into buf (CONFIG_MAX_STRING + 1 bytes). 0 or -EINVAL. */
int cy_text(struct cy *y, const yaml_node_t *n, const char *key, char *buf);

/* A plain decimal number in min..max. 0, -EINVAL or -ERANGE. */
int cy_number(struct cy *y, const yaml_node_t *n, const char *key, uint32_t min, uint32_t max,
              uint32_t *out);

/* true, false, yes, no in any case. 0 or -EINVAL. */
int cy_bool(struct cy *y, const yaml_node_t *n, const char *key, bool *out);

/* The index of the value in names[0..count), or -EINVAL; expected lists them for the
 * message. */
int cy_enum(struct cy *y, const yaml_node_t *n, const char *key, const char *const *names,
            size_t count, const char *expected);

/* Called for each pair of a mapping: the key's text (name), its node and the value's node;
 * prefix is the mapping's own dotted key (NULL at the top). A negative return stops the
 * walk and is passed on. */
typedef int (*cy_pair_fn)(struct cy *y, const char *prefix, const char *name,
                          const yaml_node_t *kn, const yaml_node_t *vn, void *arg);

/* Walks the mapping node map. Keys must be non-empty text scalars, each at most once. */
int cy_walk(struct cy *y, const yaml_node_t *map, const char *prefix, cy_pair_fn fn, void *arg);

/* "PREFIX.NAME" (NAME alone at the top) into out (CONFIG_KEY_SHOWN bytes), NAME cut at
 * CONFIG_SHOW bytes. */
void cy_key_path(char *out, const char *prefix, const char *name);

/* Parses a plain decimal number: digits only, no sign, no leading zero (YAML 1.1 would
 * read 0644 as octal), at most max. Returns 0 or -EINVAL (also for overflow). */
int cy_decimal(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Reads the file at path into a fresh buffer (*out, free it). 0, -EFBIG past
 * CONFIG_MAX_FILE bytes, -ENOMEM, or open(2)/read(2)'s negative errno. */
int cy_read_file(const char *path, char **out, size_t *len);

#endif

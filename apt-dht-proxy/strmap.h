/* strmap.h - a string-keyed hash map (chained, grows by doubling). The map does not own
 * keys or values: each value usually embeds its own key, and the caller frees values. */
#ifndef APT_DHT_STRMAP_H
#define APT_DHT_STRMAP_H

#include <stddef.h>

struct strmap;

int strmap_new(struct strmap **out);
/* Frees the map; calls free_value on each value if it is not NULL. Accepts NULL. */
void strmap_free(struct strmap *m, void (*free_value)(void *));

void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces; key must stay valid while it is in the map (point into the value).
 * Returns 0 or -ENOMEM. *old (if not NULL) receives the replaced value or NULL. */
int strmap_put(struct strmap *m, const char *key, void *value, void **old);
/* Removes key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);

/* Calls fn on each entry; fn may not modify the map. */
void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *ud),
                 void *ud);

#endif

/* strmap.c - chained hash map with FNV-1a; load factor kept at or below 1. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/strmap.h"

struct node {
    const char *key;
    void *value;
    uint32_t hash;
    struct node *next;
};

struct strmap {
    struct node **buckets;
    size_t n_buckets; /* power of two */
    size_t count;
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int strmap_new(struct strmap **out)
{
    struct strmap *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->n_buckets = 64;
    m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

void strmap_free(struct strmap *m, void (*free_value)(void *))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct node *n = m->buckets[i];
        while (n) {
            struct node *next = n->next;
            if (free_value)
                free_value(n->value);
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct node **find(const struct strmap *m, const char *key, uint32_t h)
{
    struct node **pp = &m->buckets[h & (m->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct node **pp = find(m, key, fnv1a(key));
    return *pp ? (*pp)->value : NULL;
}

static void grow(struct strmap *m)
{
    size_t nb = m->n_buckets * 2;
    struct node **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct node *n = m->buckets[i];
        while (n) {
            struct node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **old)
{
    uint32_t h = fnv1a(key);
    struct node **pp = find(m, key, h);
    if (old)
        *old = NULL;
    if (*pp) {
        if (old)
            *old = (*pp)->value;
        (*pp)->key = key;
        (*pp)->value = value;
        return 0;
    }
    struct node *n = malloc(sizeof *n);
    if (!n)
        return -ENOMEM;
    *n = (struct node){key, value, h, NULL};
    *pp = n;
    if (++m->count > m->n_buckets)
        grow(m);
    return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
    struct node **pp = find(m, key, fnv1a(key));
    struct node *n = *pp;
    if (!n)
        return NULL;
    void *v = n->value;
    *pp = n->next;
    free(n);
    m->count--;
    return v;
}

size_t strmap_count(const struct strmap *m)
{
    return m->count;
}

void strmap_each(const struct strmap *m, void (*fn)(const char *key, void *value, void *ud),
                 void *ud)
{
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct node *n = m->buckets[i]; n; n = n->next)
            fn(n->key, n->value, ud);
}

/* hasher.h - the SHA-256 of whole files, computed on a worker thread, off the loop.
 *
 * Reading and hashing a cached .deb of hundreds of MB takes seconds; the loop must not
 * wait for it. The hasher owns one thread and two queues: the loop submits a path with a
 * tag, the thread opens, reads and hashes the file, and the result comes back on the
 * loop through an eventfd, where done(ud, result) is called for it. One thread is
 * enough: the work is bounded by the disk, and a cache entry is hashed once per run.
 *
 * The same computation is offered synchronously (hasher_file) for callers without a
 * loop: the `verify` command and the unit tests. */
#ifndef APT_DHT_HASHER_H
#define APT_DHT_HASHER_H

#include <stdbool.h>
#include <stdint.h>

struct hasher;
struct loop;

struct hasher_result {
    void *tag;         /* as submitted */
    int err;           /* 0, or the negative errno of opening or reading the file */
    uint64_t size;     /* bytes hashed */
    uint8_t sha256[32];
};

/* Starts the thread and registers its eventfd in l. 0 or a negative errno. */
int hasher_new(struct hasher **out, struct loop *l,
               void (*done)(void *ud, const struct hasher_result *r), void *ud);
/* Stops the thread; results not yet delivered are dropped (done is not called).
 * Accepts NULL. */
void hasher_free(struct hasher *h);

/* Queues path (copied). 0 or -ENOMEM. */
int hasher_submit(struct hasher *h, const char *path, void *tag);

/* Jobs queued or running. */
unsigned hasher_pending(const struct hasher *h);

/* Hashes path on the calling thread: 0 with *size and sha256 filled, or a negative errno. */
int hasher_file(const char *path, uint64_t *size, uint8_t sha256[32]);

#endif

/* mirrors.h - the health of mirrors, so that a failing one costs one request, not all.
 *
 * A mirror is known by its origin, "scheme://host:port" of its URLs (the port always
 * written, 80 or 443 by default), so every backend and every rewrite-form request that
 * reach the same server share one record. A transfer that fails for a reason of the
 * mirror's own (no connection, a 5xx, no first byte in time, a stall) backs the origin off:
 * MIRRORS_BACKOFF_MIN_MS after the first failure, doubling with each further one up to
 * MIRRORS_BACKOFF_MAX_MS. A success forgets the record. Orderings put the origins in
 * back-off after the healthy ones (they are still tried, last: a backed-off mirror that
 * is the only one keeps being used), soonest-to-recover first.
 *
 * The table is bounded (MIRRORS_MAX origins); a failure of an origin beyond it is not
 * remembered. Times are the loop's monotonic milliseconds, passed in (tests use a fake
 * clock). */
#ifndef APT_DHT_MIRRORS_H
#define APT_DHT_MIRRORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIRRORS_MAX 256
#define MIRRORS_BACKOFF_MIN_MS 30000u
#define MIRRORS_BACKOFF_MAX_MS 600000u

struct mirrors;

/* 0 or -ENOMEM. */
int mirrors_new(struct mirrors **out);
/* Accepts NULL. */
void mirrors_free(struct mirrors *m);

/* Writes the origin of url ("http://host:port", scheme and host lower-cased) into out.
 * 0, or -EINVAL (not an http or https URL with a host), -ENAMETOOLONG. */
int mirrors_origin(const char *url, char *out, size_t n);

/* A transfer from url failed through the mirror's fault at now_ms. */
void mirrors_failed(struct mirrors *m, const char *url, uint64_t now_ms);
/* A transfer from url got its answer: the mirror is healthy again. */
void mirrors_ok(struct mirrors *m, const char *url);
/* Milliseconds url's mirror stays backed off after now_ms (0 = healthy). */
uint64_t mirrors_backoff_left(const struct mirrors *m, const char *url, uint64_t now_ms);

/* Reorders urls[0..n) in place: healthy mirrors first in their given order, then those
 * backed off, the one whose back-off ends first first. Accepts m NULL (no change). */
void mirrors_order(const struct mirrors *m, char **urls, size_t n, uint64_t now_ms);

#endif

/* verify.h - `apt-dht-proxy verify`: the whole cache checked against the hash index.
 *
 * Every cached file is checked as the daemon checks an entry before serving it
 * (cache_check), here on the calling thread and for all of them at once: its size against
 * the size it was stored with and the size the index gives, its SHA-256 against the one
 * recorded when it was stored and the one the index gives. A file that fails is removed
 * with its record (a running daemon notices at its next open and fetches it again) and
 * named in a log line; the summary goes to out. Files of which nothing is known (no
 * record, no index entry) are counted as unchecked, not as failures. */
#ifndef APT_DHT_VERIFY_H
#define APT_DHT_VERIFY_H

#include <stdio.h>

struct config;

/* Returns the number of files that failed (0: all good), or a negative errno when the
 * cache or the hash index cannot be opened (logged). */
long verify_cache(const struct config *cfg, FILE *out);

#endif

/* import.h - `apt-dht-proxy import DIR`: .deb files from outside (apt's own archive
 * cache, another proxy's cache) into the cache, verified against the hash index.
 *
 * Each DIR/NAME.deb is matched by name against the hash index's entries under pool/
 * (apt's "NAME_EPOCH%3aVER_ARCH.deb" is matched without its epoch, as the pool names
 * it), copied into the cache's temp directory, and its copy's size and SHA-256 compared
 * with the entry's: a match becomes the entry (by rename, as every entry), recorded in
 * the hash index with its SHA-256. The rest is skipped and counted by reason.
 *
 * It works on the cache directly, whether or not the daemon runs: the command can run
 * as root and read a directory the daemon's user cannot, and the hashing of gigabytes
 * does not compete with serving. A daemon running on this host is then sent a HEAD for
 * each added file, which makes it adopt the file (checking its SHA-256, then announcing
 * it to the LAN); one that does not answer on 127.0.0.1 adopts it at its first request,
 * and a daemon started later finds it in its scan with its record. New files and
 * directories are given to the owner of the cache directory. */
#ifndef APT_DHT_IMPORT_H
#define APT_DHT_IMPORT_H

#include <stdio.h>

struct config;

/* What import did with each file of the directory. */
struct import_counts {
    size_t added, cached, unknown, wrong_size, corrupt, not_deb, failed;
};

/* Imports dir into cfg's cache; the summary goes to out. 0 with *n filled, or a negative
 * errno when dir, the cache or the hash index cannot be used (logged). */
int import_dir(const struct config *cfg, const char *dir, FILE *out, struct import_counts *n);

#endif

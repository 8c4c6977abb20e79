/* rekey.h - start-up move of cache entries to the keys the router gives them now.
 *
 * A backend's files are keyed by the backend's name (router.c). A cache made when they
 * were keyed by the backend's first mirror ("HOST/PREFIX/PATH") is moved once, at
 * start-up, before the cache is scanned: each file is renamed to its new key (a file
 * already there wins and the old copy goes), its record of what it holds moves with it
 * in the hash index, and an index file's old entries are forgotten (the moved copy is
 * parsed again under its new name, as any index whose parse did not finish). */
#ifndef APT_DHT_REKEY_H
#define APT_DHT_REKEY_H

struct config;

/* Moves what needs moving under cfg->cache_dir, with the hash index in cfg->state_dir.
 * Returns the number of files moved or dropped as duplicates, or a negative errno (the
 * cache is then left as far as it got: every step is a rename, so it stays valid). */
long rekey_cache(const struct config *cfg);

#endif

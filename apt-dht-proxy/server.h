/* server.h - the HTTP front of apt-dht-proxy (libmicrohttpd driven by the event loop)
 * and the policy behind it: which request forms are accepted, how each maps to one cache
 * key and a list of upstream URLs, and when a file comes from the cache, is revalidated,
 * or is fetched. */
#ifndef APT_DHT_SERVER_H
#define APT_DHT_SERVER_H

#include <stdint.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/p2p.h"

struct server;

struct server_stats {
    uint64_t requests;
    uint64_t bytes_served;      /* body bytes sent to apt clients */
    uint64_t bytes_from_mirror; /* body bytes received from mirrors */
    uint64_t bytes_from_peers;  /* body bytes received from peers (verified or not) */
    uint64_t bytes_uploaded;    /* body bytes sent to peers */
    uint64_t hits, misses, revalidated, errors;
};

/* db and ix may be NULL (no hash knowledge), p2p NULL (no peers). cfg must outlive the
 * server or be replaced with server_set_config. Returns 0 or a negative errno. */
int server_new(struct server **out, const struct config *cfg, struct loop *l, struct cache *c,
               struct hashdb *db, struct indexer *ix, struct p2p *p2p);

/* Binds and starts listening on cfg's listen address and port (0 = any free port, see
 * server_port). Returns 0 or a negative errno (-EADDRINUSE ...). */
int server_start(struct server *s);
uint16_t server_port(const struct server *s);

/* Applies a reloaded configuration (clients, backends, timeouts, log level); listen
 * address and cache dir changes need a restart. */
void server_set_config(struct server *s, const struct config *cfg);

const struct server_stats *server_stats(const struct server *s);

/* Attaches the DHT (after server_start, once the HTTP port is known). */
void server_set_p2p(struct server *s, struct p2p *p2p);

/* Ends every request and transfer, stops listening, frees. Accepts NULL. */
void server_free(struct server *s);

#endif

/* server.h - the HTTP side of apt-dht-proxy: libmicrohttpd driven by the event loop, and
 * the pipeline every request goes through (parse, route, decide, answer or wait).
 * Routing is router.h's, decisions policy.h's, responses respond.h's, cache membership
 * catalogue.h's; the server owns the fetcher whose shared downloads requests wait on. */
#ifndef APT_DHT_SERVER_H
#define APT_DHT_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct cache;
struct catalogue;
struct config;
struct hashdb;
struct indexer;
struct loop;
struct p2p;
struct server;
struct stats;
struct status;
struct fetcher;
struct negcache;
struct router;

/* db and ix may be NULL (no hash knowledge). The server copies what it needs of cfg;
 * cfg must stay valid until server_start returns. Returns 0 or a negative errno. */
int server_new(struct server **out, const struct config *cfg, struct loop *l, struct cache *c,
               struct hashdb *db, struct indexer *ix, struct catalogue *cat);

/* Binds and starts listening on cfg's listen address and port (0 = any free port, see
 * server_port). Returns 0 or a negative errno (-EADDRINUSE ...). */
int server_start(struct server *s);
uint16_t server_port(const struct server *s);

/* Applies a reloaded configuration: client lists, backends (a new router), upstream
 * timeouts, the negative cache's TTL, the peer budget and upload limits; logs what it
 * applied and that the listen address and port need a restart. 0 or -ENOMEM (nothing
 * changed). */
int server_reconfigure(struct server *s, const struct config *cfg);

/* The request counters (stats.h). */
const struct stats *server_stats(const struct server *s);

/* What the status pages (status.h) read of the server. Valid until the next reload
 * (the router is swapped whole) or the next return to the loop. */
struct server_view {
    const struct stats *stats;
    const struct router *router;
    struct fetcher *fetcher;
    struct negcache *neg;
    struct indexer *ix;         /* NULL: no hash knowledge */
    unsigned uploads, max_uploads; /* peer uploads now, and the limit */
    unsigned uploads_bulk;      /* of them, sockets in the bulk band now */
    uint32_t peer_budget_ms;
    uint16_t port;
    const char *listen_address; /* NULL: by dht mode */
    bool peers_on;              /* a DHT is attached */
    const struct catalogue *cat; /* expiry's counters */
};
void server_view(const struct server *s, struct server_view *v);

/* Hands /~/status..., /~/health and /metrics to st (NULL: they are refused as any other
 * non-archive path), and lets status_clients connect. */
void server_set_status(struct server *s, struct status *st);

/* A graceful stop: server_quiesce stops accepting connections; server_drained is true
 * once no request is in flight and no connection is open (or, with grace_over, once
 * only connections without a request are left: idle keep-alive ones). */
void server_quiesce(struct server *s);
bool server_drained(const struct server *s, bool grace_over);

/* Listening sockets inherited from systemd (httpd_listen_fds): server_start serves on
 * them instead of binding listen.address and listen.port. Call before server_start. */
void server_set_listen_fds(struct server *s, const int *fds, size_t n);

/* Attaches the DHT (after server_start, once the HTTP port is known). */
void server_set_p2p(struct server *s, struct p2p *p2p);

/* Ends every request and transfer, stops listening, frees. Accepts NULL. */
void server_free(struct server *s);

#endif

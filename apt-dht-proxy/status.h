/* status.h - "is it working?": the daemon's read-only pages.
 *
 *   /~/status           HTML for a person: what the daemon is, what it saved (since start,
 *                       the last hour and day, and a picture of the last 24 hours drawn as
 *                       inline SVG), the LAN's peers, downloads in progress, the cache,
 *                       verification, who asked, recent failures and warnings
 *   /~/status.json      the same figures for programs (apt-dht-proxy status --json)
 *   /~/status.txt       the summary for a terminal (apt-dht-proxy status)
 *   /~/status/explain   what the daemon knows of one file, who holds it now (a live DHT
 *                       lookup) and where a request for it would be served from
 *   /metrics            the counters in the Prometheus text format (metrics.h)
 *   /~/health           one line, 200 when the daemon serves, 503 when it cannot
 *
 * Everything is under /~/ (a path no archive has) or is /metrics, is answered to
 * status_clients only (/~/health also to allowed_clients), and changes nothing: there are
 * no actions. Everything shown that came from the network is escaped for its format.
 *
 * The module keeps what nobody else keeps: the per-minute history of the counters
 * (history.h, fed by a once-a-second heartbeat that also measures how late the loop
 * runs), the clients seen with their User-Agent, and the last failed requests. */
#ifndef APT_DHT_STATUS_H
#define APT_DHT_STATUS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct answer;
struct cache;
struct config;
struct hashdb;
struct loop;
struct p2p;
struct server;
struct status;

/* config_file: the file the daemon was started with (NULL = built-in defaults), shown on
 * the page. p2p may be NULL (dht.mode off). 0 or -ENOMEM. */
int status_new(struct status **out, const struct config *cfg, const char *config_file,
               struct loop *l, struct server *srv, struct cache *c, struct hashdb *db,
               struct p2p *p2p);
/* Stops the heartbeat and frees. Accepts NULL. The server must be freed first. */
void status_free(struct status *st);

/* A reloaded config: status_clients and allowed_clients. 0 or -ENOMEM (unchanged). */
int status_reconfigure(struct status *st, const struct config *cfg);

/* ---- for the server (server.c) ---- */

/* True if the raw request target is one of this module's paths. */
bool status_route(const char *url);
/* True if sa is in status_clients (the connection budgets let it in as a peer would be). */
bool status_admits(const struct status *st, const struct sockaddr *sa);
/* Answers a request for one of this module's paths (GET and HEAD; 405 otherwise, 403
 * outside status_clients). */
enum MHD_Result status_answer(struct status *st, struct answer *a, const char *method,
                              const char *url, const struct sockaddr *sa);
/* A request ended (any request, for the clients table and the recent failures). */
void status_note(struct status *st, struct MHD_Connection *c, const char *client,
                 const char *method, const char *target, unsigned http_status, uint64_t bytes);

/* The health line and its HTTP status (200 or 503), as /~/health answers. */
unsigned status_health(struct status *st, char *line, size_t n);

#endif

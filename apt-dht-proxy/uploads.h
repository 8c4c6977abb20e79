/* uploads.h - the peer route: GET|HEAD /~/sha256/HEX from another host's proxy.
 *
 * A peer is answered, in this order, from a complete, verified cache entry; from a
 * download of that SHA-256 still in flight here (a relay: what has arrived, then the
 * rest as it comes, the last byte once verified); or, when it asks this host as the
 * file's owner (X-Apt-Dht-Fetch: KEY), by starting that download here, but only if this
 * host's own hash index gives exactly that SHA-256 and size under KEY (its own signed
 * indices decide: no open proxy by another route). Otherwise 404 with a one-line reason.
 *
 * A file already going to UPLOADS_FANOUT peers is not sent to one more: the answer is 503
 * with X-Apt-Dht-Relays naming those peers, which relay it in turn (a tree, not a star).
 * peers.max_uploads bounds all uploads together and peers.upload_rate paces them. */
#ifndef APT_DHT_UPLOADS_H
#define APT_DHT_UPLOADS_H

#include <microhttpd.h>
#include <stdint.h>
#include <sys/socket.h>
#include "apt-dht-proxy/respond.h"

#define UPLOADS_FANOUT 2 /* peers one file goes to at once before 503 + relays */
#define UPLOADS_BULK_AFTER_MS 10 /* an answer's start, before it goes to the bulk band */

struct cache;
struct dl;
struct fetcher;
struct hashdb;
struct hashdb_entry;
struct p2p;
struct route;
struct router;
struct uploads;
struct upload;

/* Starts (or joins) the download of rt for a pull-through request this host accepted (e
 * is its own index's entry), without handing it to another owner, and returns it
 * referenced, or NULL. */
typedef struct dl *(*uploads_pull_fn)(void *ud, const struct route *rt,
                                      const struct hashdb_entry *e);

struct uploads_env {
    struct cache *cache;
    struct fetcher *fetcher;
    struct hashdb *db; /* NULL: no pull-through */
    uploads_pull_fn pull;
    void *ud;
};

int uploads_new(struct uploads **out, const struct uploads_env *env);
void uploads_free(struct uploads *u);
/* The node (NULL = sharing off: every peer request is 404), the router pull-through keys
 * are routed with (NULL = none; swapped on reload), peers.max_uploads and this host's
 * HTTP port. */
void uploads_set(struct uploads *u, struct p2p *p2p, const struct router *rt,
                 unsigned max_uploads, uint16_t port);
/* Uploads in progress. */
unsigned uploads_count(const struct uploads *u);
/* Of them, those whose socket the kernel has in the bulk band now (see uploads.c). */
unsigned uploads_bulk(const struct uploads *u);

/* Answers a peer's request (the caller checked peer_clients). *up receives the upload
 * (NULL when refused): the caller passes it to uploads_end when the request completes
 * and to upload_free when its answer is released. */
enum MHD_Result uploads_serve(struct uploads *u, struct answer *a, const struct sockaddr *client,
                              const uint8_t sha256[32], struct upload **up);
/* The request completed: the upload no longer counts. Accepts NULL. */
void uploads_end(struct uploads *u, struct upload *up);
/* Its answer was released: the download it relayed is let go. Accepts NULL. */
void upload_free(struct upload *up);

#endif

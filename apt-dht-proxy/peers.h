/* peers.h - peers for a download: the DHT lookup that feeds one shared download.
 *
 * A download started with await_peers (fetch.h) is handed every holder the DHT lookup
 * finds, as it finds them; when the lookup is over the download is told so, and it falls
 * back to the mirrors. A lookup that nobody waits for any more, because its download ended
 * first (from the mirror, say), is cancelled. */
#ifndef APT_DHT_PEERS_H
#define APT_DHT_PEERS_H

#include <stdint.h>

struct dl;
struct loop;
struct p2p;

/* Starts the lookup for d (once per download: dl_claim_lookup decides); on any failure
 * the download is told there are no peers. Holds a reference to d while it runs. */
void peers_find(struct p2p *p2p, struct loop *l, struct dl *d, const uint8_t sha256[32]);

#endif

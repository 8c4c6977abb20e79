/* peers.h - peers for a download: the DHT lookup that feeds one shared download.
 *
 * A download started with await_peers (fetch.h) is handed every holder the DHT lookup
 * finds, as it finds them; when the lookup is over the download is told so, and it falls
 * back to the mirrors; but first, unless this node owns the file, to its owner among the
 * live LAN nodes, which fetches it once for everyone who asks. A lookup that nobody waits for any more, because its download ended
 * first (from the mirror, say), is cancelled. */
#ifndef APT_DHT_PEERS_H
#define APT_DHT_PEERS_H

#include <stdbool.h>
#include <stdint.h>

struct dl;
struct loop;
struct p2p;

/* Starts the lookup for d (once per download: dl_claim_lookup decides); on any failure
 * the download is told there are no peers. Holds a reference to d while it runs. With
 * forward, when the lookup is over the nodes that rank above this one as the file's
 * owner (owner.h) are added after the holders, to be asked to fetch it for us (or, when
 * this node owns it, the next in rank, asked only for what it has in flight); without
 * (a download this node runs for another's pull-through request), the same nodes are
 * asked only for what they have in flight. */
void peers_find(struct p2p *p2p, struct loop *l, struct dl *d, const uint8_t sha256[32],
                bool forward);

#endif

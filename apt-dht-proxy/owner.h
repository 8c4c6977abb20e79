/* owner.h - who fetches a file from the mirror for the LAN: a deterministic owner per key.
 *
 * Rendezvous hashing (highest random weight, as in CARP): every live LAN node n gets the
 * weight SHA-256(id(n) || key) for a DHT key, and the heaviest node is the key's owner.
 * Every host that sees the same nodes ranks them the same way, without a message, so
 * hosts that miss the same file at the same instant all ask the same owner, and only
 * the owner goes to the mirror. A node that joins or leaves moves only the keys it
 * owns (1/n of them). */
#ifndef APT_DHT_OWNER_H
#define APT_DHT_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/p2p.h"

/* Most owners a download asks before its mirror (the rest rank below them anyway). */
#define OWNER_MAX 3
/* Most LAN nodes ranked (a LAN's nodes; the roster holds up to ROSTER_MAX). */
#define OWNER_LAN_MAX 256

/* Ranks the n nodes and this node (self_id) for the DHT key. Copies the nodes that rank
 * above this node into out, heaviest first, at most max, and returns how many: 0 means
 * this node owns the key. A node with self's id is ignored (it is this node). */
size_t owner_rank(const uint8_t self_id[20], const struct p2p_node *nodes, size_t n,
                  const uint8_t key[20], struct p2p_node *out, size_t max);

/* The node that ranks first among the n nodes alone (this node left out): who would own
 * the key without us. For a node that owns the key itself: the one most likely to be
 * fetching it already when this node asks late (it fetched when this node declined).
 * false when n is 0. */
bool owner_runner_up(const uint8_t self_id[20], const struct p2p_node *nodes, size_t n,
                     const uint8_t key[20], struct p2p_node *out);

#endif

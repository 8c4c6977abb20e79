/* roster.h - the LAN's apt-dht nodes as this node has heard them, for owner ranking.
 *
 * The routing table is the wrong list for ranking a key's owner among the LAN's nodes:
 * a bucket holds at most 8, so on a LAN of more than a handful each host keeps a
 * different subset, and rendezvous hashing over different subsets names different
 * owners. The roster keeps every node heard from (a query it sent us or an answer to
 * ours) on one of this host's subnets, by id, with when it was last heard. LAN discovery
 * makes every pair of nodes exchange a message at each announcement, so every host's
 * roster holds the same nodes. */
#ifndef APT_DHT_ROSTER_H
#define APT_DHT_ROSTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ROSTER_MAX 256
/* A node not heard from for this long has left the roster's live set (LAN discovery
 * announces every 5 minutes and every node that hears it answers with a ping). */
#define ROSTER_LIVE_MS (15u * 60u * 1000u)

struct roster_entry {
    uint8_t id[20];
    struct sockaddr_storage addr;
    uint64_t heard_ms;
};

struct roster {
    struct roster_entry e[ROSTER_MAX];
    size_t n;
};

/* Records that the node id was heard from at sa at time now. The same id at a new
 * address moves; a new id at a known address (the node restarted) replaces the old
 * one. When full, the entry heard from longest ago gives way. */
void roster_heard(struct roster *r, const uint8_t id[20], const struct sockaddr *sa,
                  socklen_t salen, uint64_t now);

/* Nodes heard within ROSTER_LIVE_MS of now, in no particular order; up to max. */
size_t roster_live(const struct roster *r, uint64_t now, struct roster_entry *out, size_t max);

#endif

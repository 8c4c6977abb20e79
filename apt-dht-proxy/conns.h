/* conns.h - budgets for the HTTP side's connections, so that no one address, and not the
 * LAN's peers together, can take the connections apt needs.
 *
 * Three limits, checked when a connection is offered (libmicrohttpd's accept policy):
 * connections per client address (listen.max_per_client), connections from addresses
 * that are not apt clients (peers and anyone else the port is open to) at most a quarter
 * of listen.max_connections, so apt always has three quarters of the pool; and a header
 * deadline (listen.header_timeout): a connection that has not completed a request head
 * in that time, whether it is silent or sends a byte now and then (slowloris), is shut
 * down. Idle keep-alive connections between requests are libmicrohttpd's own timeout. */
#ifndef APT_DHT_CONNS_H
#define APT_DHT_CONNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct conns;
struct conn_slot;
struct loop;

struct conns_limits {
    uint32_t max_total;       /* the whole pool (libmicrohttpd's connection limit) */
    uint32_t max_per_client;  /* connections from one address */
    uint32_t header_timeout_s; /* 0 = no deadline */
};

int conns_new(struct conns **out, struct loop *l, const struct conns_limits *lim);
void conns_free(struct conns *c);
void conns_set_limits(struct conns *c, const struct conns_limits *lim);

/* May a connection from sa (an apt client or not) be accepted now? */
bool conns_admit(const struct conns *c, const struct sockaddr *sa, bool apt_client);

/* A connection was accepted (fd is its socket): its slot, or NULL when out of memory
 * (the connection is then not tracked and the caller closes it). */
struct conn_slot *conns_opened(struct conns *c, const struct sockaddr *sa, bool apt_client,
                               int fd);
/* Its request head arrived: the header deadline no longer applies (until conns_idle). */
void conns_requested(struct conn_slot *s);
/* It closed. Accepts NULL. */
void conns_closed(struct conns *c, struct conn_slot *s);

/* Counts, for the tests and the state dump. */
uint32_t conns_total(const struct conns *c);
uint32_t conns_from(const struct conns *c, const struct sockaddr *sa);

#endif

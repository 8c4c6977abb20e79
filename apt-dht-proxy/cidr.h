/* cidr.h - address blocks ("10.0.0.0/8", "fe80::/10") and the test of a client's address
 * against a list of them: the access control of both of apt-dht-proxy's faces (apt
 * clients and peers). Pure functions over caller-owned values; nothing is allocated. */
#ifndef APT_DHT_CIDR_H
#define APT_DHT_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address block, "127.0.0.0/8" or "::1/128"; a bare address is a full-length prefix. */
struct cidr {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];   /* network byte order; first 4 bytes used for AF_INET; host bits 0 */
    uint8_t prefix;     /* 0..32 or 0..128 */
};

/* Parses "10.0.0.0/8", "::1", "fe80::/10": a numeric address, then optionally "/" and a
 * decimal prefix length without a leading zero. Host bits are cleared ("10.1.2.3/8" is
 * stored as 10.0.0.0/8). Returns 0 or -EINVAL (*out untouched). */
int cidr_parse(const char *s, struct cidr *out);

/* True if the address (a sockaddr_in or sockaddr_in6; v4-mapped v6 counts as v4)
 * is inside any of the n blocks. */
bool cidr_match_any(const struct cidr *blocks, size_t n, const struct sockaddr *sa);

/* True if a and b (sockaddr_in or sockaddr_in6) are the same address, whatever their
 * ports: one host's listening address and the address it connected from. */
bool sa_same_host(const struct sockaddr *a, const struct sockaddr *b);

/* Replaces *dst (n_dst blocks, freed) with a copy of src's n blocks. 0 or -ENOMEM (then
 * *dst is as it was). */
int cidr_list_copy(struct cidr **dst, size_t *n_dst, const struct cidr *src, size_t n);

#endif

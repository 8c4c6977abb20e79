/* server-conf.h - the HTTP side's own copy of the configuration.
 *
 * The server copies what it uses of a config when it is made and again on every reload
 * (the config rule of doc/ARCHITECTURE.md), so nothing it holds points into a config
 * that main.c frees after a reload. Some fields shape the listening socket and the
 * libmicrohttpd daemon: a running server keeps those until a restart. */
#ifndef APT_DHT_SERVER_CONF_H
#define APT_DHT_SERVER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/cidr.h"
#include "apt-dht-proxy/conns.h"

struct config;

struct server_conf {
    struct cidr *allowed, *peers;
    size_t n_allowed, n_peers;
    uint32_t peer_budget_ms, max_uploads;
    /* fixed while the server runs (the socket and libmicrohttpd's pool): */
    char *listen_address; /* NULL: by dht mode */
    uint16_t listen_port;
    bool dht_off;
    uint32_t max_connections, idle_timeout_s;
};

/* Copies cfg into c; with running, the fields fixed at start keep their values. 0 or
 * -ENOMEM (c unchanged). */
int server_conf_copy(struct server_conf *c, const struct config *cfg, bool running);
/* True if cfg changes a field that only a restart applies. */
bool server_conf_needs_restart(const struct server_conf *c, const struct config *cfg);
/* The connection budgets cfg sets (conns.h). */
struct conns_limits server_conf_limits(const struct config *cfg);
/* Frees what c owns and zeroes it. */
void server_conf_done(struct server_conf *c);

#endif

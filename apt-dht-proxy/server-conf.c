/* server-conf.c - the server's copy of the configuration (see server-conf.h). */
#include "aptdht-config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/server-conf.h"

static bool str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

bool server_conf_needs_restart(const struct server_conf *c, const struct config *cfg)
{
    return cfg->listen_port != c->listen_port ||
           str_differs(cfg->listen_address, c->listen_address) ||
           (cfg->dht_mode == DHT_MODE_OFF) != c->dht_off ||
           cfg->max_connections != c->max_connections || cfg->idle_timeout_s != c->idle_timeout_s;
}

/* The fields a running server keeps: the listening socket's and libmicrohttpd's. */
static int copy_fixed(struct server_conf *c, const struct config *cfg)
{
    char *la = cfg->listen_address ? strdup(cfg->listen_address) : NULL;
    if (cfg->listen_address && !la)
        return -ENOMEM;
    free(c->listen_address);
    c->listen_address = la;
    c->listen_port = cfg->listen_port;
    c->dht_off = cfg->dht_mode == DHT_MODE_OFF;
    c->max_connections = cfg->max_connections;
    c->idle_timeout_s = cfg->idle_timeout_s;
    return 0;
}

int server_conf_copy(struct server_conf *c, const struct config *cfg, bool running)
{
    struct cidr *allowed = NULL, *peers = NULL;
    size_t na = 0, np = 0;
    if (cidr_list_copy(&allowed, &na, cfg->allowed_clients, cfg->n_allowed_clients) < 0 ||
        cidr_list_copy(&peers, &np, cfg->peer_clients, cfg->n_peer_clients) < 0 ||
        (!running && copy_fixed(c, cfg) < 0)) {
        free(allowed);
        free(peers);
        return -ENOMEM;
    }
    free(c->allowed);
    free(c->peers);
    c->allowed = allowed;
    c->n_allowed = na;
    c->peers = peers;
    c->n_peers = np;
    c->peer_budget_ms = cfg->peer_budget_ms;
    c->max_uploads = cfg->peer_max_uploads;
    return 0;
}

struct conns_limits server_conf_limits(const struct config *cfg)
{
    return (struct conns_limits){cfg->max_connections, cfg->max_per_client,
                                 cfg->header_timeout_s};
}

void server_conf_done(struct server_conf *c)
{
    free(c->allowed);
    free(c->peers);
    free(c->listen_address);
    memset(c, 0, sizeof *c);
}

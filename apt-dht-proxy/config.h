/* config.h - apt-dht-proxy's configuration: built-in defaults, the YAML file (libyaml),
 * and command-line overrides, in that order. The names of keys are a contract shared
 * with the packaging and the docs (apt-dht.conf(5), the shipped apt-dht.conf).
 *
 * Every string in struct config is owned by the struct (config_done frees it). */
#ifndef APT_DHT_CONFIG_H
#define APT_DHT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "apt-dht-proxy/cidr.h" /* struct cidr */
#include "apt-dht-proxy/log.h"  /* enum log_level */

/* A named backend (approx style): "debian" -> ordered mirror base URLs
 * ("http://mirror.example/debian", no trailing slash kept). */
struct config_backend {
    char *name;
    char **mirrors;
    size_t n_mirrors;
};

#define CONFIG_MAX_LISTEN 8 /* listen.address entries */

enum dht_mode_cfg { DHT_MODE_APTDHT = 0, DHT_MODE_BEP5, DHT_MODE_OFF };

struct config {
    /* listen: */
    /* listen.address, one address or a list of them (each gets a listener). Empty:
     * "0.0.0.0" with the DHT on, "127.0.0.1" with it off. listen_address is a copy of
     * the first, for the modules that need one address (the DHT's, the status client). */
    char **listen_addresses;
    size_t n_listen_addresses;  /* 0..CONFIG_MAX_LISTEN */
    char *listen_address;       /* NULL = none set */
    uint16_t listen_port;       /* default 9977 */
    uint32_t max_connections;   /* listen.max_connections: the HTTP pool; default 1000 */
    uint32_t max_per_client;    /* listen.max_per_client: from one address; default 64 */
    uint32_t header_timeout_s;  /* listen.header_timeout: to send a request head; default 15 */
    uint32_t idle_timeout_s;    /* listen.idle_timeout: a silent connection; default 60 */

    struct cidr *allowed_clients; /* apt-facing routes; default 127.0.0.0/8 and ::1/128 */
    size_t n_allowed_clients;
    struct cidr *peer_clients;  /* peer routes (/~/...); default private ranges + loopback + link-local */
    size_t n_peer_clients;
    struct cidr *status_clients; /* the status page, /metrics, explain; default loopback */
    size_t n_status_clients;

    /* cache: */
    char *cache_dir;            /* default "/var/cache/apt-dht" */
    uint64_t cache_max_size;    /* bytes; default 10 GiB; YAML accepts 500M, 10G, 1T, plain bytes */
    uint64_t cache_max_object;  /* cache.max_object: bytes, the ceiling of a download whose
                                   size no index gives; default 4 GiB */
    uint64_t cache_max_index;   /* cache.max_index: bytes, the same for volatile files
                                   (InRelease, indices by name); default 256 MiB */
    uint32_t negative_ttl_s;    /* cache.negative_ttl: seconds a mirror 404 is remembered; default 60 */
    uint32_t keep_unreferenced_s; /* cache.keep_unreferenced: seconds a file no index seen
                                     lists stays; default 4 days, 0 = forever */

    char *state_dir;            /* default "/var/lib/apt-dht" */

    struct config_backend *backends;
    size_t n_backends;

    /* upstream: */
    uint32_t connect_timeout_s; /* upstream.connect_timeout, default 10 */
    uint32_t stall_timeout_s;   /* upstream.stall_timeout: no byte for this long = failure, default 30 */
    char *upstream_proxy;       /* upstream.proxy: "http://host[:port]" for mirror transfers;
                                   NULL = direct (never an environment proxy) */
    char **upstream_no_proxy;   /* upstream.no_proxy: hosts and .domains reached directly */
    size_t n_upstream_no_proxy;
    char *upstream_ca_file;     /* upstream.ca_file: PEM CA bundle for https mirrors;
                                   NULL = the system's store */
    char **https_hosts;         /* upstream.https_hosts: hosts fetched over https when apt
                                   asks for http (host names, as apt writes them) */
    size_t n_https_hosts;

    /* dht: */
    enum dht_mode_cfg dht_mode; /* default apt-dht */
    uint16_t dht_port;          /* 0 = same as listen_port (the default) */
    char **dht_bootstrap;       /* "host:port" strings */
    size_t n_dht_bootstrap;
    bool dht_lan_discovery;     /* default true */
    bool dht_resolve_only;      /* default false */
    uint32_t dht_ttl_s;         /* 0 = the dialect's default */

    /* peers: */
    uint32_t peer_budget_ms;    /* peers.budget: ms a miss waits for a peer to start sending
                                   before the mirror is used; default 1000 */
    uint32_t peer_max_uploads;  /* peers.max_uploads: concurrent uploads to peers; default 32 */
    uint32_t peer_upload_kib_s; /* peers.upload_rate: KiB/s for all uploads, 0 = no limit */

    /* log: */
    enum log_level log_level;   /* default info */
};

/* Fills *cfg with the built-in defaults. Returns 0 or -ENOMEM. */
int config_init_defaults(struct config *cfg);

/* Loads the YAML file at path over the values already in *cfg. On failure returns a
 * negative errno and writes one line "FILE:LINE: key 'a.b': what is wrong" into err. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errlen);

/* The same from a buffer; name is used in error messages in place of a file name. */
int config_load_buffer(struct config *cfg, const char *name, const char *buf, size_t len,
                       char *err, size_t errlen);

/* Parses "500M", "10G", "1T", "123" (bytes; K/M/G/T are powers of 1024). 0 or -EINVAL. */
int config_parse_size(const char *s, uint64_t *out);

/* Frees everything cfg owns and zeroes it. Accepts a half-filled struct. */
void config_done(struct config *cfg);

#endif

/* status-cmd.c - `apt-dht-proxy status [--json]`: asks the local daemon how it is.
 *
 * The command reads the same config the daemon would (-c FILE, else the packaged
 * /etc/apt-dht/apt-dht.conf when it exists, else the built-in defaults) to learn where the
 * daemon listens, fetches /~/status.txt (or /~/status.json) and /~/health over loopback,
 * and prints the first. The exit status says what a script needs to know, in the manner
 * of an LSB init script's status action:
 *   0  the daemon answers and is healthy       3  no daemon answers
 *   1  it answers but /~/health is not 200     4  it answered something unexpected
 *   2  bad usage or config                        (403: not in status_clients) */
#include "aptdht-config.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/status-cmd.h"
#include "apt-dht-proxy/tbuf.h"

#define PACKAGED_CONFIG "/etc/apt-dht/apt-dht.conf"

enum { EXIT_OK = 0, EXIT_UNHEALTHY = 1, EXIT_USAGE = 2, EXIT_DOWN = 3, EXIT_ODD = 4 };

static void usage(FILE *f)
{
    fprintf(f, "usage: apt-dht-proxy status [-c FILE] [-p PORT] [--json]\n"
               "  -c, --config FILE   the daemon's config (default: " PACKAGED_CONFIG
               " if it exists,\n"
               "                      else the built-in defaults)\n"
               "  -p, --port PORT     the daemon's port (overrides listen.port)\n"
               "      --json          print the status as JSON\n"
               "exit status: 0 healthy, 1 unhealthy, 3 not running, 4 unexpected answer\n");
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    tbuf_add(ud, p, size * n);
    return size * n;
}

/* GET url into body; returns the HTTP status, or 0 with err set when nothing answered. */
static long get(const char *url, struct tbuf *body, char *err)
{
    long code = 0;
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, CURL_ERROR_SIZE, "cannot set up libcurl");
        return 0;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "apt-dht-proxy status");
    err[0] = '\0';
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    return code;
}

/* The daemon's address as a URL host: a wildcard listen address is reached on loopback. */
static void base_url(const struct config *cfg, uint16_t port, char *out, size_t n)
{
    const char *a = cfg->listen_address;
    struct in6_addr v6;
    if (!a || strcmp(a, "0.0.0.0") == 0)
        snprintf(out, n, "http://127.0.0.1:%u", port);
    else if (inet_pton(AF_INET6, a, &v6) == 1)
        snprintf(out, n, "http://[%s]:%u", IN6_IS_ADDR_UNSPECIFIED(&v6) ? "::1" : a, port);
    else
        snprintf(out, n, "http://%s:%u", a, port);
}

struct cmd_opts {
    const char *config_file;
    long port; /* -1 = from config */
    bool json;
};

static int parse(int argc, char **argv, struct cmd_opts *o)
{
    static const struct option lopts[] = {
        {"config", required_argument, NULL, 'c'}, {"port", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    o->port = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:p:h", lopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_file = optarg; break;
        case 'j': o->json = true; break;
        case 'h': usage(stdout); return 1;
        case 'p':
            errno = 0;
            o->port = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || o->port < 1 || o->port > 65535) {
                fprintf(stderr, "apt-dht-proxy status: bad port '%s'\n", optarg);
                return -1;
            }
            break;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "apt-dht-proxy status: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->config_file && access(PACKAGED_CONFIG, R_OK) == 0)
        o->config_file = PACKAGED_CONFIG;
    return 0;
}

static int ask(const char *base, bool json)
{
    char url[600], err[CURL_ERROR_SIZE];
    struct tbuf body, health;
    int rc;
    tbuf_init(&body);
    tbuf_init(&health);
    snprintf(url, sizeof url, "%s/~/status.%s", base, json ? "json" : "txt");
    long code = get(url, &body, err);
    if (code == 0) {
        fprintf(stderr, "apt-dht-proxy status: no daemon answers on %s (%s)\n", base,
                err[0] ? err : "no answer");
        rc = EXIT_DOWN;
    } else if (code != 200) {
        fprintf(stderr, "apt-dht-proxy status: %s answered %ld: %s", url, code,
                body.p ? body.p : "\n");
        rc = EXIT_ODD;
    } else {
        fwrite(body.p ? body.p : "", 1, body.len, stdout);
        snprintf(url, sizeof url, "%s/~/health", base);
        code = get(url, &health, err);
        rc = code == 200 ? EXIT_OK : code == 503 ? EXIT_UNHEALTHY : code ? EXIT_ODD : EXIT_DOWN;
    }
    tbuf_done(&body);
    tbuf_done(&health);
    return rc;
}

int status_cmd_main(int argc, char **argv)
{
    struct cmd_opts o = {0};
    struct config cfg;
    char err[512], base[300];
    int r = parse(argc, argv, &o);
    if (r != 0)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (config_init_defaults(&cfg) < 0)
        return EXIT_USAGE;
    if (o.config_file && config_load_file(&cfg, o.config_file, err, sizeof err) < 0) {
        fprintf(stderr, "apt-dht-proxy status: %s\n", err);
        config_done(&cfg);
        return EXIT_USAGE;
    }
    base_url(&cfg, o.port > 0 ? (uint16_t)o.port : cfg.listen_port, base, sizeof base);
    config_done(&cfg);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return EXIT_ODD;
    r = ask(base, o.json);
    curl_global_cleanup();
    fflush(stdout);
    return r;
}

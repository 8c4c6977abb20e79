/* main.c - apt-dht-proxy: reads the command line and config, then wires the modules:
 * loop <- server (HTTP pipeline, fetcher) <- catalogue <- cache, hash index, indexer
 * thread, DHT node. On SIGHUP it reloads the config and hands it to each module's
 * reconfigure call; on SIGUSR1 it logs the daemon's counters. */
#include "aptdht-config.h"
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "apt-dht-proxy/cache.h"
#include "apt-dht-proxy/catalogue.h"
#include "apt-dht-proxy/config.h"
#include "apt-dht-proxy/hashdb.h"
#include "apt-dht-proxy/import.h"
#include "apt-dht-proxy/httpd.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/log.h"
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/p2p.h"
#include "apt-dht-proxy/rekey.h"
#include "apt-dht-proxy/sdnotify.h"
#include "apt-dht-proxy/server.h"
#include "apt-dht-proxy/stats.h"
#include "apt-dht-proxy/status-cmd.h"
#include "apt-dht-proxy/status.h"
#include "apt-dht-proxy/verify.h"
#include "apt-dht-proxy/version.h"

#define DEFAULT_CONFIG "/etc/apt-dht/apt-dht.conf"

struct options {
    const char *config_file; /* NULL = DEFAULT_CONFIG if it exists, else built-in defaults */
    long port;               /* -1 = from config */
    const char *cache_dir, *state_dir;
    bool foreground, verbose;
    bool verify; /* the `verify` command: check the cache and exit */
    const char *import_dir; /* the `import DIR` command: add DIR's .debs and exit */
    int ready_fd; /* daemonised: the parent waits on this pipe for "started"; -1 = none */
    int listen_fds[HTTPD_MAX_LISTEN]; /* sockets from socket activation */
    size_t n_listen_fds;
};

struct app {
    struct options opt;
    struct config *cfg;
    struct loop *loop;
    struct cache *cache;
    struct hashdb *db;
    struct indexer *ix;
    struct catalogue *cat;
    struct server *server;
    struct p2p *p2p;
    struct status *status;
    struct loop_timer drain; /* the graceful stop's check, every DRAIN_TICK_MS */
    bool draining;           /* a stop signal came: new connections wait */
    uint64_t drain_since_ms; /* when it came (loop_now_ms) */
};

/* A graceful stop (SIGTERM, SIGINT): no new connection is accepted, requests in flight
 * finish, for at most DRAIN_MAX_MS; connections that opened but sent no request yet get
 * DRAIN_GRACE_MS to send it. A second signal stops at once. */
#define DRAIN_TICK_MS 50
#define DRAIN_GRACE_MS 1000
#define DRAIN_MAX_MS 5000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: apt-dht-proxy [-c FILE] [-p PORT] [--cache-dir DIR] [--state-dir DIR] [-f] [-v]\n"
            "                     [--version] [--help]\n"
            "       apt-dht-proxy [-c FILE] [--cache-dir DIR] [--state-dir DIR] verify\n"
            "       apt-dht-proxy [-c FILE] [--cache-dir DIR] [--state-dir DIR] import DIR\n"
            "       apt-dht-proxy status [-c FILE] [-p PORT] [--json]   (ask the running daemon)\n"
            "  -c, --config FILE   YAML config (default: " DEFAULT_CONFIG " if it exists,\n"
            "                      else built-in defaults)\n"
            "  -p, --port PORT     listen port (overrides listen.port)\n"
            "      --cache-dir DIR cache directory (overrides cache.dir)\n"
            "      --state-dir DIR state directory (overrides state_dir)\n"
            "  -f, --foreground    stay in the foreground and log to stderr\n"
            "  -v, --verbose       log at debug level\n"
            "  verify              check every cached file against the hash index, drop and\n"
            "                      report those that fail (exit 1 if any did)\n"
            "  import DIR          add DIR's .deb files (e.g. /var/cache/apt/archives) that the\n"
            "                      hash index knows, verified; count the rest by reason\n");
}

/* Returns 0 to go on, 1 to exit 0 (help/version), -1 to exit 2 (usage error). */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option lopts[] = {
        {"config", required_argument, NULL, 'c'}, {"port", required_argument, NULL, 'p'},
        {"cache-dir", required_argument, NULL, 'C'}, {"state-dir", required_argument, NULL, 'S'},
        {"foreground", no_argument, NULL, 'f'}, {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    o->port = -1;
    while ((c = getopt_long(argc, argv, "c:p:fvh", lopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_file = optarg; break;
        case 'C': o->cache_dir = optarg; break;
        case 'S': o->state_dir = optarg; break;
        case 'f': o->foreground = true; break;
        case 'v': o->verbose = true; break;
        case 'V': printf("apt-dht-proxy %s\n", aptdht_version()); return 1;
        case 'h': usage(stdout); return 1;
        case 'p':
            errno = 0;
            o->port = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || o->port < 0 || o->port > 65535) {
                fprintf(stderr, "apt-dht-proxy: bad port '%s'\n", optarg);
                return -1;
            }
            break;
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind], "verify") == 0) {
        o->verify = true;
        optind++;
    } else if (optind < argc && strcmp(argv[optind], "import") == 0) {
        if (++optind == argc || !argv[optind][0]) {
            fprintf(stderr, "apt-dht-proxy: import needs a directory (e.g. /var/cache/apt/archives)\n");
            return -1;
        }
        o->import_dir = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "apt-dht-proxy: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->config_file && access(DEFAULT_CONFIG, F_OK) == 0)
        o->config_file = DEFAULT_CONFIG;
    return 0;
}

static int replace_str(char **dst, const char *src)
{
    char *p = strdup(src);
    if (!p)
        return -ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
}

/* Builds a config: defaults, then the file, then the command line. */
static struct config *load_config(const struct options *o)
{
    char err[512];
    struct config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || config_init_defaults(cfg) < 0)
        goto fail;
    if (o->config_file && config_load_file(cfg, o->config_file, err, sizeof err) < 0) {
        log_error("%s", err);
        goto fail;
    }
    if (o->port >= 0)
        cfg->listen_port = (uint16_t)o->port;
    if ((o->cache_dir && replace_str(&cfg->cache_dir, o->cache_dir) < 0) ||
        (o->state_dir && replace_str(&cfg->state_dir, o->state_dir) < 0))
        goto fail;
    if (o->verbose)
        cfg->log_level = LOG_LEVEL_DEBUG;
    return cfg;
fail:
    if (cfg) {
        config_done(cfg);
        free(cfg);
    }
    return NULL;
}

static void on_drain(struct loop *l, struct loop_timer *t, void *ud)
{
    struct app *a = ud;
    uint64_t now = loop_now_ms();
    uint64_t spent = now > a->drain_since_ms ? now - a->drain_since_ms : 0;
    if (server_drained(a->server, spent >= DRAIN_GRACE_MS)) {
        loop_stop(l);
    } else if (spent >= DRAIN_MAX_MS) {
        log_warn("stopping with requests still in flight after %u s", DRAIN_MAX_MS / 1000);
        loop_stop(l);
    } else if (loop_timer_start(l, &a->drain, DRAIN_TICK_MS) < 0) {
        loop_stop(l);
    }
}

static void on_stop(struct loop *l, int signo, void *ud)
{
    struct app *a = ud;
    if (a->draining) {
        log_info("signal %d again: stopping now", signo);
        loop_stop(l);
        return;
    }
    log_info("signal %d: stopping (new connections wait; requests in flight finish)", signo);
    a->draining = true;
    a->drain_since_ms = loop_now_ms();
    server_quiesce(a->server);
    loop_timer_init(&a->drain, on_drain, a);
    on_drain(l, &a->drain, a);
}

static void on_reload(struct loop *l, int signo, void *ud)
{
    struct app *a = ud;
    struct config *cfg = load_config(&a->opt);
    if (!cfg) {
        log_error("reload failed; keeping the running configuration");
        return;
    }
    if (server_reconfigure(a->server, cfg) < 0) {
        log_error("reload failed (out of memory); keeping the running configuration");
        config_done(cfg);
        free(cfg);
        return;
    }
    log_setup(cfg->log_level, !a->opt.foreground);
    cache_set_max_size(a->cache, cfg->cache_max_size);
    if (catalogue_set_expiry(a->cat, a->loop, cfg->keep_unreferenced_s) < 0)
        log_warn("reload: cache.keep_unreferenced not applied");
    if (strcmp(cfg->cache_dir, a->cfg->cache_dir) != 0 ||
        strcmp(cfg->state_dir, a->cfg->state_dir) != 0)
        log_warn("reload: cache.dir and state_dir need a restart");
    if (a->p2p)
        p2p_reconfigure(a->p2p, cfg);
    if (status_reconfigure(a->status, cfg) < 0)
        log_warn("reload: status_clients not applied (out of memory)");
    config_done(a->cfg);
    free(a->cfg);
    a->cfg = cfg;
    log_info("configuration reloaded");
}

/* SIGUSR1: the daemon's counters, one line each for the HTTP side and the DHT. */
static void on_dump(struct loop *l, int signo, void *ud)
{
    struct app *a = ud;
    const struct stats *st = server_stats(a->server);
    log_info("state: %llu connections, %llu requests, %llu hits, %llu misses, %llu revalidated, %llu errors; "
             "bytes served %llu, from mirrors %llu, from peers %llu, uploaded %llu; "
             "cache %llu MiB in %zu files",
             (unsigned long long)st->connections, (unsigned long long)st->requests,
             (unsigned long long)st->hits,
             (unsigned long long)st->misses, (unsigned long long)st->revalidated,
             (unsigned long long)st->errors, (unsigned long long)st->bytes_served,
             (unsigned long long)st->bytes_from_mirror, (unsigned long long)st->bytes_from_peers,
             (unsigned long long)st->bytes_uploaded, (unsigned long long)(cache_used(a->cache) >> 20),
             cache_count(a->cache));
    if (a->p2p) {
        struct p2p_stats ps;
        p2p_get_stats(a->p2p, &ps);
        log_info("state: dht %d, %u nodes, %u announced, %u banned; %llu lookups (%llu found "
                 "peers); peer transfers %llu ok, %llu failed, %llu bad",
                 ps.dht_state, ps.nodes, ps.announced, ps.banned, (unsigned long long)ps.lookups,
                 (unsigned long long)ps.lookups_with_peers, (unsigned long long)ps.peer_ok,
                 (unsigned long long)ps.peer_failed, (unsigned long long)ps.peer_bad);
    }
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    return 0;
}

/* The state dir, the cache (scanned: *files found) and the hash index. */
static int open_stores(struct app *a, long *files)
{
    char dbpath[PATH_MAX];
    int r;
    if ((r = make_dir(a->cfg->state_dir)) < 0)
        return r;
    if (rekey_cache(a->cfg) < 0) /* a cache keyed by first mirrors: see rekey.h */
        log_warn("cache: not every file moved to its backend's key; the rest is fetched again");
    if ((r = cache_new(&a->cache, a->cfg->cache_dir, a->cfg->cache_max_size)) < 0) {
        log_error("cache dir %s: %s", a->cfg->cache_dir, strerror(-r));
        return r;
    }
    if ((*files = cache_scan(a->cache)) < 0) {
        log_error("cache scan of %s: %s", a->cfg->cache_dir, strerror((int)-*files));
        return (int)*files;
    }
    snprintf(dbpath, sizeof dbpath, "%s/hashes.db", a->cfg->state_dir);
    if ((r = hashdb_open(&a->db, dbpath)) < 0 || (r = indexer_new(&a->ix, dbpath)) < 0) {
        log_error("hash index %s: %s", dbpath, strerror(-r));
        return r;
    }
    return 0;
}

/* The loop, the catalogue, the HTTP side and (unless dht.mode is off) the DHT node. */
static int start_services(struct app *a)
{
    int r;
    if ((r = loop_new(&a->loop)) < 0 || (r = cache_start_checker(a->cache, a->loop)) < 0 ||
        (r = catalogue_new(&a->cat, a->cache, a->db, a->ix)) < 0 ||
        (r = server_new(&a->server, a->cfg, a->loop, a->cache, a->db, a->ix, a->cat)) < 0)
        return r;
    if ((r = catalogue_set_expiry(a->cat, a->loop, a->cfg->keep_unreferenced_s)) < 0)
        return r;
    server_set_listen_fds(a->server, a->opt.listen_fds, a->opt.n_listen_fds);
    if ((r = server_start(a->server)) < 0) {
        if (a->opt.n_listen_fds)
            log_error("cannot serve on the sockets systemd passed: %s", strerror(-r));
        else
            log_error("cannot listen on port %u: %s", a->cfg->listen_port, strerror(-r));
        return r;
    }
    if (a->cfg->dht_mode != DHT_MODE_OFF) {
        if ((r = p2p_new(&a->p2p, a->cfg, a->loop, server_port(a->server))) < 0) {
            log_error("dht: %s", strerror(-r));
            return r;
        }
        server_set_p2p(a->server, a->p2p);
        catalogue_set_p2p(a->cat, a->p2p);
    }
    if ((r = status_new(&a->status, a->cfg, a->opt.config_file, a->loop, a->server, a->cache,
                        a->db, a->p2p)) < 0)
        return r;
    server_set_status(a->server, a->status);
    return 0;
}

/* Stops everything, users before what they use. Accepts a half-started app. */
static void stop_all(struct app *a)
{
    server_free(a->server); /* before the status module: its pages may be in flight */
    a->server = NULL;
    status_free(a->status);
    a->status = NULL;
    if (a->cat)
        catalogue_set_p2p(a->cat, NULL);
    p2p_free(a->p2p);
    a->p2p = NULL;
    catalogue_free(a->cat);
    a->cat = NULL;
    indexer_free(a->ix);
    a->ix = NULL;
    hashdb_free(a->db);
    a->db = NULL;
    cache_free(a->cache);
    a->cache = NULL;
    loop_free(a->loop);
    a->loop = NULL;
}

/* ---- process set-up: open-file limit, daemonising, readiness ---- */

/* Each connection and each download holds descriptors: take the hard limit (systemd's
 * default soft limit of 1024 is less than the default connection pool needs). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

/* Socket activation: the listening sockets systemd (apt-dht.socket) passed, if any. They
 * outlive a restart of the daemon, so connections that arrive meanwhile wait in their
 * queue instead of being refused. Read before daemonising (LISTEN_PID is this pid). */
static int take_listen_fds(struct options *o)
{
    int n = httpd_listen_fds(o->listen_fds, HTTPD_MAX_LISTEN);
    if (n == -E2BIG)
        log_error("socket activation: more than %d sockets passed (LISTEN_FDS)", HTTPD_MAX_LISTEN);
    else if (n < 0)
        log_error("socket activation: a socket passed in LISTEN_FDS is not a listening TCP socket");
    if (n < 0)
        return n;
    o->n_listen_fds = (size_t)n;
    if (n > 0)
        log_info("socket activation: serving on %d socket%s passed by systemd (listen.address "
                 "and listen.port are not used)", n, n == 1 ? "" : "s");
    return 0;
}

/* Forks into the background. The parent stays until the child says it is serving (one
 * byte on a pipe) and exits 0, or exits 1 when the child fails to start (the pipe
 * closes without a byte), so a failed start is a non-zero exit either way. */
static int daemonise(struct options *o)
{
    int p[2];
    char c;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(p[1]);
        ssize_t n = read(p[0], &c, 1);
        _exit(n == 1 ? 0 : 1);
    }
    close(p[0]);
    o->ready_fd = p[1];
    if (setsid() < 0)
        return -errno;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    return 0;
}

/* The daemon serves: tell the waiting parent, and systemd (Type=notify) through
 * $NOTIFY_SOCKET, the protocol of sd_notify(3) without needing libsystemd. */
static void tell_ready(struct options *o)
{
    if (o->ready_fd >= 0) {
        if (write(o->ready_fd, "1", 1) < 0)
            log_warn("cannot tell the parent process that the daemon started");
        close(o->ready_fd);
        o->ready_fd = -1;
    }
    int r = sdnotify_send("READY=1");
    if (r < 0 && r != -ENOENT)
        log_warn("sd_notify: %s", strerror(-r));
}

static int run(struct app *a)
{
    long files = 0;
    size_t known, announced;
    int r = open_stores(a, &files);
    if (r < 0 || (r = start_services(a)) < 0) {
        stop_all(a);
        return r;
    }
    catalogue_restore(a->cat, &known, &announced);
    if (known)
        log_info("cache: %zu files with known hashes, %zu announced", known, announced);
    loop_add_signal(a->loop, SIGTERM, on_stop, a);
    loop_add_signal(a->loop, SIGINT, on_stop, a);
    loop_add_signal(a->loop, SIGHUP, on_reload, a);
    loop_add_signal(a->loop, SIGUSR1, on_dump, a);
    log_info("apt-dht-proxy %s listening on port %u; cache %s (%ld files, %llu MiB)",
             aptdht_version(), server_port(a->server), a->cfg->cache_dir, files,
             (unsigned long long)(cache_used(a->cache) >> 20));
    tell_ready(&a->opt);
    r = loop_run(a->loop);
    loop_timer_stop(a->loop, &a->drain);
    stop_all(a);
    return r;
}

/* `import DIR`: exit 0 when the directory was gone through (skips are counted, not
 * errors), 2 when it or the stores could not be used. */
static int run_import(struct app *a)
{
    struct import_counts n;
    int r = import_dir(a->cfg, a->opt.import_dir, stdout, &n);
    config_done(a->cfg);
    free(a->cfg);
    return r < 0 ? 2 : 0;
}

int main(int argc, char **argv)
{
    struct app a = {.opt.ready_fd = -1};
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return status_cmd_main(argc - 1, argv + 1);
    int r = parse_args(argc, argv, &a.opt);
    if (r != 0)
        return r > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    log_setup(LOG_LEVEL_INFO, 0);
    a.cfg = load_config(&a.opt);
    if (!a.cfg)
        return 1;
    log_setup(a.cfg->log_level, 0);
    if (a.opt.verify) { /* exit 0: all good, 1: some failed (and were dropped), 2: error */
        long failed = verify_cache(a.cfg, stdout);
        config_done(a.cfg);
        free(a.cfg);
        return failed < 0 ? 2 : failed > 0 ? 1 : 0;
    }
    if (a.opt.import_dir)
        return run_import(&a);
    raise_nofile();
    if (take_listen_fds(&a.opt) < 0) {
        config_done(a.cfg);
        free(a.cfg);
        return 1;
    }
    if (!a.opt.foreground) {
        if (daemonise(&a.opt) < 0) {
            log_error("cannot daemonise: %s", strerror(errno));
            return 1;
        }
        log_setup(a.cfg->log_level, 1);
    }
    r = run(&a);
    config_done(a.cfg);
    free(a.cfg);
    return r < 0 ? 1 : 0;
}

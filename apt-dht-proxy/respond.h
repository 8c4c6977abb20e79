/* respond.h - the answers of the HTTP side: a cached file, a download in progress, an
 * upload to a peer (paced), or a one-line error.
 *
 * Two objects. A responder is the daemon's one set of things every answer shares: the
 * counters, the upload token bucket, and the flag that tells the front to run
 * libmicrohttpd once more because a connection was resumed. An answer is one request's
 * response side: its connection, whether it is suspended, and what went out (status,
 * bytes, source) for the request's log line. An answer is embedded in its request and
 * reference-counted: a callback response (a stream or a paced upload) holds a reference
 * until libmicrohttpd releases it, which can be after the request completed; the last
 * reference calls the owner's release function. */
#ifndef APT_DHT_RESPOND_H
#define APT_DHT_RESPOND_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include "apt-dht-proxy/loop.h"
#include "apt-dht-proxy/stats.h"

struct cache;
struct cache_wait;
struct dl;
struct hashdb_entry;

struct responder {
    struct loop *loop;
    struct stats *stats;
    bool kick;            /* a connection was resumed: run libmicrohttpd before the wait */
    bool stopping;        /* shutting down: nothing suspends any more */
    uint32_t upload_kib_s; /* peers.upload_rate for all uploads, 0 = unpaced */
    bool corrupt_uploads; /* test hook APT_DHT_TEST_CORRUPT_UPLOADS=1: every upload lies */
    double tokens;        /* upload bytes that may go out now */
    uint64_t tokens_ms;   /* when tokens was last refilled */
    time_t date_t;        /* the last Last-Modified written, and its text */
    char date[64];
};

struct answer {
    struct responder *rs;
    struct MHD_Connection *conn;
    const char *target;   /* the request target, for log lines (owned by the request) */
    int refs;
    void (*release)(struct answer *a); /* the last reference went */
    bool head;            /* HEAD: no body counted */
    bool upload;          /* to a peer: counted as uploaded, paced */
    bool suspended;
    unsigned status;      /* for the log line; 0 = nothing queued yet */
    uint64_t bytes;       /* body bytes sent or queued */
    char source[320];     /* "cache", "mirror HOST", "upload", "-" */
    struct dl *dl;        /* a stream's download (the owner holds the reference) */
    int up_fd;            /* a paced upload: the file (owned), its range */
    uint64_t up_off, up_len;
    struct loop_timer pace_timer;
    struct cache_wait *check; /* the cache check this answer waits for; NULL = none */
    unsigned relay_gen;   /* a relay: the body generation (dl_body_gen) its bytes are of */
    int held_fd;          /* the checked entry held_key, open (answer_check_cached); -1 */
    const char *held_key; /* owned by the caller, as long as the request */
    struct stat held_st;
};

/* Also reads the test hook APT_DHT_TEST_CORRUPT_UPLOADS (HACKING.md): "1" makes every
 * upload to a peer flip its first byte, to test the receivers' verification and bans. */
void responder_init(struct responder *rs, struct loop *l, struct stats *stats,
                    uint32_t upload_kib_s);

void answer_init(struct answer *a, struct responder *rs, struct MHD_Connection *c,
                 const char *target, bool head, void (*release)(struct answer *a));
void answer_ref(struct answer *a);
void answer_unref(struct answer *a);
/* Ends what the answer owns (paced upload fd, timer, a check it waits for); before the
 * owner's release. */
void answer_done(struct answer *a);

/* Suspends the connection (not while stopping) / resumes it. Both idempotent. */
void answer_suspend(struct answer *a);
void answer_resume(struct answer *a);

/* A one-line text error with status (405 adds Allow: GET, HEAD). */
enum MHD_Result answer_error(struct answer *a, unsigned status, const char *reason);

/* The cached file fd (taken) of stat st, with If-Modified-Since (304), Range and
 * If-Range (206, 416) and HEAD. key gives the Content-Type. */
enum MHD_Result answer_fd(struct answer *a, int fd, const struct stat *st, const char *key);

/* Checks the cache entry key before anything is decided on it (cache_check_open; expect
 * is the hash index's entry or NULL). 0 = go on (it passed, there is none, or it cannot
 * be checked now: logged); 1 = it failed and was dropped (decide without it);
 * -EINPROGRESS = its hash is being computed: the answer is suspended, and resumed when
 * the verdict is known (then ask again). An entry that passed stays open for
 * answer_cached of the same key (key must live as long as the answer) until
 * answer_let_go or the answer's end. */
int answer_check_cached(struct answer *a, struct cache *c, const char *key,
                        const struct hashdb_entry *expect);
/* Closes the entry answer_check_cached left open, if any: the decision was not to serve
 * it as it is (a revalidation may replace it). */
void answer_let_go(struct answer *a);

/* A download could not be started (err, a negative errno from fetcher_get): 503 with a
 * one-line reason when the proxy ran out of file descriptors (EMFILE, ENFILE), which is
 * logged as such; 500 otherwise. */
enum MHD_Result answer_start_failed(struct answer *a, int err);

/* The cache entry key, if present: 1 = answered (*ret holds MHD's verdict), 0 = no such
 * entry (nothing queued). why becomes the log line's source. The entry checked and left
 * open by answer_check_cached is served as it was opened. */
int answer_cached(struct answer *a, struct cache *c, const char *key, const char *why,
                  enum MHD_Result *ret);

/* The download d, streamed as its bytes become available; the owner keeps d referenced
 * for as long as the answer lives. */
enum MHD_Result answer_stream(struct answer *a, struct dl *d, const char *key);

/* The download d in flight, relayed to a peer (answer.upload is set): 200 with the
 * Content-Length size (what the index gives) at once, or 206 for a Range, then the bytes
 * received so far and the rest as they come, whatever d's source; a range beyond what
 * has arrived waits. The last byte goes only once d is DONE (verified); the response is
 * cut short if d fails or its body starts over (dl_body_gen). Paced and counted as an
 * upload; the owner keeps d referenced for as long as the answer lives. */
enum MHD_Result answer_relay(struct answer *a, struct dl *d, uint64_t size, const char *key);

/* 503 to a peer: this host already sends the file to enough peers; relays names them
 * ("ADDR:PORT,...", X-Apt-Dht-Relays), to be asked instead. */
enum MHD_Result answer_busy(struct answer *a, const char *relays);

/* HTTP dates (RFC 9110 5.6.7): formats IMF-fixdate; parses it and the two obsolete
 * forms. http_date_parse returns -1 for anything else. */
void http_date(time_t t, char *out, size_t n);
time_t http_date_parse(const char *s);

#endif

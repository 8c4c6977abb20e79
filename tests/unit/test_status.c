/* test_status.c - the status module's pure parts: escaping for HTML, JSON and Prometheus
 * labels (hostile input from the network becomes text), human units, the per-minute
 * history (ticks, gaps, wrap-around, sums), the classification of answers by source, the
 * status routes, and the /proc/self/stat reader of /metrics. */
#include "aptdht-config.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/history.h"
#include "apt-dht-proxy/metrics.h"
#include "apt-dht-proxy/stats.h"
#include "apt-dht-proxy/status.h"
#include "apt-dht-proxy/tbuf.h"

static char *escaped(void (*fn)(struct tbuf *, const char *), const char *in)
{
    struct tbuf b;
    size_t n;
    tbuf_init(&b);
    tbuf_puts(&b, "");
    fn(&b, in);
    CU_ASSERT_FALSE(tbuf_failed(&b));
    return tbuf_take(&b, &n);
}

static void test_html(void)
{
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"plain text", "plain text"},
        {"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
        {"<svg/onload=x>", "&lt;svg/onload=x&gt;"},
        {"a\" onmouseover=\"x", "a&quot; onmouseover=&quot;x"},
        {"it's & more", "it&#39;s &amp; more"},
        {"tab\there\nline", "tab\xef\xbf\xbdhere\xef\xbf\xbdline"},
        {"del\x7f", "del\xef\xbf\xbd"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},                  /* valid UTF-8 stays */
        {"bad \xc3 byte", "bad \xef\xbf\xbd byte"},      /* a cut sequence */
        {"over \xc0\xbc", "over \xef\xbf\xbd\xef\xbf\xbd"}, /* an overlong '<' */
        {"sur \xed\xa0\x80", "sur \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *got = escaped(tbuf_html, rows[i].in);
        CU_ASSERT_STRING_EQUAL(got, rows[i].out);
        if (strcmp(got, rows[i].out) != 0)
            fprintf(stderr, "row %zu: got '%s'\n", i, got);
        free(got);
    }
}

static void test_json_and_label(void)
{
    char *j = escaped(tbuf_json, "a\"b\\c\n</script>\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(j, "a\\\"b\\\\c\\u000a\\u003c/script\\u003e\\u00c3\\u00a9");
    free(j);
    char *l = escaped(tbuf_label, "v\"1\\\n");
    CU_ASSERT_STRING_EQUAL(l, "v\\\"1\\\\\\n");
    free(l);
}

static void test_units(void)
{
    static const struct {
        uint64_t n;
        const char *out;
    } rows[] = {
        {0, "0 B"}, {1023, "1023 B"}, {1024, "1.00 KiB"}, {1536, "1.50 KiB"},
        {10u << 20, "10.0 MiB"}, {(uint64_t)300 << 30, "300 GiB"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct tbuf b;
        size_t n;
        tbuf_init(&b);
        tbuf_bytes(&b, rows[i].n);
        char *got = tbuf_take(&b, &n);
        CU_ASSERT_STRING_EQUAL(got, rows[i].out);
        free(got);
    }
    struct tbuf b;
    size_t n;
    tbuf_init(&b);
    tbuf_duration(&b, 45);
    tbuf_puts(&b, "|");
    tbuf_duration(&b, 3 * 3600 + 12 * 60);
    tbuf_puts(&b, "|");
    tbuf_duration(&b, 2 * 86400 + 3600);
    char *got = tbuf_take(&b, &n);
    CU_ASSERT_STRING_EQUAL(got, "45 s|3 h 12 min|2 d 1 h");
    free(got);
}

static void test_tbuf_large(void)
{
    struct tbuf b;
    tbuf_init(&b);
    for (int i = 0; i < 10000; i++)
        tbuf_printf(&b, "%05d,", i);
    CU_ASSERT_EQUAL(b.len, 60000);
    CU_ASSERT_EQUAL(memcmp(b.p + 59994, "09999,", 6), 0);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tbuf_printf(&b, "%s", big); /* past the printf's small buffer */
    CU_ASSERT_EQUAL(b.len, 60000 + 599);
    tbuf_done(&b);
}

static void set(uint64_t t[HIST_N], uint64_t v)
{
    for (int i = 0; i < HIST_N; i++)
        t[i] = v * (uint64_t)(i + 1);
}

static void test_history(void)
{
    struct history *h;
    uint64_t t[HIST_N], out[5];
    set(t, 0);
    CU_ASSERT_EQUAL_FATAL(history_new(&h, 100, t), 0);
    set(t, 10);
    history_tick(h, 100, t); /* same minute: nothing closes */
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_CACHE, 100, 59, t), 10);
    history_tick(h, 101, t); /* minute 100 closes with 10 */
    set(t, 15);
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_CACHE, 101, 59, t), 15);
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_PEER, 101, 59, t), 30);
    history_tick(h, 104, t); /* a gap: 5 goes to minute 103, 101 and 102 read 0 */
    history_get(h, HIST_SERVED_CACHE, 104, out, 5);
    CU_ASSERT_EQUAL(out[0], 0);  /* minute 99: before the start */
    CU_ASSERT_EQUAL(out[1], 10); /* 100 */
    CU_ASSERT_EQUAL(out[2], 0);  /* 101 */
    CU_ASSERT_EQUAL(out[3], 0);  /* 102 */
    CU_ASSERT_EQUAL(out[4], 5);  /* 103 */
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_CACHE, 104, 1, t), 5); /* the last minute */
    /* a day later everything has rolled out of the window */
    set(t, 15);
    history_tick(h, 104 + HISTORY_MINUTES + 10, t);
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_CACHE, 104 + HISTORY_MINUTES + 10, 1439, t), 0);
    /* a counter that went backwards counts nothing */
    set(t, 1);
    history_tick(h, 104 + HISTORY_MINUTES + 11, t);
    CU_ASSERT_EQUAL(history_sum(h, HIST_SERVED_CACHE, 104 + HISTORY_MINUTES + 11, 1, t), 0);
    history_free(h);
}

static void test_sources(void)
{
    static const struct {
        const char *source;
        int kind;
    } rows[] = {
        {"cache", STATS_CACHE},
        {"cache (revalidated)", STATS_CACHE},
        {"cache (mirror unreachable)", STATS_CACHE},
        {"peer 127.0.0.1:9977", STATS_PEER},
        {"mirror http://mirror.example/debian/pool/x.deb", STATS_MIRROR},
        {"upload", -1},
        {"-", -1},
        {"status", -1},
        {"peerless", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CU_ASSERT_EQUAL(stats_src_of(rows[i].source), rows[i].kind);
    struct stats st;
    memset(&st, 0, sizeof st);
    stats_served(&st, 200, 100, "cache");
    stats_served(&st, 206, 50, "peer 10.0.0.1:9977");
    stats_served(&st, 404, 99, "mirror http://mirror.example/x"); /* failures are not served */
    stats_served(&st, 304, 0, "cache");
    CU_ASSERT_EQUAL(st.served_requests[STATS_CACHE], 2);
    CU_ASSERT_EQUAL(st.served_bytes[STATS_CACHE], 100);
    CU_ASSERT_EQUAL(st.served_bytes[STATS_PEER], 50);
    CU_ASSERT_EQUAL(st.served_requests[STATS_MIRROR], 0);
}

static void test_routes(void)
{
    static const struct {
        const char *url;
        bool ours;
    } rows[] = {
        {"/~/status", true},          {"/~/status/", true},
        {"/~/status.json", true},     {"/~/status.txt", true},
        {"/~/status/explain", true},  {"/~/status/nope", true},
        {"/~/health", true},          {"/metrics", true},
        {"/~/statusx", false},        {"/~/sha256/00", false},
        {"/metrics/x", false},        {"/debian/metrics", false},
        {"/~/healthz", false},        {"/", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CU_ASSERT_EQUAL(status_route(rows[i].url), rows[i].ours);
}

static void test_proc_stat(void)
{
    /* a comm with spaces and a ')' in it, as the kernel writes it */
    const char *text = "4242 (apt dht) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 "
                       "3 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0\n";
    double cpu;
    uint64_t vsize, rss, start;
    CU_ASSERT_TRUE_FATAL(metrics_proc_stat(text, &cpu, &vsize, &rss, &start));
    CU_ASSERT_DOUBLE_EQUAL(cpu, 300.0 / (double)sysconf(_SC_CLK_TCK), 1e-9);
    CU_ASSERT_EQUAL(vsize, 104857600);
    CU_ASSERT_EQUAL(rss, 2560);
    CU_ASSERT_EQUAL(start, 123456);
    CU_ASSERT_FALSE(metrics_proc_stat("garbage", &cpu, &vsize, &rss, &start));
    CU_ASSERT_FALSE(metrics_proc_stat("1 (x) S 1 2 3", &cpu, &vsize, &rss, &start));
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"HTML escaping of hostile text", test_html},
        {"JSON and Prometheus label escaping", test_json_and_label},
        {"human units", test_units},
        {"a large page", test_tbuf_large},
        {"per-minute history", test_history},
        {"answers by source", test_sources},
        {"status routes", test_routes},
        {"/proc/self/stat", test_proc_stat},
        {NULL, NULL},
    };
    return unit_run("status", cases);
}

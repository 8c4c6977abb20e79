/* test_mirrors.c - mirror health: origins of URLs (table), back-off that doubles from
 * 30 s to 10 min and ends with a success, and the order of a download's URLs (healthy
 * first, in config order; then the backed-off, soonest to recover first). A fake clock:
 * every time is passed in. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/mirrors.h"

static void test_origin(void)
{
    static const struct {
        const char *url;
        int rc;
        const char *origin;
    } rows[] = {
        {"http://mirror.example/debian/dists/x", 0, "http://mirror.example:80"},
        {"HTTPS://Mirror.Example/debian", 0, "https://mirror.example:443"},
        {"http://mirror.example:8080", 0, "http://mirror.example:8080"},
        {"http://127.0.0.1:9/x", 0, "http://127.0.0.1:9"},
        {"http://[::1]:8080/x", 0, "http://[::1]:8080"},
        {"https://[2001:db8::1]/x", 0, "https://[2001:db8::1]:443"},
        {"ftp://mirror.example/x", -EINVAL, NULL},
        {"http:///x", -EINVAL, NULL},
        {"http://mirror.example:0/x", -EINVAL, NULL},
        {"http://mirror.example:99999/x", -EINVAL, NULL},
        {"http://mirror.example:8x/x", -EINVAL, NULL},
        {"http://[::1/x", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[300] = "";
        int rc = mirrors_origin(rows[i].url, out, sizeof out);
        if (rc != rows[i].rc || (rows[i].origin && strcmp(out, rows[i].origin) != 0))
            fprintf(stderr, "\n  row %zu: %s -> %d '%s'\n", i, rows[i].url, rc, out);
        CU_ASSERT_EQUAL(rc, rows[i].rc);
        if (rows[i].origin)
            CU_ASSERT_STRING_EQUAL(out, rows[i].origin);
    }
    char small[8];
    CU_ASSERT_EQUAL(mirrors_origin("http://mirror.example/", small, sizeof small), -ENAMETOOLONG);
}

static void test_backoff(void)
{
    struct mirrors *m;
    const char *u = "http://hung.example/debian/dists/s/InRelease";
    CU_ASSERT_EQUAL_FATAL(mirrors_new(&m), 0);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 0), 0);
    mirrors_failed(m, u, 1000);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 1000), 30000);
    /* another path of the same origin shares the record */
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, "http://HUNG.example:80/other", 1000), 30000);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, "https://hung.example/other", 1000), 0);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 31000), 0);
    mirrors_failed(m, u, 31000);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 31000), 60000);
    for (int i = 0; i < 10; i++)
        mirrors_failed(m, u, 100000);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 100000), 600000); /* the ceiling */
    mirrors_ok(m, u);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 100000), 0);
    mirrors_failed(m, u, 200000); /* after a success, back to the first step */
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, u, 200000), 30000);
    mirrors_failed(m, "not a url", 0); /* ignored */
    mirrors_ok(m, "http://never-failed.example/");
    mirrors_free(m);
    mirrors_free(NULL);
}

static void test_order(void)
{
    struct mirrors *m;
    char a[] = "http://a.example/x", b[] = "http://b.example/x", c[] = "http://c.example/x",
         d[] = "http://d.example/x";
    char *urls[4] = {a, b, c, d};
    CU_ASSERT_EQUAL_FATAL(mirrors_new(&m), 0);
    mirrors_order(m, urls, 4, 0); /* all healthy: unchanged */
    CU_ASSERT_PTR_EQUAL(urls[0], a);
    CU_ASSERT_PTR_EQUAL(urls[3], d);
    mirrors_failed(m, a, 0);      /* a: until 30 s */
    mirrors_failed(m, c, 0);
    mirrors_failed(m, c, 0);      /* c: until 60 s */
    mirrors_order(m, urls, 4, 1000);
    CU_ASSERT_PTR_EQUAL(urls[0], b);
    CU_ASSERT_PTR_EQUAL(urls[1], d);
    CU_ASSERT_PTR_EQUAL(urls[2], a);
    CU_ASSERT_PTR_EQUAL(urls[3], c);
    char *one[1] = {a}; /* the only mirror stays, backed off or not */
    mirrors_order(m, one, 1, 1000);
    CU_ASSERT_PTR_EQUAL(one[0], a);
    char *again[4] = {a, b, c, d};
    mirrors_order(m, again, 4, 45000); /* a's back-off is over: a is first again */
    CU_ASSERT_PTR_EQUAL(again[0], a);
    CU_ASSERT_PTR_EQUAL(again[3], c);
    mirrors_order(NULL, again, 4, 0);
    mirrors_free(m);
}

static void test_bounded(void)
{
    struct mirrors *m;
    char url[64];
    CU_ASSERT_EQUAL_FATAL(mirrors_new(&m), 0);
    for (int i = 0; i < MIRRORS_MAX + 10; i++) {
        snprintf(url, sizeof url, "http://m%d.example/", i);
        mirrors_failed(m, url, 0);
    }
    CU_ASSERT_NOT_EQUAL(mirrors_backoff_left(m, "http://m0.example/", 0), 0);
    snprintf(url, sizeof url, "http://m%d.example/", MIRRORS_MAX + 5);
    CU_ASSERT_EQUAL(mirrors_backoff_left(m, url, 0), 0); /* past the bound: not remembered */
    mirrors_free(m);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"mirrors_origin", test_origin},
        {"back-off doubles, is capped and ends with a success", test_backoff},
        {"mirrors_order: healthy first, stable", test_order},
        {"the table is bounded", test_bounded},
        {NULL, NULL},
    };
    return unit_run("mirrors", cases);
}

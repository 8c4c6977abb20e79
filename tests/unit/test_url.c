/* test_url.c - request-target parsing, path safety, classification, encoding. */
#include "aptdht-config.h"
#include <errno.h>
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/url.h"

struct parse_case {
    const char *raw;
    int ret;
    enum url_form form;
    const char *host;
    const char *path;
    bool https;
};

static const struct parse_case parse_cases[] = {
    {"http://mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", 0, URL_ABSOLUTE,
     "mirror.example", "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
    {"HTTP://Mirror.EXAMPLE:80/debian/dists/bookworm/InRelease", 0, URL_ABSOLUTE,
     "mirror.example", "/debian/dists/bookworm/InRelease"},
    {"http://mirror.example:8080/d/pool/a.deb", 0, URL_ABSOLUTE, "mirror.example:8080",
     "/d/pool/a.deb"},
    {"https://mirror.example:443/d/pool/a.deb", 0, URL_ABSOLUTE, "mirror.example", "/d/pool/a.deb",
     true},
    {"http://[2001:db8::1]:9999/d/pool/a.deb", 0, URL_ABSOLUTE, "[2001:db8::1]:9999",
     "/d/pool/a.deb"},
    {"/mirror.example/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", 0, URL_ORIGIN,
     "mirror.example", "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
    {"/127.0.0.1:8080/debian/dists/bookworm/Release", 0, URL_ORIGIN, "127.0.0.1:8080",
     "/debian/dists/bookworm/Release"},
    {"/debian/pool/main/l/libx/libx_1%3a2.0%2b1_amd64.deb", 0, URL_ORIGIN, "debian",
     "/pool/main/l/libx/libx_1:2.0+1_amd64.deb"},
    {"/~/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0, URL_PEER,
     "", NULL},
    /* an https mirror in rewrite mode: ours and apt-cacher-ng's spelling */
    {"/mirror.example:443/debian/dists/bookworm/InRelease", 0, URL_ORIGIN, "mirror.example:443",
     "/debian/dists/bookworm/InRelease", true},
    /* the fuzzer's round trip: "https" is a first segment like any other */
    {"/https/e.example/x.deb", 0, URL_ORIGIN, "https", "/e.example/x.deb"},
    {"/./https/e.example/x.deb", 0, URL_ORIGIN, "https", "/e.example/x.deb"},
    {"/HTTPS///mirror.example/debian/pool/a.deb", 0, URL_ORIGIN, "mirror.example",
     "/debian/pool/a.deb", true},
    {"/https///mirror.example:443/debian/pool/a.deb", 0, URL_ORIGIN, "mirror.example",
     "/debian/pool/a.deb", true},
    {"/HTTPS///mirror.example:8443/d/pool/a.deb", 0, URL_ORIGIN, "mirror.example:8443",
     "/d/pool/a.deb", true},
    {"/https/debian/pool/a.deb", 0, URL_ORIGIN, "https", "/debian/pool/a.deb"}, /* a backend "https" */
    {"/HTTPS///debian/pool/a.deb", -EINVAL}, /* a backend name over https: no such thing */
    {"/HTTPS////mirror.example/pool/a.deb", -EINVAL},
    /* traversal in every spelling */
    {"/mirror.example/debian/../../etc/passwd", -EINVAL},
    {"/mirror.example/debian/%2e%2e/%2E%2E/etc/passwd", -EINVAL},
    {"/mirror.example/debian/.%2e/x.deb", -EINVAL},
    /* flat repositories: apt asks for URI/./InRelease and Filename: ./x.deb */
    {"/mirror.example/debian/./pool/x.deb", 0, URL_ORIGIN, "mirror.example", "/debian/pool/x.deb"},
    {"http://mirror.example/repo/./InRelease", 0, URL_ABSOLUTE, "mirror.example", "/repo/InRelease"},
    {"/local/./././x_1_all.deb", 0, URL_ORIGIN, "local", "/x_1_all.deb"},
    {"/mirror.example/repo/%2e/Packages.xz", 0, URL_ORIGIN, "mirror.example", "/repo/Packages.xz"},
    {"/./mirror.example/repo/x.deb", 0, URL_ORIGIN, "mirror.example", "/repo/x.deb"},
    {"/mirror.example/repo/./../x.deb", -EINVAL},
    {"/mirror.example/repo/.", 0, URL_ORIGIN, "mirror.example", "/repo"}, /* then not archive-shaped: 403 */
    {"/mirror.example/.", -EINVAL},
    {"/mirror.example/./", -EINVAL},
    {"/.", -EINVAL},
    {"/mirror.example//debian/pool/x.deb", -EINVAL},
    {"/mirror.example/debian%2fpool/x.deb", -EINVAL},
    {"/mirror.example/debian/pool\\..\\x.deb", -EINVAL},
    {"/mirror.example/debian/pool%5c..%5cx.deb", -EINVAL},
    {"/mirror.example/debian/pool/x%00.deb", -EINVAL},
    {"/mirror.example/debian/pool/x%0d%0aSet-Cookie:%20a.deb", -EINVAL},
    {"/mirror.example/debian/pool/x%0a.deb", -EINVAL},
    {"/mirror.example/debian/pool/\xc3\xa9.deb", -EINVAL},
    {"/mirror.example/debian/pool/x.deb%", -EINVAL},
    {"/mirror.example/debian/pool/x.deb%4", -EINVAL},
    {"/mirror.example/debian/pool/x.deb%zz", -EINVAL},
    {"/mirror.example/debian/dists/%252e%252e/etc/passwd", -EINVAL},
    {"/mirror.example/debian/pool/100%25.deb", -EINVAL},
    {"/mirror.example/debian/pool/", -EINVAL},
    {"/mirror.example/.tmp/x.deb", -EINVAL},
    {"/..", -EINVAL},
    {"/", -EINVAL},
    {"", -EINVAL},
    {"mirror.example/debian/pool/x.deb", -EINVAL},
    {"http://user:pw@mirror.example/debian/pool/x.deb", -EINVAL},
    {"http://mirror.example:0/d/pool/x.deb", -EINVAL},
    {"http://mirror.example:65536/d/pool/x.deb", -EINVAL},
    {"http://mirror.example:8a/d/pool/x.deb", -EINVAL},
    {"http://mirror.example", -EINVAL},
    {"http://.mirror/d/pool/x.deb", -EINVAL},
    {"http://mir ror/d/pool/x.deb", -EINVAL},
    {"ftp://mirror.example/d/pool/x.deb", -EPROTONOSUPPORT},
    {"/~/sha256/0123", -EINVAL},
    {"/~/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", -EINVAL},
    {"/~/sha1/0123456789abcdef0123456789abcdef01234567", -EINVAL},
};

static void test_parse_table(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct url_target t;
        int r = url_parse(c->raw, &t);
        if (r != c->ret)
            fprintf(stderr, "case %zu (%s): got %d want %d\n", i, c->raw, r, c->ret);
        CU_ASSERT_EQUAL(r, c->ret);
        if (r != 0 || c->ret != 0)
            continue;
        CU_ASSERT_EQUAL(t.form, c->form);
        CU_ASSERT_STRING_EQUAL(t.host, c->host);
        if (t.https != c->https)
            fprintf(stderr, "case %zu (%s): https %d want %d\n", i, c->raw, t.https, c->https);
        CU_ASSERT_EQUAL(t.https, c->https);
        if (c->path)
            CU_ASSERT_STRING_EQUAL(t.path, c->path);
    }
}

static void test_limits(void)
{
    char raw[URL_MAX_TARGET + 64];
    struct url_target t;
    memcpy(raw, "/mirror.example/", 16);
    memset(raw + 16, 'a', sizeof raw - 17);
    raw[sizeof raw - 1] = '\0';
    CU_ASSERT_EQUAL(url_parse(raw, &t), -ENAMETOOLONG);
    /* under the target limit but a decoded path over URL_MAX_PATH */
    raw[URL_MAX_PATH + 100] = '\0';
    CU_ASSERT_EQUAL(url_parse(raw, &t), -ENAMETOOLONG);
    raw[200] = '\0';
    CU_ASSERT_EQUAL(url_parse(raw, &t), 0); /* parses; url_is_archive_path refuses it later */
    CU_ASSERT_FALSE(url_is_archive_path(t.path));
}

static void test_peer(void)
{
    struct url_target t;
    CU_ASSERT_EQUAL(
        url_parse("/~/sha256/00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff", &t),
        0);
    CU_ASSERT_EQUAL(t.sha256[0], 0x00);
    CU_ASSERT_EQUAL(t.sha256[1], 0xff);
    CU_ASSERT_EQUAL(t.sha256[31], 0xff);
}

static void test_archive_paths(void)
{
    CU_ASSERT_TRUE(url_is_archive_path("/debian/dists/bookworm/InRelease"));
    CU_ASSERT_TRUE(url_is_archive_path("/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"));
    CU_ASSERT_TRUE(url_is_archive_path("/repo/Packages.xz"));
    CU_ASSERT_TRUE(url_is_archive_path("/repo/InRelease"));
    CU_ASSERT_TRUE(url_is_archive_path("/repo/foo_1.0_all.deb"));
    CU_ASSERT_FALSE(url_is_archive_path("/index.html"));
    CU_ASSERT_FALSE(url_is_archive_path("/admin/login.php"));
    CU_ASSERT_FALSE(url_is_archive_path("/debian/README"));
    CU_ASSERT_FALSE(url_is_archive_path("/pool"));
    CU_ASSERT_FALSE(url_is_archive_path("/x/dists"));
    CU_ASSERT_FALSE(url_is_archive_path("/x/mydists/y.html"));
}

static void test_classify(void)
{
    uint8_t h[32];
    CU_ASSERT_EQUAL(url_classify("/debian/pool/main/h/hello/hello.deb"), URL_IMMUTABLE);
    CU_ASSERT_EQUAL(url_classify("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab"),
                    URL_IMMUTABLE);
    CU_ASSERT_EQUAL(url_classify("/debian/dists/bookworm/InRelease"), URL_VOLATILE);
    CU_ASSERT_EQUAL(url_classify("/debian/dists/bookworm/main/binary-amd64/Packages.xz"),
                    URL_VOLATILE);
    CU_ASSERT_EQUAL(url_classify("/repo/foo_1.0_all.deb"), URL_IMMUTABLE);
    CU_ASSERT_TRUE(url_by_hash_sha256(
        "/d/dists/b/main/by-hash/SHA256/00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff",
        h));
    CU_ASSERT_EQUAL(h[1], 0xff);
    CU_ASSERT_FALSE(url_by_hash_sha256("/d/dists/b/main/by-hash/SHA256/00ff", h));
    CU_ASSERT_FALSE(url_by_hash_sha256("/d/dists/b/main/by-hash/MD5Sum/00ff", h));
}

static void test_encode(void)
{
    char out[64];
    CU_ASSERT_EQUAL(url_encode_path("/pool/l/libx_1:2.0+1~b1_amd64.deb", out, sizeof out),
                    (int)strlen("/pool/l/libx_1%3A2.0%2B1%7Eb1_amd64.deb"));
    CU_ASSERT_STRING_EQUAL(out, "/pool/l/libx_1%3A2.0%2B1%7Eb1_amd64.deb");
    CU_ASSERT_EQUAL(url_encode_path("/aaaaaaaaaa", out, 5), -ENAMETOOLONG);
    CU_ASSERT_EQUAL(url_join("http://mirror.example/debian", "/pool/a+b.deb", out, sizeof out),
                    (int)strlen("http://mirror.example/debian/pool/a%2Bb.deb"));
    CU_ASSERT_STRING_EQUAL(out, "http://mirror.example/debian/pool/a%2Bb.deb");
    /* decode then encode is canonical: both spellings give one upstream URL */
    struct url_target a, b;
    CU_ASSERT_EQUAL(url_parse("/h.example/d/pool/a+b.deb", &a), 0);
    CU_ASSERT_EQUAL(url_parse("/h.example/d/pool/a%2Bb.deb", &b), 0);
    CU_ASSERT_STRING_EQUAL(a.path, b.path);
}

static void test_hex(void)
{
    uint8_t b[2];
    char s[5];
    CU_ASSERT_EQUAL(hex_decode("0aFf", 2, b), 0);
    hex_encode(b, 2, s);
    CU_ASSERT_STRING_EQUAL(s, "0aff");
    CU_ASSERT_EQUAL(hex_decode("0aF", 2, b), -EINVAL);
    CU_ASSERT_EQUAL(hex_decode("0aFf0", 2, b), -EINVAL);
    CU_ASSERT_EQUAL(hex_decode("0xFf", 2, b), -EINVAL);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"parse table", test_parse_table}, {"limits", test_limits},
        {"peer form", test_peer},          {"archive paths", test_archive_paths},
        {"classify", test_classify},       {"encode", test_encode},
        {"hex", test_hex},                 {NULL, NULL},
    };
    return unit_run("url", cases);
}

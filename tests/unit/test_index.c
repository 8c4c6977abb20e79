/* test_index.c - the index parsers (Release/InRelease, Packages, Sources), key
 * derivation, decompression (plain, gzip, xz, sniffed by-hash), rollback on corrupt
 * input, and the background indexer. Samples are written the way Debian's archive tools
 * write them; mirror hosts are placeholders. */
#include "aptdht-config.h"
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/index.h"
#include "apt-dht-proxy/zread.h"

#define HA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HB "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define HB_UPPER "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"
#define HC "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HD "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"
#define S1A "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define S1B "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
#define S1C "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
#define MD5 "1d4ea3e5fb5a1ed1b2b1b1b1b1b1b1b1"

#define R "mirror.example/debian"
#define BW R "/dists/bookworm"

static char tmpdir[64];

/* ---- helpers -------------------------------------------------------------------- */

static struct hashdb *mem_db(void)
{
    struct hashdb *db = NULL;
    CU_ASSERT_EQUAL(hashdb_open(&db, ":memory:"), 0);
    return db;
}

static void unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* sha256/sha1 NULL = must be absent. */
static void expect(struct hashdb *db, const char *key, uint64_t size, const char *sha256,
                   const char *sha1)
{
    struct hashdb_entry e;
    uint8_t h[32];
    int rc = hashdb_lookup(db, key, &e);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n  missing: %s\n", key);
        return;
    }
    CU_ASSERT_EQUAL(e.size, size);
    CU_ASSERT_EQUAL(e.have_sha256, sha256 != NULL);
    CU_ASSERT_EQUAL(e.have_sha1, sha1 != NULL);
    if (sha256 && e.have_sha256) {
        unhex(sha256, h, 32);
        CU_ASSERT(memcmp(h, e.sha256, 32) == 0);
    }
    if (sha1 && e.have_sha1) {
        unhex(sha1, h, 20);
        CU_ASSERT(memcmp(h, e.sha1, 20) == 0);
    }
}

static void expect_absent(struct hashdb *db, const char *key)
{
    struct hashdb_entry e;
    CU_ASSERT_EQUAL(hashdb_lookup(db, key, &e), -ENOENT);
}

static char *tmp_path(const char *name)
{
    static char buf[8][256];
    static unsigned next;
    char *p = buf[next++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
    return p;
}

static unsigned char *gzip_bytes(const void *in, size_t n, size_t *out_len)
{
    z_stream z = {0};
    size_t cap = n + n / 100 + 1024;
    unsigned char *out = malloc(cap);
    CU_ASSERT_EQUAL_FATAL(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    CU_ASSERT_EQUAL(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static unsigned char *xz_bytes(const void *in, size_t n, size_t *out_len, uint32_t preset)
{
    size_t cap = lzma_stream_buffer_bound(n), pos = 0;
    unsigned char *out = malloc(cap);
    CU_ASSERT_EQUAL_FATAL(lzma_easy_buffer_encode(preset, LZMA_CHECK_CRC64, NULL, in, n, out,
                                                  &pos, cap),
                          LZMA_OK);
    *out_len = pos;
    return out;
}

/* ---- samples ---------------------------------------------------------------------- */

static const char inrelease[] =
    "-----BEGIN PGP SIGNED MESSAGE-----\n"
    "Hash: SHA512\n"
    "\n"
    "Origin: Debian\n"
    "Label: Debian\n"
    "Suite: stable\n"
    "Version: 12.5\n"
    "Codename: bookworm\n"
    "Date: Sat, 10 Feb 2024 10:37:23 UTC\n"
    "Acquire-By-Hash: yes\n"
    "No-Support-for-Architecture-all: Packages\n"
    "Architectures: all amd64 arm64\n"
    "Components: main contrib non-free-firmware non-free\n"
    "Description: Debian 12.5 Released 10 February 2024\n"
    "MD5Sum:\n"
    " 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all\n"
    " d0a0325a97c42fd5f66a8c3e29bcea64    98581 contrib/Contents-all.gz\n"
    "SHA256:\n"
    " " HA "  1484322 contrib/Contents-all\n"
    " " HB_UPPER "  8791532 main/binary-amd64/Packages.xz\n"
    " " HC "      141 main/binary-amd64/Release\n"
    " " HD " 45004221 Contents-amd64\n"
    "-----BEGIN PGP SIGNATURE-----\n"
    "\n"
    "iQIzBAEBCgAdFiEEpyNohvPMyq0Uiif4DphATThvodkFAmXHUVMACgkQDphATThv\n"
    "odnHUA/+KEWkZ2Jg\n"
    "=8F3Q\n"
    "-----END PGP SIGNATURE-----\n";

static const char release_sha1_only[] =
    "Origin: Debian\n"
    "Label: Debian\n"
    "Suite: oldstable\n"
    "Codename: lenny\n"
    "Date: Sat, 26 Feb 2011 11:01:13 UTC\n"
    "Architectures: alpha amd64 i386\n"
    "Components: main contrib non-free\n"
    "Description: Debian 5.0.8 Released 22 January 2011\n"
    "MD5Sum:\n"
    " " MD5 "    1234 main/binary-i386/Packages\n"
    "SHA1:\n"
    " " S1A "     1234 main/binary-i386/Packages\n"
    " " S1B "      456 main/binary-i386/Packages.gz\n";

/* SHA1 before SHA256 and Acquire-By-Hash after both: only the SHA256 section counts. */
static const char release_both[] =
    "Origin: Example\r\n"
    "Suite: testing\r\n"
    "Codename: trixie\r\n"
    "SHA1:\r\n"
    " " S1A " 100 main/source/Sources.xz\r\n"
    "SHA256:\r\n"
    " " HC " 100 main/source/Sources.xz\r\n"
    "Acquire-By-Hash: YES\r\n";

static const char release_bad_lines[] =
    "Suite: stable\n"
    "SHA256:\n"
    " " HA " 10 main/good\n"
    " e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85 10 main/short-hex\n"
    " e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g 10 main/bad-hex\n"
    " " HA " 99999999999999999999 main/huge\n"
    " " HA " 9223372036854775808 main/over-int64\n"
    " " HA " 12a main/bad-size\n"
    " " HA " 10 ../escape\n"
    " " HA " 10\n"
    " " HA " 10 main/x extra-word\n"
    " " HB " 20 main/also-good\n";

/* what dpkg-scanpackages . writes: "./" names, and one that climbs out (refused) */
static const char packages_flat[] =
    "Package: x\nFilename: ./x_1_all.deb\nSize: 11\nSHA256: " HA "\n\n"
    "Package: y\nFilename: ./sub/./y_1_all.deb\nSize: 12\nSHA256: " HB "\n\n"
    "Package: z\nFilename: ./../etc/passwd\nSize: 13\nSHA256: " HC "\n";

static const char packages[] =
    "Package: hello\n"
    "Version: 2.10-3\n"
    "Installed-Size: 281\n"
    "Maintainer: Jane Doe <jane@example.org>\n"
    "Architecture: amd64\n"
    "Depends: libc6 (>= 2.34)\n"
    "Conflicts: hello-traditional\n"
    "Breaks: hello-debhelper (<< 2.9)\n"
    "Replaces: hello-debhelper (<< 2.9), hello-traditional\n"
    "Description: example package based on GNU hello\n"
    "Multi-Arch: foreign\n"
    "Homepage: https://www.example.org/software/hello/\n"
    "Description-md5: 2e5bc4a8bd16e2b8e5b4de2b4b6b2f6a\n"
    "Tag: devel::examples, role::program\n"
    "Section: devel\n"
    "Priority: optional\n"
    "Filename: pool/main/h/hello/hello_2.10-3_amd64.deb\n"
    "Size: 53256\n"
    "MD5sum: " MD5 "\n"
    "SHA256: " HA "\n"
    "\n"
    "Package: libc6\n"
    "Source: glibc\n"
    "Version: 2.36-9+deb12u4\n"
    "Architecture: amd64\n"
    "Description: GNU C Library: Shared libraries\n"
    " Contains the standard libraries that are used by nearly all programs on\n"
    " the system.\n"
    " .\n"
    " SHA256: " HD "\n"
    "Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb\n"
    "Size: 2757636\n"
    "MD5sum: " MD5 "\n"
    "SHA256: " HB "\n"
    "\n";

static const char packages_old[] =
    "Package: old\n"
    "Version: 1.0\n"
    "Architecture: i386\n"
    "Filename: pool/main/o/old/old_1.0_i386.deb\n"
    "Size: 1000\n"
    "MD5sum: " MD5 "\n"
    "SHA1: " S1A "\n"
    "Description: an entry from before SHA256\n"
    "\n"
    "Package: both\n"
    "Filename: pool/main/b/both/both_2_i386.deb\n"
    "Size: 2000\n"
    "MD5sum: " MD5 "\n"
    "SHA1: " S1B "\n"
    "SHA256: " HB "\n";

static const char packages_bad[] =
    "Package: no-size\nFilename: pool/a.deb\nSHA256: " HA "\n\n"
    "Package: short-hex\nFilename: pool/b.deb\nSize: 1\nSHA256: " S1A "\n\n"
    "Package: non-hex\nFilename: pool/c.deb\nSize: 1\n"
    "SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g\n\n"
    "Package: huge\nFilename: pool/d.deb\nSize: 99999999999999999999\nSHA256: " HA "\n\n"
    "Package: bad-size\nFilename: pool/e.deb\nSize: 12a\nSHA256: " HA "\n\n"
    "Package: negative\nFilename: pool/e2.deb\nSize: -1\nSHA256: " HA "\n\n"
    "Package: traversal\nFilename: pool/../../etc/passwd\nSize: 1\nSHA256: " HA "\n\n"
    "Package: absolute\nFilename: /pool/f.deb\nSize: 1\nSHA256: " HA "\n\n"
    "Package: dup\nFilename: pool/g.deb\nFilename: pool/h.deb\nSize: 1\nSHA256: " HA "\n\n"
    "Package: no-colon\nFilename: pool/i.deb\nthis line is garbage\nSize: 1\nSHA256: " HA "\n\n"
    "Package: continued\nFilename: pool/j.deb\nSize: 1\nSHA256: " HA "\n more\n\n"
    "Package: md5-only\nFilename: pool/k.deb\nSize: 1\nMD5sum: " MD5 "\n\n"
    "Package: space\nFilename: pool/a b.deb\nSize: 1\nSHA256: " HA "\n\n"
    "Package: good\nFilename: pool/main/g/good/good_1_all.deb\nSize: 7\nSHA256: " HC "\n";

static const char packages_crlf[] =
    "Package: hello\r\n"
    "Filename: pool/main/h/hello/hello_2.10-3_amd64.deb\r\n"
    "Size: 53256\r\n"
    "SHA256: " HA "\r\n"
    "\r\n"
    "Package: other\r\n"
    "Filename: pool/main/o/other/other_1_all.deb\r\n"
    "Size: 5\r\n"
    "SHA256: " HB "\r\n";

static const char sources[] =
    "Package: hello\n"
    "Binary: hello\n"
    "Version: 2.10-3\n"
    "Maintainer: Jane Doe <jane@example.org>\n"
    "Build-Depends: debhelper-compat (= 13)\n"
    "Architecture: any\n"
    "Standards-Version: 4.6.2\n"
    "Format: 3.0 (quilt)\n"
    "Files:\n"
    " " MD5 " 1847 hello_2.10-3.dsc\n"
    " " MD5 " 725946 hello_2.10.orig.tar.gz\n"
    " " MD5 " 12688 hello_2.10-3.debian.tar.xz\n"
    "Checksums-Sha1:\n"
    " " S1A " 1847 hello_2.10-3.dsc\n"
    " " S1B " 725946 hello_2.10.orig.tar.gz\n"
    " " S1C " 999 hello_2.10-3.debian.tar.xz\n"
    "Checksums-Sha256:\n"
    " " HA " 1847 hello_2.10-3.dsc\n"
    " " HB " 725946 hello_2.10.orig.tar.gz\n"
    " " HC " 12688 hello_2.10-3.debian.tar.xz\n"
    "Package-List: \n"
    " hello deb devel optional arch=any\n"
    "Directory: pool/main/h/hello\n"
    "Priority: source\n"
    "Section: devel\n"
    "\n"
    "Package: tiny\n"
    "Format: 1.0\n"
    "Directory: pool/main/t/tiny\n"
    "Checksums-Sha256:\n"
    " " HD " 300 tiny_1.dsc\n";

static const char sources_old[] =
    "Package: old\n"
    "Version: 1.0-1\n"
    "Directory: pool/main/o/old\n"
    "Files:\n"
    " " MD5 " 500 old_1.0-1.dsc\n"
    "Checksums-Sha1:\n"
    " " S1A " 500 old_1.0-1.dsc\n"
    " " S1B " 6000 old_1.0.orig.tar.gz\n";

static const char sources_bad[] =
    "Package: no-dir\nChecksums-Sha256:\n " HA " 1 a.dsc\n\n"
    "Package: bad-lines\nDirectory: pool/main/b/bad\nChecksums-Sha256:\n"
    " " HA " 1 good.dsc\n"
    " " S1A " 1 short.dsc\n"
    " " HA " x bad-size.dsc\n"
    " " HA " 1 ../up.dsc\n"
    " " HA " 1 sub/dir.dsc\n\n"
    "Package: value-on-line\nDirectory: pool/main/v/v\nChecksums-Sha256: " HA " 1 v.dsc\n\n"
    "Package: dotdot\nDirectory: pool/..\nChecksums-Sha256:\n " HA " 1 d.dsc\n\n"
    "Package: dup-list\nDirectory: pool/main/d/d\nChecksums-Sha256:\n " HA " 1 d.dsc\n"
    "Checksums-Sha256:\n " HB " 1 e.dsc\n";

/* ---- table-driven text cases ------------------------------------------------------ */

struct want {
    const char *key;
    uint64_t size;
    const char *sha256, *sha1;
};

struct text_case {
    const char *name;
    enum index_kind kind;
    const char *key;
    const char *text;
    int rc;
    long records, skipped; /* -1 = not checked */
    struct want want[10];
    const char *absent[6];
};

static const struct text_case text_cases[] = {
    {"InRelease, by-hash", INDEX_NONE, BW "/InRelease", inrelease, 0, 8, 0,
     {{BW "/contrib/Contents-all", 1484322, HA, NULL},
      {BW "/contrib/by-hash/SHA256/" HA, 1484322, HA, NULL},
      {BW "/main/binary-amd64/Packages.xz", 8791532, HB, NULL},
      {BW "/main/binary-amd64/by-hash/SHA256/" HB, 8791532, HB, NULL},
      {BW "/main/binary-amd64/Release", 141, HC, NULL},
      {BW "/Contents-amd64", 45004221, HD, NULL},
      {BW "/by-hash/SHA256/" HD, 45004221, HD, NULL}},
     {BW "/contrib/Contents-all.gz", BW "/main/binary-amd64/by-hash/SHA256/" HB_UPPER}},
    {"Release, SHA1 only", INDEX_RELEASE, "mirror.example/archive/debian/dists/lenny/Release",
     release_sha1_only, 0, 2, 0,
     {{"mirror.example/archive/debian/dists/lenny/main/binary-i386/Packages", 1234, NULL, S1A},
      {"mirror.example/archive/debian/dists/lenny/main/binary-i386/Packages.gz", 456, NULL,
       S1B}},
     {"mirror.example/archive/debian/dists/lenny/main/binary-i386/by-hash/SHA1/" S1A}},
    {"Release, SHA1 and SHA256, CRLF", INDEX_NONE, R "/dists/trixie/Release", release_both, 0,
     2, 0,
     {{R "/dists/trixie/main/source/Sources.xz", 100, HC, NULL},
      {R "/dists/trixie/main/source/by-hash/SHA256/" HC, 100, HC, NULL}}, {NULL}},
    {"Release, bad lines", INDEX_RELEASE, BW "/Release", release_bad_lines, 0, 2, 8,
     {{BW "/main/good", 10, HA, NULL}, {BW "/main/also-good", 20, HB, NULL}},
     {BW "/main/huge", BW "/main/over-int64", BW "/main/bad-size", R "/dists/escape"}},
    {"InRelease without signature", INDEX_RELEASE, BW "/InRelease",
     "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: x\nSHA256:\n " HA " 1 a\n",
     -EBADMSG, 0, -1, {{NULL}}, {BW "/a"}},
    {"InRelease without armor end", INDEX_RELEASE, BW "/InRelease",
     "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n", -EBADMSG, 0, -1, {{NULL}}, {NULL}},
    {"Release without hashes", INDEX_RELEASE, BW "/Release", "Suite: x\nMD5Sum:\n " MD5 " 1 a\n",
     -EBADMSG, 0, -1, {{NULL}}, {BW "/a"}},
    {"Release, empty", INDEX_RELEASE, BW "/Release", "", -EBADMSG, 0, -1, {{NULL}}, {NULL}},
    {"Release outside a suite", INDEX_NONE, R "/dists/InRelease", release_both, -EINVAL, 0, -1,
     {{NULL}}, {NULL}},
    {"Packages", INDEX_NONE, BW "/main/binary-amd64/Packages", packages, 0, 2, 0,
     {{R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL},
      {R "/pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb", 2757636, HB, NULL}}, {NULL}},
    {"Packages, SHA1 era", INDEX_PACKAGES, "mirror.example/old/dists/etch/main/binary-i386/Packages",
     packages_old, 0, 2, 0,
     {{"mirror.example/old/pool/main/o/old/old_1.0_i386.deb", 1000, NULL, S1A},
      {"mirror.example/old/pool/main/b/both/both_2_i386.deb", 2000, HB, S1B}}, {NULL}},
    {"Packages, malformed stanzas", INDEX_PACKAGES, BW "/main/binary-amd64/Packages",
     packages_bad, 0, 1, 13,
     {{R "/pool/main/g/good/good_1_all.deb", 7, HC, NULL}},
     {R "/pool/a.deb", R "/pool/b.deb", R "/pool/d.deb", R "/pool/g.deb", R "/pool/h.deb",
      R "/pool/j.deb"}},
    {"Packages, CRLF", INDEX_PACKAGES, BW "/main/binary-amd64/Packages", packages_crlf, 0, 2, 0,
     {{R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL},
      {R "/pool/main/o/other/other_1_all.deb", 5, HB, NULL}}, {NULL}},
    {"Packages, empty", INDEX_PACKAGES, BW "/main/binary-amd64/Packages", "", 0, 0, 0, {{NULL}},
     {NULL}},
    {"Packages, blank lines only", INDEX_PACKAGES, BW "/main/binary-amd64/Packages", "\n\n \n\t\n",
     0, 0, 0, {{NULL}}, {NULL}},
    {"Packages, garbage", INDEX_PACKAGES, BW "/main/binary-amd64/Packages",
     "<html>\n<body>Gateway Timeout</body>\n\x01\x02\xff\n:\n", 0, 0, 1, {{NULL}}, {NULL}},
    /* a flat repository: no dists/, its directory is the root of its Filenames */
    {"Packages, flat repository", INDEX_NONE, "mirror.example/debian/Packages", packages, 0, 2, 0,
     {{R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL},
      {R "/pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb", 2757636, HB, NULL}}, {NULL}},
    {"Packages, flat repository, ./ names", INDEX_NONE, "local.example/repo/Packages.gz",
     packages_flat, 0, 2, 1,
     {{"local.example/repo/x_1_all.deb", 11, HA, NULL}, {"local.example/repo/sub/y_1_all.deb", 12, HB, NULL}},
     {"local.example/repo/./x_1_all.deb", "local.example/etc/passwd", "local.example/repo/.x.deb"}},
    {"Packages, by-hash key", INDEX_PACKAGES, BW "/main/binary-amd64/by-hash/SHA256/" HA,
     packages_crlf, 0, 2, 0, {{R "/pool/main/o/other/other_1_all.deb", 5, HB, NULL}}, {NULL}},
    {"unknown kind", INDEX_NONE, BW "/main/Contents-amd64.gz", packages, -EINVAL, 0, -1, {{NULL}},
     {NULL}},
    {"Sources", INDEX_NONE, BW "/main/source/Sources", sources, 0, 4, 0,
     {{R "/pool/main/h/hello/hello_2.10-3.dsc", 1847, HA, S1A},
      {R "/pool/main/h/hello/hello_2.10.orig.tar.gz", 725946, HB, S1B},
      /* its SHA-1 line gives another size: the SHA-1 is not trusted */
      {R "/pool/main/h/hello/hello_2.10-3.debian.tar.xz", 12688, HC, NULL},
      {R "/pool/main/t/tiny/tiny_1.dsc", 300, HD, NULL}}, {NULL}},
    {"Sources, SHA1 era", INDEX_SOURCES, "mirror.example/old/dists/etch/main/source/Sources",
     sources_old, 0, 2, 0,
     {{"mirror.example/old/pool/main/o/old/old_1.0-1.dsc", 500, NULL, S1A},
      {"mirror.example/old/pool/main/o/old/old_1.0.orig.tar.gz", 6000, NULL, S1B}}, {NULL}},
    {"Sources, malformed", INDEX_SOURCES, BW "/main/source/Sources", sources_bad, 0, 1, 8,
     {{R "/pool/main/b/bad/good.dsc", 1, HA, NULL}},
     {R "/pool/main/b/bad/short.dsc", R "/pool/main/v/v/v.dsc", R "/pool/main/d/d/d.dsc",
      R "/pool/main/d/d/e.dsc", R "/a.dsc", R "/pool/main/b/bad/sub/dir.dsc"}},
};

static void run_text_case(const struct text_case *tc)
{
    struct hashdb *db = mem_db();
    struct index_stats st = {99, 99};
    int rc = index_parse_buffer(db, tc->key, tc->kind, tc->text, strlen(tc->text), &st);
    if (rc != tc->rc || (tc->records >= 0 && (long)st.records != tc->records) ||
        (tc->skipped >= 0 && (long)st.skipped != tc->skipped))
        fprintf(stderr, "\n  case '%s': rc %d records %zu skipped %zu\n", tc->name, rc,
                st.records, st.skipped);
    CU_ASSERT_EQUAL(rc, tc->rc);
    if (tc->records >= 0)
        CU_ASSERT_EQUAL(st.records, (size_t)tc->records);
    if (tc->skipped >= 0)
        CU_ASSERT_EQUAL(st.skipped, (size_t)tc->skipped);
    for (const struct want *w = tc->want; w->key; w++)
        expect(db, w->key, w->size, w->sha256, w->sha1);
    for (size_t i = 0; i < 6 && tc->absent[i]; i++)
        expect_absent(db, tc->absent[i]);
    hashdb_free(db);
}

static void test_text_cases(void)
{
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++)
        run_text_case(&text_cases[i]);
}

static void test_kind_of(void)
{
    static const struct {
        const char *key;
        enum index_kind kind;
    } rows[] = {
        {BW "/InRelease", INDEX_RELEASE},
        {BW "/Release", INDEX_RELEASE},
        {BW "/Release.gpg", INDEX_NONE},
        {BW "/main/binary-amd64/Release", INDEX_NONE},
        {BW "/main/source/Release", INDEX_NONE},
        {"mirror.example/debian-security/dists/bookworm/updates/InRelease", INDEX_RELEASE},
        {BW "/main/binary-amd64/Packages", INDEX_PACKAGES},
        {BW "/main/binary-amd64/Packages.gz", INDEX_PACKAGES},
        {BW "/main/binary-amd64/Packages.xz", INDEX_PACKAGES},
        {BW "/main/binary-amd64/Packages.bz2", INDEX_NONE},
        {BW "/main/debian-installer/binary-amd64/Packages.xz", INDEX_PACKAGES},
        {BW "/main/source/Sources.xz", INDEX_SOURCES},
        {BW "/main/source/Sources.gz", INDEX_SOURCES},
        {BW "/main/i18n/Translation-en.xz", INDEX_NONE},
        {BW "/main/Contents-amd64.gz", INDEX_NONE},
        {BW "/main/binary-amd64/by-hash/SHA256/" HA, INDEX_NONE},
        {R "/pool/main/p/Packages", INDEX_NONE},
        {"Packages", INDEX_NONE},
        /* flat repositories */
        {"local.example/repo/Packages.xz", INDEX_PACKAGES},
        {"local.example/repo/InRelease", INDEX_RELEASE},
        {"local.example/repo/Release", INDEX_RELEASE},
        {"local.example/repo/Sources.gz", INDEX_SOURCES},
        {NULL, INDEX_NONE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CU_ASSERT_EQUAL(index_kind_of(rows[i].key), rows[i].kind);
}

/* A new version of an InRelease retracts the promises it no longer makes. */
static void test_release_update(void)
{
    static const char v1[] = "Suite: stable\nAcquire-By-Hash: yes\nSHA256:\n"
                             " " HA " 10 main/binary-amd64/Packages.xz\n"
                             " " HB " 20 main/binary-amd64/Packages.gz\n";
    static const char v2[] = "Suite: stable\nAcquire-By-Hash: yes\nSHA256:\n"
                             " " HC " 11 main/binary-amd64/Packages.xz\n";
    struct hashdb *db = mem_db();
    const char *key = BW "/InRelease";
    CU_ASSERT_EQUAL(index_parse_buffer(db, key, INDEX_NONE, v1, strlen(v1), NULL), 0);
    CU_ASSERT_EQUAL(index_parse_buffer(db, key, INDEX_NONE, v2, strlen(v2), NULL), 0);
    expect(db, BW "/main/binary-amd64/Packages.xz", 11, HC, NULL);
    expect_absent(db, BW "/main/binary-amd64/Packages.gz");
    /* the by-hash names of the old version go too, or every update would add rows for
     * good; a by-hash URL carries its SHA-256, so such a file is still verified */
    expect(db, BW "/main/binary-amd64/by-hash/SHA256/" HC, 11, HC, NULL);
    expect_absent(db, BW "/main/binary-amd64/by-hash/SHA256/" HB);
    expect_absent(db, BW "/main/binary-amd64/by-hash/SHA256/" HA);
    /* the same version again writes nothing */
    struct index_stats st;
    CU_ASSERT_EQUAL(index_parse_buffer(db, key, INDEX_NONE, v2, strlen(v2), &st), 0);
    CU_ASSERT_EQUAL(st.records, 2);
    CU_ASSERT_EQUAL(st.changed, 0);
    hashdb_free(db);
}

/* A line over 64 KiB spoils its stanza only, in memory and when streamed. */
static void test_overlong_line(void)
{
    static const char head[] = "Package: big\nFilename: pool/big.deb\nSize: 1\nSHA256: " HA
                               "\nDescription: ";
    static const char tail[] = "\n\nPackage: after\nFilename: pool/after.deb\nSize: 2\nSHA256: " HB
                               "\n";
    size_t fill = 70 * 1024, n = strlen(head) + fill + strlen(tail);
    char *buf = malloc(n);
    memcpy(buf, head, strlen(head));
    memset(buf + strlen(head), 'x', fill);
    memcpy(buf + strlen(head) + fill, tail, strlen(tail));
    for (int mode = 0; mode < 3; mode++) {
        struct hashdb *db = mem_db();
        struct index_stats st;
        const char *key = BW "/main/binary-amd64/Packages";
        int rc;
        if (mode == 0) {
            rc = index_parse_buffer(db, key, INDEX_PACKAGES, buf, n, &st);
        } else if (mode == 1) {
            rc = index_parse_file(db, key, INDEX_PACKAGES, write_file("long", buf, n), &st);
        } else {
            size_t zn;
            unsigned char *z = gzip_bytes(buf, n, &zn);
            rc = index_parse_file(db, BW "/main/binary-amd64/Packages.gz", INDEX_NONE,
                                  write_file("long.gz", z, zn), &st);
            free(z);
        }
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(st.records, 1);
        CU_ASSERT_EQUAL(st.skipped, 1);
        expect_absent(db, R "/pool/big.deb");
        expect(db, R "/pool/after.deb", 2, HB, NULL);
        hashdb_free(db);
    }
    free(buf);
}

/* ---- compressed files ------------------------------------------------------------ */

enum enc { ENC_PLAIN, ENC_GZ, ENC_XZ, ENC_GZ2 };

static unsigned char *encode(enum enc how, const char *text, size_t *n)
{
    size_t len = strlen(text);
    if (how == ENC_GZ)
        return gzip_bytes(text, len, n);
    if (how == ENC_XZ)
        return xz_bytes(text, len, n, 6);
    if (how == ENC_GZ2) { /* two gzip members, as `cat a.gz b.gz` */
        size_t h = len / 2, n1, n2;
        unsigned char *a = gzip_bytes(text, h, &n1), *b = gzip_bytes(text + h, len - h, &n2);
        a = realloc(a, n1 + n2);
        memcpy(a + n1, b, n2);
        free(b);
        *n = n1 + n2;
        return a;
    }
    *n = len;
    return (unsigned char *)strdup(text);
}

static void test_compressed(void)
{
    static const struct {
        const char *key;
        enum index_kind kind;
        enum enc how;
    } rows[] = {
        {BW "/main/binary-amd64/Packages", INDEX_NONE, ENC_PLAIN},
        {BW "/main/binary-amd64/Packages.gz", INDEX_NONE, ENC_GZ},
        {BW "/main/binary-amd64/Packages.gz", INDEX_NONE, ENC_GZ2},
        {BW "/main/binary-amd64/Packages.xz", INDEX_NONE, ENC_XZ},
        {BW "/main/binary-amd64/by-hash/SHA256/" HA, INDEX_PACKAGES, ENC_GZ},
        {BW "/main/binary-amd64/by-hash/SHA256/" HB, INDEX_PACKAGES, ENC_XZ},
        {BW "/main/binary-amd64/by-hash/SHA256/" HC, INDEX_PACKAGES, ENC_PLAIN},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct hashdb *db = mem_db();
        struct index_stats st;
        size_t n;
        unsigned char *data = encode(rows[i].how, packages, &n);
        const char *p = write_file("pk", data, n);
        CU_ASSERT_EQUAL(index_parse_file(db, rows[i].key, rows[i].kind, p, &st), 0);
        CU_ASSERT_EQUAL(st.records, 2);
        expect(db, R "/pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb", 2757636, HB, NULL);
        free(data);
        hashdb_free(db);
    }
    /* an InRelease and a Sources.xz through files too */
    struct hashdb *db = mem_db();
    size_t n;
    unsigned char *x = encode(ENC_XZ, sources, &n);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/InRelease", INDEX_NONE,
                                     write_file("ir", inrelease, strlen(inrelease)), NULL), 0);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/source/Sources.xz", INDEX_NONE,
                                     write_file("s.xz", x, n), NULL), 0);
    expect(db, BW "/main/binary-amd64/Packages.xz", 8791532, HB, NULL);
    expect(db, R "/pool/main/t/tiny/tiny_1.dsc", 300, HD, NULL);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/InRelease", INDEX_NONE, tmp_path("missing"), NULL),
                    -ENOENT);
    free(x);
    hashdb_free(db);
}

/* The SHA256 of stanza i of gen_packages: 64 hex digits that look random, as real hashes
 * do (an index of repeated or low-entropy hashes is what the entry bound refuses). */
static const char *gen_sha(size_t i, unsigned salt, char out[65])
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15u + salt;
    for (int w = 0; w < 4; w++) {
        x += 0x9e3779b97f4a7c15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        snprintf(out + 16 * w, 17, "%016llx", (unsigned long long)z);
    }
    return out;
}

/* A big Packages text: n stanzas with generated names and hashes. */
static char *gen_packages(size_t n, unsigned salt, size_t *len)
{
    size_t cap = n * 200 + 1, used = 0;
    char *buf = malloc(cap), h[65];
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(buf + used, cap - used,
                         "Package: p%zu\nVersion: 1\nFilename: pool/main/p/p%zu/p%zu_1_all.deb\n"
                         "Size: %zu\nSHA256: %s\n\n",
                         i, i, i, i + salt, gen_sha(i, salt, h));
        used += (size_t)k;
    }
    *len = used;
    return buf;
}

static void test_corrupt_rolls_back(void)
{
    struct hashdb *db = mem_db();
    const char *key = BW "/main/binary-amd64/Packages.xz";
    const char *gkey = BW "/main/binary-amd64/Packages.gz";
    size_t len, n, gn;
    char *text = gen_packages(20000, 5, &len);
    unsigned char *xz = xz_bytes(text, len, &n, 0), *gz = gzip_bytes(text, len, &gn);
    struct index_stats st;
    /* what was learnt before must survive a failed parse unchanged */
    CU_ASSERT_EQUAL(index_parse_buffer(db, BW "/main/binary-amd64/Packages", INDEX_NONE, packages,
                                       strlen(packages), NULL), 0);
    const struct {
        const char *key;
        int which; /* 0 xz, 1 gz */
        size_t cut;
        long flip; /* byte to corrupt, -1 none */
    } rows[] = {
        {key, 0, 3, -1}, {key, 0, 0, -1}, {key, 0, 12, 5000}, {key, 0, 6, 2},
        {gkey, 1, 3, -1}, {gkey, 1, 0, -1}, {gkey, 1, 8, -1}, {gkey, 1, 1, 4000},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        unsigned char *src = rows[i].which ? gz : xz;
        size_t sn = rows[i].which ? gn : n;
        /* cut: keep (cut-1)/cut of the file (cut 1 = whole file; cut 0 = empty file) */
        size_t keep = rows[i].cut == 0 ? 0 : sn - (rows[i].cut > 1 ? sn / rows[i].cut : 0);
        unsigned char *copy = malloc(sn);
        memcpy(copy, src, sn);
        if (rows[i].flip >= 0)
            copy[rows[i].flip] ^= 0x55;
        CU_ASSERT_EQUAL(index_parse_file(db, rows[i].key, INDEX_NONE, write_file("bad", copy, keep),
                                         &st), -EIO);
        CU_ASSERT_EQUAL(st.records, 0);
        free(copy);
    }
    expect_absent(db, R "/pool/main/p/p1/p1_1_all.deb");
    expect(db, R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL);
    /* garbage under a compressed name, and compressors apt-dht does not read */
    CU_ASSERT_EQUAL(index_parse_file(db, gkey, INDEX_NONE, write_file("g", packages, 300), NULL),
                    -EIO);
    CU_ASSERT_EQUAL(index_parse_file(db, key, INDEX_NONE, write_file("g", packages, 300), NULL),
                    -EIO);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/Packages.bz2", INDEX_PACKAGES,
                                     write_file("g", "BZh91AY", 7), NULL), -ENOTSUP);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/by-hash/SHA256/" HA,
                                     INDEX_PACKAGES, write_file("g", "BZh91AY", 7), NULL),
                    -ENOTSUP);
    /* the intact file is learnt */
    CU_ASSERT_EQUAL(index_parse_file(db, key, INDEX_NONE, write_file("ok", xz, n), &st), 0);
    CU_ASSERT_EQUAL(st.records, 20000);
    char h[65];
    expect(db, R "/pool/main/p/p1/p1_1_all.deb", 6, gen_sha(1, 5, h), NULL);
    free(text);
    free(xz);
    free(gz);
    hashdb_free(db);
}

/* Decompression bombs: output far beyond what a real index inflates to (about 4-7x for
 * Debian's) is refused before it is all inflated, and nothing is learnt from it. */
static void test_bomb(void)
{
    size_t len = (size_t)16 << 20, zn, xn;
    char *nl = malloc(len);
    memset(nl, '\n', len);
    unsigned char *gz = gzip_bytes(nl, len, &zn), *xz = xz_bytes(nl, len, &xn, 0);
    struct hashdb *db = mem_db();
    struct index_stats st;
    CU_ASSERT_EQUAL(index_parse_buffer(db, BW "/main/binary-amd64/Packages", INDEX_NONE, packages,
                                       strlen(packages), NULL), 0);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/Packages.gz", INDEX_NONE,
                                     write_file("bomb.gz", gz, zn), &st), -EFBIG);
    CU_ASSERT_EQUAL(st.records, 0);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/Packages.xz", INDEX_NONE,
                                     write_file("bomb.xz", xz, xn), &st), -EFBIG);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/by-hash/SHA256/" HA,
                                     INDEX_PACKAGES, write_file("bomb", gz, zn), &st), -EFBIG);
    /* what the database knew is still there */
    expect(db, R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL);
    hashdb_free(db);
    free(nl);
    free(gz);
    free(xz);
}

/* A new version of a Packages (by name or by hash, plain or compressed) replaces what the
 * previous version of the same index listed: files it no longer lists are forgotten, so
 * the database holds one version per index, however many updates pass through. */
static void test_superseded(void)
{
    static const char v1[] = "Package: a\nFilename: pool/main/a/a_1_all.deb\nSize: 1\nSHA256: " HA
                             "\n\nPackage: b\nFilename: pool/main/b/b_1_all.deb\nSize: 2\nSHA256: " HB
                             "\n";
    static const char v2[] = "Package: b\nFilename: pool/main/b/b_1_all.deb\nSize: 2\nSHA256: " HB
                             "\n\nPackage: c\nFilename: pool/main/c/c_1_all.deb\nSize: 3\nSHA256: " HC
                             "\n";
    static const char other[] = "Package: z\nFilename: pool/main/z/z_1_all.deb\nSize: 9\nSHA256: " HD
                                "\n";
    struct hashdb *db = mem_db();
    size_t n;
    unsigned char *gz = encode(ENC_GZ, v2, &n);
    CU_ASSERT_EQUAL(index_parse_buffer(db, BW "/main/binary-amd64/Packages", INDEX_NONE, v1,
                                       strlen(v1), NULL), 0);
    CU_ASSERT_EQUAL(index_parse_buffer(db, BW "/main/binary-i386/Packages", INDEX_NONE, other,
                                       strlen(other), NULL), 0);
    CU_ASSERT_EQUAL(index_parse_file(db, BW "/main/binary-amd64/by-hash/SHA256/" HB,
                                     INDEX_PACKAGES, write_file("v2.gz", gz, n), NULL), 0);
    expect_absent(db, R "/pool/main/a/a_1_all.deb");
    expect(db, R "/pool/main/b/b_1_all.deb", 2, HB, NULL);
    expect(db, R "/pool/main/c/c_1_all.deb", 3, HC, NULL);
    /* another index's entries are its own */
    expect(db, R "/pool/main/z/z_1_all.deb", 9, HD, NULL);
    /* an empty new version forgets everything the index listed */
    CU_ASSERT_EQUAL(index_parse_buffer(db, BW "/main/binary-amd64/Packages.xz", INDEX_PACKAGES, "",
                                       0, NULL), 0);
    expect_absent(db, R "/pool/main/b/b_1_all.deb");
    expect(db, R "/pool/main/z/z_1_all.deb", 9, HD, NULL);
    free(gz);
    hashdb_free(db);
}

/* The other bounds of one parse: entries against the input's size, CPU time; a tick that
 * ends the parse; each leaves the database as it was. */
static int tick_count, tick_stop_at;
static struct hashdb *tick_db;

static int test_tick(void *ud)
{
    (void)ud;
    uint8_t h[32] = {7};
    tick_count++;
    /* the stage is paused: the connection takes other writes meanwhile */
    CU_ASSERT_EQUAL(hashdb_cached_put(tick_db, R "/pool/t.deb", (uint64_t)tick_count, h), 0);
    return tick_count == tick_stop_at ? -ECANCELED : 0;
}

static void test_bounds(void)
{
    struct hashdb *db = mem_db();
    struct index_stats st;
    size_t len, n, fn = 0, cap = 60000 * 140;
    const char *key = BW "/main/binary-amd64/Packages.xz";
    char *text = gen_packages(40000, 9, &len), *flat = malloc(cap);
    unsigned char *xz = xz_bytes(text, len, &n, 0);
    const char *p = write_file("b.xz", xz, n);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    /* entries: a caller's bound, and the one from the size of the input */
    struct index_opts o = {.records_max = 100};
    CU_ASSERT_EQUAL(index_parse(db, key, INDEX_NONE, fd, &o, &st), -EOVERFLOW);
    CU_ASSERT_EQUAL(st.records, 0);
    for (size_t i = 0; i < 60000; i++) /* one hash for all: a few bytes of xz per entry */
        fn += (size_t)snprintf(flat + fn, cap - fn,
                               "Filename: pool/main/p/p%zu_1_all.deb\nSize: %zu\nSHA256: " HA "\n\n",
                               i, (i * 2654435761u) % 1000000);
    unsigned char *fx = xz_bytes(flat, fn, &n, 6);
    fprintf(stderr, " [%zu entries in %zu bytes of xz, %zu inflated] ", (size_t)60000, n, fn);
    CU_ASSERT(n * ZREAD_RATIO > fn); /* within the ratio: only the entry bound stops it */
    CU_ASSERT_EQUAL(index_parse_file(db, key, INDEX_NONE, write_file("flat.xz", fx, n), &st),
                    -EOVERFLOW);
    /* CPU */
    CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_SET), 0);
    o = (struct index_opts){.cpu_ms = 1};
    CU_ASSERT_EQUAL(index_parse(db, key, INDEX_NONE, fd, &o, &st), -ETIME);
    /* ticks: called as the input is read, and able to stop the parse */
    tick_db = db;
    tick_stop_at = 3;
    CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_SET), 0);
    o = (struct index_opts){.tick = test_tick};
    CU_ASSERT_EQUAL(index_parse(db, key, INDEX_NONE, fd, &o, &st), -ECANCELED);
    CU_ASSERT_EQUAL(tick_count, 3);
    expect_absent(db, R "/pool/main/p/p1/p1_1_all.deb");
    tick_stop_at = -1;
    CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_SET), 0);
    CU_ASSERT_EQUAL(index_parse(db, key, INDEX_NONE, fd, &o, &st), 0);
    CU_ASSERT(tick_count > 3);
    CU_ASSERT_EQUAL(st.records, 40000);
    CU_ASSERT_FALSE(st.already);
    /* the same content again: known, not parsed again */
    CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_SET), 0);
    CU_ASSERT_EQUAL(index_parse(db, key, INDEX_NONE, fd, NULL, &st), 0);
    CU_ASSERT(st.already);
    CU_ASSERT_EQUAL(st.records, 40000);
    close(fd);
    free(text);
    free(flat);
    free(xz);
    free(fx);
    hashdb_free(db);
}

static void test_origin(void)
{
    static const struct {
        const char *key;
        enum index_kind kind;
        const char *origin; /* NULL: -EINVAL */
    } rows[] = {
        {BW "/InRelease", INDEX_NONE, BW "/InRelease"},
        {BW "/main/binary-amd64/Packages", INDEX_NONE, BW "/main/binary-amd64/Packages"},
        {BW "/main/binary-amd64/Packages.xz", INDEX_NONE, BW "/main/binary-amd64/Packages"},
        {BW "/main/binary-amd64/by-hash/SHA256/" HA, INDEX_PACKAGES, BW "/main/binary-amd64/Packages"},
        {BW "/main/source/Sources.gz", INDEX_NONE, BW "/main/source/Sources"},
        {BW "/main/source/by-hash/SHA256/" HB, INDEX_SOURCES, BW "/main/source/Sources"},
        {BW "/main/debian-installer/binary-amd64/Packages.gz", INDEX_NONE,
         BW "/main/debian-installer/binary-amd64/Packages"},
        {BW "/main/Contents-amd64.gz", INDEX_NONE, NULL},
        {R "/pool/main/Packages", INDEX_PACKAGES, NULL},
    };
    char out[INDEX_KEY_MAX];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc = index_origin(rows[i].key, rows[i].kind, out, sizeof out);
        CU_ASSERT_EQUAL(rc, rows[i].origin ? 0 : -EINVAL);
        if (rc == 0 && rows[i].origin)
            CU_ASSERT_STRING_EQUAL(out, rows[i].origin);
    }
    CU_ASSERT_EQUAL(index_origin(BW "/InRelease", INDEX_NONE, out, 8), -ENAMETOOLONG);
}

/* ---- the indexer ---------------------------------------------------------------- */

static void test_indexer_basic(void)
{
    struct indexer *ix = NULL;
    struct hashdb *db = NULL;
    const char *dbp = tmp_path("ix.sqlite");
    CU_ASSERT_EQUAL_FATAL(indexer_new(&ix, dbp), 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, dbp), 0);
    size_t n;
    unsigned char *gz = encode(ENC_GZ, packages, &n);
    const char *p1 = write_file("i1.gz", gz, n);
    const char *p2 = write_file("i2", inrelease, strlen(inrelease));
    const char *p3 = write_file("i3", sources, strlen(sources));
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/binary-amd64/Packages.gz", INDEX_NONE, p1, NULL), 0);
    /* the caller replaces the file at once: the job still reads what was submitted */
    const char *other = write_file("other", "x", 1);
    CU_ASSERT_EQUAL(rename(other, p1), 0);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/InRelease", INDEX_NONE, p2, NULL), 0);
    unlink(p2);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/source/Sources", INDEX_SOURCES, p3, NULL), 0);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/Contents-all", INDEX_NONE, p3, NULL), -EINVAL);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/source/Sources", INDEX_NONE, tmp_path("nope"), NULL),
                    -ENOENT);
    /* a corrupt file is logged and skipped; the queue goes on */
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/binary-i386/Packages.xz", INDEX_NONE, p3, NULL), 0);
    indexer_drain(ix);
    expect(db, R "/pool/main/h/hello/hello_2.10-3_amd64.deb", 53256, HA, NULL);
    expect(db, BW "/main/binary-amd64/by-hash/SHA256/" HB, 8791532, HB, NULL);
    expect(db, R "/pool/main/t/tiny/tiny_1.dsc", 300, HD, NULL);
    indexer_drain(ix); /* nothing queued: returns at once */
    free(gz);
    hashdb_free(db);
    indexer_free(ix);
    indexer_free(NULL);
    unlink(p1);
    unlink(p3);
}

static void test_indexer_full(void)
{
    struct indexer *ix = NULL;
    struct hashdb *db = NULL;
    const char *dbp = tmp_path("ix2.sqlite");
    size_t len, n;
    char *text = gen_packages(40000, 1, &len);
    unsigned char *xz = xz_bytes(text, len, &n, 0);
    const char *big = write_file("big.xz", xz, n);
    const char *small = write_file("small", packages, strlen(packages));
    CU_ASSERT_EQUAL_FATAL(indexer_new(&ix, dbp), 0);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/binary-amd64/Packages.xz", INDEX_NONE, big, NULL), 0);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 1000 && !refused; i++) {
        int rc = indexer_submit(ix, BW "/main/binary-arm64/Packages", INDEX_NONE, small, NULL);
        accepted += rc == 0;
        refused += rc == -EAGAIN;
    }
    CU_ASSERT(refused > 0);
    CU_ASSERT(accepted > 0);
    indexer_drain(ix);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/binary-arm64/Packages", INDEX_NONE, small, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(hashdb_open(&db, dbp), 0);
    indexer_drain(ix);
    char h[65];
    expect(db, R "/pool/main/p/p39999/p39999_1_all.deb", 40000, gen_sha(39999, 1, h), NULL);
    /* free with jobs still queued: they are dropped without leaks */
    for (int i = 0; i < 10; i++)
        indexer_submit(ix, BW "/main/binary-amd64/Packages.xz", INDEX_NONE, big, NULL);
    indexer_free(ix);
    hashdb_free(db);
    free(text);
    free(xz);
    unlink(big);
    unlink(small);
}

/* The indexer checkpoints the WAL after each parse: it does not stay the size of the
 * biggest transaction. */
static void test_indexer_wal(void)
{
    struct indexer *ix = NULL;
    struct stat st;
    char wal[300];
    const char *dbp = tmp_path("wal.sqlite");
    size_t len, n;
    char *text = gen_packages(40000, 3, &len);
    unsigned char *xz = xz_bytes(text, len, &n, 0);
    const char *big = write_file("wal.xz", xz, n);
    snprintf(wal, sizeof wal, "%s-wal", dbp);
    CU_ASSERT_EQUAL_FATAL(indexer_new(&ix, dbp), 0);
    CU_ASSERT_EQUAL(indexer_submit(ix, BW "/main/binary-amd64/Packages.xz", INDEX_NONE, big, NULL), 0);
    indexer_drain(ix);
    CU_ASSERT_EQUAL(stat(wal, &st), 0);
    CU_ASSERT(st.st_size < 1024 * 1024);
    fprintf(stderr, " [WAL %lld bytes after a 40000-entry parse] ", (long long)st.st_size);
    indexer_free(ix);
    free(text);
    free(xz);
    unlink(big);
}

/* ---- a real archive built by apt-ftparchive ------------------------------------- */

static bool have_tools(void)
{
    return system("command -v dpkg-deb >/dev/null 2>&1 && command -v apt-ftparchive >/dev/null "
                  "2>&1 && command -v xz >/dev/null 2>&1") == 0;
}

static void sha256_file(const char *path, uint8_t out[32], uint64_t *size)
{
    unsigned char buf[65536];
    size_t k;
    unsigned len = 32;
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    *size = 0;
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    while (f && (k = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(c, buf, k);
        *size += k;
    }
    EVP_DigestFinal_ex(c, out, &len);
    EVP_MD_CTX_free(c);
    if (f)
        fclose(f);
}

static void expect_file(struct hashdb *db, const char *key, const char *path)
{
    struct hashdb_entry e;
    uint8_t h[32];
    uint64_t size;
    sha256_file(path, h, &size);
    CU_ASSERT_EQUAL_FATAL(hashdb_lookup(db, key, &e), 0);
    CU_ASSERT_EQUAL(e.size, size);
    CU_ASSERT(e.have_sha256 && memcmp(e.sha256, h, 32) == 0);
}

static void test_apt_ftparchive(void)
{
    static const char *const debs[] = {"pool/main/a/alpha/alpha_1.0_all.deb",
                                       "pool/main/b/beta/beta_2.1-1_all.deb",
                                       "pool/contrib/g/gamma/gamma_0.3_all.deb"};
    static const char build[] =
        "set -e; cd \"$ARCH_DIR\"; for p in alpha:1.0 beta:2.1-1 gamma:0.3; do n=${p%:*}; v=${p#*:};"
        " c=main; [ $n = gamma ] && c=contrib; d=build/$n; mkdir -p $d/DEBIAN $d/usr/share/$n "
        "pool/$c/$(echo $n | cut -c1)/$n;"
        " head -c 3000 /dev/urandom > $d/usr/share/$n/data;"
        " printf 'Package: %s\\nVersion: %s\\nArchitecture: all\\nMaintainer: T <t@example.org>\\n"
        "Description: test %s\\n' $n $v $n > $d/DEBIAN/control;"
        " dpkg-deb --root-owner-group -Zgzip -b $d pool/$c/$(echo $n | cut -c1)/$n/${n}_${v}_all.deb"
        " >/dev/null; done;"
        " t=pool/main/a/alpha/alpha_1.0.tar.gz; tar czf $t -C build alpha; s=$(stat -c %s $t);"
        " printf 'Format: 1.0\\nSource: alpha\\nBinary: alpha\\nArchitecture: all\\nVersion: 1.0\\n"
        "Files:\\n %s %s alpha_1.0.tar.gz\\nChecksums-Sha256:\\n %s %s alpha_1.0.tar.gz\\n'"
        " $(md5sum < $t | cut -d' ' -f1) $s $(sha256sum < $t | cut -d' ' -f1) $s"
        " > pool/main/a/alpha/alpha_1.0.dsc;"
        " for c in main contrib; do mkdir -p dists/test/$c/binary-all dists/test/$c/source;"
        " apt-ftparchive packages pool/$c > dists/test/$c/binary-all/Packages 2>/dev/null;"
        " xz -k dists/test/$c/binary-all/Packages; gzip -k dists/test/$c/binary-all/Packages;"
        " apt-ftparchive sources pool/$c 2>/dev/null | gzip > dists/test/$c/source/Sources.gz; done;"
        " apt-ftparchive -o APT::FTPArchive::Release::Suite=test"
        " -o APT::FTPArchive::Release::Acquire-By-Hash=yes release dists/test > Release.tmp;"
        " mv Release.tmp dists/test/Release";
    if (!have_tools()) {
        fprintf(stderr, "\n  skipped: dpkg-deb / apt-ftparchive / xz not installed\n");
        return;
    }
    char arch[128], p[300];
    snprintf(arch, sizeof(arch), "%s/archive", tmpdir);
    CU_ASSERT_EQUAL_FATAL(mkdir(arch, 0755), 0);
    CU_ASSERT_EQUAL_FATAL(setenv("ARCH_DIR", arch, 1), 0);
    CU_ASSERT_EQUAL_FATAL(system(build), 0);
    struct hashdb *db = mem_db();
    static const char *const idx[] = {"dists/test/Release",
                                      "dists/test/main/binary-all/Packages.xz",
                                      "dists/test/contrib/binary-all/Packages.gz",
                                      "dists/test/main/source/Sources.gz"};
    for (size_t i = 0; i < 4; i++) {
        char key[300];
        snprintf(key, sizeof(key), R "/%s", idx[i]);
        snprintf(p, sizeof(p), "%s/%s", arch, idx[i]);
        CU_ASSERT_EQUAL(index_parse_file(db, key, INDEX_NONE, p, NULL), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        char key[300];
        snprintf(key, sizeof(key), R "/%s", debs[i]);
        snprintf(p, sizeof(p), "%s/%s", arch, debs[i]);
        expect_file(db, key, p);
    }
    snprintf(p, sizeof(p), "%s/pool/main/a/alpha/alpha_1.0.dsc", arch);
    expect_file(db, R "/pool/main/a/alpha/alpha_1.0.dsc", p);
    snprintf(p, sizeof(p), "%s/pool/main/a/alpha/alpha_1.0.tar.gz", arch);
    expect_file(db, R "/pool/main/a/alpha/alpha_1.0.tar.gz", p);
    snprintf(p, sizeof(p), "%s/dists/test/main/binary-all/Packages.xz", arch);
    expect_file(db, R "/dists/test/main/binary-all/Packages.xz", p);
    hashdb_free(db);
    CU_ASSERT_EQUAL(system("rm -rf \"$ARCH_DIR\""), 0);
}

static void tmp_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/aptdht-index-XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
}

static void tmp_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
    static const struct unit_case cases[] = {
        {"parsers on samples (table)", test_text_cases},
        {"index kind from key", test_kind_of},
        {"Release update retracts", test_release_update},
        {"over-long line", test_overlong_line},
        {"plain, gzip, xz, by-hash sniffing", test_compressed},
        {"corrupt or truncated input rolls back", test_corrupt_rolls_back},
        {"decompression bombs refused", test_bomb},
        {"entries, CPU and tick bounds", test_bounds},
        {"index names (index_origin)", test_origin},
        {"a new version supersedes the old", test_superseded},
        {"indexer: the WAL is checkpointed", test_indexer_wal},
        {"indexer: queue, replace after submit, drain", test_indexer_basic},
        {"indexer: full queue, free with pending jobs", test_indexer_full},
        {"archive built by apt-ftparchive", test_apt_ftparchive},
        {NULL, NULL},
    };
    tmp_setup();
    int rc = unit_run("index", cases);
    tmp_cleanup();
    return rc;
}

/* bench_index.c - times the parse of a real-size Packages.xz (not a test: run by hand).
 *
 *   tests/unit/bench_index [STANZAS [XZ_PRESET]]     defaults: 60000 stanzas, preset 6
 *
 * Generates a synthetic Packages file shaped like Debian's (about 800 bytes per stanza,
 * with descriptions drawn from a large vocabulary so it compresses like the real thing),
 * compresses it with xz, then parses it with index_parse_file into a fresh on-disk hashdb
 * (WAL, as the daemon runs it) and prints the time and rates. Then it times the two
 * pieces of index work the daemon does on its event loop (doc/ARCHITECTURE.md): the
 * lookup of one key per request, and the parse of an InRelease of Debian's size. */
#include "aptdht-config.h"
#include <lzma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "apt-dht-proxy/index.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t word(char *out, size_t cap)
{
    static const char syl[][4] = {"ba", "ke", "lin", "mo", "ru", "sa", "ti", "xo", "ne",
                                  "po", "qu", "dev", "lib", "gr", "st", "al"};
    size_t n = 1 + next() % 4, used = 0;
    for (size_t i = 0; i < n && used + 4 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s", syl[next() % 16]);
    return used;
}

static size_t hex(char *out, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned)(next() & 0xff));
    return 2 * bytes;
}

static char **names; /* every 16th Filename, for the lookup timing */
static size_t n_names;

static size_t stanza(char *out, size_t cap, size_t i)
{
    char name[64], desc[700], h256[65], md5[33], dmd5[33];
    size_t dn = 0;
    word(name, sizeof(name));
    while (dn < 400) {
        dn += word(desc + dn, sizeof(desc) - dn);
        desc[dn++] = (next() % 12 == 0) ? '\n' : ' ';
        if (desc[dn - 1] == '\n')
            desc[dn++] = ' ';
    }
    desc[dn] = '\0';
    hex(h256, 32);
    hex(md5, 16);
    hex(dmd5, 16);
    if (i % 16 == 0 && names) {
        char fn[256];
        snprintf(fn, sizeof fn, "mirror.example/debian/pool/main/%c/%s/%s%zu_1.0-1_amd64.deb",
                 name[0], name, name, i);
        names[n_names++] = strdup(fn);
    }
    return (size_t)snprintf(out, cap,
                            "Package: %s%zu\nSource: %s\nVersion: %u.%u-%u\nInstalled-Size: %u\n"
                            "Maintainer: Team %s <team@example.org>\nArchitecture: amd64\n"
                            "Depends: libc6 (>= 2.34), lib%s%u (>= 1.%u)\n"
                            "Description: %s\n %s\nHomepage: https://example.org/%s\n"
                            "Description-md5: %s\nSection: libs\nPriority: optional\n"
                            "Filename: pool/main/%c/%s/%s%zu_1.0-1_amd64.deb\nSize: %u\n"
                            "MD5sum: %s\nSHA256: %s\n\n",
                            name, i, name, (unsigned)(next() % 20), (unsigned)(next() % 100),
                            (unsigned)(next() % 9 + 1), (unsigned)(next() % 100000), name, name,
                            (unsigned)(next() % 9), (unsigned)(next() % 30), name, desc, name,
                            dmd5, name[0], name, name, i, (unsigned)(next() % 50000000), md5,
                            h256);
}

/* Median-free but steady: the mean of one lookup over every remembered name, warm. */
static void time_lookups(struct hashdb *db)
{
    struct hashdb_entry e;
    size_t found = 0;
    double t0 = now();
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < n_names; i++)
            found += hashdb_lookup(db, names[i], &e) == 0;
    double t = now() - t0;
    printf("lookup: %zu of %zu found, %.1f us per lookup\n", found / 4, n_names,
           t / (4.0 * (double)n_names) * 1e6);
}

/* An InRelease shaped like a Debian suite's: n index files under MD5Sum and SHA256. */
static int time_release(struct hashdb *db, const char *dir, size_t n)
{
    char path[160], h[65], line[256];
    snprintf(path, sizeof path, "%s/InRelease", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Jun 2023 "
               "08:53:33 UTC\nArchitectures: amd64 arm64 i386\nComponents: main contrib\n");
    for (int sec = 0; sec < 2; sec++) {
        fprintf(f, "%s:\n", sec ? "SHA256" : "MD5Sum");
        for (size_t i = 0; i < n; i++) {
            hex(h, sec ? 32 : 16);
            snprintf(line, sizeof line, " %s %8u main/binary-a%zu/Packages.xz\n", h,
                     (unsigned)(next() % 9000000), i);
            fputs(line, f);
        }
    }
    if (fclose(f) != 0)
        return -1;
    struct index_stats st;
    double t0 = now();
    int rc = index_parse_file(db, "mirror.example/debian/dists/bookworm/InRelease", INDEX_RELEASE,
                              path, &st);
    double t = now() - t0;
    printf("InRelease: %zu entries, %zu records in %.1f ms (rc %d)\n", n, st.records, t * 1e3, rc);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 60000;
    uint32_t preset = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 6;
    size_t cap = n * 1400 + 1, len = 0;
    char *text = malloc(cap), dir[] = "/tmp/aptdht-bench-XXXXXX", path[128], dbp[128];
    if (!text || !mkdtemp(dir) || !(names = calloc(n / 16 + 1, sizeof *names)))
        return 2;
    for (size_t i = 0; i < n; i++)
        len += stanza(text + len, cap - len, i);
    size_t xcap = lzma_stream_buffer_bound(len), xlen = 0;
    uint8_t *xz = malloc(xcap);
    double t0 = now();
    if (!xz || lzma_easy_buffer_encode(preset, LZMA_CHECK_CRC64, NULL, (uint8_t *)text, len, xz,
                                       &xlen, xcap) != LZMA_OK)
        return 2;
    double tc = now() - t0;
    snprintf(path, sizeof(path), "%s/Packages.xz", dir);
    snprintf(dbp, sizeof(dbp), "%s/hashes.sqlite", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(xz, 1, xlen, f) != xlen || fclose(f) != 0)
        return 2;
    struct hashdb *db = NULL;
    struct index_stats st;
    if (hashdb_open(&db, dbp) < 0)
        return 2;
    t0 = now();
    int rc = index_parse_file(db, "mirror.example/debian/dists/bookworm/main/binary-amd64/Packages.xz",
                              INDEX_NONE, path, &st);
    double tp = now() - t0;
    printf("stanzas %zu, Packages %.1f MB, Packages.xz %.1f MB (xz -%u in %.1f s)\n", n, len / 1e6,
           xlen / 1e6, preset, tc);
    printf("parse rc %d: %zu records, %zu skipped in %.2f s = %.0f records/s, %.1f MB/s "
           "decompressed\n",
           rc, st.records, st.skipped, tp, st.records / tp, len / 1e6 / tp);
    time_lookups(db);
    if (time_release(db, dir, 1900) != 0)
        rc = 1;
    hashdb_free(db);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    free(text);
    free(xz);
    return (system(cmd) != 0 || rc != 0) ? 1 : 0;
}

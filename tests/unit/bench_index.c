/* bench_index.c - times the parse of a real-size Packages.xz (not a test: run by hand).
 *
 *   tests/unit/bench_index [STANZAS [XZ_PRESET]]     defaults: 60000 stanzas, preset 6
 *
 * Generates a synthetic Packages file shaped like Debian's (about 800 bytes per stanza,
 * with descriptions drawn from a large vocabulary so it compresses like the real thing),
 * compresses it with xz, then parses it with index_parse_file into a fresh on-disk hashdb
 * through the writer's connection (WAL, checkpointed after the parse, as the indexer runs
 * it) and prints the time, the rates and the database's size. Then a next version with
 * 1% of its stanzas changed (what an update costs), an index that repeats one hash a
 * million times (rejected: it would cost a row per entry), and the two pieces of index
 * work the daemon does on its event loop (doc/ARCHITECTURE.md): the lookup of one key per
 * request, and the parse of an InRelease, of Debian's size and of the loop's bound. */
#include "aptdht-config.h"
#include <lzma.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static size_t stanza(char *out, size_t cap, size_t i, unsigned version)
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
                            "Filename: pool/main/%c/%s/%s%zu_1.0-%u_amd64.deb\nSize: %u\n"
                            "MD5sum: %s\nSHA256: %s\n\n",
                            name, i, name, (unsigned)(next() % 20), (unsigned)(next() % 100),
                            (unsigned)(next() % 9 + 1), (unsigned)(next() % 100000), name, name,
                            (unsigned)(next() % 9), (unsigned)(next() % 30), name, desc, name,
                            dmd5, name[0], name, name, i, version, (unsigned)(next() % 50000000),
                            md5, h256);
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

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void print_sizes(const char *dbp, const char *when)
{
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", dbp);
    printf("  database %.1f MB, WAL %.1f MB %s\n", file_size(dbp) / 1e6, file_size(wal) / 1e6, when);
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    return f && fwrite(data, 1, n, f) == n && fclose(f) == 0 ? 0 : -1;
}

/* Parses path as key through the writer's connection, checkpoints as the indexer does. */
static int timed_parse(struct hashdb *w, const char *dbp, const char *key, const char *path,
                       const char *what)
{
    struct index_stats st;
    double t0 = now();
    int rc = index_parse_file(w, key, INDEX_NONE, path, &st);
    double tp = now() - t0;
    printf("%s: rc %d, %zu entries, %zu rows changed, %zu skipped in %.2f s\n", what, rc,
           st.records, st.changed, st.skipped, tp);
    print_sizes(dbp, "before the checkpoint");
    t0 = now();
    int c = hashdb_checkpoint(w);
    printf("  checkpoint rc %d in %.0f ms;", c, (now() - t0) * 1e3);
    print_sizes(dbp, "after");
    return rc;
}

static uint8_t *xz_of(const char *text, size_t len, uint32_t preset, size_t *xlen)
{
    size_t xcap = lzma_stream_buffer_bound(len);
    uint8_t *xz = malloc(xcap);
    *xlen = 0;
    if (xz && lzma_easy_buffer_encode(preset, LZMA_CHECK_CRC64, NULL, (const uint8_t *)text, len,
                                      xz, xlen, xcap) == LZMA_OK)
        return xz;
    free(xz);
    return NULL;
}

/* A million stanzas listing one hash: about 1 MB of xz that would inflate to 100 MB and
 * as many database rows (a hostile test grew a database by 123 MB this way). */
static void time_flat(struct hashdb *w, const char *dbp, const char *dir)
{
    size_t n = 1000000, cap = n * 140, len = 0, xlen;
    char *text = malloc(cap), path[160];
    for (size_t i = 0; text && i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "Filename: pool/main/p/p%zu_1_all.deb\nSize: %zu\nSHA256: "
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                                "\n\n", i, 1000 + i);
    uint8_t *xz = text ? xz_of(text, len, 6, &xlen) : NULL;
    snprintf(path, sizeof path, "%s/flat.xz", dir);
    if (xz && write_file(path, xz, xlen) == 0) {
        printf("flat index: %zu stanzas, %.1f MB, xz %.0f KB\n", n, len / 1e6, xlen / 1e3);
        timed_parse(w, dbp, "mirror.example/debian/dists/bookworm/main/binary-i386/Packages.xz",
                    path, "  parse");
    }
    free(text);
    free(xz);
}

/* An InRelease shaped like a Debian suite's: n index files under MD5Sum and SHA256. */
static int time_release(struct hashdb *db, const char *dir, size_t n)
{
    char path[160], h[65], line[256];
    snprintf(path, sizeof path, "%s/InRelease", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "Origin: Debian\nSuite: stable\nCodename: bookworm\nAcquire-By-Hash: yes\nDate: Sat, 10 Jun 2023 "
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
    printf("InRelease: %zu entries, %.0f KiB, %zu records in %.1f ms on the loop's connection "
           "(rc %d)\n", n, file_size(path) / 1024.0, st.records, t * 1e3, rc);
    return rc;
}

/* n stanzas; stanza i is of version 2 when i % 100 == changed_mod, else 1. */
static char *gen_text(size_t n, size_t *len, size_t changed_mod)
{
    size_t cap = n * 1400 + 1;
    char *text = malloc(cap);
    *len = 0;
    rng = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; text && i < n; i++)
        *len += stanza(text + *len, cap - *len, i, i % 100 == changed_mod ? 2 : 1);
    return text;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 60000, len, len2, xlen, xlen2;
    uint32_t preset = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 6;
    char dir[] = "/tmp/aptdht-bench-XXXXXX", path[128], path2[128], dbp[128];
    const char *key = "mirror.example/debian/dists/bookworm/main/binary-amd64/Packages.xz";
    if (!mkdtemp(dir) || !(names = calloc(n / 16 + 1, sizeof *names)))
        return 2;
    char *text = gen_text(n, &len, 100);
    double t0 = now();
    uint8_t *xz = text ? xz_of(text, len, preset, &xlen) : NULL;
    double tc = now() - t0;
    char **keep = names;
    names = NULL; /* the second version's names are not timed */
    char *text2 = gen_text(n, &len2, 1); /* never a timed name: i % 16 == 0 */
    uint8_t *xz2 = text2 ? xz_of(text2, len2, preset, &xlen2) : NULL;
    names = keep;
    snprintf(path, sizeof(path), "%s/Packages.xz", dir);
    snprintf(path2, sizeof(path2), "%s/Packages.xz.2", dir);
    snprintf(dbp, sizeof(dbp), "%s/hashes.sqlite", dir);
    if (!xz || !xz2 || write_file(path, xz, xlen) < 0 || write_file(path2, xz2, xlen2) < 0)
        return 2;
    struct hashdb *w = NULL, *db = NULL;
    if (hashdb_open_writer(&w, dbp) < 0 || hashdb_open(&db, dbp) < 0)
        return 2;
    printf("stanzas %zu, Packages %.1f MB, Packages.xz %.1f MB (xz -%u in %.1f s)\n", n, len / 1e6,
           xlen / 1e6, preset, tc);
    t0 = now();
    int rc = timed_parse(w, dbp, key, path, "first parse");
    printf("  %.0f records/s, %.1f MB/s decompressed\n", n / (now() - t0), len / 1e6 / (now() - t0));
    if (timed_parse(w, dbp, key, path2, "next version, 1% of stanzas changed") != 0)
        rc = 1;
    time_flat(w, dbp, dir);
    time_lookups(db);
    if (time_release(db, dir, 600) != 0 || time_release(db, dir, 1900) != 0 ||
        time_release(db, dir, 2900) != 0)
        rc = 1;
    hashdb_free(db);
    hashdb_free(w);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    free(text);
    free(text2);
    free(xz);
    free(xz2);
    return (system(cmd) != 0 || rc != 0) ? 1 : 0;
}

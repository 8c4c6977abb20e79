/* fuzz_index.c - libFuzzer target for the index parsers. The first input byte picks the
 * kind (Release, Packages, Sources) and the key it is parsed under, the rest is the file:
 * parsed from memory (already decompressed) for the first kinds, and through a file
 * descriptor for the compressed ones (gzip, xz, sniffed by-hash), which runs the
 * decompressors and the bounds on output and entries. One in-memory hashdb lives for the
 * whole run; every parse must return a documented code and leave the database usable. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "apt-dht-proxy/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BW "mirror.example/debian/dists/bookworm"

static const struct {
    enum index_kind kind;
    const char *key;
    int from_fd;
} kinds[] = {
    {INDEX_RELEASE, BW "/InRelease", 0},
    {INDEX_PACKAGES, BW "/main/binary-amd64/Packages", 0},
    {INDEX_SOURCES, BW "/main/source/Sources", 0},
    {INDEX_RELEASE, BW "/Release", 0},
    {INDEX_PACKAGES, BW "/main/binary-amd64/Packages.gz", 1},
    {INDEX_SOURCES, BW "/main/source/Sources.xz", 1},
    {INDEX_PACKAGES, BW "/main/binary-amd64/by-hash/SHA256/"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 1},
};

/* What a parse through a descriptor may answer besides 0 and -EBADMSG: corrupt or
 * truncated compression, a compressor not read, and the bounds. */
static int fd_code_ok(int rc)
{
    return rc == -EIO || rc == -ENOTSUP || rc == -EFBIG || rc == -EOVERFLOW;
}

static int parse_fd(struct hashdb *db, size_t k, const uint8_t *data, size_t size,
                    struct index_stats *st)
{
    int fd = memfd_create("fuzz_index", MFD_CLOEXEC);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    int rc = index_parse(db, kinds[k].key, kinds[k].kind, fd, NULL, st);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hashdb *db;
    struct index_stats st;
    if (!db && hashdb_open(&db, ":memory:") < 0)
        abort();
    if (size == 0)
        return 0;
    size_t k = data[0] % (sizeof(kinds) / sizeof(kinds[0]));
    int rc = kinds[k].from_fd ? parse_fd(db, k, data + 1, size - 1, &st)
                              : index_parse_buffer(db, kinds[k].key, kinds[k].kind,
                                                   (const char *)data + 1, size - 1, &st);
    if (rc != 0 && rc != -EBADMSG && !(kinds[k].from_fd && fd_code_ok(rc)))
        abort(); /* nothing else is possible with a valid key */
    if (rc < 0 && (st.records != 0 || st.changed != 0))
        abort();
    return 0;
}

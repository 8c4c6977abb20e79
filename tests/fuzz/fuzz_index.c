/* fuzz_index.c - libFuzzer target for the index parsers. The first input byte picks the
 * kind (Release, Packages, Sources) and the key it is parsed under, the rest is the
 * (already decompressed) file. One in-memory hashdb lives for the whole run; every
 * parse must return a documented code and leave the database usable. */
#include "aptdht-config.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include "apt-dht-proxy/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hashdb *db;
    static const struct {
        enum index_kind kind;
        const char *key;
    } kinds[] = {
        {INDEX_RELEASE, "mirror.example/debian/dists/bookworm/InRelease"},
        {INDEX_PACKAGES, "mirror.example/debian/dists/bookworm/main/binary-amd64/Packages"},
        {INDEX_SOURCES, "mirror.example/debian/dists/bookworm/main/source/Sources"},
        {INDEX_RELEASE, "mirror.example/debian/dists/bookworm/Release"},
    };
    struct index_stats st;
    if (!db && hashdb_open(&db, ":memory:") < 0)
        abort();
    if (size == 0)
        return 0;
    size_t k = data[0] % (sizeof(kinds) / sizeof(kinds[0]));
    int rc = index_parse_buffer(db, kinds[k].key, kinds[k].kind, (const char *)data + 1,
                                size - 1, &st);
    if (rc != 0 && rc != -EBADMSG)
        abort(); /* nothing else is possible for a buffer with a valid key */
    if (rc < 0 && st.records != 0)
        abort();
    return 0;
}

/* fuzz_config.c - libFuzzer target of the config loader: any bytes loaded over the defaults
 * must give 0 or a negative errno with a one-line message, never a crash or a leak; the
 * same bytes, as text, go through cidr_parse and config_parse_size. */
#include "aptdht-config.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/cidr.h"
#include "apt-dht-proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    char err[256];
    if (config_init_defaults(&cfg) < 0)
        return 0;
    int rc = config_load_buffer(&cfg, "fuzz", (const char *)data, size, err, sizeof(err));
    if (rc > 0 || (rc < 0 && (err[0] == '\0' || strchr(err, '\n'))))
        abort();
    /* A successful load must survive a second load of the same bytes over itself. */
    if (rc == 0 &&
        config_load_buffer(&cfg, "fuzz", (const char *)data, size, err, sizeof(err)) != 0)
        abort();
    config_done(&cfg);

    char text[128];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    struct cidr c;
    uint64_t v;
    if (cidr_parse(text, &c) == 0 && c.prefix > (c.family == AF_INET ? 32 : 128))
        abort();
    (void)config_parse_size(text, &v);
    return 0;
}

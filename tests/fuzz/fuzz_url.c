/* fuzz_url.c - libFuzzer target for the request-target parser: any input either is
 * refused or yields a path that is safe under the cache dir and re-encodes canonically
 * (decoding the re-encoded path gives the same path back). */
#include "aptdht-config.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "apt-dht-proxy/url.h"

static void check_safe(const char *path)
{
    if (path[0] != '/' || strstr(path, "//") || strstr(path, "/.") || strchr(path, '\\') ||
        strchr(path, '%'))
        abort();
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char raw[URL_MAX_TARGET + 64];
    struct url_target t, again;
    if (size >= sizeof raw)
        size = sizeof raw - 1;
    memcpy(raw, data, size);
    raw[size] = '\0';
    if (url_parse(raw, &t) != 0 || t.form == URL_PEER)
        return 0;
    check_safe(t.path);
    url_is_archive_path(t.path);
    url_classify(t.path);
    char enc[URL_MAX_PATH * 3 + URL_MAX_HOST + 8];
    /* the rewrite spelling of the same host and path: "/HOST/PATH", except for an https
     * host with an explicit :80, which that spelling would read as http and drop the
     * port: acng's "/HTTPS///HOST:80/PATH" then. (The scheme itself may differ:
     * http://HOST:443/ in proxy form and /HOST:443/ name one host and port, one cache
     * key, fetched over http and https.) */
    size_t hl = strlen(t.host);
    bool https80 = t.https && hl > 3 && strcmp(t.host + hl - 3, ":80") == 0;
    int n = snprintf(enc, sizeof enc, https80 ? "/HTTPS///%s" : "/%s", t.host);
    if (n < 0 || (size_t)n >= sizeof enc)
        return 0;
    if (url_encode_path(t.path, enc + n, sizeof enc - (size_t)n) < 0)
        return 0;
    if (strlen(enc) > URL_MAX_TARGET)
        return 0;
    /* the upstream spelling parses back to the very same host and path */
    if (url_parse(enc, &again) != 0 || strcmp(again.path, t.path) != 0 ||
        strcmp(again.host, t.host) != 0)
        abort();
    return 0;
}

/* test_version.c - the daemon and the DHT library report the configured version. */
#include "aptdht-config.h"
#include <string.h>
#include "tests/unit/unit.h"
#include "apt-dht-proxy/version.h"
#include "dht/dht.h"

static void test_versions(void)
{
    CU_ASSERT_STRING_EQUAL(aptdht_version(), PACKAGE_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strchr(dht_version(), '.'));
}

int main(void)
{
    static const struct unit_case cases[] = {{"versions", test_versions}, {NULL, NULL}};
    return unit_run("version", cases);
}

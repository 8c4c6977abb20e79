/* version.c - the daemon's version string, from configure. */
#include <config.h>
#include "apt-dht-proxy/version.h"

const char *aptdht_version(void)
{
    return PACKAGE_VERSION;
}

/* version.c - the library's version, so the seam links before the library grows. */
#include "dht/dht.h"

const char *dht_version(void)
{
    return "0.1.0";
}

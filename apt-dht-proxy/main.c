/* main.c - wires the daemon's modules together. */
#include <config.h>
#include <stdio.h>
#include <string.h>
#include "apt-dht-proxy/version.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("apt-dht-proxy %s\n", aptdht_version());
        return 0;
    }
    fprintf(stderr, "apt-dht-proxy: not yet runnable\n");
    return 1;
}

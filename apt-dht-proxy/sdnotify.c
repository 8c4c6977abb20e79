/* sdnotify.c - sd_notify(3)'s wire protocol: a datagram on an AF_UNIX socket whose path
 * is in $NOTIFY_SOCKET ('@' first: an abstract socket). */
#include "aptdht-config.h"
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "apt-dht-proxy/sdnotify.h"

int sdnotify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= sizeof sun.sun_path || (path[0] != '/' && path[0] != '@'))
        return -ENOENT;
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        r = -errno;
    close(fd);
    return r;
}

uint64_t sdnotify_watchdog_ms(void)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    if (!us)
        return 0;
    if (pid) {
        unsigned long p = strtoul(pid, &end, 10);
        if (*end || p != (unsigned long)getpid())
            return 0;
    }
    unsigned long long v = strtoull(us, &end, 10);
    return *end || v < 1000 ? 0 : v / 1000;
}

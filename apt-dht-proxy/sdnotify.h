/* sdnotify.h - the service manager's notification protocol (sd_notify(3)) without
 * libsystemd: one datagram to $NOTIFY_SOCKET. Used for readiness (READY=1) and for the
 * watchdog (WATCHDOG=1, every half of $WATCHDOG_USEC, sent by the status heartbeat). */
#ifndef APT_DHT_SDNOTIFY_H
#define APT_DHT_SDNOTIFY_H

#include <stdint.h>

/* Sends msg to $NOTIFY_SOCKET. 0, or -ENOENT when there is no such socket (not run by
 * a service manager), or another negative errno. */
int sdnotify_send(const char *msg);

/* The watchdog interval the service manager asks for, in ms ($WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or this process); 0 = none. */
uint64_t sdnotify_watchdog_ms(void);

#endif

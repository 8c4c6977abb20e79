/* version.h - the daemon's version string. */
#ifndef APT_DHT_VERSION_H
#define APT_DHT_VERSION_H
const char *aptdht_version(void);
#endif

/* dht.h - the apt-dht Kademlia DHT library: the one public header.
 * The library does no I/O and keeps no globals; see DESIGN.md "The DHT". */
#ifndef APT_DHT_DHT_H
#define APT_DHT_DHT_H

/* Version string of the library, "MAJOR.MINOR.PATCH". */
const char *dht_version(void);

#endif

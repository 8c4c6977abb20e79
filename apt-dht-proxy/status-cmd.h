/* status-cmd.h - the `status` subcommand of apt-dht-proxy (see status-cmd.c and
 * apt-dht-proxy(8)): argv[0] is "status". Returns the process exit status. */
#ifndef APT_DHT_STATUS_CMD_H
#define APT_DHT_STATUS_CMD_H

int status_cmd_main(int argc, char **argv);

#endif

"""Loaded by the fixture mirror when bench/proxy/run.sh starts it (PYTHONPATH).

Sets TCP_NODELAY on every accepted connection, as the HTTP servers of real
mirrors do. Without it the mirror writes the response headers and the body in
two small segments, Nagle's algorithm holds the second one until the first is
acknowledged, and a client that reuses its connection (delayed ACK) waits
about 40 ms per small file: a property of the test mirror, not of a proxy.
"""
import socket
import socketserver

_setup = socketserver.StreamRequestHandler.setup


def _setup_nodelay(self):
    _setup(self)
    try:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


socketserver.StreamRequestHandler.setup = _setup_nodelay

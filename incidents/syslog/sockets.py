"""Sockets of the syslog listeners: binding one, naming a sender."""

import contextlib
import errno
import ipaddress
import socket


def bound_socket(host, port, kind):
    """A socket of `kind` (SOCK_STREAM, SOCK_DGRAM) bound to `host`:`port`. On an IPv6
    address it takes IPv4 too (`::` is every address of both families), which asyncio's
    own servers refuse to do. TCP sockets reuse an address left in TIME_WAIT (a quick
    restart); UDP ones do not, as on UDP that would let a second process share the port."""
    family, sock_type, proto, _name, address = socket.getaddrinfo(
        host or None, port, type=kind, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, sock_type, proto)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_address(host):
    """A sender's address as text; an IPv4 address seen on a dual-stack socket
    (`::ffff:192.0.2.1`) as the IPv4 address it is."""
    if ":" in host:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host.split("%", 1)[0])
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
    return host


def is_address_in_use(exc):
    """True for the OSError of a port another process holds."""
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE

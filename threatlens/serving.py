"""The host names the embedded default answers to.

With DEBUG off, Django answers only the `Host` headers in ALLOWED_HOSTS. The embedded
default (no ALLOWED_HOSTS set) answers on loopback, and on the address `make run` was
told to listen on (`HOST`, passed on as `SERVE_HOST`), so `HOST=0.0.0.0 make run` is
reachable from the network by this machine's names and addresses.
"""

import contextlib
import ipaddress
import socket

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
WILDCARD_ADDRESSES = {"", "0.0.0.0", "::", "[::]"}


def embedded_allowed_hosts(serve_host):
    """Loopback names plus those by which a server listening on `serve_host` is reached."""
    hosts = list(LOOPBACK_HOSTS)
    serve_host = (serve_host or "").strip()
    if serve_host in WILDCARD_ADDRESSES:
        names = _this_machine() if serve_host else []
    else:
        names = [serve_host]
    for name in names:
        host = _as_host_header(name)
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def _as_host_header(name):
    """An IPv6 address is written in brackets in a Host header (and in ALLOWED_HOSTS)."""
    name = name.strip().strip("[]")
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return name.lower()
    return f"[{address}]" if address.version == 6 else str(address)


def _this_machine():
    """This machine's names and addresses, as far as it knows them without a network
    round trip (the resolver for its own name, and the route to the outside)."""
    names = [socket.gethostname(), socket.getfqdn()]
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            names.append(info[4][0])
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        # connect() on a UDP socket sends nothing: it only picks the source address the
        # kernel would use, i.e. the address of the interface that faces the network.
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            names.append(sock.getsockname()[0])
    return names

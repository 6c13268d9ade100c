"""Where a socket or request comes from: the client address, X-Forwarded-For included.

Behind a reverse proxy (`USE_X_FORWARDED_FOR=true`), the client address is the one the
trusted proxies put into X-Forwarded-For: each proxy appends the address it received the
request from, so with `NUM_PROXIES` proxies in front of the server the client is the
`NUM_PROXIES`-th entry from the right (Django REST framework's rule). Entries further left
come from the client and are never trusted: a client that sends its own X-Forwarded-For
would otherwise choose the address the login throttle counts and the audit log records.

It lives here, not in an app, so that `realtime` needs no project app; requests use the
same rule through `threatlens.clientinfo`.
"""

import ipaddress

from django.conf import settings


def forwarded_client(forwarded, peer):
    """The client address given the X-Forwarded-For value (all headers joined by commas)
    and the address of the peer that connected (the nearest proxy)."""
    proxies = settings.NUM_PROXIES
    if not forwarded or proxies == 0:
        return peer
    entries = [entry.strip() for entry in forwarded.split(",")]
    # Fewer entries than proxies: the left-most is the best there is (as in DRF).
    candidate = entries[-min(proxies, len(entries))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        # A proxy that adds something other than an address (or a header that is not a
        # proxy's at all): keep the connection's own address.
        return peer


def scope_address(scope):
    """The client address of an ASGI connection scope."""
    client = scope.get("client")
    peer = client[0] if client else None
    if settings.USE_X_FORWARDED_FOR:
        # Repeated headers count as one list, in order (RFC 9110 5.3), as Django joins them.
        values = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        return forwarded_client(",".join(values), peer)
    return peer


def scope_user_agent(scope):
    """The User-Agent header of an ASGI connection scope ("" without one)."""
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            return value.decode("latin-1")[:300]
    return ""

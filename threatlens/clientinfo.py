"""Where a request or socket comes from: client address and user agent.

Behind a reverse proxy (`USE_X_FORWARDED_FOR=true`), the client address is the one the
trusted proxies put into X-Forwarded-For: each proxy appends the address it received the
request from, so with `NUM_PROXIES` proxies in front of the server the client is the
`NUM_PROXIES`-th entry from the right (Django REST framework's rule). Entries further left
come from the client and are never trusted: a client that sends its own X-Forwarded-For
would otherwise choose the address the login throttle counts and the audit log records.
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


def request_address(request):
    """The client address of an HTTP request (X-Forwarded-For only when configured)."""
    peer = request.META.get("REMOTE_ADDR") or None
    if settings.USE_X_FORWARDED_FOR:
        return forwarded_client(request.META.get("HTTP_X_FORWARDED_FOR", ""), peer)
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


def request_user_agent(request):
    return request.META.get("HTTP_USER_AGENT", "")[:300]

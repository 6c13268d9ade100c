"""Where a request comes from: client address and user agent.

The X-Forwarded-For rule (which entry a chain of `NUM_PROXIES` trusted proxies makes the
client's) is `realtime.client_address`'s, shared by sockets and requests.
"""

from django.conf import settings

from realtime.client_address import forwarded_client, scope_address

__all__ = ["forwarded_client", "request_address", "request_user_agent", "scope_address"]


def request_address(request):
    """The client address of an HTTP request (X-Forwarded-For only when configured)."""
    peer = request.META.get("REMOTE_ADDR") or None
    if settings.USE_X_FORWARDED_FOR:
        return forwarded_client(request.META.get("HTTP_X_FORWARDED_FOR", ""), peer)
    return peer


def request_user_agent(request):
    return request.META.get("HTTP_USER_AGENT", "")[:300]

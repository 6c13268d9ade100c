"""Where a request or socket comes from: client address and user agent."""

from django.conf import settings


def request_address(request):
    """The client address of an HTTP request (X-Forwarded-For only when configured)."""
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def scope_address(scope):
    """The client address of an ASGI connection scope."""
    if settings.USE_X_FORWARDED_FOR:
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[0].strip() or None
    client = scope.get("client")
    return client[0] if client else None


def request_user_agent(request):
    return request.META.get("HTTP_USER_AGENT", "")[:300]

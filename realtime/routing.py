"""WebSocket routes (DESIGN.md "Routes")."""

from channels.routing import URLRouter


def websocket_application():
    return URLRouter([])

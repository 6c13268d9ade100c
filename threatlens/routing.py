"""Every WebSocket route of the server, behind the session (for the browser UI)."""

from channels.routing import URLRouter
from channels.sessions import SessionMiddlewareStack

from realtime.routing import websocket_urlpatterns as hub_routes


def websocket_application():
    return SessionMiddlewareStack(URLRouter([*hub_routes]))

"""Every WebSocket route of the server, behind the session (for the browser UI).

`/ws/incidents` comes first: `incidents` is never a hub client_id."""

from channels.routing import URLRouter
from channels.sessions import SessionMiddlewareStack

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes


def websocket_application():
    return SessionMiddlewareStack(URLRouter([*incident_routes, *hub_routes]))

"""Every WebSocket route of the server.

`/ws/incidents` comes first: `incidents` is never a hub client_id. No session or cookie
middleware: the few sockets that log in with the session cookie (the browser UI) read it
themselves (`realtime.auth.session_user`), so the thousands that come with a token carry
no session objects, and event frames go straight to the server's `send`."""

from channels.routing import URLRouter

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes


def websocket_application():
    return URLRouter([*incident_routes, *hub_routes])

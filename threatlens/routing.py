"""Every WebSocket route of the server, behind the session (for the browser UI).

`/ws/incidents` comes first: `incidents` is never a hub client_id."""

from channels.routing import URLRouter
from channels.sessions import SessionMiddlewareStack

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes


def websocket_application():
    stack = SessionMiddlewareStack(URLRouter([*incident_routes, *hub_routes]))

    async def application(scope, receive, send):
        # Channels' session wrapper looks at the session on every frame a consumer sends,
        # though it only acts on HTTP responses; event frames go out through the server's
        # own `send`, kept here (see realtime.consumers.SocketConsumer.establish).
        return await stack({**scope, "realtime.server_send": send}, receive, send)

    return application

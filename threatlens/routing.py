"""Every WebSocket route of the server.

`/ws/incidents` comes first: `incidents` is never a hub client_id. No session or cookie
middleware: the few sockets that log in with the session cookie (the browser UI) read it
themselves (`realtime.auth.session_user`), so the thousands that come with a token carry
no session objects, and event frames go straight to the server's `send`."""

import logging

from asgiref.sync import markcoroutinefunction
from channels.routing import URLRouter
from django.urls import re_path

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes


class Router(URLRouter):
    """Channels' URLRouter that hands back the matched consumer's coroutine instead of
    awaiting it: no router frame for every open socket to hold.

    It routes what this project needs (the outermost router, no root path, consumers as
    routes) itself, with the scope Channels would build, and leaves everything else to
    Channels, errors included."""

    _asgi_single_callable = True

    @markcoroutinefunction
    def __call__(self, scope, receive, send):
        if "path_remaining" not in scope and not scope.get("root_path") and "path" in scope:
            path = scope["path"].lstrip("/")
            for route in self.routes:
                if getattr(route.callback, "_path_routing", False):
                    break  # a nested router: Channels' way (it may pass on to the next route)
                match = route.pattern.match(path)
                if match:
                    remaining, args, kwargs = match
                    kwargs.update(route.default_args)
                    scope = dict(
                        scope, path_remaining=remaining, url_route={"args": args, "kwargs": kwargs}
                    )
                    return route.callback(scope, receive, send)
        return super().__call__(scope, receive, send)


logger = logging.getLogger(__name__)


async def unknown_path(scope, receive, send):
    """A socket to a path no route serves: refused at the handshake (the server answers
    HTTP 403), one debug line, no traceback. Channels would raise, which servers log as an
    error with a traceback and answer HTTP 500."""
    message = await receive()
    if message["type"] == "websocket.connect":
        logger.debug("websocket refused: no route for %s", scope.get("path", "")[:200])
        await send({"type": "websocket.close", "code": 1008})


def websocket_application():
    return Router([*incident_routes, *hub_routes, re_path(r"", unknown_path)])

"""Every WebSocket route of the server.

`/ws/incidents` comes first: `incidents` is never a hub client_id. No session or cookie
middleware: the few sockets that log in with the session cookie (the browser UI) read it
themselves (`realtime.auth.session_user`), so the thousands that come with a token carry
no session objects, and event frames go straight to the server's `send`."""

import json
import logging

from asgiref.sync import markcoroutinefunction
from channels.routing import URLRouter
from django.urls import re_path

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes

logger = logging.getLogger(__name__)


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


async def refuse_unknown_path(scope, receive, send):
    """A socket to a path no route serves: refused before the handshake (HTTP 404 where
    the server can send one, else 403), no error and no traceback. Before, not after, the
    handshake: a client that resets its backoff when a socket opens would otherwise retry
    for ever. Only the path is logged: the query string may carry a token."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    logger.info("WebSocket to unknown path %s refused", scope.get("path", "")[:200])
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(
            {"error_code": "NOT_FOUND", "message": "No WebSocket endpoint at this path"}
        ).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008})


def websocket_application():
    return Router([*incident_routes, *hub_routes, re_path(r"", refuse_unknown_path)])

"""Every WebSocket route of the server.

`/ws/incidents` comes first: `incidents` is never a hub client_id. No session or cookie
middleware: the few sockets that log in with the session cookie (the browser UI) read it
themselves (`realtime.auth.session_user`), so the thousands that come with a token carry
no session objects, and event frames go straight to the server's `send`. The router is
Channels' URLRouter, or with the `channels_frames` fast path its leaner twin
(realtime/servers/channels.py)."""

import json
import logging

from django.urls import re_path

from incidents.routing import websocket_urlpatterns as incident_routes
from realtime.routing import websocket_urlpatterns as hub_routes
from realtime.servers.channels import url_router

logger = logging.getLogger(__name__)


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
    return url_router([*incident_routes, *hub_routes, re_path(r"", refuse_unknown_path)])

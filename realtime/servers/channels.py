"""Channels' routing and consumer entry points, one coroutine frame each shorter
(`channels_frames`).

Every open socket holds, for its whole life, the coroutine frames from the server down to
the consumer's loop: Channels' `ProtocolTypeRouter`, `URLRouter` and `as_asgi` application
each await the next, and `AsyncConsumer.__call__` waits on the socket through a task of
its own (`await_many_dispatch`). With this fast path on, the router and the `as_asgi`
application hand back the next coroutine instead of awaiting it, and the consumer reads
its socket itself (`FrameSavingConsumer.__call__`); `dispatch` also skips Channels'
`aclose_old_connections()`, a hop to the database thread per message, since every
database call here goes through `database_sync_to_async`, which closes stale connections
itself. Off, Channels' own classes and methods run unchanged.
"""

import functools

from asgiref.sync import markcoroutinefunction
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter

from realtime.servers import enabled


def frames_saved():
    return enabled("channels_frames")


def consumer_application(consumer_class, initkwargs):
    """Channels' `as_asgi` application, returning the consumer's coroutine instead of
    awaiting it."""

    def app(scope, receive, send):
        return consumer_class(**initkwargs)(scope, receive, send)

    markcoroutinefunction(app)  # an ASGI 3 application for asgiref and the servers
    app.consumer_class = consumer_class
    app.consumer_initkwargs = initkwargs
    functools.update_wrapper(app, consumer_class, updated=())
    return app


def url_router(routes):
    """The outermost WebSocket router: `Router` with this fast path, else Channels'."""
    return Router(routes) if frames_saved() else URLRouter(routes)


class Router(URLRouter):
    """Channels' URLRouter that hands back the matched consumer's coroutine instead of
    awaiting it.

    It routes what this project needs (the outermost router, no root path, consumers as
    routes) itself, with the scope Channels would build, and leaves everything else to
    Channels, errors included."""

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


class FrameSavingConsumer(AsyncWebsocketConsumer):
    """Channels' WebSocket consumer, its entry points (`as_asgi`, `__call__`, `dispatch`)
    one frame shorter with this fast path on, and an `ended()` hook that runs however
    the consumer stops."""

    @classmethod
    def as_asgi(cls, **initkwargs):
        if frames_saved():
            return consumer_application(cls, initkwargs)
        return super().as_asgi(**initkwargs)

    async def __call__(self, scope, receive, send):
        try:
            if not frames_saved():
                await super().__call__(scope, receive, send)
                return
            # Channels' AsyncConsumer.__call__ without the channel layer (the consumer
            # has none): it would wait on the socket through a task of its own.
            self.scope = scope
            self.channel_layer = None
            self.base_send = send
            try:
                while True:
                    await self.dispatch(await receive())
            except StopConsumer:
                pass
        finally:
            await self.ended()

    async def ended(self):
        """The consumer stopped: a disconnect, a send to a dropped client raising out of
        a handler, a cancelled task."""

    async def dispatch(self, message):
        if not frames_saved():
            await super().dispatch(message)
            return
        # Channels' dispatch, less its `aclose_old_connections()` before every message
        # (the module's docstring says why).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

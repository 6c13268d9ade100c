"""Getting a message to every server process's hub.

With a shared channel layer (Redis) a message goes once to a group that each process's
hub has joined. The in-memory layer reaches only this process, and its queues belong to
the event loop that made them, so a publisher in a worker thread would touch them from
the wrong thread: here the message is handed straight to this process's hubs instead,
thread-safely. Events from other processes reach them through the event table.
"""

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import threading
import uuid

from channels.layers import InMemoryChannelLayer, get_channel_layer

from realtime import wakeup

logger = logging.getLogger(__name__)

# Names this process: in the events it stores, its heartbeat, its connection counts and
# its answers to `/ws/info`.
ORIGIN = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

_local_hubs = {}  # event loop -> hub, for every running hub of this process


def register_hub(loop, hub):
    _local_hubs[loop] = hub


def unregister_hub(loop):
    _local_hubs.pop(loop, None)


def shared_layer():
    """The channel layer if it reaches other processes, else None."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return None
    return layer


def send_to_hubs(group, message):
    """Deliver to every hub (sync code). A layer outage is logged, not raised: the event is
    stored, and hubs catch up from the event table when the layer is back.

    Inside `sends_held_until_done` (an HTTP request), the message waits for the end of
    the request's synchronous work instead."""
    held = _held_sends.get()
    if held is not None:
        held.append((group, message))
        return
    _send_now(group, message)


def wake_table_pollers():
    """After a commit of events: without a shared layer, a server that started this
    process polls its event table at once (`realtime.wakeup`; a no-op elsewhere)."""
    if shared_layer() is None:
        wakeup.notify_hubs()


def _send_now(group, message):
    layer = shared_layer()
    if layer is None:
        _dispatch_locally(message)
        return
    try:
        _sender.run(layer.group_send(group, message), SEND_TIMEOUT)
    except Exception as exc:
        _layer_unavailable(message, exc)


def _layer_unavailable(message, exc):
    logger.warning(
        "channel layer unavailable, %s will reach other processes by catch-up: %s",
        message.get("event_type", message.get("action")),
        exc,
    )
    _dispatch_locally(message)


SEND_TIMEOUT = 5  # seconds a sync publisher waits for the layer; the event is stored anyway

_held_sends = contextvars.ContextVar("threatlens_held_sends", default=None)


@contextlib.asynccontextmanager
async def sends_held_until_done():
    """Around the synchronous part of an HTTP request (threatlens.handlers): what it
    publishes goes to the hubs when that part is done, before the response.

    The fan-out of an event to this process's sockets runs on the event loop; the thread
    that published it would go on with the request (its response, the middleware) at the
    same time and take the interpreter lock from the fan-out at every socket write that
    releases it (daphne's do). Held, the sends go a millisecond or two later and the
    fan-out runs alone. A send that fails is logged; the event is stored either way."""
    held = []
    try:
        with sends_held(held):
            yield
    finally:
        await send_held(held)


@contextlib.contextmanager
def sends_held(held):
    """What is published inside (in this context, and in the threads `sync_to_async`
    runs it in) is appended to the list `held` instead of being sent; `send_held(held)`
    sends it later, from the event loop."""
    token = _held_sends.set(held)
    try:
        yield
    finally:
        _held_sends.reset(token)


async def send_held(held):
    """Send what `sends_held` kept, in order, from this loop."""
    if not held:
        return
    layer = shared_layer()
    if layer is None:
        for _group, message in held:
            _dispatch_locally(message)
    else:
        # From this loop, where the server's own hub uses the layer too: no thread in
        # between (the sender's loop is for sync code). Shielded: a request given up on
        # still sends what it stored.
        await asyncio.shield(asyncio.ensure_future(_send_all(layer, held)))


async def _send_all(layer, held):
    """The layer sends of one request, in order."""
    for group, message in held:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await layer.group_send(group, message)
        except Exception as exc:
            _layer_unavailable(message, exc)


class _SenderLoop:
    """An event loop in a thread of its own, for the layer sends of sync code.

    `async_to_sync` would make a loop per call outside the server (~5 ms a publish from a
    command), and inside it hands the send to the server's loop: a publish then waits
    behind the fan-out, and one made while the server stops waits for a loop that no
    longer runs, which keeps the process from exiting. This loop lives as long as the
    process (a daemon thread), keeps the layer's connections between sends, and a send
    that takes too long is abandoned.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._loop = None
        self._pid = None

    def run(self, coroutine, timeout):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _running_loop(self):
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # none yet, or forked
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                threading.Thread(
                    target=self._loop.run_forever, name="layer-sender", daemon=True
                ).start()
            return self._loop


_sender = _SenderLoop()


def _dispatch_locally(message):
    for loop, hub in list(_local_hubs.items()):
        if not loop.is_closed():
            # A fresh context: the caller's (a sync_to_async worker) would make tasks the hub
            # starts believe they run inside that worker, and asgiref refuses them.
            loop.call_soon_threadsafe(hub.dispatch, message, context=contextvars.Context())


def layer_message(event, data_json=None):
    """The hub message for a stored event (also used for catch-up from the table)."""
    from realtime import envelopes

    return {
        "type": "hub.event",
        "id": event.pk,
        "event_type": event.event_type,
        "priority": event.priority,
        "timestamp": envelopes.iso(event.created_at),
        "published_at": event.created_at.timestamp(),
        "data": data_json if data_json is not None else envelopes.encode(event.data),
        "users": event.recipient_users,
        "groups": event.recipient_groups,
        "category": event.category,
        "source": event.source,
    }

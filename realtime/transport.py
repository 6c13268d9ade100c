"""Getting a message to every server process's hub.

With a shared channel layer (Redis) a message goes once to a group that each process's
hub has joined. The in-memory layer reaches only this process, and its queues belong to
the event loop that made them, so a publisher in a worker thread would touch them from
the wrong thread: here the message is handed straight to this process's hubs instead,
thread-safely. Events from other processes reach them through the event table.
"""

import contextvars
import logging
import os
import socket
import uuid

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

# Names this process in stored events, so a hub can tell its own events from others'.
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
    stored, and hubs catch up from the event table when the layer is back."""
    layer = shared_layer()
    if layer is None:
        _dispatch_locally(message)
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:
        logger.warning(
            "channel layer unavailable, %s will reach other processes by catch-up: %s",
            message.get("event_type", message.get("action")),
            exc,
        )
        _dispatch_locally(message)


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
        "object_key": event.object_key,
        "origin": event.origin,
    }

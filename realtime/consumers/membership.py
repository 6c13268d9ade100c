"""A socket as the hub sees it (`realtime.members.HubMember`)."""

import asyncio
import contextlib
import logging
import secrets

from channels.db import database_sync_to_async
from django.conf import settings

from realtime import access, catalogue, control, envelopes
from realtime.catalogue import VIEW_CONNECTIONS
from realtime.connection import Connection
from realtime.consumers.authentication import current_principal
from realtime.consumers.protocol import (
    CLOSE_POLICY,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
)
from realtime.hub import get_hub
from realtime.publishing import Recipients, publish

logger = logging.getLogger(__name__)


class SocketMembership:
    """An established socket as the hub's member (`HubMember`): it joins the hub with
    the socket's `Connection`, holds its token's expiry and its session, which the hub's
    sweeps read, answers the hub's notices and its connection's overflow, and changes
    the socket's access when the user's does. It ends the socket through the consumer's
    `refuse`, `detach`, `leave` and `close`."""

    __slots__ = ("consumer", "token_expires_at", "session_key", "session_hash", "rechecking")

    def __init__(self, consumer, credentials):
        self.consumer = consumer
        # The hub looks for expired tokens once a second, for all sockets at once: no
        # timer per socket.
        self.token_expires_at = credentials.expires_at
        self.session_key = credentials.session_key
        self.session_hash = control.digest(self.session_key) if self.session_key else None
        self.rechecking = False

    @property
    def closing(self):
        return self.consumer.closing

    def join(self, hub, *, client_id, debug, flat):
        """The socket's connection, made and attached to the hub; it holds live events
        until `resume()` (after any replay)."""
        consumer = self.consumer
        principal = consumer.principal
        connection = Connection(
            send=consumer.base_send,
            connection_id=f"conn_{secrets.token_hex(8)}",  # 16 random hex digits, no UUID object
            client_id=client_id,
            principal=principal,
            capacity=settings.REALTIME["QUEUE_SIZE"],
            batch_window=settings.REALTIME["BATCH_WINDOW"],
            on_overflow=self.overflowed,
            debug=debug and principal.has_perm(VIEW_CONNECTIONS),
            flat=flat,
            socket=consumer.socket,
        )
        connection.owner = self
        connection.allowed = access.receivable_types(principal)
        connection.pause()
        hub.attach(connection)
        return connection

    def apply(self, principal):
        """The user's access changed: what the connection may receive follows."""
        consumer = self.consumer
        connection = consumer.connection
        if connection is None:
            return
        consumer.principal = principal
        connection.principal = principal
        connection.allowed = access.receivable_types(principal)
        get_hub().set_subscriptions(connection, connection.subscriptions)

    async def access_changed(self):
        consumer = self.consumer
        if consumer.closing or consumer.principal is None:
            return
        self.rechecking = True
        try:
            principal = await current_principal(consumer.principal.user_id)
            if principal is None:
                await consumer.refuse("AUTH_FAILED", "The account was deactivated", CLOSE_POLICY)
                return
            self.apply(principal)
        except Exception as exc:
            # The database is away: the next access check tries again.
            logger.warning("could not re-check %s's access: %s", consumer.principal.username, exc)
        finally:
            self.rechecking = False

    async def disconnected(self, reason):
        await self.consumer.refuse("PERMISSION_DENIED", reason or "Disconnected", CLOSE_POLICY)

    async def token_expired(self):
        consumer = self.consumer
        principal = consumer.principal
        if consumer.closing or principal is None:
            return
        # The payload is the accounts app's (declared with the type); realtime imports
        # no project app, so it builds it through the catalogue.
        data = catalogue.build(
            "session_expired", user_id=principal.user_id, username=principal.username
        )
        entry = catalogue.get("session_expired")
        flat = consumer.connection is not None and consumer.connection.flat
        await consumer.send_raw(
            (envelopes.flat_event_frame if flat else envelopes.event_frame)(
                entry,
                message_id="0",
                data_json=envelopes.encode(data),
                timestamp=envelopes.iso(data["timestamp"]),
                priority=entry.priority,
            )
        )
        consumer.detach()
        await consumer.refuse("AUTH_FAILED", "Authentication token expired", CLOSE_POLICY)
        # Other sockets of the user (and admins) hear of it too.
        await database_sync_to_async(publish)(
            "session_expired", data, recipients=Recipients.user(principal.user_id)
        )

    async def session_ended(self):
        await self.consumer.refuse(
            "AUTH_FAILED",
            "The session ended (logged out, expired, or the password changed)",
            CLOSE_POLICY,
        )

    async def send_stalled(self):
        # A close frame would wait behind the full buffer for ever: the TCP connection
        # is dropped instead where the server allows it.
        consumer = self.consumer
        if consumer.closing:
            return
        logger.warning(
            "closing %s: its client read nothing for %s s with a full send buffer",
            consumer.connection.connection_id if consumer.connection else consumer.client_id,
            settings.REALTIME["SEND_TIMEOUT"],
        )
        consumer.closing = True
        await consumer.leave()
        if not consumer.socket.abort():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await consumer.close(code=CLOSE_TRY_AGAIN_LATER)

    async def server_restart(self):
        consumer = self.consumer
        if consumer.closing:
            return
        with contextlib.suppress(Exception):
            await consumer.send_reply(
                "server_shutdown", {"reconnect": True, "message": "The server is restarting"}
            )
        consumer.closing = True
        await consumer.leave()
        with contextlib.suppress(Exception):
            await consumer.close(code=CLOSE_SERVICE_RESTART)

    def overflowed(self, connection):
        """The connection's queue could not take a critical event (its `on_overflow`)."""
        asyncio.get_running_loop().create_task(
            self.consumer.refuse(
                "CONNECTION_LIMIT",
                "The client is not reading fast enough to take a critical event; reconnect "
                "with ?since= to replay",
                CLOSE_TRY_AGAIN_LATER,
            )
        )

"""The base of every socket: from the handshake to the close, frames in and replies out."""

import asyncio
import logging
import uuid
from urllib.parse import parse_qs

from realtime import access, clock, envelopes, servers
from realtime.auth import AuthFailed, origin_allowed
from realtime.consumers.audit import SocketAudit
from realtime.consumers.authentication import SocketAuthenticator
from realtime.consumers.limits import RateLimits, admit
from realtime.consumers.membership import SocketMembership
from realtime.consumers.messages import MessageConsumer
from realtime.consumers.protocol import (
    CLIENT_ID,
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    query_filter,
)
from realtime.consumers.resume import Resume
from realtime.hub import get_hub

logger = logging.getLogger(__name__)

# An alias no layer is configured under: Channels then gives a consumer no channel of its
# own. Events reach connections through the process hub, never per-consumer channels.
NO_PER_CONNECTION_LAYER = "realtime.no-per-connection-layer"


class SocketConsumer(MessageConsumer):
    """An authenticated socket of the hub, from its handshake to its close.

    It runs the steps and leaves each job to its class: `SocketAuthenticator` (the four
    ways to authenticate), `admit` and `RateLimits` (limits), `SocketMembership` (the
    socket as the hub's member: its connection, token expiry, session, the hub's
    notices), `Resume` (where a returning client left off), `SocketAudit`.

    Subclasses add handlers (`MessageConsumer`) with their `rate_limits`, and choose the
    initial subscriptions and the frames sent once a connection is established.
    """

    channel_layer_alias = NO_PER_CONNECTION_LAYER
    rate_limits = RateLimits()
    # What a socket has before connect() sets it, or if it ends before that.
    principal = None
    auth = None
    slot = None
    member = None
    socket = servers.PLAIN

    async def ended(self):
        """Leave the hub and give the connection slot back (idempotent): a leaked slot
        is never given back otherwise."""
        self.closing = True
        if self.auth is not None:
            self.auth.stop_waiting()
        await self.leave()

    # --- connecting --------------------------------------------------------------------------

    async def connect(self):
        self.query = {
            k: v[-1]
            for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()
        }
        self.auth = SocketAuthenticator(self.scope, self.query)
        if await self.auth.failed_repeatedly():
            self.closing = True
            await self.close(code=CLOSE_POLICY)
            return
        # Otherwise accept first: a close before accept reaches the client as HTTP 403
        # and close code 1006, hiding the reason the protocol promises (DESIGN.md).
        servers.before_accept(self.base_send)
        await self.accept()
        # The server's fast paths for this socket, known once it is accepted.
        self.socket = servers.access_for(self.base_send)
        self.socket.release_handshake()  # done with: the scope has what we need
        self.client_id = self.scope["url_route"]["kwargs"].get("client_id")
        self.client_id_given = self.client_id is not None
        if self.client_id_given and not CLIENT_ID.fullmatch(self.client_id):
            await self.refuse(
                "INVALID_MESSAGE", "client_id must be 1-64 of A-Z a-z 0-9 _ . -", CLOSE_UNSUPPORTED
            )
            return
        self.client_id = self.client_id or str(uuid.uuid4())
        if not origin_allowed(self.scope):
            await self.refuse("PERMISSION_DENIED", "Origin not allowed", CLOSE_POLICY)
            return
        try:
            credentials = await self.auth.from_handshake()
        except AuthFailed as exc:
            await self.auth_failed(str(exc))
            return
        except Exception:
            logger.exception("socket authentication failed with a server error")
            await self.refuse("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)
            return
        if credentials is not None:
            await self.establish(credentials)
        else:  # wait for a first `auth` message
            self.auth.wait_for_message(self.auth_timed_out)

    def auth_timed_out(self):
        if self.principal is None and not self.closing:
            asyncio.get_running_loop().create_task(
                self.refuse(
                    "AUTH_FAILED", "No credentials: send an auth message first", CLOSE_POLICY
                )
            )

    async def auth_failed(self, reason):
        await self.auth.failed(reason, self.client_id)
        await self.refuse("AUTH_FAILED", reason, CLOSE_POLICY)

    async def establish(self, credentials):
        """Attach an authenticated user's connection to the hub and greet it."""
        self.auth.stop_waiting()
        self.auth = None  # done with: only renewals (stateless) from here on
        principal = credentials.principal
        self.slot, refusal = await admit(principal.user_id)
        if refusal is not None:
            await self.refuse(*refusal)
            return
        hub = get_hub()
        self.principal = principal
        self.member = SocketMembership(self, credentials)
        debug = self.query.get("debug") == "true"
        connection = self.connection = self.member.join(
            hub, client_id=self.client_id, debug=debug, flat=self.flat_envelope()
        )
        since = self.query.get("since")
        resume = Resume(hub, principal.user_id, self.client_id)
        remembered = await resume.recall() if self.client_id_given and since is None else None
        if remembered:
            hub.set_subscriptions(connection, remembered.subscriptions)
            connection.filter = remembered.filter
        else:
            hub.set_subscriptions(connection, self.initial_subscriptions())
        # A filter given in the query string applies from the start, replay included.
        event_filter, filter_error = query_filter(self.query)
        if event_filter is not None:
            connection.filter = event_filter
        if credentials.method == "auth_message":
            await self.send_auth_ok(credentials.expires_at, credentials.request_id)
        await self.greet()
        if filter_error:
            await self.send_error("INVALID_MESSAGE", f"Invalid filter: {filter_error}")
        if debug and not connection.debug:
            await self.send_error("PERMISSION_DENIED", "Debug mode is for administrators")
        await resume.replay(connection, since)
        self.query = None  # read at connect only; thousands of sockets need not keep it
        details = {"method": credentials.method, "path": self.scope.get("path")}
        self.audit_log.session(principal, "realtime.connect", details)

    @property
    def audit_log(self):
        return SocketAudit(self.scope, self.client_id)  # made when needed: rarely

    def initial_subscriptions(self):
        return access.default_subscriptions(self.principal, self.connection.allowed)

    def flat_envelope(self):
        """Whether events go out in the DNS frontends' flat envelope (realtime/compat.py)."""
        return False

    async def greet(self):
        """Frames sent once the connection is established (before any replay)."""

    # --- receiving ---------------------------------------------------------------------------

    async def admit(self, kind, message, request_id):
        if self.principal is None:
            await self.receive_before_auth(kind, message, request_id)
            return False
        member = self.member
        if member.token_expires_at is not None and clock.now() >= member.token_expires_at:
            await member.token_expired()
            return False
        await self.rate_limits.check(self.principal, kind)
        return True

    async def receive_before_auth(self, kind, message, message_id):
        if kind != "auth":
            self.auth.no_credentials()
            await self.auth.failed(f"{kind} before auth", self.client_id)
            await self.refuse(
                "AUTH_FAILED", "Authenticate first: send an auth message", CLOSE_POLICY
            )
            return
        try:
            credentials = await self.auth.from_message(message, message_id)
        except AuthFailed as exc:
            await self.auth_failed(str(exc))
            return
        await self.establish(credentials)

    # --- common messages -----------------------------------------------------------------------

    async def handle_auth(self, data, request_id):
        """Renew the token of a live connection (same user only)."""
        expires_at = await SocketAuthenticator.renewed(data, self.principal)
        self.member.token_expires_at = expires_at
        await self.send_auth_ok(expires_at, request_id)

    async def send_auth_ok(self, expires_at, request_id):
        await self.send_reply(
            "auth_ok",
            {
                "user": self.principal.as_dict(),
                "expires_at": envelopes.iso_timestamp(expires_at) if expires_at else None,
            },
            request_id=request_id,
        )

    # --- leaving -----------------------------------------------------------------------------

    async def leave(self):
        """Leave the hub and give the connection slot back."""
        self.detach()
        await self.release_slot()

    def detach(self):
        if self.connection is not None:
            get_hub().detach(self.connection)

    async def disconnect(self, code):
        self.closing = True
        if self.auth is not None:
            self.auth.stop_waiting()
        connection = self.connection
        if connection is not None:
            self.detach()
            if self.client_id_given:
                await Resume(get_hub(), self.principal.user_id, self.client_id).remember(connection)
            details = {
                "code": code,
                "messages_sent": connection.messages_sent,
                "messages_received": connection.messages_received,
                "events_dropped": connection.dropped,
            }
            self.audit_log.session(self.principal, "realtime.disconnect", details)
        await self.release_slot()
        # The consumer, its membership and its connection refer to each other: without
        # these links the three go as the socket ends, with the scope and all they hold,
        # instead of waiting as garbage for the collector's next full pass (bench.connects:
        # 13 KB per closed socket, and each full pass walked all of them).
        self.connection = self.member = None

    async def release_slot(self):
        """Stop counting this socket toward the connection limits (once)."""
        slot, self.slot = self.slot, None
        if slot is not None:
            await slot.release()

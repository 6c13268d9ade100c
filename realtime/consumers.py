"""WebSocket consumers: the hub socket (`/ws`, threatlens-ws.md and unified-ws.md in one),
its legacy per-topic paths, and the base that `/ws/incidents` builds on.

Consumers stay thin: parse and validate a frame, look up its handler, run sync work
through `database_sync_to_async`, reply. Events never pass through a consumer: the
process hub puts them on the connection's queue directly.
"""

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from importlib import metadata
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model

from realtime import (
    access,
    auditing,
    auth_failures,
    catalogue,
    clock,
    control,
    envelopes,
    servers,
)
from realtime.auth import (
    AuthFailed,
    bearer_token,
    origin_allowed,
    principal_from_token,
    session_key,
    session_user,
    will_authenticate,
)
from realtime.catalogue import VIEW_CONNECTIONS, Family
from realtime.connection import Connection
from realtime.filters import EventFilter, FilterError
from realtime.hub import get_hub
from realtime.publishing import Recipients, publish
from realtime.replay import missed_events
from realtime.servers.channels import consumer_application, frames_saved
from realtime.transport import ORIGIN

logger = logging.getLogger(__name__)

# An alias no layer is configured under: Channels then gives a consumer no channel of its
# own. Events reach connections through the process hub, never per-consumer channels.
NO_PER_CONNECTION_LAYER = "realtime.no-per-connection-layer"

CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

SERVER_NAME = "ThreatLens WebSocket Server"
try:
    SERVER_VERSION = metadata.version("threatlens")
except metadata.PackageNotFoundError:  # running from a checkout that was not installed
    SERVER_VERSION = "0.0.0"


class ProtocolError(Exception):
    """A client message that gets an error frame; the connection goes on."""

    def __init__(self, error_code, message, details=None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.details = details


def _invalid(message, **details):
    return ProtocolError("INVALID_MESSAGE", message, details or None)


class SocketConsumer(AsyncWebsocketConsumer):
    """Auth, limits, parsing, rate limits, ping and hub attachment for every socket.

    Subclasses name their message handlers in `handlers` (message type -> method name,
    each `async def handler(self, data, request_id)`), and choose the initial
    subscriptions and the frames sent once a connection is established.
    """

    channel_layer_alias = NO_PER_CONNECTION_LAYER
    handlers = {}
    subscription_messages = frozenset()
    admin_messages = frozenset()

    @classmethod
    def as_asgi(cls, **initkwargs):
        if frames_saved():
            return consumer_application(cls, initkwargs)
        return super().as_asgi(**initkwargs)

    async def __call__(self, scope, receive, send):
        # However the socket ends (a disconnect, a send to a dropped client raising
        # out of a handler, a cancelled task), it stops counting toward the limits
        # and leaves the hub: a leaked slot is never given back otherwise.
        try:
            if not frames_saved():
                await super().__call__(scope, receive, send)
                return
            # Channels' AsyncConsumer.__call__ without the channel layer (this consumer
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
        """Leave the hub and give the connection slot back (idempotent)."""
        self.closing = True
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        if getattr(self, "connection", None) is not None:
            self.detach()
        await self.release_slot()

    async def dispatch(self, message):
        if not frames_saved():
            await super().dispatch(message)
            return
        # Channels' dispatch, less its `aclose_old_connections()` before every message
        # (realtime/servers/channels.py says why).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connecting --------------------------------------------------------------------------

    async def connect(self):
        self.connection = None
        self.socket = servers.PLAIN  # until accepted
        self.principal = None
        self.closing = False
        self.counted_user_id = None
        self.token_expires_at = None
        self.auth_timer = None
        self.session_key = None  # set when the session cookie authenticated the socket
        self.session_hash = None
        self.rechecking = False
        self.query = {
            k: v[-1]
            for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()
        }
        # Not kept: a socket lives long, its token is checked once here.
        token = self.query.pop("token", None) or bearer_token(self.scope)
        credential = token or session_key(self.scope)
        self.failure_key = (
            auth_failures.credential_key(self.scope, credential) if credential else None
        )
        # A token known to work (valid, its user snapshotted here) is not looked up in
        # the failure counts: a round trip to the store saved on most connects.
        if (
            self.failure_key
            and not (token and will_authenticate(token))
            and await auth_failures.failed_repeatedly(get_hub().store, self.failure_key)
        ):
            # These credentials keep failing from here (a client reconnecting with an
            # expired token): refused without accepting, counted, not audited alone.
            self.closing = True
            auth_failures.audit().refused_early(self.scope)
            await self.close(code=CLOSE_POLICY)
            return
        # Otherwise accept first: a close before accept reaches the client as HTTP 403
        # and close code 1006, hiding the reason the protocol promises (DESIGN.md).
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
            if token:
                principal, expires_at = await principal_from_token(token)
                await self.establish(principal, expires_at=expires_at, method="token")
                return
            user = await session_user(self.scope)
            principal = await database_sync_to_async(access.principal_for)(user) if user else None
        except AuthFailed as exc:
            await self.audit_auth_failure(str(exc))
            await self.refuse("AUTH_FAILED", str(exc), CLOSE_POLICY)
            return
        except Exception:
            logger.exception("socket authentication failed with a server error")
            await self.refuse("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)
            return
        if principal is not None:
            # Kept to close the socket when the session ends (logout, expiry, password).
            self.session_key = session_key(self.scope)
            self.session_hash = control.digest(self.session_key)
            await self.establish(principal, expires_at=None, method="session")
            return
        # No credentials yet: wait for a first `auth` message (keeps tokens out of URLs).
        self.auth_timer = asyncio.get_running_loop().call_later(
            settings.REALTIME["AUTH_TIMEOUT"], self._auth_timeout
        )

    def _auth_timeout(self):
        if self.principal is None and not self.closing:
            asyncio.get_running_loop().create_task(
                self.refuse(
                    "AUTH_FAILED", "No credentials: send an auth message first", CLOSE_POLICY
                )
            )

    async def establish(self, principal, *, expires_at, method):
        """Attach an authenticated user's connection to the hub and greet it."""
        try:
            hub = get_hub()
            await hub.start()
        except Exception:
            logger.exception("socket set-up failed with a server error")
            await self.refuse("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)
            return
        if hub.shutting_down:
            await self.refuse("INTERNAL_ERROR", "The server is restarting", CLOSE_SERVICE_RESTART)
            return
        if hub.layer_healthy is False:
            await self.refuse("INTERNAL_ERROR", "Channel layer unavailable", CLOSE_INTERNAL_ERROR)
            return
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        if not await self.within_connection_limits(hub, principal):
            return
        self.principal = principal
        self.set_token_expiry(expires_at)
        debug = self.query.get("debug") == "true"
        connection = Connection(
            send=self.base_send,
            connection_id=f"conn_{uuid.uuid4().hex[:16]}",
            client_id=self.client_id,
            principal=principal,
            capacity=settings.REALTIME["QUEUE_SIZE"],
            batch_window=settings.REALTIME["BATCH_WINDOW"],
            on_overflow=self._overflowed,
            debug=debug and principal.has_perm(VIEW_CONNECTIONS),
            flat=self.flat_envelope(),
            socket=self.socket,
        )
        connection.owner = self
        connection.allowed = access.receivable_types(principal)
        connection.pause()
        self.connection = connection
        hub.attach(connection)
        remembered = await self.remembered_state(hub)
        if remembered:
            hub.set_subscriptions(connection, remembered["subscriptions"])
            connection.filter = _remembered_filter(remembered.get("filter"))
        else:
            hub.set_subscriptions(connection, self.initial_subscriptions())
        filter_error = self.apply_query_filter()
        await self.greet()
        if filter_error:
            await self.send_error("INVALID_MESSAGE", f"Invalid filter: {filter_error}")
        if debug and not connection.debug:
            await self.send_error("PERMISSION_DENIED", "Debug mode is for administrators")
        await self.replay_missed()
        self.query = None  # read at connect only; thousands of sockets need not keep it
        self.audit_session("realtime.connect", {"method": method, "path": self.scope.get("path")})

    async def within_connection_limits(self, hub, principal):
        limits = settings.REALTIME
        try:
            total, mine = await hub.store.add_connection(ORIGIN, principal.user_id)
        except Exception:
            logger.exception("connection registry unavailable")
            await self.refuse("INTERNAL_ERROR", "Service unavailable", CLOSE_INTERNAL_ERROR)
            return False
        self.counted_user_id = principal.user_id
        if total > limits["MAX_CONNECTIONS"] or mine > limits["MAX_CONNECTIONS_PER_USER"]:
            which = "server" if total > limits["MAX_CONNECTIONS"] else "user"
            limit = limits["MAX_CONNECTIONS" if which == "server" else "MAX_CONNECTIONS_PER_USER"]
            await self.refuse(
                "CONNECTION_LIMIT",
                f"Maximum connections per {which} ({limit}) reached",
                CLOSE_TRY_AGAIN_LATER,
                details={"limit": limit, "scope": which},
            )
            return False
        return True

    def initial_subscriptions(self):
        return access.default_subscriptions(self.principal, self.connection.allowed)

    def flat_envelope(self):
        """Whether events go out in the DNS frontends' flat envelope (realtime/compat.py)."""
        return False

    async def greet(self):
        """Frames sent once the connection is established (before any replay)."""

    async def remembered_state(self, hub):
        """Where a named client (`/ws/<client_id>`) left off: position, subscriptions and
        filter, kept for the replay window."""
        self.remembered = None
        if self.client_id_given and "since" not in self.query:
            try:
                self.remembered = await hub.store.get_client_state(self.client_state_key())
            except Exception as exc:
                logger.warning("could not read %s's state: %s", self.client_id, exc)
        return self.remembered

    def apply_query_filter(self):
        """A filter given in the query string applies from the start, replay included."""
        names = ("event_types", "categories", "sources", "min_priority", "max_priority")
        given = {name: self.query[name] for name in names if name in self.query}
        if not given:
            return None
        data = {}
        for name, value in given.items():
            if name.endswith("priority"):
                data[name] = int(value) if value.lstrip("-").isdigit() else value
            else:
                data[name] = [item for item in value.split(",") if item]
        try:
            self.connection.filter = EventFilter.parse(data)
        except FilterError as exc:
            return str(exc)
        return None

    async def replay_missed(self):
        """Send what a returning client missed, then release live events."""
        connection = self.connection
        since = await self.replay_position()
        if since is None:
            connection.resume()
            return
        events, complete = await database_sync_to_async(missed_events)(connection, since)
        for event in events:
            await connection.send_text(event.replay_frame(self.principal, connection.flat))
        connection.events_sent += len(events)
        if events:
            connection.last_event_id = max(connection.last_event_id, events[-1].id)
        get_hub().counters["events_replayed"] += len(events)
        await self.send_reply(
            "replay_complete", {"replayed": len(events), "complete": complete, "since": str(since)}
        )
        connection.resume({event.id for event in events})

    async def replay_position(self):
        since = self.query.get("since")
        if since is not None:
            if since.isdigit():
                return int(since)
            await self.send_error("INVALID_MESSAGE", "since must be a message_id")
            return None
        if self.remembered:
            return self.remembered["position"]
        return None

    def client_state_key(self):
        return f"{self.principal.user_id}:{self.client_id}"

    # --- token expiry and renewal ------------------------------------------------------------

    def set_token_expiry(self, expires_at):
        # The hub looks for expired tokens once a second, for all sockets at once: no
        # timer per socket.
        self.token_expires_at = expires_at

    async def token_expired(self):
        if self.closing or self.principal is None:
            return
        principal = self.principal
        # The payload is the accounts app's (declared with the type); realtime imports
        # no project app, so it builds it through the catalogue.
        data = catalogue.build(
            "session_expired", user_id=principal.user_id, username=principal.username
        )
        entry = catalogue.get("session_expired")
        flat = self.connection is not None and self.connection.flat
        await self.send_raw(
            (envelopes.flat_event_frame if flat else envelopes.event_frame)(
                entry,
                message_id="0",
                data_json=envelopes.encode(data),
                timestamp=envelopes.iso(data["timestamp"]),
                priority=entry.priority,
            )
        )
        self.detach()
        await self.refuse("AUTH_FAILED", "Authentication token expired", CLOSE_POLICY)
        # Other sockets of the user (and admins) hear of it too.
        await database_sync_to_async(publish)(
            "session_expired", data, recipients=Recipients.user(principal.user_id)
        )

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        if self.connection is not None:
            self.connection.messages_received += 1
            self.connection.last_activity = time.time()
        request_id = None
        try:
            if text_data is None:
                raise _invalid("Binary frames are not supported: send JSON text")
            if len(text_data) > settings.REALTIME["MAX_FRAME_BYTES"] or (
                len(text_data.encode("utf-8")) > settings.REALTIME["MAX_FRAME_BYTES"]
            ):
                raise _invalid(f"Frame larger than {settings.REALTIME['MAX_FRAME_BYTES']} bytes")
            if text_data.strip() == "ping":
                await self.send_raw("pong")
                return
            message = _parse(text_data)
            request_id = _request_id(message)
            kind = message["type"]
            if self.principal is None:
                await self.receive_before_auth(kind, message, request_id)
                return
            if self.token_expires_at is not None and clock.now() >= self.token_expires_at:
                await self.token_expired()
                return
            await self.check_rate_limits(kind)
            handler = self.handlers.get(kind)
            if handler is None:
                raise ProtocolError("UNKNOWN_MESSAGE_TYPE", f"Unknown message type: {kind}")
            await getattr(self, handler)(self.request_data(kind, message), request_id)
        except ProtocolError as exc:
            await self.send_error_quietly(
                exc.error_code, exc.message, details=exc.details, request_id=request_id
            )
        except Exception:
            logger.exception("error handling a socket message")
            await self.send_error_quietly(
                "INTERNAL_ERROR", "The server failed to handle the message", request_id=request_id
            )

    def request_data(self, kind, message):
        """The fields of a request: its `data` object."""
        data = message.get("data")
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _invalid("data must be an object")
        return data

    async def send_error_quietly(self, error_code, message, *, details=None, request_id=None):
        """The error frame of a failed message. Should the socket be gone, the server's
        disconnect message follows and ends the consumer: raising here would skip it."""
        try:
            await self.send_error(error_code, message, details=details, request_id=request_id)
        except Exception as exc:
            logger.debug("could not send an error frame: %s", exc)

    async def receive_before_auth(self, kind, message, request_id):
        if kind != "auth":
            self.failure_key = None  # no credentials: nothing to refuse next time
            await self.audit_auth_failure(f"{kind} before auth")
            await self.refuse(
                "AUTH_FAILED", "Authenticate first: send an auth message", CLOSE_POLICY
            )
            return
        token = _auth_token(message)
        self.failure_key = auth_failures.credential_key(self.scope, token)
        try:
            principal, expires_at = await principal_from_token(token)
        except AuthFailed as exc:
            await self.audit_auth_failure(str(exc))
            await self.refuse("AUTH_FAILED", str(exc), CLOSE_POLICY)
            return
        self._pending_auth_reply = (principal, expires_at, request_id)
        await self.establish(principal, expires_at=expires_at, method="auth_message")

    async def check_rate_limits(self, kind):
        limits = settings.REALTIME
        checks = [("msg", limits["MESSAGE_RATE"])]
        if kind in self.subscription_messages:
            checks.append(("sub", limits["SUBSCRIPTION_RATE"]))
        if kind in self.admin_messages and not self.principal.has_perm(VIEW_CONNECTIONS):
            checks.append(("admin", limits["ADMIN_COMMAND_RATE"]))
        store = get_hub().store
        window = limits["RATE_WINDOW"]
        for name, limit in checks:
            try:
                count, left = await store.hit(f"{name}:{self.principal.user_id}", window)
            except Exception as exc:
                # The shared store (Redis) is down: serve on rather than refuse every
                # message; the limits come back with it.
                logger.warning("rate limits unavailable: %s", exc)
                return
            if count > limit:
                raise ProtocolError(
                    "RATE_LIMITED",
                    f"Rate limit exceeded. Try again in {int(left) + 1} seconds.",
                    {"limit": limit, "window": int(window), "retry_after": int(left) + 1},
                )

    # --- common messages -----------------------------------------------------------------------

    async def handle_ping(self, data, request_id):
        await self.send_reply(
            "pong",
            {"timestamp": envelopes.now_iso(), "client_id": self.client_id},
            request_id=request_id,
        )

    async def handle_pong(self, data, request_id):
        """A client's answer to the server's ping: activity is already recorded."""

    async def handle_auth(self, data, request_id):
        """Renew the token of a live connection (same user only)."""
        token = _auth_token({"data": data})
        try:
            principal, expires_at = await principal_from_token(token)
        except AuthFailed as exc:
            raise ProtocolError("AUTH_FAILED", str(exc)) from None
        if principal.user_id != self.principal.user_id:
            raise ProtocolError("AUTH_FAILED", "The token belongs to another user")
        self.set_token_expiry(expires_at)
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

    # --- hub callbacks -----------------------------------------------------------------------

    async def hub_recheck(self, message):
        """The user's roles, permissions or active flag changed somewhere in the cluster."""
        if self.closing or self.principal is None:
            return
        self.rechecking = True
        try:
            user = await database_sync_to_async(
                lambda: get_user_model().objects.filter(pk=self.principal.user_id).first()
            )()
            if user is None or not user.is_active:
                await self.refuse("AUTH_FAILED", "The account was deactivated", CLOSE_POLICY)
                return
            principal = await database_sync_to_async(access.principal_for)(user)
            self.apply_principal(principal)
        except Exception as exc:
            # The database is away: the next access check tries again.
            logger.warning("could not re-check %s's access: %s", self.principal.username, exc)
        finally:
            self.rechecking = False

    async def session_ended(self):
        """The session that authenticated this socket ended (logout, expiry, password)."""
        await self.refuse(
            "AUTH_FAILED",
            "The session ended (logged out, expired, or the password changed)",
            CLOSE_POLICY,
        )

    def apply_principal(self, principal):
        connection = self.connection
        if connection is None:
            return
        self.principal = principal
        connection.principal = principal
        connection.allowed = access.receivable_types(principal)
        get_hub().set_subscriptions(connection, connection.subscriptions)

    async def server_restart(self):
        """The server is stopping: tell the client to come back, close with 1012."""
        if self.closing:
            return
        with contextlib.suppress(Exception):
            await self.send_reply(
                "server_shutdown", {"reconnect": True, "message": "The server is restarting"}
            )
        self.closing = True
        self.detach()
        await self.release_slot()
        with contextlib.suppress(Exception):
            await self.close(code=CLOSE_SERVICE_RESTART)

    async def hub_disconnect(self, message):
        await self.refuse(
            "PERMISSION_DENIED", message.get("reason") or "Disconnected", CLOSE_POLICY
        )

    async def send_stalled(self):
        """The client has not read for REALTIME_SEND_TIMEOUT with a full buffer: its TCP
        connection is dropped (a close frame would wait behind the buffer for ever)."""
        if self.closing:
            return
        logger.warning(
            "closing %s: its client read nothing for %s s with a full send buffer",
            self.connection.connection_id if self.connection else self.client_id,
            settings.REALTIME["SEND_TIMEOUT"],
        )
        self.closing = True
        self.detach()
        await self.release_slot()
        if not self.socket.abort():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self.close(code=CLOSE_TRY_AGAIN_LATER)

    def _overflowed(self, connection):
        asyncio.get_running_loop().create_task(
            self.refuse(
                "CONNECTION_LIMIT",
                "The client is not reading fast enough to take a critical event; reconnect "
                "with ?since= to replay",
                CLOSE_TRY_AGAIN_LATER,
            )
        )

    # --- sending -------------------------------------------------------------------------------

    async def send_raw(self, text):
        if self.connection is not None:
            await self.connection.send_text(text)
        else:
            await self.send(text_data=text)

    async def send_reply(self, reply_type, data=None, *, request_id=None, **top_level):
        await self.send_raw(envelopes.reply(reply_type, data, request_id=request_id, **top_level))

    async def send_error(self, error_code, message, *, details=None, request_id=None):
        await self.send_raw(
            envelopes.error(error_code, message, details=details, request_id=request_id)
        )

    async def refuse(self, error_code, message, close_code, *, details=None):
        """Send an error frame, then close with `close_code` (DESIGN.md "Auth")."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send_raw(envelopes.error(error_code, message, details=details))
        self.detach()
        await self.release_slot()
        await self.close(code=close_code)

    async def close(self, code=None, reason=None):
        """Channels' `close`; a code the server refuses (daphne without the
        `daphne_close_codes` fast path) goes out as its stand-in, 4013 for 1013: the socket
        always closes (docs/servers.md)."""
        await servers.close_socket(super().close, code, reason)

    # --- leaving -----------------------------------------------------------------------------

    def detach(self):
        connection = self.connection
        if connection is not None:
            get_hub().detach(connection)

    async def disconnect(self, code):
        self.closing = True
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        connection = getattr(self, "connection", None)
        if connection is not None:
            self.detach()
            hub = get_hub()
            if self.client_id_given:
                state = {
                    "position": connection.resume_position(hub.last_event_id),
                    "subscriptions": sorted(connection.subscriptions),
                    "filter": connection.filter.as_dict() if connection.filter else None,
                }
                try:
                    await hub.store.set_client_state(
                        self.client_state_key(), state, settings.REALTIME["REPLAY_WINDOW"]
                    )
                except Exception as exc:
                    logger.warning("could not remember %s's position: %s", self.client_id, exc)
            self.audit_session("realtime.disconnect", {"code": code, **_counters(connection)})
        await self.release_slot()

    async def release_slot(self):
        """Stop counting this socket toward the connection limits (once)."""
        user_id = getattr(self, "counted_user_id", None)
        if user_id is None:
            return
        self.counted_user_id = None
        try:
            await get_hub().store.remove_connection(ORIGIN, user_id)
        except Exception as exc:
            logger.warning("connection registry unavailable at disconnect: %s", exc)

    # --- audit ---------------------------------------------------------------------------------

    def audit_session(self, action, details):
        """An audit row of this socket's own session, written in the background and not
        published live (realtime/auditing.py says why)."""
        auditing.session_writer().add(
            action, self.principal, {"client_id": self.client_id, **details}, self.scope
        )

    async def audit(self, action, details):
        """An audit row written before this returns, and published live."""
        try:
            await auditing.writer().write(
                action, self.principal, {"client_id": self.client_id, **details}, self.scope
            )
        except Exception:
            logger.exception("could not write the audit row for %s", action)

    async def audit_auth_failure(self, reason):
        """Counted against the credentials, audited once per source and window."""
        if getattr(self, "failure_key", None):
            await auth_failures.count_failure(get_hub().store, self.failure_key)
        details = {"client_id": self.client_id, "reason": reason, "path": self.scope.get("path")}
        await auth_failures.audit().failed(self.scope, details)


def _remembered_filter(data):
    try:
        return EventFilter.parse(data) if data else None
    except FilterError:
        return None  # declared event types changed since it was stored


def _counters(connection):
    return {
        "messages_sent": connection.messages_sent,
        "messages_received": connection.messages_received,
        "events_dropped": connection.dropped,
    }


def _parse(text):
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid("Invalid JSON") from None
    # JSON may escape a lone surrogate (`"\ud800"`), which no reply echoing it could
    # encode as UTF-8: refused here, before any of it reaches a reply. Only frames with a
    # `\u` escape of a surrogate are checked, so the common frame costs a substring search.
    if _SURROGATE_ESCAPE.search(text) and not _encodable(message):
        raise _invalid("Strings must be valid Unicode (no unpaired surrogates)")
    if not isinstance(message, dict):
        raise _invalid("A message must be a JSON object")
    kind = message.get("type")
    if kind is None:
        raise _invalid("Missing message type")
    if not isinstance(kind, str) or not kind:
        raise _invalid("Message type must be a non-empty string")
    return message


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _encodable(message):
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _request_id(message):
    request_id = message.get("id")
    return (
        request_id
        if isinstance(request_id, str | int) and not isinstance(request_id, bool)
        else None
    )


def _auth_token(message):
    data = message.get("data")
    token = data.get("token") if isinstance(data, dict) else None
    if token is None:
        token = message.get("token")
    if not isinstance(token, str) or not token:
        raise _invalid("auth needs data.token")
    return token


def _string_list(data, name):
    value = data.get(name)
    if value is None:
        raise _invalid(f"Invalid subscription request: missing {name}")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(f"{name} must be a list of strings")
    if len(value) > 200:
        raise _invalid(f"{name} may name at most 200 event types")
    return value


LEGACY_TOPICS = {
    "health": ("health_update", "health_alert", "system_metrics", "system_status", "health_check"),
    "dns_management": f"family:{Family.DNS}",
    "security": f"family:{Family.SECURITY}",
    "system": f"family:{Family.SYSTEM}",
    "admin": (f"family:{Family.USER}", "user_action", "config_change", "bind_reload"),
}


class HubConsumer(SocketConsumer):
    """`/ws` and `/ws/<client_id>`: the ThreatLens event stream and the unified socket."""

    handlers = {
        "subscribe": "handle_subscribe",
        "subscribe_events": "handle_subscribe",
        "unsubscribe": "handle_unsubscribe",
        "unsubscribe_events": "handle_unsubscribe",
        "get_subscriptions": "handle_get_subscriptions",
        "set_filter": "handle_set_filter",
        "clear_filter": "handle_clear_filter",
        "get_status": "handle_get_status",
        "get_stats": "handle_get_stats",
        "ping": "handle_ping",
        "pong": "handle_pong",
        "auth": "handle_auth",
    }
    subscription_messages = frozenset(
        {"subscribe", "subscribe_events", "unsubscribe", "unsubscribe_events"}
    )
    admin_messages = frozenset({"get_stats", "get_status"})

    async def greet(self):
        pending = getattr(self, "_pending_auth_reply", None)
        if pending is not None:
            await self.send_auth_ok(pending[1], pending[2])
        connection = self.connection
        server_info = {"name": SERVER_NAME, "version": SERVER_VERSION}
        await self.send_reply(
            "connection_established",
            {
                "client_id": self.client_id,
                "connection_id": connection.connection_id,
                "server_info": server_info,
                "user": self.principal.as_dict(),
                "subscriptions": sorted(connection.subscriptions),
                "default_subscriptions": sorted(self.default_subscriptions()),
                "filter": None,
            },
            client_id=self.client_id,
            server_info=server_info,
        )

    def default_subscriptions(self):
        return access.default_subscriptions(self.principal, self.connection.allowed)

    async def handle_subscribe(self, data, request_id):
        names = _string_list(data, "event_types")
        replace = data.get("replace_existing", False)
        if not isinstance(replace, bool):
            raise _invalid("replace_existing must be true or false")
        accepted, refused = self.check_event_types(names)
        connection = self.connection
        before = connection.subscriptions
        after = set(accepted) if replace else set(before) | set(accepted)
        get_hub().set_subscriptions(connection, after)
        await self.subscription_reply(
            request_id,
            added=sorted(connection.subscriptions - before),
            removed=sorted(before - connection.subscriptions),
            refused=refused,
        )

    async def handle_unsubscribe(self, data, request_id):
        names = _string_list(data, "event_types")
        unknown = [name for name in names if not catalogue.exists(name)]
        connection = self.connection
        before = connection.subscriptions
        get_hub().set_subscriptions(connection, before - set(names))
        refused = [_refusal(name, "SUBSCRIPTION_FAILED", "Unknown event type") for name in unknown]
        await self.subscription_reply(
            request_id,
            removed=sorted(before - connection.subscriptions),
            refused=refused,
        )

    def check_event_types(self, names):
        accepted, refused = [], []
        for name in dict.fromkeys(names):
            if not catalogue.exists(name):
                refused.append(_refusal(name, "SUBSCRIPTION_FAILED", "Unknown event type"))
            elif name not in self.connection.allowed:
                refused.append(
                    _refusal(name, "PERMISSION_DENIED", "Your role may not receive this event type")
                )
            else:
                accepted.append(name)
        if self.connection.debug:
            for name in accepted:
                self.debug_decision("subscribed", name, "allowed for the role")
            for item in refused:
                self.debug_decision("refused", item["event_type"], item["message"])
        return accepted, refused

    def debug_decision(self, decision, event_type, reason):
        frame = envelopes.reply(
            "debug", {"decision": decision, "event_type": event_type, "reason": reason}
        )
        asyncio.get_running_loop().create_task(self.connection._send_quietly(frame))

    async def subscription_reply(self, request_id, *, added=(), removed=(), refused=()):
        subscriptions = sorted(self.connection.subscriptions)
        data = {"subscriptions": subscriptions, "refused": list(refused)}
        if added or not removed:
            data["added"] = list(added)
        if removed:
            data["removed"] = list(removed)
        await self.send_reply(
            "subscription_updated", data, request_id=request_id, subscriptions=subscriptions
        )
        for code in ("SUBSCRIPTION_FAILED", "PERMISSION_DENIED"):
            names = [item["event_type"] for item in refused if item["error_code"] == code]
            if names:
                message = (
                    "Unknown event types: "
                    if code == "SUBSCRIPTION_FAILED"
                    else "Not permitted for your role: "
                ) + ", ".join(names)
                await self.send_error(
                    code, message, details={"event_types": names}, request_id=request_id
                )
        self.audit_session(
            "realtime.subscription_changed",
            {"subscriptions": subscriptions, "added": list(added), "removed": list(removed)},
        )

    async def handle_get_subscriptions(self, data, request_id):
        await self.send_reply(
            "response",
            {
                "subscriptions": sorted(self.connection.subscriptions),
                "default_subscriptions": sorted(self.default_subscriptions()),
                "available": sorted(self.connection.allowed),
            },
            request_id=request_id,
        )

    async def handle_set_filter(self, data, request_id):
        try:
            event_filter = EventFilter.parse(data)
        except FilterError as exc:
            raise _invalid(f"Invalid filter: {exc}") from None
        self.connection.filter = event_filter
        await self.filter_reply("set", event_filter.as_dict(), request_id)

    async def handle_clear_filter(self, data, request_id):
        self.connection.filter = None
        await self.filter_reply("cleared", None, request_id)

    async def filter_reply(self, action, current, request_id):
        await self.send_reply(
            "filter_updated", {"filter": current, "action": action}, request_id=request_id
        )
        self.audit_session("realtime.filter_changed", {"action": action, "filter": current})

    async def handle_get_status(self, data, request_id):
        hub = get_hub()
        connection = self.connection
        await self.send_reply(
            "status_response",
            {
                "client_info": {
                    "client_id": self.client_id,
                    "connection_id": connection.connection_id,
                    "user": self.principal.as_dict(),
                    "connected_at": envelopes.iso_timestamp(connection.connected_at),
                    "subscriptions": sorted(connection.subscriptions),
                    "filter": connection.filter.as_dict() if connection.filter else None,
                    "messages_sent": connection.messages_sent,
                    "messages_received": connection.messages_received,
                    "queue_depth": connection.queue_depth,
                },
                "server": {
                    "name": SERVER_NAME,
                    "version": SERVER_VERSION,
                    "process_connections": len(hub.connections),
                    "queued_messages": sum(c.queue_depth for c in hub.connections.values()),
                    "channel_layer": "healthy" if hub.layer_healthy else "unavailable",
                    "uptime": round(time.time() - hub.started_at, 1),
                },
                "server_time": envelopes.now_iso(),
            },
            request_id=request_id,
        )

    async def handle_get_stats(self, data, request_id):
        stats = self.connection.stats()
        await self.send_reply("response", stats, request_id=request_id)


class LegacyHubConsumer(HubConsumer):
    """`/ws/<topic>/<user_id>`: the hub with one topic preset, and a deprecation notice."""

    async def establish(self, principal, *, expires_at, method):
        path_user = self.scope["url_route"]["kwargs"]["user_id"]
        if str(principal.user_id) != path_user and not principal.has_perm(VIEW_CONNECTIONS):
            await self.refuse(
                "PERMISSION_DENIED", "This socket belongs to another user", CLOSE_POLICY
            )
            return
        await super().establish(principal, expires_at=expires_at, method=method)

    def initial_subscriptions(self):
        topic = self.scope["url_route"]["kwargs"]["topic"]
        items = LEGACY_TOPICS[topic]
        items = (items,) if isinstance(items, str) else items
        return access.expand(items, self.connection.allowed)

    async def greet(self):
        await super().greet()
        topic = self.scope["url_route"]["kwargs"]["topic"]
        await self.send_reply(
            "deprecation_warning",
            {
                "message": f"/ws/{topic}/<user_id> is deprecated: connect to /ws and "
                "subscribe to the event types you need.",
                "replacement": "/ws",
                "event_types": sorted(self.connection.subscriptions),
            },
        )


def _refusal(name, code, message):
    return {"event_type": name, "error_code": code, "message": message}

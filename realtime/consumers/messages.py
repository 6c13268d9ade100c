"""The sockets' message protocol: JSON messages in, each to its handler; replies, error
frames and refusals out."""

import contextlib
import logging
import time

from realtime import envelopes, servers
from realtime.consumers.protocol import ProtocolError, read_message, request_data, request_id
from realtime.servers.channels import FrameSavingConsumer

logger = logging.getLogger(__name__)


class MessageConsumer(FrameSavingConsumer):
    """Reads each text frame as a message, lets `admit()` stop it, calls its handler,
    and turns what goes wrong into an error frame; the connection goes on. Replies go
    through the hub connection once there is one (after the events queued before them),
    else straight to the socket.

    Subclasses name their handlers in `handlers` (message type -> method name, each
    `async def handler(self, data, request_id)`)."""

    handlers = {}
    connection = None  # the hub's Connection, once the socket has one
    client_id = None
    closing = False

    async def admit(self, kind, message, request_id):
        """Whether the message goes on to its handler (checks before that)."""
        return True

    async def leave(self):
        """The socket is closing: stop serving it (before its close frame)."""

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing:
            return
        if self.connection is not None:
            self.connection.messages_received += 1
            self.connection.last_activity = time.time()
        message_id = None
        try:
            message = read_message(text_data)
            if message is None:  # the bare-text keepalive
                await self.send_raw("pong")
                return
            message_id = request_id(message)
            kind = message["type"]
            if not await self.admit(kind, message, message_id):
                return
            handler = self.handlers.get(kind)
            if handler is None:
                raise ProtocolError("UNKNOWN_MESSAGE_TYPE", f"Unknown message type: {kind}")
            await getattr(self, handler)(self.request_data(kind, message), message_id)
        except ProtocolError as exc:
            await self.send_error_quietly(
                exc.error_code, exc.message, details=exc.details, request_id=message_id
            )
        except Exception:
            logger.exception("error handling a socket message")
            await self.send_error_quietly(
                "INTERNAL_ERROR", "The server failed to handle the message", request_id=message_id
            )

    def request_data(self, kind, message):
        """The fields of a request: its `data` object."""
        return request_data(message)

    async def handle_ping(self, data, request_id):
        await self.send_reply(
            "pong",
            {"timestamp": envelopes.now_iso(), "client_id": self.client_id},
            request_id=request_id,
        )

    async def handle_pong(self, data, request_id):
        """A client's answer to the server's ping: activity is already recorded."""

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

    async def send_error_quietly(self, error_code, message, *, details=None, request_id=None):
        """The error frame of a failed message. Should the socket be gone, the server's
        disconnect message follows and ends the consumer: raising here would skip it."""
        try:
            await self.send_error(error_code, message, details=details, request_id=request_id)
        except Exception as exc:
            logger.debug("could not send an error frame: %s", exc)

    async def refuse(self, error_code, message, close_code, details=None):
        """Send an error frame, then close with `close_code` (DESIGN.md "Auth")."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send_raw(envelopes.error(error_code, message, details=details))
        await self.leave()
        await self.close(code=close_code)

    async def close(self, code=None, reason=None):
        """Channels' `close`; a code the server refuses (daphne without the
        `daphne_close_codes` fast path) goes out as its stand-in, 4013 for 1013: the socket
        always closes (docs/servers.md)."""
        await servers.close_socket(super().close, code, reason)

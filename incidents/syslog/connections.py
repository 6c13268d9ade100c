"""The stream connections of the syslog receiver (TCP, TLS and RELP together): how many
may be open, and closing the idle ones."""

import asyncio
import contextlib
import logging
import ssl
import time

from incidents.syslog.sockets import peer_address

logger = logging.getLogger(__name__)


class Connection:
    """One open TCP, TLS or RELP connection. `farewell`: bytes sent to the peer when the
    receiver stops (RELP's `serverclose`), or None."""

    __slots__ = ("busy", "farewell", "last_active", "peer", "transport", "writer")

    def __init__(self, writer, transport, peer, farewell=None):
        self.writer = writer
        self.transport = transport
        self.peer = peer
        self.farewell = farewell
        self.last_active = time.monotonic()
        self.busy = False  # waiting for the sink, not for the peer: never idle


class Connections:
    """The open connections: beyond `max_connections` new ones are closed at once; one
    that has read nothing for `idle_timeout` seconds (and does not wait for the sink) is
    closed by the sweeper. A connection's conversation is its handler's
    (`handler.serve(reader, writer, connection)`, `incidents.syslog.streams`)."""

    def __init__(self, *, max_connections, idle_timeout):
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.open = set()
        self.total = 0
        self.refused = 0
        self.timed_out = 0
        self._sweeper = None

    async def serve(self, name, handler, reader, writer):
        """Admit a new connection of transport `name` and let `handler` serve it until
        it ends; it is closed afterwards whatever happened."""
        if len(self.open) >= self.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        connection = Connection(
            writer, name, peer_address(peer[0]) if peer else "", handler.farewell
        )
        self.open.add(connection)
        self.total += 1
        try:
            await handler.serve(reader, writer, connection)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            logger.debug("syslog %s connection from %s ended: %s", name, connection.peer, exc)
        except Exception:
            logger.exception("syslog %s connection from %s failed", name, connection.peer)
        finally:
            self.open.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def close_all(self):
        """Close every open connection, after its farewell."""
        for connection in list(self.open):
            if connection.farewell is not None:
                with contextlib.suppress(Exception):
                    connection.writer.write(connection.farewell)
            connection.writer.close()

    # -- idle connections -----------------------------------------------------------------------

    def start_sweeping(self):
        """Close idle connections from now on (a task of the running loop)."""
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="syslog-idle-sweeper")

    def stop_sweeping(self):
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep_idle(self):
        idle = self.idle_timeout
        interval = max(0.05, min(idle / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - idle
            for connection in list(self.open):
                if not connection.busy and connection.last_active < deadline:
                    self.timed_out += 1
                    logger.info(
                        "closing the idle syslog %s connection from %s",
                        connection.transport,
                        connection.peer,
                    )
                    connection.writer.close()

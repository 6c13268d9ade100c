"""The syslog receiver: UDP, TCP, TLS and RELP listeners on one asyncio event loop.

    receiver = SyslogReceiver(sink, ReceiverConfig(udp_port=5514, tcp_port=5514))
    await receiver.start()          # binds every configured port, or raises OSError
    ...
    await receiver.stop()

- UDP (RFC 5426): one datagram is one message. The socket is drained on each wake-up
  and what was read is offered to the sink at once (`sink.offer`): what does not fit is
  dropped and counted, as UDP senders cannot be slowed down.
- TCP (RFC 6587) and TLS (RFC 5425): octet-counted and LF-terminated frames, decided per
  frame (`framing.FrameDecoder`). Lines go to `await sink.put(lines)`; while the sink has
  no room the connection is not read, so the kernel's buffers fill and the sender waits.
- RELP (`relp`): answered once stored (`sink.put_durable`), optionally over TLS.

Oversized and binary messages are dropped and counted as malformed
(`sink.count_malformed`), and the connection goes on. Each connection holds at most one
read and one incomplete message; connections idle for `idle_timeout` are closed; beyond
`max_connections` (TCP, TLS and RELP together) new ones are closed at once.
"""

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass, replace

from incidents.syslog.framing import FrameDecoder, message_text, message_texts
from incidents.syslog.relp import (
    RETRANSMIT_LOOKBACK,
    RelpDecoder,
    RelpProtocolError,
    RelpSession,
    encode_frame,
)
from incidents.syslog.routing import source_for
from incidents.syslog.sink import ReceivedLine

logger = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
# Datagrams read from the UDP socket per wake-up before the loop serves others.
UDP_BURST = 512
TRANSPORTS = ("udp", "tcp", "tls", "relp")


@dataclass(frozen=True)
class ReceiverConfig:
    """Where and how to listen. A port of None is off; 0 asks the system for a free one
    (tests), which `SyslogReceiver.addresses` then shows."""

    bind: str = "127.0.0.1"
    udp_port: int | None = None
    tcp_port: int | None = None
    tls_port: int | None = None
    relp_port: int | None = None
    relp_tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    max_message_bytes: int = 65536
    max_connections: int = 1000
    idle_timeout: float = 3600.0
    udp_receive_buffer: int = 4 * 1024 * 1024
    tls_handshake_timeout: float = 10.0

    @classmethod
    def from_settings(cls, **overrides):
        """The SYSLOG_* settings (a port of 0 there means off), then `overrides`."""
        from django.conf import settings

        def port(name):
            value = getattr(settings, name, 0)
            return value or None

        config = cls(
            bind=settings.SYSLOG_BIND,
            udp_port=port("SYSLOG_UDP_PORT"),
            tcp_port=port("SYSLOG_TCP_PORT"),
            tls_port=port("SYSLOG_TLS_PORT"),
            relp_port=port("SYSLOG_RELP_PORT"),
            relp_tls=settings.SYSLOG_RELP_TLS,
            tls_cert=settings.SYSLOG_TLS_CERT,
            tls_key=settings.SYSLOG_TLS_KEY,
            tls_client_ca=settings.SYSLOG_TLS_CLIENT_CA,
            max_message_bytes=settings.SYSLOG_MAX_MESSAGE_BYTES,
            max_connections=settings.SYSLOG_MAX_CONNECTIONS,
            idle_timeout=settings.SYSLOG_IDLE_TIMEOUT,
        )
        return replace(config, **overrides)

    @property
    def enabled(self):
        """True when at least one listener is configured."""
        return any(
            port is not None
            for port in (self.udp_port, self.tcp_port, self.tls_port, self.relp_port)
        )

    def ssl_context(self):
        """The server TLS context (TLS 1.2 and later), or None without a certificate.
        With `tls_client_ca`, clients must present a certificate it signed (mutual TLS,
        as RFC 5425 recommends)."""
        if not (self.tls_cert and self.tls_key):
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_client_ca:
            context.load_verify_locations(self.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class _Connection:
    """One open TCP, TLS or RELP connection."""

    __slots__ = ("busy", "last_active", "peer", "transport", "writer")

    def __init__(self, writer, transport, peer):
        self.writer = writer
        self.transport = transport
        self.peer = peer
        self.last_active = time.monotonic()
        self.busy = False  # waiting for the sink, not for the peer: never idle


class SyslogReceiver:
    """Receives syslog over the transports `config` enables and hands the lines to `sink`
    (the interface of `incidents.syslog.sink`)."""

    def __init__(self, sink, config):
        self.sink = sink
        self.config = config
        self.addresses = {}
        self.started_at = None
        self._servers = []
        self._udp_socket = None
        self._connections = set()
        self._relp_stores = {}  # peer -> the stores of its RELP lines under way
        self._sweeper = None
        self._loop = None
        self._failing = ""
        self.received = dict.fromkeys(TRANSPORTS, 0)
        self.malformed = dict.fromkeys(TRANSPORTS, 0)
        self.udp_dropped = 0
        self.connections_total = 0
        self.connections_refused = 0
        self.connections_timed_out = 0
        self.relp_resent_skipped = 0
        self.relp_protocol_errors = 0

    def __repr__(self):
        listening = ", ".join(
            f"{name} {address[0]}:{address[1]}" for name, address in self.addresses.items()
        )
        return f"<SyslogReceiver {listening or 'stopped'}>"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self):
        """Bind every configured listener. When one cannot be bound, the others are closed
        again and the OSError says which one."""
        config = self.config
        self._loop = asyncio.get_running_loop()
        context = None
        if config.tls_port is not None or (config.relp_port is not None and config.relp_tls):
            context = config.ssl_context()
            if context is None:
                raise ValueError("TLS needs SYSLOG_TLS_CERT and SYSLOG_TLS_KEY")
        try:
            if config.udp_port is not None:
                self._start_udp(config.bind, config.udp_port)
            streams = [
                ("tcp", config.tcp_port, self._serve_syslog, None),
                ("tls", config.tls_port, self._serve_syslog, context),
                ("relp", config.relp_port, self._serve_relp, context if config.relp_tls else None),
            ]
            for name, port, serve, ssl_context in streams:
                if port is not None:
                    await self._start_stream(name, port, serve, ssl_context)
        except OSError as exc:
            await self.stop()
            raise OSError(exc.errno, f"syslog {self._failing}: {exc.strerror or exc}") from exc
        self.started_at = time.time()
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="syslog-idle-sweeper")
        return self

    async def stop(self, timeout=5.0):
        """Stop listening and close every connection (RELP sessions are told
        `serverclose` first); lines already handed to the sink stay there."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._udp_socket is not None:
            self._loop.remove_reader(self._udp_socket.fileno())
            self._udp_socket.close()
            self._udp_socket = None
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            if connection.transport == "relp":
                with contextlib.suppress(Exception):
                    connection.writer.write(encode_frame(0, "serverclose"))
            connection.writer.close()
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout)
        stores = [task for tasks in self._relp_stores.values() for task in tasks]
        if stores:
            await asyncio.wait(stores, timeout=timeout)
        self.addresses = {}

    def stats(self):
        """Counters since start, per transport where it applies."""
        return {
            "listening": {name: f"{host}:{port}" for name, (host, port) in self.addresses.items()},
            "received": dict(self.received),
            "malformed": dict(self.malformed),
            "udp_dropped": self.udp_dropped,
            "udp_kernel_drops": self._udp_kernel_drops(),
            "connections_open": len(self._connections),
            "connections_total": self.connections_total,
            "connections_refused": self.connections_refused,
            "connections_timed_out": self.connections_timed_out,
            "relp_resent_skipped": self.relp_resent_skipped,
            "relp_protocol_errors": self.relp_protocol_errors,
        }

    # -- UDP ------------------------------------------------------------------------------------

    def _udp_kernel_drops(self):
        """Datagrams the kernel dropped because the socket's buffer was full (Linux: the
        `drops` column of /proc/net/udp and udp6 for this socket's inode); None when that
        cannot be read."""
        if self._udp_socket is None:
            return None
        inode = str(os.fstat(self._udp_socket.fileno()).st_ino)
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(table) as rows:
                    for row in rows:
                        fields = row.split()
                        if len(fields) > 12 and fields[9] == inode:
                            return int(fields[-1])
            except (OSError, ValueError):
                continue
        return None

    def _start_udp(self, host, port):
        self._failing = f"udp {host}:{port}"
        sock = bound_socket(host, port, socket.SOCK_DGRAM)
        try:
            # A bigger buffer rides out bursts while the loop is busy elsewhere (the
            # kernel caps it at net.core.rmem_max).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.udp_receive_buffer)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._udp_socket = sock
        self._loop.add_reader(sock.fileno(), self._udp_readable, sock)
        self.addresses["udp"] = sock.getsockname()[:2]

    def _udp_readable(self, sock):
        # Drain up to UDP_BURST datagrams per wake-up: one sink call for all of them,
        # and far fewer trips through the event loop than one per datagram.
        lines = []
        malformed = 0
        max_size = self.config.max_message_bytes
        received_at = time.time()
        for _ in range(UDP_BURST):
            try:
                data, address = sock.recvfrom(max_size + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors reported on the socket
                logger.debug("syslog udp: %s", exc)
                break
            if len(data) > max_size:
                malformed += 1
                continue
            text = message_text(data)
            if text is None:
                malformed += 1
            elif text:
                peer = address[0] if ":" not in address[0] else peer_address(address[0])
                lines.append(ReceivedLine(text, source_for(text), received_at, "udp", peer))
        if malformed:
            self._count_malformed(malformed, "udp")
        if lines:
            self.received["udp"] += len(lines)
            accepted = self.sink.offer(lines)
            self.udp_dropped += len(lines) - accepted

    # -- TCP, TLS, RELP connections -------------------------------------------------------------

    async def _start_stream(self, name, port, serve, ssl_context):
        host = self.config.bind
        self._failing = f"{name} {host}:{port}"

        async def connected(reader, writer):
            await self._connected(name, serve, reader, writer)

        sock = bound_socket(host, port, socket.SOCK_STREAM)
        try:
            server = await asyncio.start_server(
                connected,
                sock=sock,
                limit=READ_SIZE,
                ssl=ssl_context,
                ssl_handshake_timeout=self.config.tls_handshake_timeout if ssl_context else None,
                backlog=256,
            )
        except BaseException:
            sock.close()
            raise
        self._servers.append(server)
        self.addresses[name] = server.sockets[0].getsockname()[:2]

    async def _connected(self, name, serve, reader, writer):
        if len(self._connections) >= self.config.max_connections:
            self.connections_refused += 1
            writer.transport.abort()
            return
        peer = writer.get_extra_info("peername")
        connection = _Connection(writer, name, peer_address(peer[0]) if peer else "")
        self._connections.add(connection)
        self.connections_total += 1
        try:
            await serve(reader, writer, connection)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            logger.debug("syslog %s connection from %s ended: %s", name, connection.peer, exc)
        except Exception:
            logger.exception("syslog %s connection from %s failed", name, connection.peer)
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_syslog(self, reader, writer, connection):
        """Plain syslog frames (TCP or TLS) until the peer closes."""
        decoder = FrameDecoder(self.config.max_message_bytes)
        transport, peer = connection.transport, connection.peer
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                rest = decoder.finish()
                if rest is not None:
                    await self._deliver([rest], 0, transport, peer, connection)
                return
            connection.last_active = time.monotonic()
            frames, oversized = decoder.feed(data)
            if frames or oversized:
                await self._deliver(frames, oversized, transport, peer, connection)

    async def _deliver(self, frames, malformed, transport, peer, connection):
        received_at = time.time()
        lines = []
        for text in message_texts(frames):
            if text is None:
                malformed += 1
            elif text:
                lines.append(ReceivedLine(text, source_for(text), received_at, transport, peer))
        if malformed:
            self._count_malformed(malformed, transport)
        if lines:
            self.received[transport] += len(lines)
            connection.busy = True
            try:
                await self.sink.put(lines)
            finally:
                connection.busy = False
                connection.last_active = time.monotonic()

    async def _serve_relp(self, reader, writer, connection):
        """One RELP session (see `incidents.syslog.relp`)."""
        decoder = RelpDecoder(self.config.max_message_bytes)
        peer = connection.peer
        session = RelpSession(lambda: self._recent_relp_lines(peer))
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            connection.last_active = time.monotonic()
            try:
                frames = decoder.feed(data)
            except RelpProtocolError as exc:
                # INFO, not WARNING: port scanners do this all day.
                self.relp_protocol_errors += 1
                logger.info("RELP session from %s: %s; closing it", peer, exc)
                return
            answer = await session.answer(frames)
            if answer.malformed:
                self._count_malformed(answer.malformed, "relp")
            if answer.resent:
                self.relp_resent_skipped += answer.resent
                logger.info(
                    "RELP session from %s: %d frames sent again were stored already",
                    peer,
                    answer.resent,
                )
            if answer.texts:
                received_at = time.time()
                lines = [
                    ReceivedLine(text, source_for(text), received_at, "relp", peer)
                    for text in answer.texts
                ]
                self.received["relp"] += len(lines)
                connection.busy = True
                try:
                    await self._store_relp(lines, peer)
                except Exception as exc:
                    # Not stored, so not answered: the sender sends them again.
                    logger.warning("RELP lines from %s were not stored: %s", peer, exc)
                    return
                finally:
                    connection.busy = False
                    connection.last_active = time.monotonic()
            if answer.replies and answer.end != "abort":
                writer.write(answer.replies)
                await writer.drain()
            if answer.end:
                return

    async def _store_relp(self, lines, peer):
        # Each store is a task of its own, known by peer: a new session from the same
        # peer waits for them before it reads what was stored (see _recent_relp_lines),
        # and a store under way finishes even when its connection is gone.
        task = asyncio.ensure_future(self.sink.put_durable(lines))
        stores = self._relp_stores.setdefault(peer, set())
        stores.add(task)

        def forget(done):
            stores.discard(done)
            if not stores and self._relp_stores.get(peer) is stores:
                del self._relp_stores[peer]

        task.add_done_callback(forget)
        await asyncio.shield(task)

    async def _recent_relp_lines(self, peer):
        """The lines last stored from `peer` over RELP, once the stores under way for its
        earlier sessions are done (empty when the sink cannot tell)."""
        stores = self._relp_stores.get(peer)
        if stores:
            await asyncio.wait(set(stores))
        recent = getattr(self.sink, "recent_durable_lines", None)
        if recent is None:
            return []
        return await recent(transport="relp", peer=peer, limit=RETRANSMIT_LOOKBACK)

    # -- housekeeping ---------------------------------------------------------------------------

    def _count_malformed(self, count, transport):
        self.malformed[transport] += count
        self.sink.count_malformed(count, transport=transport)

    async def _sweep_idle(self):
        idle = self.config.idle_timeout
        interval = max(0.05, min(idle / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - idle
            for connection in list(self._connections):
                if not connection.busy and connection.last_active < deadline:
                    self.connections_timed_out += 1
                    logger.info(
                        "closing the idle syslog %s connection from %s",
                        connection.transport,
                        connection.peer,
                    )
                    connection.writer.close()


def bound_socket(host, port, kind):
    """A socket of `kind` (SOCK_STREAM, SOCK_DGRAM) bound to `host`:`port`. On an IPv6
    address it takes IPv4 too (`::` is every address of both families), which asyncio's
    own servers refuse to do. TCP sockets reuse an address left in TIME_WAIT (a quick
    restart); UDP ones do not, as on UDP that would let a second process share the port."""
    family, sock_type, proto, _name, address = socket.getaddrinfo(
        host or None, port, type=kind, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, sock_type, proto)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_address(host):
    """A sender's address as text; an IPv4 address seen on a dual-stack socket
    (`::ffff:192.0.2.1`) as the IPv4 address it is."""
    if ":" in host:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host.split("%", 1)[0])
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
    return host


def is_address_in_use(exc):
    """True for the OSError of a port another process holds."""
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE

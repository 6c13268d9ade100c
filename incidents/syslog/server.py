"""The syslog receiver: UDP, TCP, TLS and RELP listeners on one asyncio event loop.

    receiver = SyslogReceiver(sink, ReceiverConfig(udp_port=5514, tcp_port=5514))
    await receiver.start()          # binds every configured port, or raises OSError
    ...
    await receiver.stop()

- UDP (RFC 5426, `udp.UdpListener`): one datagram is one message. The socket is drained
  on each wake-up and what was read is offered to the sink at once (`sink.offer`): what
  does not fit is dropped and counted, as UDP senders cannot be slowed down.
- TCP (RFC 6587) and TLS (RFC 5425), `streams.SyslogStream`: octet-counted and
  LF-terminated frames, decided per frame (`framing.FrameDecoder`). Lines go to
  `await sink.put(lines)`; while the sink has no room the connection is not read, so the
  kernel's buffers fill and the sender waits.
- RELP (`relp`, `streams.RelpStream`): answered once stored (`sink.put_durable`),
  optionally over TLS.

Oversized and binary messages are dropped and counted as malformed
(`sink.count_malformed`), and the connection goes on. Each connection holds at most one
read and one incomplete message; connections idle for `idle_timeout` are closed; beyond
`max_connections` (TCP, TLS and RELP together) new ones are closed at once
(`connections.Connections`). What is counted: `counters.ReceiverCounters`.
"""

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, replace

from incidents.syslog.connections import Connections
from incidents.syslog.counters import TRANSPORTS, ReceiverCounters
from incidents.syslog.sockets import bound_socket, is_address_in_use, peer_address
from incidents.syslog.streams import READ_SIZE, RelpStream, SyslogStream
from incidents.syslog.udp import UDP_BURST, UdpListener

# Re-exported: the receiver's tests and benchmark read them here.
__all__ = [
    "READ_SIZE",
    "TRANSPORTS",
    "UDP_BURST",
    "ReceiverConfig",
    "SyslogReceiver",
    "bound_socket",
    "is_address_in_use",
    "peer_address",
]


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


class SyslogReceiver:
    """Receives syslog over the transports `config` enables and hands the lines to `sink`
    (the interface of `incidents.syslog.sink`): binds and closes the listeners, and
    gathers their figures. The listening, the conversations and the counting are its
    parts' (`udp`, `connections` with the `streams` handlers, `counters`)."""

    def __init__(self, sink, config):
        self.sink = sink
        self.config = config
        self.addresses = {}
        self.started_at = None
        self.counters = ReceiverCounters(sink)
        self.udp = UdpListener(
            sink,
            self.counters,
            max_message_bytes=config.max_message_bytes,
            receive_buffer=config.udp_receive_buffer,
        )
        self.connections = Connections(
            max_connections=config.max_connections, idle_timeout=config.idle_timeout
        )
        self.syslog_stream = SyslogStream(
            sink, self.counters, max_message_bytes=config.max_message_bytes
        )
        self.relp_stream = RelpStream(
            sink, self.counters, max_message_bytes=config.max_message_bytes
        )
        self._servers = []
        self._failing = ""

    def __repr__(self):
        listening = ", ".join(
            f"{name} {address[0]}:{address[1]}" for name, address in self.addresses.items()
        )
        return f"<SyslogReceiver {listening or 'stopped'}>"

    async def start(self):
        """Bind every configured listener. When one cannot be bound, the others are closed
        again and the OSError says which one."""
        config = self.config
        context = None
        if config.tls_port is not None or (config.relp_port is not None and config.relp_tls):
            context = config.ssl_context()
            if context is None:
                raise ValueError("TLS needs SYSLOG_TLS_CERT and SYSLOG_TLS_KEY")
        try:
            if config.udp_port is not None:
                self._failing = f"udp {config.bind}:{config.udp_port}"
                self.addresses["udp"] = self.udp.start(
                    asyncio.get_running_loop(), config.bind, config.udp_port
                )
            streams = [
                ("tcp", config.tcp_port, self.syslog_stream, None),
                ("tls", config.tls_port, self.syslog_stream, context),
                ("relp", config.relp_port, self.relp_stream, context if config.relp_tls else None),
            ]
            for name, port, handler, ssl_context in streams:
                if port is not None:
                    await self._start_stream(name, port, handler, ssl_context)
        except OSError as exc:
            await self.stop()
            raise OSError(exc.errno, f"syslog {self._failing}: {exc.strerror or exc}") from exc
        self.started_at = time.time()
        self.connections.start_sweeping()
        return self

    async def _start_stream(self, name, port, handler, ssl_context):
        host = self.config.bind
        self._failing = f"{name} {host}:{port}"
        connections = self.connections

        async def connected(reader, writer):
            await connections.serve(name, handler, reader, writer)

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

    async def stop(self, timeout=5.0):
        """Stop listening and close every connection (RELP sessions are told
        `serverclose` first); lines already handed to the sink stay there."""
        self.connections.stop_sweeping()
        self.udp.close()
        for server in self._servers:
            server.close()
        self.connections.close_all()
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout)
        await self.relp_stream.wait_stored(timeout)
        self.addresses = {}

    def stats(self):
        """Counters since start, per transport where it applies."""
        counters, connections = self.counters, self.connections
        return {
            "listening": {name: f"{host}:{port}" for name, (host, port) in self.addresses.items()},
            "received": dict(counters.received),
            "malformed": dict(counters.malformed),
            "udp_dropped": counters.udp_dropped,
            "udp_kernel_drops": self.udp.kernel_drops(),
            "connections_open": len(connections.open),
            "connections_total": connections.total,
            "connections_refused": connections.refused,
            "connections_timed_out": connections.timed_out,
            "relp_resent_skipped": counters.relp_resent_skipped,
            "relp_protocol_errors": counters.relp_protocol_errors,
        }

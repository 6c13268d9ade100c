"""The UDP listener of the syslog receiver (RFC 5426): one datagram is one message."""

import contextlib
import logging
import os
import socket
import time

from incidents.syslog.framing import message_text
from incidents.syslog.routing import source_for
from incidents.syslog.sink import ReceivedLine
from incidents.syslog.sockets import bound_socket, peer_address

logger = logging.getLogger(__name__)

# Datagrams read from the UDP socket per wake-up before the loop serves others.
UDP_BURST = 512


class UdpListener:
    """A UDP socket read on the event loop. The socket is drained on each wake-up and
    what was read is offered to the sink at once (`sink.offer`): what does not fit is
    dropped and counted (`counters.udp_dropped`), as UDP senders cannot be slowed down."""

    def __init__(self, sink, counters, *, max_message_bytes, receive_buffer):
        self.sink = sink
        self.counters = counters
        self.max_message_bytes = max_message_bytes
        self.receive_buffer = receive_buffer
        self._socket = None
        self._loop = None

    def start(self, loop, host, port):
        """Bind `host`:`port` and read it on `loop`; returns the bound address."""
        sock = bound_socket(host, port, socket.SOCK_DGRAM)
        try:
            # A bigger buffer rides out bursts while the loop is busy elsewhere (the
            # kernel caps it at net.core.rmem_max).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable, sock)
        return sock.getsockname()[:2]

    def close(self):
        """Stop reading and close the socket (nothing when not started)."""
        if self._socket is not None:
            self._loop.remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None

    def kernel_drops(self):
        """Datagrams the kernel dropped because the socket's buffer was full (Linux: the
        `drops` column of /proc/net/udp and udp6 for this socket's inode); None when that
        cannot be read."""
        if self._socket is None:
            return None
        inode = str(os.fstat(self._socket.fileno()).st_ino)
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

    def _readable(self, sock):
        # Drain up to UDP_BURST datagrams per wake-up: one sink call for all of them,
        # and far fewer trips through the event loop than one per datagram.
        lines = []
        malformed = 0
        max_size = self.max_message_bytes
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
        counters = self.counters
        if malformed:
            counters.count_malformed(malformed, "udp")
        if lines:
            counters.received["udp"] += len(lines)
            accepted = self.sink.offer(lines)
            counters.udp_dropped += len(lines) - accepted

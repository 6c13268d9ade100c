"""What is said on a syslog stream connection: plain frames (TCP, TLS) or RELP.

A handler serves one connection at a time per call (`serve(reader, writer, connection)`,
called by `connections.Connections`) and hands the lines it reads to the sink; its
`farewell` is what the peer is told when the receiver stops.
"""

import asyncio
import logging
import time

from incidents.syslog.framing import FrameDecoder, message_texts
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


class SyslogStream:
    """Plain syslog over TCP (RFC 6587) or TLS (RFC 5425): octet-counted and
    LF-terminated frames, decided per frame (`framing.FrameDecoder`). Lines go to
    `await sink.put(lines)`; while the sink has no room the connection is not read, so
    the kernel's buffers fill and the sender waits."""

    farewell = None

    def __init__(self, sink, counters, *, max_message_bytes):
        self.sink = sink
        self.counters = counters
        self.max_message_bytes = max_message_bytes

    async def serve(self, reader, writer, connection):
        """Frames until the peer closes."""
        decoder = FrameDecoder(self.max_message_bytes)
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
        counters = self.counters
        if malformed:
            counters.count_malformed(malformed, transport)
        if lines:
            counters.received[transport] += len(lines)
            connection.busy = True
            try:
                await self.sink.put(lines)
            finally:
                connection.busy = False
                connection.last_active = time.monotonic()


class RelpStream:
    """RELP sessions (`incidents.syslog.relp`), optionally over TLS: lines are answered
    once stored (`sink.put_durable`); frames a sender sends again after a crash are
    recognised against the lines last stored from it (`sink.recent_durable_lines`)."""

    farewell = encode_frame(0, "serverclose")

    def __init__(self, sink, counters, *, max_message_bytes):
        self.sink = sink
        self.counters = counters
        self.max_message_bytes = max_message_bytes
        self._stores = {}  # peer -> the stores of its RELP lines under way

    async def serve(self, reader, writer, connection):
        """One RELP session, until the peer closes it or breaks the protocol."""
        decoder = RelpDecoder(self.max_message_bytes)
        peer = connection.peer
        counters = self.counters
        session = RelpSession(lambda: self._recent_lines(peer))
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            connection.last_active = time.monotonic()
            try:
                frames = decoder.feed(data)
            except RelpProtocolError as exc:
                # INFO, not WARNING: port scanners do this all day.
                counters.relp_protocol_errors += 1
                logger.info("RELP session from %s: %s; closing it", peer, exc)
                return
            answer = await session.answer(frames)
            if answer.malformed:
                counters.count_malformed(answer.malformed, "relp")
            if answer.resent:
                counters.relp_resent_skipped += answer.resent
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
                counters.received["relp"] += len(lines)
                connection.busy = True
                try:
                    await self._store(lines, peer)
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

    async def wait_stored(self, timeout):
        """Wait (at most `timeout` seconds) for the stores under way to finish."""
        stores = [task for tasks in self._stores.values() for task in tasks]
        if stores:
            await asyncio.wait(stores, timeout=timeout)

    async def _store(self, lines, peer):
        # Each store is a task of its own, known by peer: a new session from the same
        # peer waits for them before it reads what was stored (see _recent_lines), and
        # a store under way finishes even when its connection is gone.
        task = asyncio.ensure_future(self.sink.put_durable(lines))
        stores = self._stores.setdefault(peer, set())
        stores.add(task)

        def forget(done):
            stores.discard(done)
            if not stores and self._stores.get(peer) is stores:
                del self._stores[peer]

        task.add_done_callback(forget)
        await asyncio.shield(task)

    async def _recent_lines(self, peer):
        """The lines last stored from `peer` over RELP, once the stores under way for its
        earlier sessions are done (empty when the sink cannot tell)."""
        stores = self._stores.get(peer)
        if stores:
            await asyncio.wait(set(stores))
        recent = getattr(self.sink, "recent_durable_lines", None)
        if recent is None:
            return []
        return await recent(transport="relp", peer=peer, limit=RETRANSMIT_LOOKBACK)

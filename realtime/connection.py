"""One live socket's delivery state: what it wants, what it may see, and its outbound queue.

The hub offers each event to each local connection with `offer()`: a few comparisons on
metadata, then a push onto a bounded per-priority queue. A per-connection writer task
drains the queue, so one slow or stuck client never delays the others, and coalesces a
burst into `batch` frames (DESIGN.md "The path of one event").
"""

import asyncio
import contextlib
import logging
import time
from collections import deque

from realtime import access, envelopes
from realtime.catalogue import Audience

logger = logging.getLogger(__name__)

CRITICAL = 9  # priorities 9-10 are "critical": sent at once, never dropped silently
MAX_EVENTS_PER_FRAME = 100
CLOSE_TRY_AGAIN_LATER = 1013
NOT_IN_AUDIENCE = "audience"
FILTERED = "filter"


class Connection:
    """Delivery state of one socket. Lives in the hub of its process."""

    def __init__(
        self,
        *,
        send,
        connection_id,
        client_id,
        principal,
        capacity,
        batch_window,
        on_overflow,
        debug=False,
    ):
        self._send = send
        self.connection_id = connection_id
        self.client_id = client_id
        self.principal = principal
        self.capacity = capacity
        self.batch_window = batch_window
        self.on_overflow = on_overflow
        self.debug = debug
        self.connected_at = time.time()
        self.last_activity = self.connected_at
        self.allowed = frozenset()
        self.subscriptions = frozenset()
        self.filter = None
        self.watching = set()
        self.messages_sent = 0
        self.messages_received = 0
        self.events_sent = 0
        self.dropped = 0
        self.filtered = 0
        self.last_event_id = 0
        self.closed = False
        self.latency_observer = None
        self._queues = [deque() for _ in range(11)]  # index = priority 1..10
        self._size = 0
        self._critical = 0
        self._paused = False
        self._last_frame_at = 0.0
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    # --- what this connection receives ---------------------------------------------------

    def offer(self, event):
        """Queue `event` if this connection should get it. Called by the hub's fan-out for
        connections subscribed to the event type; never awaits."""
        refusal = self._refusal(event)
        if refusal is None:
            self.push(event)
        elif refusal == FILTERED:
            self.filtered += 1
            if self.debug:
                self.send_debug("filtered", event, "the connection's filter excludes it")

    def wants(self, event):
        """Whether this connection would receive `event` live (replay uses the same test)."""
        return event.entry.name in self.subscriptions and self._refusal(event) is None

    def _refusal(self, event):
        entry = event.entry
        if entry.audience is not Audience.EVERYONE and not (
            access.in_audience(self.principal, entry, event.users, event.groups)
            or (event.object_key and event.object_key in self.watching)
        ):
            return NOT_IN_AUDIENCE
        if self.filter is not None and not self.filter.matches(
            entry.name, event.priority, event.category, event.source
        ):
            return FILTERED
        return None

    def push(self, event):
        """Put an event on the bounded queue, shedding the lowest priority, oldest first."""
        if self._size >= self.capacity:
            lowest = next(p for p in range(1, 11) if self._queues[p])
            if event.priority < lowest:
                self._drop(event)
                return
            if lowest >= CRITICAL:
                # Only critical events are queued and the client is not taking them: close
                # (1013) rather than lose one; the client reconnects and replays.
                self._overflow(event)
                return
            self._drop(self._queues[lowest].popleft())
            self._size -= 1
        self._queues[event.priority].append(event)
        self._size += 1
        if event.priority >= CRITICAL:
            self._critical += 1
            self._urgent.set()
        self._wakeup.set()

    def _drop(self, event):
        self.dropped += 1
        if self.debug:
            self.send_debug("dropped", event, "the outbound queue is full")

    def _overflow(self, event):
        self.dropped += 1
        if not self.closed:
            logger.warning(
                "connection %s cannot take critical event %s: closing with 1013",
                self.connection_id,
                event.id,
            )
            self.closed = True
            self.on_overflow(self)

    def resume_position(self, latest_seen):
        """The message id a reconnect should replay after: everything up to it was sent or
        not wanted. Events still queued at disconnect come after it."""
        queued = [event.id for queue in self._queues for event in queue]
        position = max(self.last_event_id, latest_seen)
        return min(position, min(queued) - 1) if queued else position

    @property
    def queue_depth(self):
        return self._size

    # --- replay seam ------------------------------------------------------------------------

    def pause(self):
        """Hold live events in the queue while a replay is being sent."""
        self._paused = True

    def resume(self, already_sent_ids=()):
        """Send held live events, skipping the ones the replay already delivered."""
        if already_sent_ids:
            for queue in self._queues:
                kept = [event for event in queue if event.id not in already_sent_ids]
                if len(kept) != len(queue):
                    queue.clear()
                    queue.extend(kept)
            self._size = sum(len(queue) for queue in self._queues)
            self._critical = len(self._queues[9]) + len(self._queues[10])
        self._paused = False
        self._wakeup.set()

    # --- writing -----------------------------------------------------------------------------

    async def send_text(self, text):
        """Send one frame now (replies, errors, pings); raises when the socket is gone."""
        self.messages_sent += 1
        self._last_frame_at = time.monotonic()
        await self._send({"type": "websocket.send", "text": text})

    def send_debug(self, decision, event, reason):
        if self.closed:
            return
        frame = envelopes.reply(
            "debug",
            {
                "decision": decision,
                "event_type": event.entry.name,
                "message_id": str(event.id),
                "priority": event.priority,
                "reason": reason,
            },
        )
        asyncio.get_running_loop().create_task(self._send_quietly(frame))

    async def _send_quietly(self, text):
        with contextlib.suppress(Exception):  # the socket closed meanwhile
            await self.send_text(text)

    async def _write_loop(self):
        try:
            while not self.closed:
                if not self._size or self._paused:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                # A burst: events due less than a batch window after the last frame wait
                # for the window to end and go out together. Critical ones never wait.
                wait = self._last_frame_at + self.batch_window - time.monotonic()
                if wait > 0 and not self._critical:
                    self._urgent.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._urgent.wait()
                    continue
                await self._send_events(self._take(MAX_EVENTS_PER_FRAME))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away under us
            logger.debug("writer of %s stopped: %s", self.connection_id, exc)

    def _take(self, limit):
        """Up to `limit` queued events, highest priority first, in order within a priority."""
        taken = []
        for priority in range(10, 0, -1):
            queue = self._queues[priority]
            while queue and len(taken) < limit:
                taken.append(queue.popleft())
            if len(taken) == limit:
                break
        self._size -= len(taken)
        self._critical -= sum(1 for event in taken if event.priority >= CRITICAL)
        return taken

    async def _send_events(self, events):
        frames = []
        unified = []
        for event in events:
            frame = event.frame_for(self.principal)
            if event.entry.typed:
                if unified:
                    frames.append(_unified_frame(unified))
                    unified = []
                frames.append(frame)
            else:
                unified.append(frame)
        if unified:
            frames.append(_unified_frame(unified))
        for frame in frames:
            await self.send_text(frame)
        self.events_sent += len(events)
        now = time.time()
        for event in events:
            if event.id > self.last_event_id:
                self.last_event_id = event.id
            if self.latency_observer is not None:
                self.latency_observer(now - event.published_at)

    def stop(self):
        """Stop the writer (the socket is closing)."""
        self.closed = True
        self._writer.cancel()

    def stats(self):
        return {
            "connection_id": self.connection_id,
            "client_id": self.client_id,
            "user": self.principal.username,
            "user_id": self.principal.user_id,
            "connected_at": envelopes.iso_timestamp(self.connected_at),
            "last_activity": envelopes.iso_timestamp(self.last_activity),
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "events_sent": self.events_sent,
            "events_dropped": self.dropped,
            "events_filtered": self.filtered,
            "queue_depth": self._size,
            "subscriptions": sorted(self.subscriptions),
        }


def _unified_frame(frames):
    return frames[0] if len(frames) == 1 else envelopes.batch_frame(frames)

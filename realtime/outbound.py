"""One socket's outbound queue: bounded, by priority, and batched.

An idle connection writes an event at once, from the hub's fan-out pass itself. A burst
that arrives within the batch window after a frame waits on a timer and goes out as one
`batch` frame; while bursts go on the window stretches (`realtime.writer`), so frames
get fewer and larger. Critical events never wait. One slow or stuck client never delays
the others: its backlog stays in its own queue.
"""

import asyncio
import logging
import time
from collections import deque

from realtime.writer import SocketWriter

logger = logging.getLogger(__name__)

CRITICAL = 9  # priorities 9-10 are "critical": sent at once, never dropped silently
MAX_EVENTS_PER_FRAME = 100
REPLAYED_MEMORY = 10  # seconds live copies of replayed events are looked out for


class OutboundQueue(SocketWriter):
    """Events on their way to one socket: written at once while it is idle, else queued
    (at most `capacity`, shedding the lowest priority, oldest first) and written when
    due. Held while a replay is sent (`pause`, `resume`).

    The middle layer of `Connection`: writes through `SocketWriter`; `on_overflow(self)`
    is called when a critical event cannot be queued (the socket closes with 1013), and
    `debug` tells the client about every event dropped."""

    __slots__ = (
        "capacity",
        "on_overflow",
        "debug",
        "dropped",
        "_queues",
        "_size",
        "_critical",
        "_paused",
        "_timer",
        "_replayed",
    )

    def __init__(self, *, capacity, on_overflow, debug, **writer):
        super().__init__(**writer)
        self.capacity = capacity
        self.on_overflow = on_overflow
        self.debug = debug
        self.dropped = 0
        self._queues = {}  # priority -> deque of events; only non-empty ones are kept
        self._size = 0
        self._critical = 0
        self._paused = False
        self._timer = None  # the end of the batch window, while events wait for it
        self._replayed = None  # ids a replay sent, while their live copies may still come

    def push(self, event):
        """Send `event` now if the connection is idle, else queue it."""
        if self.closed or (self._replayed is not None and event.id in self._replayed):
            return
        if self._ready_for(event):
            self._write_events((event,))
            return
        self._enqueue(event)
        self._schedule()

    def push_many(self, events, shared_frames=None):
        """`push` for several events that arrived together, highest priority first. An
        idle connection sends a frame's worth of them at once, as one frame; the rest are
        queued. The list may be shared with other connections: it is never changed.

        `shared_frames` is the fan-out pass's cache of frame texts: connections that get
        the same events get the same `batch` frame, built once."""
        if self.closed:
            return
        if self._replayed is not None:
            events = [event for event in events if event.id not in self._replayed]
            if not events:
                return
        if self._ready_for(events[0]):
            self._write_events(events[:MAX_EVENTS_PER_FRAME], shared_frames)
            events = events[MAX_EVENTS_PER_FRAME:]
            if not events:
                return
        for event in events:
            self._enqueue(event)
        self._schedule()

    def _ready_for(self, event):
        """Whether `event` may be written now, without queueing: nothing is queued or being
        sent, and it is critical or the batch window after the last frame is over."""
        return (
            not self._size
            and self._pending is None
            and not self._paused
            and (
                event.priority >= CRITICAL or time.monotonic() >= self._last_frame_at + self._window
            )
        )

    def _enqueue(self, event):
        if self.closed:
            return
        if self._size >= self.capacity:
            lowest = min(self._queues)
            if event.priority < lowest:
                self._drop(event)
                return
            if lowest >= CRITICAL:
                # Only critical events are queued and the client is not taking them: close
                # (1013) rather than lose one; the client reconnects and replays.
                self._overflow(event)
                return
            queue = self._queues[lowest]
            self._drop(queue.popleft())
            if not queue:
                del self._queues[lowest]
            self._size -= 1
        queue = self._queues.get(event.priority)
        if queue is None:
            queue = self._queues[event.priority] = deque()
        queue.append(event)
        self._size += 1
        if event.priority >= CRITICAL:
            self._critical += 1

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
            self.stop()
            self.on_overflow(self)

    def _schedule(self):
        """Write what is queued once it is due: critical events at once, a full frame's
        worth at once (waiting would only pile up more), the rest when the batch window
        ends. Never while a send is pending."""
        while self._size and self._pending is None and not self._paused and not self.closed:
            wait = self._last_frame_at + self._window - time.monotonic()
            if wait > 0 and not self._critical and self._size < MAX_EVENTS_PER_FRAME:
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(wait, self._window_ended)
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write_events(self._take(MAX_EVENTS_PER_FRAME))

    def _window_ended(self):
        self._timer = None
        self._schedule()

    def _take(self, limit):
        """Up to `limit` queued events, highest priority first, in order within a priority."""
        taken = []
        for priority in sorted(self._queues, reverse=True):
            queue = self._queues[priority]
            while queue and len(taken) < limit:
                taken.append(queue.popleft())
            if not queue:
                del self._queues[priority]
            if len(taken) == limit:
                break
        self._size -= len(taken)
        self._critical -= sum(1 for event in taken if event.priority >= CRITICAL)
        return taken

    @property
    def queue_depth(self):
        return self._size

    def resume_position(self, latest_seen):
        """The message id a reconnect should replay after: everything up to it was sent or
        not wanted. Events still queued at disconnect come after it."""
        queued = [event.id for queue in self._queues.values() for event in queue]
        position = max(self.last_event_id, latest_seen)
        return min(position, min(queued) - 1) if queued else position

    # --- replay seam ------------------------------------------------------------------------

    def pause(self):
        """Hold live events in the queue while a replay is being sent."""
        self._paused = True

    def resume(self, already_sent_ids=()):
        """Send held live events, skipping the ones the replay already delivered, now and
        for a while: a live copy may still be on its way (through Redis, or the hub's
        read of the event table)."""
        if already_sent_ids:
            self._replayed = frozenset(already_sent_ids)
            asyncio.get_running_loop().call_later(REPLAYED_MEMORY, self._forget_replayed)
            for priority, queue in list(self._queues.items()):
                kept = [event for event in queue if event.id not in already_sent_ids]
                if not kept:
                    del self._queues[priority]
                elif len(kept) != len(queue):
                    self._queues[priority] = deque(kept)
            self._size = sum(len(queue) for queue in self._queues.values())
            self._critical = sum(
                len(queue) for priority, queue in self._queues.items() if priority >= CRITICAL
            )
        self._paused = False
        self._schedule()

    def _forget_replayed(self):
        self._replayed = None

    def stop(self):
        """Stop writing (the socket is closing)."""
        super().stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

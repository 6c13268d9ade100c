"""One live socket's delivery state: what it wants, what it may see, and its outbound queue.

The hub offers each event to each local connection with `offer()`: a few comparisons on
metadata, then either a write straight to the socket or a push onto a bounded
per-priority queue (DESIGN.md "The path of one event").

Writing costs the most per delivered event, so it is done without a task or a wake-up
whenever it can be: an idle connection writes from the hub's fan-out pass itself. The
ASGI server's `send` completes without suspending while the socket's buffer has room, so
it is stepped by hand (`_write`); only a socket whose buffer is full gets a task that
finishes that one send and then drains the queue. A burst that arrives within the batch
window after a frame waits on a timer and goes out as one `batch` frame; while bursts go
on the window stretches (up to MAX_WINDOW_FACTOR times), so frames get fewer and larger.
Critical events never wait. One slow or stuck client never delays the others: its
backlog stays in its own queue.
"""

import asyncio
import contextlib
import logging
import time
import types
from collections import deque

from realtime import access, envelopes, servers
from realtime.catalogue import Audience

logger = logging.getLogger(__name__)

CRITICAL = 9  # priorities 9-10 are "critical": sent at once, never dropped silently
MAX_EVENTS_PER_FRAME = 100
CLOSE_TRY_AGAIN_LATER = 1013
NOT_IN_AUDIENCE = "audience"
FILTERED = "filter"
NOTHING_WATCHED = frozenset()
REPLAYED_MEMORY = 10  # seconds live copies of replayed events are looked out for
MAX_WINDOW_FACTOR = 4  # a sustained burst stretches the batch window up to this many times
FULL_BUFFER = 65536  # bytes held by the server for a socket that make it "full" (asyncio's mark)


class Connection:
    """Delivery state of one socket. Lives in the hub of its process.

    Thousands of these live in one process, hence the slots and the lazily made queues.
    """

    __slots__ = (
        "_send",
        "socket",
        "connection_id",
        "client_id",
        "principal",
        "capacity",
        "batch_window",
        "on_overflow",
        "debug",
        "flat",
        "connected_at",
        "last_activity",
        "allowed",
        "subscriptions",
        "filter",
        "watching",
        "messages_sent",
        "messages_received",
        "events_sent",
        "dropped",
        "filtered",
        "last_event_id",
        "closed",
        "latency_observer",
        "owner",
        "_queues",
        "_size",
        "_critical",
        "_paused",
        "_last_frame_at",
        "_window",
        "_timer",
        "_pending",
        "_replayed",
        "blocked_since",
    )

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
        flat=False,
        socket=None,
    ):
        self._send = send
        # The server's fast paths for this socket (realtime.servers); plain: only `send`.
        self.socket = socket if socket is not None else servers.access_for(send)
        self.connection_id = connection_id
        self.client_id = client_id
        self.principal = principal
        self.capacity = capacity
        self.batch_window = batch_window
        self.on_overflow = on_overflow
        self.debug = debug
        # The flat envelope of the DNS frontends (envelopes.flat_event_frame): every event
        # in a frame of its own, never a `batch`.
        self.flat = flat
        self.connected_at = time.time()
        self.last_activity = self.connected_at
        self.allowed = frozenset()
        self.subscriptions = frozenset()
        self.filter = None
        self.watching = NOTHING_WATCHED  # object keys (incidents socket), a set once used
        self.messages_sent = 0
        self.messages_received = 0
        self.events_sent = 0
        self.dropped = 0
        self.filtered = 0
        self.last_event_id = 0
        self.closed = False
        self.latency_observer = None
        self.owner = None
        self._queues = {}  # priority -> deque of events; only non-empty ones are kept
        self._size = 0
        self._critical = 0
        self._paused = False
        self._last_frame_at = 0.0
        self._window = batch_window  # the batch window now: stretched while bursts go on
        self._timer = None  # the end of the batch window, while events wait for it
        self._pending = None  # the task finishing a send the socket could not take at once
        self._replayed = None  # ids a replay sent, while their live copies may still come
        # Since when a send has waited for the socket's full buffer (None: not waiting).
        # The hub closes a socket that stays blocked past REALTIME_SEND_TIMEOUT.
        self.blocked_since = None

    # --- what this connection receives ---------------------------------------------------

    def offer(self, event):
        """Deliver or queue `event` if this connection should get it. Called by the hub's
        fan-out for connections subscribed to the event type; never awaits."""
        if self._accepts(event):
            self.push(event)

    def offer_many(self, events, shared_frames=None):
        """`offer` for several events that arrived together (in priority order), of which
        this connection may be subscribed to some."""
        subscriptions = self.subscriptions
        accepted = [
            event for event in events if event.entry.name in subscriptions and self._accepts(event)
        ]
        if accepted:
            self.push_many(accepted, shared_frames)

    def _accepts(self, event):
        refusal = self._refusal(event)
        if refusal == FILTERED:
            self.filtered += 1
            if self.debug:
                self.send_debug("filtered", event, "the connection's filter excludes it")
        return refusal is None

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
        """Send `event` now if the connection is idle, else queue it (bounded, shedding the
        lowest priority, oldest first)."""
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

    def resume_position(self, latest_seen):
        """The message id a reconnect should replay after: everything up to it was sent or
        not wanted. Events still queued at disconnect come after it."""
        queued = [event.id for queue in self._queues.values() for event in queue]
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

    # --- writing -----------------------------------------------------------------------------

    async def send_text(self, text):
        """Send one frame now (replies, errors, pings); raises when the socket is gone."""
        self.messages_sent += 1
        self._last_frame_at = time.monotonic()
        await self._send({"type": "websocket.send", "text": text})

    def ping(self, frame):
        """The hub's keepalive: written at once. Skipped while a send is pending: that
        socket is busy, and a ping would only wait behind it."""
        if self.closed or self._pending is not None:
            return
        self.messages_sent += 1
        self._write((frame,))

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

    def _write_events(self, events, shared_frames=None):
        principal = self.principal
        if len(events) == 1:  # the common case, on the hot path of every fan-out
            frames = [events[0].frame_for(principal, self.flat)]
            newest = events[0].id
        elif self.flat:
            frames = [event.frame_for(principal, True) for event in events]
            newest = max(event.id for event in events)
        else:
            texts = [event.frame_for(principal) for event in events]
            if shared_frames is None:
                frames = _frames(events, texts)
            else:
                key = tuple(map(id, texts))  # the texts live as long as the pass's events
                frames = shared_frames.get(key)
                if frames is None:
                    frames = shared_frames[key] = _frames(events, texts)
            newest = max(event.id for event in events)
        # Several events shared a frame: a burst is on, so the next window is longer
        # (fewer, larger frames: most of the cost of a delivery is its frame). Otherwise
        # (one event, or typed events, which are never batched) back to normal.
        if len(frames) < len(events):
            self._window = min(self._window * 2, self.batch_window * MAX_WINDOW_FACTOR)
        else:
            self._window = self.batch_window
        self._last_frame_at = time.monotonic()
        self.messages_sent += len(frames)
        self.events_sent += len(events)
        if newest > self.last_event_id:
            self.last_event_id = newest
        if self.latency_observer is not None:
            self.latency_observer(time.time(), events)
        self._write(frames)

    def _write(self, frames):
        """Hand frames to the server: written to the socket at once where its fast path
        allows it (`realtime.servers`, which falls back by itself), else through its ASGI
        `send`. A send that would wait (the socket's buffer is full) continues in a task,
        and the queue waits for it."""
        write_frame = self.socket.write_frame
        for index, text in enumerate(frames):
            if write_frame(text):
                continue  # written
            sending = self._send({"type": "websocket.send", "text": text})
            try:
                waiting_on = sending.send(None)
            except StopIteration:
                continue  # written
            except Exception as exc:
                self._lost(exc)
                return
            self.blocked_since = time.monotonic()
            self._pending = asyncio.get_running_loop().create_task(
                self._finish(sending, waiting_on, frames[index + 1 :])
            )
            return

    async def _finish(self, sending, waiting_on, rest):
        error = None
        try:
            await _continue(sending, waiting_on)
            for text in rest:
                await self._send({"type": "websocket.send", "text": text})
        except Exception as exc:
            error = exc
        finally:
            self._pending = None
            self.blocked_since = None
        if error is not None:
            self._lost(error)
        else:
            self._schedule()

    def _lost(self, exc):
        # The socket went away under us; the consumer's disconnect detaches the connection.
        logger.debug("writing to %s failed: %s", self.connection_id, exc)
        self.stop()

    def blocked_for(self, now):
        """Seconds (by `time.monotonic()`) the client has taken nothing while its send
        buffer is full: a send waits on it, or the server holds more than FULL_BUFFER
        bytes for it (daphne never makes a send wait). 0 when it is not blocked."""
        if self._pending is None:
            held = self.socket.buffered()
            if held is None or held < FULL_BUFFER:
                self.blocked_since = None
                return 0
            if self.blocked_since is None:
                self.blocked_since = now
        return now - self.blocked_since if self.blocked_since is not None else 0

    def stop(self):
        """Stop writing (the socket is closing)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None:
            self._pending.cancel()

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


@types.coroutine
def _continue(coroutine, waiting_on):
    """Go on running a coroutine that was started by hand and yielded `waiting_on` (what a
    coroutine yields to the task running it): this generator yields it to ours instead."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # the task is cancelled: so is the send
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(value)
            except StopIteration as stop:
                return stop.value


def _frames(events, texts):
    """The frames that carry `events` (their texts given): each typed event alone, runs of
    unified events as one `batch` frame (one event: its own frame)."""
    frames = []
    unified = []
    for event, text in zip(events, texts, strict=True):
        if event.entry.typed:
            if unified:
                frames.append(_unified_frame(unified))
                unified = []
            frames.append(text)
        else:
            unified.append(text)
    if unified:
        frames.append(_unified_frame(unified))
    return frames


def _unified_frame(frames):
    return frames[0] if len(frames) == 1 else envelopes.batch_frame(frames)

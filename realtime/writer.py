"""Writing to one socket, without a task or a wake-up whenever it can be.

Writing costs the most per delivered event. The ASGI server's `send` completes without
suspending while the socket's buffer has room, so it is stepped by hand (`_write`); only
a socket whose buffer is full gets a task that finishes that one send and the frames
after it. Under uvicorn and daphne an event's frame, built once for all sockets, goes to
the socket's transport directly (`realtime.servers`, which falls back to `send` by itself).
"""

import asyncio
import contextlib
import logging
import time
import types

from realtime import envelopes, servers

logger = logging.getLogger(__name__)

MAX_WINDOW_FACTOR = 4  # a sustained burst stretches the batch window up to this many times
FULL_BUFFER = 65536  # bytes held by the server for a socket that make it "full" (asyncio's mark)


class SocketWriter:
    """Writes to one socket: events as frames built for its `principal` (without the
    sensitive fields for those who may not see them) in its envelope (`flat`), and other
    frames (replies, pings); at once where the socket takes them, else in order behind
    one pending send.

    The base of `Connection` (realtime.connection). The queue above it
    (`realtime.outbound.OutboundQueue`) writes through `_write_events`, waits while a send
    is `_pending` and for the batch window (`_window` after `_last_frame_at`), and is told
    by `_schedule()` when a pending send is done.
    """

    __slots__ = (
        "_send",
        "socket",
        "connection_id",
        "principal",
        "flat",
        "batch_window",
        "latency_observer",
        "closed",
        "messages_sent",
        "events_sent",
        "last_event_id",
        "blocked_since",
        "_pending",
        "_last_frame_at",
        "_window",
    )

    def __init__(self, *, send, socket, connection_id, principal, flat, batch_window):
        self._send = send
        # The server's fast paths for this socket (realtime.servers); plain: only `send`.
        self.socket = socket if socket is not None else servers.access_for(send)
        self.connection_id = connection_id
        self.principal = principal
        # The flat envelope of the DNS frontends (envelopes.flat_event_frame): every event
        # in a frame of its own, never a `batch`.
        self.flat = flat
        self.batch_window = batch_window
        self.latency_observer = None  # called with (now, events) for each frame of events
        self.closed = False
        self.messages_sent = 0
        self.events_sent = 0
        self.last_event_id = 0
        # Since when a send has waited for the socket's full buffer (None: not waiting).
        # The hub closes a socket that stays blocked past REALTIME_SEND_TIMEOUT.
        self.blocked_since = None
        self._pending = None  # the task finishing a send the socket could not take at once
        self._last_frame_at = 0.0
        self._window = batch_window  # the batch window now: stretched while bursts go on

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
        """Tell a debugging client what became of `event` (in the background)."""
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
        asyncio.get_running_loop().create_task(self.send_quietly(frame))

    async def send_quietly(self, text):
        with contextlib.suppress(Exception):  # the socket closed meanwhile
            await self.send_text(text)

    def _schedule(self):
        """A pending send is done: what waited for it may go now (the queue's hook)."""

    def _write_events(self, events, shared_frames=None):
        """Write `events` (highest priority first) as frames: each alone in the flat
        envelope, else runs of them as `batch` frames. `shared_frames` is a fan-out
        pass's cache: connections that get the same events share the same frames."""
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
        if self._pending is not None:
            self._pending.cancel()


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

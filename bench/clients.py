"""Load-generator processes: N real WebSocket clients split over a few worker processes.

A worker opens its share of the connections (JWT in the URL, then a `subscribe` to one
event type, answered by `subscription_updated`), then counts what arrives, phase by phase,
on the orchestrator's commands (a multiprocessing pipe). For every event it records the
latency from the publish time embedded in the event (`data.sent_at`, `time.time()` in the
publisher) to receipt, and marks its sequence number (`data.bench_seq`) received, so that
loss and duplicates are exact per client. `batch` frames are unpacked: every event in one
counts.

Two client implementations:
- `fast` (default): the `websockets` library's Sans-I/O `ClientProtocol` does the opening
  handshake (request, key, `Sec-WebSocket-Accept` check) and builds every frame the client
  sends (masked); received frames are parsed by a minimal RFC 6455 reader (server frames are
  unmasked; fragmentation, ping, close handled). It costs about half as much CPU per message
  as the asyncio client below, which keeps the load generator from being the bottleneck on a
  2-core machine.
- `websockets`: the library's asyncio client (`websockets.asyncio.client.connect`), for
  reference and cross-checking.

Events are found in a frame with two byte regexes (`"bench_seq":N`, `"sent_at":T`); the first
`verify_frames` frames of every connection (all of them with `--verify`) are also parsed with
`json.loads`, unpacking `batch` frames, and any disagreement is counted as a verify error.
"""

import array
import asyncio
import contextlib
import functools
import json
import os
import re
import resource
import time
from collections import Counter

SEQ = re.compile(rb'"bench_seq":\s*(-?\d+)')
SENT = re.compile(rb'"sent_at":\s*([0-9.eE+-]+)')
SUBSCRIBED = b'"subscription_updated"'
ERROR = b'"type":"error"'
# A security_event's data: `timestamp` is the line's time and follows `message`.
DETECTED = re.compile(rb'"message":\s*"(?:[^"\\]|\\.)*",\s*"timestamp":\s*"([^"]+)"')

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class ConnectFailed(Exception):
    pass


class Phase:
    """What one worker counts during one phase (a steady run or a burst)."""

    def __init__(self, expected, count, servers):
        self.expected = expected  # sequence numbers 0..expected-1 may arrive
        self.latencies = [array.array("d") for _ in range(servers)]  # per server
        self.received = [0] * count
        self.duplicates = [0] * count
        self.unexpected = [0] * count
        self.seen = [bytearray(expected) for _ in range(count)]
        self.frames = 0
        self.batch_frames = 0
        self.other_frames = 0
        self.verify_errors = 0
        self.first_at = None
        self.last_at = None
        self.total = 0


class Stats:
    """Shared by the connections of one worker."""

    def __init__(self, server_of, servers, verify_frames):
        self.server_of = server_of  # connection index -> index of its server
        self.servers = servers
        self.phase = Phase(0, len(server_of), servers)
        self.verify_frames = verify_frames
        self.verified = [0] * len(server_of)
        self.close_codes = Counter()

    def on_frame(self, index, payload):
        phase = self.phase
        seqs = SEQ.findall(payload)
        now = time.time()
        if self.verified[index] < self.verify_frames:
            self.verified[index] += 1
            self.verify(payload, seqs)
        if not seqs:
            phase.other_frames += 1
            return
        phase.frames += 1
        if len(seqs) > 1 or payload.startswith(b'{"type":"batch"'):
            phase.batch_frames += 1
        sents = SENT.findall(payload)
        seen = phase.seen[index]
        expected = phase.expected
        latencies = phase.latencies[self.server_of[index]]
        fresh = 0
        for seq, sent in zip(seqs, sents, strict=False):
            number = int(seq)
            if 0 <= number < expected:
                if seen[number]:
                    phase.duplicates[index] += 1
                    continue
                seen[number] = 1
                fresh += 1
                latencies.append(now - float(sent))
            else:
                phase.unexpected[index] += 1
        phase.received[index] += fresh
        phase.total += fresh
        if phase.first_at is None:
            phase.first_at = now
        phase.last_at = now

    def verify(self, payload, seqs):
        """Parse the frame for real and check that the fast path saw the same events."""
        try:
            frame = json.loads(payload)
            if frame.get("type") == "batch":
                events = frame["events"]
                assert all(event["type"] == "event" for event in events)
            elif "data" in frame and isinstance(frame["data"], dict):
                events = [frame]
            else:
                events = []
            numbers = [
                event["data"]["bench_seq"] for event in events if "bench_seq" in event["data"]
            ]
            assert numbers == [int(seq) for seq in seqs], (numbers, seqs)
        except (ValueError, KeyError, TypeError, AssertionError):
            self.phase.verify_errors += 1


class DetectionStats(Stats):
    """For the ingest benchmark: clients subscribed to `security_event` record, for each
    event received, its `timestamp` (the log line's own time, which tells the sender's
    line) and when it arrived. The orchestrator turns them into detection latencies."""

    def __init__(self, server_of, servers, verify_frames):
        super().__init__(server_of, servers, verify_frames)
        self.arrivals = {}  # timestamp (bytes) -> array of arrival times
        self.events = 0

    def on_frame(self, index, payload):
        stamps = DETECTED.findall(payload)
        if not stamps:
            self.phase.other_frames += 1
            return
        now = time.time()
        self.phase.frames += 1
        for stamp in stamps:
            arrivals = self.arrivals.get(stamp)
            if arrivals is None:
                arrivals = self.arrivals[stamp] = array.array("d")
            arrivals.append(now)
        self.events += len(stamps)

    def take(self):
        arrivals, self.arrivals = self.arrivals, {}
        events, self.events = self.events, 0
        frames, self.phase.frames = self.phase.frames, 0
        return {
            "events": events,
            "frames": frames,
            "arrivals": {stamp.decode(): times.tobytes() for stamp, times in arrivals.items()},
        }


# --- the fast client ---------------------------------------------------------------------


class FastClient(asyncio.Protocol):
    """One connection: Sans-I/O handshake by `websockets`, then a minimal frame reader."""

    def __init__(self, url, index, stats):
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.protocol = ClientProtocol(parse_uri(url), max_size=2**24)
        self.index = index
        self.stats = stats
        self.transport = None
        self.handshake_buffer = b""
        self.open = False
        self.closed = False
        self.buffer = b""
        self.fragments = None
        self.waiter = asyncio.get_running_loop().create_future()
        self.replies = []

    # protocol callbacks

    def connection_made(self, transport):
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data):
        if not self.open:
            self.handshake_buffer += data
            end = self.handshake_buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self.handshake_buffer[: end + 4], self.handshake_buffer[end + 4 :]
            self.handshake_buffer = b""
            self.protocol.receive_data(head)
            self.protocol.events_received()
            if self.protocol.handshake_exc is not None:
                self._fail(f"handshake: {self.protocol.handshake_exc}")
                return
            self.open = True
            self._wake()
            if not rest:
                return
            data = rest
        buffer = self.buffer + data if self.buffer else data
        position, size = 0, len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            if second & 0x80:
                self._fail("protocol: the server masked a frame")
                return
            end = position + header + length
            if end > size:
                break
            self._frame(first & 0x80, first & 0x0F, buffer[position + header : end])
            position = end
        self.buffer = buffer[position:] if position < size else b""

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectFailed(f"connection lost: {exc or 'closed'}"))

    # frames

    def _frame(self, fin, opcode, payload):
        if opcode in (OP_TEXT, OP_BINARY):
            if not fin:
                self.fragments = [payload]
                return
            self._message(payload)
        elif opcode == OP_CONT:
            if self.fragments is None:
                self._fail("protocol: continuation without a start")
                return
            self.fragments.append(payload)
            if fin:
                message, self.fragments = b"".join(self.fragments), None
                self._message(message)
        elif opcode == OP_PING:
            self.protocol.send_pong(payload)
            self._flush()
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.stats.close_codes[code] += 1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(
                    ConnectFailed(f"closed {code}: {_reply_error(self.replies)}")
                )
            with contextlib.suppress(Exception):
                self.protocol.send_close(code if code != 1005 else 1000)
                self._flush()
            self.transport.close()

    def _message(self, payload):
        if self.waiter is not None:
            self.replies.append(payload)
            self._wake()
            return
        self.stats.on_frame(self.index, payload)

    # helpers

    def _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _flush(self):
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _fail(self, reason):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectFailed(reason))
        self.transport.close()

    async def _wait(self):
        await self.waiter
        self.waiter = asyncio.get_running_loop().create_future()

    async def next_reply(self):
        while not self.replies:
            await self._wait()
        return self.replies.pop(0)

    def send_text(self, text):
        self.protocol.send_text(text.encode())
        self._flush()

    async def start(self, subscribe_frame):
        """Handshake, greeting, subscribe; afterwards every frame goes to the stats."""
        await self._wait()  # handshake
        await self.next_reply()  # connection_established
        self.send_text(subscribe_frame)
        while True:
            reply = await self.next_reply()
            if SUBSCRIBED in reply:
                break
            if ERROR in reply:
                raise ConnectFailed(_reply_error([reply]))
        for frame in self.replies:
            self.stats.on_frame(self.index, frame)
        self.waiter = None

    def close(self):
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.protocol.send_close(1000)
                self._flush()
            self.transport.close()


async def open_fast(url, index, stats, subscribe_frame, host, port):
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: FastClient(url, index, stats), host, port)
    try:
        await client.start(subscribe_frame)
    except BaseException:
        client.close()
        raise
    return client


# --- the reference client: websockets' asyncio implementation ------------------------------


class LibraryClient:
    def __init__(self, websocket, index, stats):
        self.websocket = websocket
        self.index = index
        self.stats = stats
        self.task = asyncio.get_running_loop().create_task(self.read())

    @property
    def closed(self):
        return self.websocket.close_code is not None

    async def read(self):
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.websocket:
                self.stats.on_frame(
                    self.index, message.encode() if isinstance(message, str) else message
                )
        except ConnectionClosed:
            pass
        code = self.websocket.close_code
        if code is not None:
            self.stats.close_codes[code] += 1

    def close(self):
        self.task.cancel()
        asyncio.get_running_loop().create_task(self.websocket.close())


async def open_library(url, index, stats, subscribe_frame, host, port, compression=None):
    from websockets.asyncio.client import connect

    websocket = await connect(
        url, compression=compression, ping_interval=None, max_size=2**24, max_queue=None
    )
    try:
        await websocket.recv()  # connection_established
        await websocket.send(subscribe_frame)
        while True:
            reply = (await websocket.recv()).encode()
            if SUBSCRIBED in reply:
                break
            if ERROR in reply:
                raise ConnectFailed(_reply_error([reply]))
    except BaseException:
        await websocket.close()
        raise
    return LibraryClient(websocket, index, stats)


def _reply_error(replies):
    for reply in replies:
        with contextlib.suppress(ValueError, AttributeError):
            frame = json.loads(reply)
            if frame.get("type") == "error":
                return frame.get("error_code") or frame.get("message")
    return "no error frame"


# --- the worker process -------------------------------------------------------------------


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _connect_all(targets, config, stats, clients, wave):
    """Open the connections of `targets` (entries of `clients`, by index), `concurrency`
    handshakes at a time."""
    if config["impl"] == "fast":
        opener = open_fast
    else:
        opener = functools.partial(open_library, compression=config.get("compression"))
    subscribe = json.dumps(
        {
            "type": "subscribe",
            "id": "bench-subscribe",
            "data": {"event_types": [config["event_type"]], "replace_existing": True},
        }
    )
    semaphore = asyncio.Semaphore(config["concurrency"])
    errors = Counter()
    timings = array.array("d")
    started = time.time()

    async def one(index, target):
        async with semaphore:
            begin = time.time()
            try:
                async with asyncio.timeout(config["connect_timeout"]):
                    clients[index] = await opener(
                        target["url"], index, stats, subscribe, target["host"], target["port"]
                    )
                timings.append(time.time() - begin)
            except TimeoutError:
                errors["timeout"] += 1
            except ConnectFailed as exc:
                errors[str(exc)[:120]] += 1
            except OSError as exc:
                errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
            except Exception as exc:
                errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

    await asyncio.gather(*(one(index, target) for index, target in targets))
    opened = [clients[index] for index, _ in targets]
    return {
        "wave": wave,
        "ok": sum(client is not None for client in opened),
        "failed": sum(client is None for client in opened),
        "errors": dict(errors),
        "started": started,
        "finished": time.time(),
        "handshake_seconds": timings.tobytes(),
    }


async def _serve(pipe, targets, config):
    loop = asyncio.get_running_loop()
    kind = DetectionStats if config.get("detection") else Stats
    stats = kind(
        [target["server"] for target in targets], config["servers"], config["verify_frames"]
    )
    # Two waves, half the connections each: the server's memory is read between them, so
    # the second half shows what a connection costs without the costs paid once.
    clients = [None] * len(targets)
    numbered = list(enumerate(targets))
    half = len(numbered) // 2
    pipe.send(await _connect_all(numbered[:half], config, stats, clients, wave=1))
    cpu_mark = cpu_seconds()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        name = command["cmd"]
        if name == "connect_rest":
            pipe.send(await _connect_all(numbered[half:], config, stats, clients, wave=2))
            cpu_mark = cpu_seconds()
        elif name == "phase":
            stats.phase = Phase(command["expected"], len(targets), config["servers"])
            cpu_mark = cpu_seconds()
            pipe.send({"ok": True})
        elif name == "detections":
            pipe.send(stats.take())
        elif name == "progress":
            pipe.send({"total": stats.phase.total, "last_at": stats.phase.last_at})
        elif name == "report":
            phase = stats.phase
            pipe.send(
                {
                    "cpu_seconds": cpu_seconds() - cpu_mark,
                    "connected": [client is not None for client in clients],
                    "open": [
                        client is not None and not getattr(client, "closed", False)
                        for client in clients
                    ],
                    "server_index": [target["server"] for target in targets],
                    "received": phase.received,
                    "duplicates": phase.duplicates,
                    "unexpected": phase.unexpected,
                    "seen": [bytes(seen) for seen in phase.seen],
                    "latencies": [latencies.tobytes() for latencies in phase.latencies],
                    "frames": phase.frames,
                    "batch_frames": phase.batch_frames,
                    "other_frames": phase.other_frames,
                    "verify_errors": phase.verify_errors,
                    "first_at": phase.first_at,
                    "last_at": phase.last_at,
                    "close_codes": dict(stats.close_codes),
                }
            )
        elif name == "close":
            for client in clients:
                if client is not None:
                    client.close()
            await asyncio.sleep(0.2)
            pipe.send({"ok": True})
            return


def worker_main(pipe, targets, config):
    """Entry point of one worker process (multiprocessing, spawn)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if config.get("nice") is not None:
        os.setpriority(os.PRIO_PROCESS, 0, config["nice"])
    try:
        import uvloop

        uvloop.run(_serve(pipe, targets, config))
    except ImportError:
        asyncio.run(_serve(pipe, targets, config))

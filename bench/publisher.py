"""The publisher process: publishes numbered events at a fixed rate or as fast as it can.

    python -m bench.publisher '<json config>'

It prepares (HTTP connections, Django for `direct`), prints `READY`, waits for a line on
stdin, publishes, then prints one JSON line with what it published. Every event's data
carries `bench_seq` (0, 1, ...) and `sent_at` (`time.time()` just before the publish call),
from which the clients compute loss and latency.

Modes:
- `rest`: `POST /api/realtime/publish/` with a publisher's JWT (the public path), over
  keep-alive HTTP/1.1 connections, `concurrency` of them in a burst; with `batch` > 1 the
  burst posts lists of that many events (one request, one INSERT each).
- `direct`: `realtime.publishing.publish` called in this process against the same database
  and Redis as the servers: the path of a `manage.py` command or a worker, without HTTP.
  With the in-memory layer (no `--redis`) events reach the server only through the hub's
  poll of the event table (REALTIME_EVENT_POLL_INTERVAL).
- `ceiling`: event frames of the same shape and size sent to the ceiling server's
  `/publish` socket, which broadcasts each one.
"""

import contextlib
import http.client
import itertools
import json
import resource
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime


def event_data(seq, pad):
    return {
        "bench_seq": seq,
        "sent_at": time.time(),
        "category": "bench",
        "source": "bench",
        "pad": pad,
    }


class RestPublisher:
    def __init__(self, config):
        self.host, self.port = config["host"], config["port"]
        self.headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config['token']}",
        }
        self.event_type = config["event_type"]
        self.priority = config.get("priority")
        self.local = threading.local()

    def connection(self):
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(
                self.host, self.port, timeout=30
            )
        return connection

    def body(self, data):
        body = {"event_type": self.event_type, "data": data}
        if self.priority is not None:
            body["priority"] = self.priority
        return body

    def publish(self, data):
        self.post(self.body(data))

    def publish_many(self, items):
        self.post([self.body(data) for data in items])

    def post(self, body):
        connection = self.connection()
        try:
            connection.request("POST", "/api/realtime/publish/", json.dumps(body), self.headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self.local.connection = None
            raise
        if response.status != 201:
            raise RuntimeError(f"HTTP {response.status}")


class DirectPublisher:
    def __init__(self, config):
        import os

        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
        django.setup()
        from realtime.publishing import publish

        self._publish = publish
        self.event_type = config["event_type"]
        self.priority = config.get("priority")

    def publish(self, data):
        self._publish(self.event_type, data, priority=self.priority)


class CeilingPublisher:
    """Frames shaped like the hub's unified event envelope, so the sizes match."""

    def __init__(self, config):
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()  # closed when the process exits
        self.websocket = self.stack.enter_context(
            connect(
                f"ws://{config['host']}:{config['port']}/publish", compression=None, max_size=None
            )
        )
        self.event_type = config["event_type"]
        self.lock = threading.Lock()

    def publish(self, data):
        frame = json.dumps(
            {
                "type": "event",
                "event_type": self.event_type,
                "data": data,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "id": str(data["bench_seq"] + 1),
                "priority": "normal",
            },
            separators=(",", ":"),
        )
        with self.lock:
            self.websocket.send(frame)


MODES = {"rest": RestPublisher, "direct": DirectPublisher, "ceiling": CeilingPublisher}


def run(config, publisher):
    pad = "x" * config["pad_bytes"]
    published, errors, calls = [], Counter(), []
    lock = threading.Lock()
    started = time.time()
    deadline = started + config["duration"]

    def publish_list(seqs):
        begin = time.time()
        try:
            publisher.publish_many([event_data(seq, pad) for seq in seqs])
        except Exception as exc:
            with lock:
                errors[f"{type(exc).__name__}: {exc}"[:100]] += len(seqs)
            return
        with lock:
            published.extend(seqs)
            calls.append(time.time() - begin)

    def publish_one(seq):
        begin = time.time()
        try:
            publisher.publish(event_data(seq, pad))
        except Exception as exc:
            with lock:
                errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
            return
        with lock:
            published.append(seq)
            calls.append(time.time() - begin)

    if config["burst"]:
        sequence = itertools.count()
        count = config["count"]
        batch = config.get("batch", 1)

        def worker():
            while time.time() < deadline:
                with lock:
                    seqs = [next(sequence) for _ in range(batch)]
                seqs = [seq for seq in seqs if seq < count]
                if not seqs:
                    return
                if batch > 1:
                    publish_list(seqs)
                else:
                    publish_one(seqs[0])

        threads = [threading.Thread(target=worker) for _ in range(config["concurrency"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        interval = 1.0 / config["rate"]
        for seq in range(config["count"]):
            delay = started + seq * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            publish_one(seq)
    return {
        "published": sorted(published),
        "errors": dict(errors),
        "started": started,
        "finished": time.time(),
        "call_seconds": calls,
        "cpu_seconds": _cpu_seconds(),
        "rate": len(published) / (config["count"] / config["rate"]),
    }


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    config = json.loads(sys.argv[1])
    publisher = MODES[config["mode"]](config)
    print("READY", flush=True)
    sys.stdin.readline()
    print(json.dumps(run(config, publisher)), flush=True)


if __name__ == "__main__":
    main()

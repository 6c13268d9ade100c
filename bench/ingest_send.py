"""Senders of the ingest benchmark: syslog TCP, syslog UDP, `POST /api/logs/`.

Each sender takes an iterable of `MixLine`s and an optional rate (lines/s; None = as fast
as the server takes them) and returns a `SendLog`: how many lines were sent, when, and the
send time of every line (by index, for detection latency). Paced senders send, every
`TICK` seconds, every line due by then, so a 2,000 lines/s run sends 10 lines every 5 ms.

    python -m bench.ingest_send --port P [--transport tcp|udp] [--rate 2000] [--seconds 60]

runs one sender alone (bench.run --ingest-rate starts it in the background).
"""

import argparse
import array
import http.client
import json
import queue
import signal
import socket
import threading
import time

from bench.servers import HOST

TICK = 0.005
UDP_MAX = 8192
FLUSH_SECONDS = 0.2  # a paced HTTP shipper posts what it holds at least this often


class SendLog:
    """What a sender did: lines sent, the send time of each (by index), errors, and for
    HTTP the call latencies."""

    def __init__(self):
        self.times = array.array("d")  # send time of line i
        self.started = None
        self.finished = None
        self.errors = 0
        self.call_seconds = array.array("d")
        self.calls = 0

    @property
    def sent(self):
        return len(self.times)

    def figures(self):
        elapsed = (self.finished or 0) - (self.started or 0)
        result = {
            "sent": self.sent,
            "send_seconds": round(elapsed, 2),
            "sent_per_second": round(self.sent / elapsed) if elapsed > 0 else None,
            "send_errors": self.errors,
        }
        if self.calls:
            calls = sorted(self.call_seconds)
            result["http_calls"] = self.calls
            result["call_p50_ms"] = round(percentile(calls, 50) * 1000, 1)
            result["call_p99_ms"] = round(percentile(calls, 99) * 1000, 1)
            result["call_max_ms"] = round(calls[-1] * 1000, 1)
        return result


def percentile(ordered, p):
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def paced(lines, rate, stop=None):
    """Yields lists of lines: all at once without a rate, else those due every TICK."""
    if not rate:
        batch = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 500:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    iterator = iter(lines)
    started = time.monotonic()
    due = 0
    sent = 0
    while stop is None or not stop.is_set():
        now = time.monotonic()
        due = int((now - started) * rate) + 1
        batch = []
        while sent < due:
            line = next(iterator, None)
            if line is None:
                if batch:
                    yield batch
                return
            batch.append(line)
            sent += 1
        if batch:
            yield batch
        pause = started + sent / rate - time.monotonic()
        time.sleep(max(TICK, pause) if pause > 0 else 0)


def send_tcp(lines, port, *, rate=None, stop=None, host=HOST):
    """LF-terminated messages over one TCP connection (the server's backpressure paces an
    unpaced sender)."""
    log = SendLog()
    with socket.create_connection((host, port)) as sock:
        log.started = time.time()
        for batch in paced(lines, rate, stop):
            payload = "".join(line.message + "\n" for line in batch).encode()
            now = time.time()
            sock.sendall(payload)
            log.times.extend([now] * len(batch))
        log.finished = time.time()
        sock.shutdown(socket.SHUT_WR)
    return log


def send_udp(lines, port, *, rate=None, stop=None, host=HOST):
    """One datagram per message (RFC 5426). What the kernel or the server drops is the
    difference between lines sent and lines processed."""
    log = SendLog()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        log.started = time.time()
        for batch in paced(lines, rate, stop):
            now = time.time()
            for line in batch:
                try:
                    sock.send(line.message.encode()[:UDP_MAX])
                except OSError:  # ECONNREFUSED from an earlier datagram, ENOBUFS
                    log.errors += 1
                log.times.append(now)
        log.finished = time.time()
    return log


def send_http(lines, base_url, token, *, clients=4, post_lines=200, rate=None, stop=None):
    """`POST /api/logs/` by `clients` threads, each over its own keep-alive connection.
    Consecutive lines of one source go in one call (`post_lines` at most), as a log
    shipper batching per file would send them. A line's send time is its call's start."""
    log = SendLog()
    host, port = base_url.removeprefix("http://").split(":")
    calls = queue.Queue(maxsize=clients * 2)
    lock = threading.Lock()
    times = {}

    def worker():
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        while True:
            item = calls.get()
            if item is None:
                break
            source, indexes, text = item
            body = json.dumps({"source": source, "content": text})
            begin = time.time()
            try:
                connection.request("POST", "/api/logs/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 202
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=120)
                ok = False
            took = time.time() - begin
            with lock:
                log.calls += 1
                log.call_seconds.append(took)
                if ok:
                    for index in indexes:
                        times[index] = begin
                else:
                    log.errors += 1
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    pending = {}  # source -> (indexes, texts)
    index = 0
    log.started = flushed = time.time()
    for batch in paced(lines, rate, stop):
        for line in batch:
            indexes, texts = pending.setdefault(line.source, ([], []))
            indexes.append(index)
            texts.append(line.text)
            index += 1
            if len(indexes) >= post_lines:
                calls.put((line.source, indexes, "\n".join(texts) + "\n"))
                del pending[line.source]
        if rate and time.time() - flushed >= FLUSH_SECONDS:
            # A paced shipper does not hold lines back for long.
            for source, (indexes, texts) in pending.items():
                calls.put((source, indexes, "\n".join(texts) + "\n"))
            pending.clear()
            flushed = time.time()
    for source, (indexes, texts) in pending.items():
        calls.put((source, indexes, "\n".join(texts) + "\n"))
    for _ in threads:
        calls.put(None)
    for thread in threads:
        thread.join()
    log.finished = time.time()
    log.times = array.array("d", (times.get(i, 0.0) for i in range(index)))
    return log


SENDERS = {"tcp": send_tcp, "udp": send_udp}


def main(argv=None):
    from bench.ingest_mix import MIXES, iterate

    parser = argparse.ArgumentParser(description="Send the ingest mix to a syslog port.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=tuple(SENDERS), default="tcp")
    parser.add_argument("--mix", choices=MIXES, default="realistic")
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    count = int(args.rate * args.seconds)
    lines = iterate(args.mix, count, seed=args.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # stop sending, then report
    log = SENDERS[args.transport](lines, args.port, rate=args.rate, stop=stop)
    print(json.dumps(log.figures()), flush=True)


if __name__ == "__main__":
    main()

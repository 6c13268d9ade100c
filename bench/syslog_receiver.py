"""Syslog receiver benchmark (issue 15): lines per second received over TCP and UDP into
a sink that keeps nothing, against plain asyncio servers measured in the same run.

    python -m bench.syslog_receiver [--seconds 5] [--runs 3] [--loop uvloop|asyncio]

Targets, each a process of its own on loopback ports, taking the same traffic in turn:

- `receiver`: `incidents.syslog.server.SyslogReceiver` with a null sink (every line
  accepted and counted): framing, decoding, the binary check, the source hint and a
  `ReceivedLine` per message; what the receiver costs before the intake;
- `ceiling`: the least a Python asyncio server can do with the same bytes. TCP: read
  with the same StreamReader and count the bytes (turned into messages by the size of
  the messages sent, which are all alike per phase); UDP: an asyncio
  DatagramProtocol counting datagrams (one per loop wake-up, asyncio's own way) and, as a
  second ceiling, the receiver's own way of draining the socket (`recvfrom` until it
  would block) counting only;
- `ceiling-lines` (TCP, LF-terminated): the least Python does to hand on lines: split
  each read at LF, decode each line and build a tuple of it, its source and its time.

Traffic: realistic syslog messages (sshd, sudo, nginx and named lines, RFC 3164 and RFC
5424, 75-180 bytes), from `--senders` processes for `--seconds`: TCP LF-terminated,
TCP octet-counted, and UDP datagrams. Reported per target and transport: lines received,
lines/s (first to last line), the target's CPU time (psutil) and lines per CPU-second,
UDP lines lost in the kernel, and our figures as a ratio of the ceiling's.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import psutil

PYTHON = sys.executable
HOSTS = ["web01", "web02", "db01", "ns1", "fw-edge"]
TEMPLATES = [
    "<38>{ts3164} {host} sshd[{pid}]: Failed password for invalid user admin from "
    "203.0.113.{a} port {port} ssh2",
    "<38>{ts3164} {host} sshd[{pid}]: Accepted publickey for deploy from 10.20.1.{a} port "
    "{port} ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4",
    "<85>{ts3164} {host} sudo:    alice : TTY=pts/{a} ; PWD=/home/alice ; USER=root ; "
    "COMMAND=/usr/bin/systemctl restart nginx",
    "<190>1 {ts5424} {host} nginx - - - 198.51.100.{a} - - [10/Mar/2025:14:02:11 +0000] "
    '"GET /products?id={port} HTTP/1.1" 200 {pid} "-" "Mozilla/5.0 (X11; Linux x86_64)"',
    "<30>{ts3164} {host} named[{pid}]: client @0x7f2a1c0bd8e0 10.0.0.{a}#{port} "
    "(host{a}.example.com): query: host{a}.example.com IN A +E(0)K (10.0.0.1)",
    "<78>{ts3164} {host} CRON[{pid}]: (root) CMD (run-parts /etc/cron.hourly)",
]


def messages(count):
    """`count` messages as bytes, cycling through the templates."""
    out = []
    for n in range(count):
        out.append(
            TEMPLATES[n % len(TEMPLATES)]
            .format(
                ts3164=f"Mar 10 14:{n // 60 % 60:02d}:{n % 60:02d}",
                ts5424=f"2025-03-10T14:02:11.{n % 1000000:06d}Z",
                host=HOSTS[n % len(HOSTS)],
                pid=1000 + n % 5000,
                a=n % 250,
                port=20000 + n % 40000,
            )
            .encode()
        )
    return out


# -- targets (each runs in a process of its own: `--serve NAME`) ---------------------------------


class Counter:
    """Lines counted, and when the first and the last arrived."""

    def __init__(self):
        self.lines = 0
        self.first = self.last = None

    def add(self, count):
        if count:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            self.last = now
            self.lines += count

    def take(self):
        result = {"lines": self.lines, "first": self.first, "last": self.last}
        self.__init__()
        return result


class NullSink:
    """The intake interface, keeping nothing: every line is accepted and counted."""

    def __init__(self, counter):
        self.counter = counter
        self.malformed = 0

    def offer(self, lines):
        self.counter.add(len(lines))
        return len(lines)

    async def put(self, lines):
        self.counter.add(len(lines))

    async def put_durable(self, lines):
        self.counter.add(len(lines))

    def count_malformed(self, n=1, *, transport):
        self.malformed += n

    def stats(self):
        return {}


async def serve_receiver(counters):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    import django

    django.setup()
    from incidents.syslog.server import ReceiverConfig, SyslogReceiver

    tcp = SyslogReceiver(NullSink(counters["tcp"]), ReceiverConfig(tcp_port=0))
    udp = SyslogReceiver(NullSink(counters["udp"]), ReceiverConfig(udp_port=0))
    await tcp.start()
    await udp.start()
    return tcp.addresses["tcp"][1], udp.addresses["udp"][1]


async def serve_ceiling(counters, *, drain_udp=False, lines=False):
    from incidents.syslog.server import READ_SIZE, UDP_BURST

    async def connected(reader, writer):
        while data := await reader.read(READ_SIZE):
            counters["tcp"].add(len(data))  # bytes: the driver turns them into messages
        writer.close()

    async def connected_lines(reader, writer):
        rest = b""
        while data := await reader.read(READ_SIZE):
            pieces = (rest + data).split(b"\n")
            rest = pieces.pop()
            now = time.time()
            handed = [(piece.decode("utf-8", "replace"), "syslog", now) for piece in pieces]
            counters["tcp"].add(len(handed))
        writer.close()

    if lines:
        connected = connected_lines

    server = await asyncio.start_server(connected, "127.0.0.1", 0, limit=READ_SIZE)
    loop = asyncio.get_running_loop()
    if drain_udp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)

        def readable():
            count = 0
            for _ in range(UDP_BURST):
                try:
                    sock.recvfrom(65537)
                except BlockingIOError:
                    break
                count += 1
            counters["udp"].add(count)

        loop.add_reader(sock.fileno(), readable)
        udp_port = sock.getsockname()[1]
    else:

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data, address):
                counters["udp"].add(1)

        transport, _ = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024
        )
        udp_port = transport.get_extra_info("sockname")[1]
    return server.sockets[0].getsockname()[1], udp_port


async def serve(name):
    """Serve target `name`; print its ports; answer `take tcp|udp` lines on stdin with the
    counts as JSON."""
    counters = {"tcp": Counter(), "udp": Counter()}
    if name == "receiver":
        ports = await serve_receiver(counters)
    else:
        ports = await serve_ceiling(
            counters, drain_udp=name == "ceiling-drain", lines=name == "ceiling-lines"
        )
    print(json.dumps({"tcp": ports[0], "udp": ports[1]}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, _, transport = line.strip().partition(" ")
        if command == "take":
            print(json.dumps(counters[transport].take()), flush=True)


# -- senders -------------------------------------------------------------------------------------


def tcp_chunk(framing):
    """The bytes a TCP sender sends again and again, and how many messages they hold."""
    payload = messages(6000)
    if framing == "octet":
        return b"".join(b"%d %s" % (len(m), m) for m in payload), len(payload)
    return b"".join(m + b"\n" for m in payload), len(payload)


def send_tcp(port, framing, seconds, result):
    chunk, count = tcp_chunk(framing)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            sock.sendall(chunk)
            sent += count
    result.put(sent)


def send_udp(port, seconds, result):
    payload = messages(6000)
    sent = 0
    address = ("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sendto = sock.sendto
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for message in payload:
                try:
                    sendto(message, address)
                except BlockingIOError:
                    continue
            sent += len(payload)
    result.put(sent)


class Target:
    """A target process and its control pipe."""

    def __init__(self, name, loop):
        env = {**os.environ, "LOG_LEVEL": "WARNING", "DEBUG": "false"}
        command = [PYTHON, "-m", "bench.syslog_receiver", "--serve", name, "--loop", loop]
        self.name = name
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.ports = json.loads(self.process.stdout.readline())
        self.ps = psutil.Process(self.process.pid)

    def cpu(self):
        times = self.ps.cpu_times()
        return times.user + times.system

    def take(self, transport):
        self.process.stdin.write(f"take {transport}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self):
        self.process.stdin.close()
        self.process.terminate()
        self.process.wait(10)


def measure(target, transport, framing, seconds, senders):
    """Send for `seconds` from `senders` processes; the target's figures."""
    target.take(transport)  # start from zero
    result = multiprocessing.Queue()
    port = target.ports[transport]
    if transport == "tcp":
        jobs = [
            multiprocessing.Process(target=send_tcp, args=(port, framing, seconds, result))
            for _ in range(senders)
        ]
    else:
        jobs = [
            multiprocessing.Process(target=send_udp, args=(port, seconds, result))
            for _ in range(senders)
        ]
    cpu_before = target.cpu()
    for job in jobs:
        job.start()
    sent = sum(result.get() for _ in jobs)
    for job in jobs:
        job.join()
    # The target reads what is still queued for it: wait until its CPU time stays still.
    seen, quiet_since = -1, time.perf_counter()
    while time.perf_counter() - quiet_since < 0.5:
        time.sleep(0.1)
        current = target.cpu()
        if current != seen:
            seen, quiet_since = current, time.perf_counter()
    counts = target.take(transport)
    cpu = target.cpu() - cpu_before
    if target.name == "ceiling" and transport == "tcp":
        chunk, count = tcp_chunk(framing)
        counts["lines"] = round(counts["lines"] * count / len(chunk))
    elapsed = (counts["last"] - counts["first"]) if counts["lines"] > 1 else 0.0
    return {
        "target": target.name,
        "transport": transport if transport == "udp" else f"tcp/{framing}",
        "sent": sent,
        "received": counts["lines"],
        "lost": sent - counts["lines"],
        "lines_per_s": counts["lines"] / elapsed if elapsed else 0.0,
        "cpu_s": cpu,
        "lines_per_cpu_s": counts["lines"] / cpu if cpu else 0.0,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per phase")
    parser.add_argument("--senders", type=int, default=1, help="sender processes per phase")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    rows = []
    phases = [("tcp", "lf"), ("tcp", "octet"), ("udp", None)]
    for run in range(args.runs):
        for transport, framing in phases:
            names = ["receiver", "ceiling"]
            names += {"lf": ["ceiling-lines"], "octet": [], None: ["ceiling-drain"]}[framing]
            for name in names:
                target = Target(name, args.loop)
                try:
                    row = measure(target, transport, framing, args.seconds, args.senders)
                finally:
                    target.stop()
                row.update(run=run + 1, loop=args.loop)
                rows.append(row)
    print(report(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def report(rows):
    lines = [
        "| run | transport | target | sent | received | lost | lines/s | CPU s | lines/CPU-s "
        "| ratio to ceiling (lines/s, lines/CPU-s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceilings = {(row["run"], row["transport"]): row for row in rows if row["target"] == "ceiling"}
    for row in rows:
        ceiling = ceilings.get((row["run"], row["transport"]))
        ratio = ""
        if ceiling and row["target"] != "ceiling" and ceiling["lines_per_s"]:
            ratio = (
                f"{row['lines_per_s'] / ceiling['lines_per_s']:.2f}x, "
                f"{row['lines_per_cpu_s'] / ceiling['lines_per_cpu_s']:.2f}x"
            )
        lines.append(
            f"| {row['run']} | {row['transport']} | {row['target']} | {row['sent']:,} | "
            f"{row['received']:,} | {row['lost']:,} | {row['lines_per_s']:,.0f} | "
            f"{row['cpu_s']:.2f} | {row['lines_per_cpu_s']:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Delivery benchmark: N real WebSocket clients against ThreatLens, and against the ceiling.

    python -m bench.run [--clients 1000] [--server uvicorn|daphne] [--rate 2] [--duration 10]
                        [--burst] [--redis] [--processes 2] [--publisher rest|direct] ...

One invocation: prepare a database (a temporary SQLite file unless --database-url), start
the server process(es) on loopback ports, open N clients (several worker processes), each
authenticated with a JWT from /api/auth/token/ and subscribed to one event type, then per
phase publish numbered events through the public path and measure what the clients
receive. Then the same clients, phases and event size against a plain `websockets`
broadcast server (bench/ceiling.py), and our figures as ratios of it. See bench/README.md.
"""

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil

from bench import clients as client_workers
from bench import profile as profiling
from bench import report
from bench.servers import (
    HOST,
    ROOT,
    ServerProcess,
    bench_environment,
    child_setup,
    free_port,
    prepare_database,
)

PHASES = ("steady", "burst")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--clients", type=int, default=1000, help="WebSocket clients (default 1000)")
    add("--server", choices=("uvicorn", "daphne"), default="uvicorn", help="ASGI server")
    add("--processes", type=int, default=1, help="server processes (use with --redis)")
    add(
        "--uvicorn-ws",
        default="auto",
        choices=("auto", "websockets", "websockets-sansio", "wsproto"),
        help="uvicorn's WebSocket implementation",
    )
    add("--redis", action="store_true", help="share Redis between the servers (REDIS_URL)")
    add("--redis-url", default="redis://127.0.0.1:6379/0")
    add("--database-url", help="PostgreSQL URL (default: SQLite in a temporary directory)")
    add("--phases", default="steady,burst", help="comma-separated: steady, burst")
    add("--burst", action="store_true", help="only the burst phase (--phases burst)")
    add("--steady", action="store_true", help="only the steady phase (--phases steady)")
    add("--rate", type=float, default=2.0, help="events/s in the steady phase")
    add("--duration", type=float, default=10.0, help="seconds of the steady phase")
    add("--burst-events", type=int, default=1000, help="events published in the burst")
    add("--burst-duration", type=float, default=10.0, help="the burst stops after this")
    add("--publisher", choices=("rest", "direct"), default="rest", help="publish path")
    add("--publish-concurrency", type=int, default=4, help="parallel publishers in a burst")
    add(
        "--publish-batch",
        type=int,
        default=1,
        help="events per request in a REST burst (>1: a list, one INSERT per request)",
    )
    add("--event-type", default="config_change", help="event type the clients subscribe to")
    add("--priority", type=int, help="event priority 1-10 (default: the catalogue's)")
    add("--pad-bytes", type=int, default=150, help="filler in each event's data")
    add("--users", type=int, default=1, help="client users (connections share them)")
    add(
        "--client-role",
        choices=("viewer", "analyst", "admin"),
        default="viewer",
        help="role of the client users (admins also hear other admins' audit events)",
    )
    add("--client-procs", type=int, default=0, help="load generator processes (0: auto)")
    add("--client-impl", choices=("fast", "websockets"), default="fast")
    add(
        "--client-compression",
        choices=("none", "deflate"),
        default="none",
        help="offer permessage-deflate, as browsers do (with --client-impl websockets)",
    )
    add(
        "--uvicorn-deflate",
        action="store_true",
        help="uvicorn accepts permessage-deflate (its default; the README turns it off)",
    )
    add("--connect-concurrency", type=int, default=100, help="handshakes in flight")
    add("--connect-timeout", type=float, default=60.0)
    add("--settle", type=float, default=2.0, help="idle seconds before reading memory")
    add("--drain", type=float, default=5.0, help="give up waiting after this long idle")
    add("--verify", action="store_true", help="JSON-parse every frame and cross-check")
    add("--no-ceiling", action="store_true", help="skip the ceiling server")
    add(
        "--ceiling",
        choices=("websockets", "asgi", "asgi-tasks", "all"),
        default="websockets",
        help="the plain websockets server (default); a bare ASGI app under uvicorn, writing "
        "to each socket in turn (asgi) or through a writer task per socket (asgi-tasks); all",
    )
    add("--profile", metavar="DIR", help="py-spy the first server: connecting, each phase")
    add(
        "--profile-connect",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --profile, also sample this long from the start of connecting",
    )
    add(
        "--tracemalloc",
        action="store_true",
        help="run the server under tracemalloc and show what idle connections hold (slow)",
    )
    add(
        "--ingest-rate",
        type=float,
        default=0,
        metavar="LINES",
        help="while the phases run, send the realistic ingest mix to our server's syslog "
        "receiver (TCP) at this many lines/s (bench/ingest_send.py)",
    )
    add(
        "--ingest-in",
        choices=("server", "loop", "run_syslog"),
        default="server",
        help="with --ingest-rate: the syslog receiver and its processing run by our server "
        "(the embedded default: its supervised child process), on the server's own event "
        "loop (SYSLOG_PROCESS=loop, the old default), or in a `manage.py run_syslog` "
        "process started beside it. The ceiling gets the same load: a `run_syslog` on a "
        "scratch copy of the database beside it",
    )
    add("--json", metavar="PATH", help="also write every figure as JSON")
    add("--server-env", action="append", default=[], metavar="NAME=VALUE")
    add("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    add(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each target, wait up to this long for the machine to be idle",
    )
    add("--quiet-below", type=float, default=15.0, help="idle means CPU busy below this %%")
    add(
        "--nice",
        type=int,
        metavar="N",
        help="scheduling priority of every process of the run (e.g. -10 on a busy shared "
        "machine; negative values need root)",
    )
    args = parser.parse_args(argv)
    if args.burst:
        args.phases = "burst"
    elif args.steady:
        args.phases = "steady"
    args.phase_list = [name.strip() for name in args.phases.split(",") if name.strip()]
    for name in args.phase_list:
        if name not in PHASES:
            parser.error(f"unknown phase {name!r}: expected steady and/or burst")
    if args.clients < 1 or args.processes < 1 or args.users < 1:
        parser.error("--clients, --processes and --users must be at least 1")
    if args.client_compression != "none" and args.client_impl != "websockets":
        parser.error("--client-compression needs --client-impl websockets")
    if args.client_procs <= 0:
        args.client_procs = 1 if args.clients < 200 else min(2, os.cpu_count() or 1)
    args.client_procs = min(args.client_procs, args.clients)
    for item in args.server_env:
        if "=" not in item:
            parser.error(f"--server-env wants NAME=VALUE, not {item!r}")
    return args


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- HTTP helpers ---------------------------------------------------------------------------


def http_json(url, body=None, token=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
        if "json" in response.headers.get("Content-Type", ""):
            return json.loads(text)
        return text.decode()


def obtain_token(server, username, password):
    reply = http_json(
        f"{server.http_url}/api/auth/token/", {"username": username, "password": password}
    )
    return reply["access"]


def hub_counters(server, token):
    """The hub's own counters in this server process (from `/ws/info`, as an admin):
    events received (and how many of them came from the event-table poll rather than the
    channel layer), delivered, dropped from full queues. None when unavailable."""
    try:
        info = http_json(f"{server.http_url}/ws/info", token=token)
    except (OSError, urllib.error.HTTPError, ValueError):
        return None
    for process in info.get("processes", []):
        if process.get("pid") == server.pid:
            counters = dict(process.get("counters") or {})
            counters["events_dropped"] = process.get("events_dropped", 0)
            return counters
    return None


def counters_delta(before, after):
    if not before or not after:
        return None
    names = ("events_received", "events_from_table", "events_delivered", "events_dropped")
    return {name: after.get(name, 0) - before.get(name, 0) for name in names}


# --- preparing --------------------------------------------------------------------------------


def base_environment(args, workdir, prefix):
    settings = {
        "REALTIME_MAX_CONNECTIONS": args.clients + 1000,
        "REALTIME_MAX_CONNECTIONS_PER_USER": args.clients + 1000,
        # Every client subscribes once, all as the same few users: the per-user rate
        # limits (10 subscription changes a minute) would refuse most of them.
        "REALTIME_SUBSCRIPTION_RATE": 10_000_000,
        "REALTIME_MESSAGE_RATE": 10_000_000,
    }
    if args.ingest_rate:
        args.syslog_port = free_port()
        settings.update(
            {
                "SYSLOG_IN_PROCESS": "false" if args.ingest_in == "run_syslog" else "true",
                "SYSLOG_PROCESS": "loop" if args.ingest_in == "loop" else "child",
                "SYSLOG_BIND": HOST,
                "SYSLOG_TCP_PORT": args.syslog_port,
                "SYSLOG_UDP_PORT": 0,
                "METRICS_PUBLIC": "true",
            }
        )
    return bench_environment(
        workdir,
        database_url=args.database_url,
        redis_url=args.redis_url if args.redis else None,
        prefix=prefix,
        server_env=args.server_env,
        **settings,
    )


def warm_up(server, token, event_type, publisher_token):
    """One connection and one publish, so that lazy start-up work is not measured."""
    from websockets.sync.client import connect

    url = server.ws_url() + (f"?token={token}" if token else "")
    with connect(url, compression=None, open_timeout=30) as websocket:
        websocket.recv(timeout=30)
        websocket.send(json.dumps({"type": "subscribe", "data": {"event_types": [event_type]}}))
        websocket.recv(timeout=30)
        if publisher_token:
            http_json(
                f"{server.http_url}/api/realtime/publish/",
                {"event_type": event_type, "data": {"bench_seq": -1, "sent_at": time.time()}},
                token=publisher_token,
            )


# --- the load generator -----------------------------------------------------------------------


class Workers:
    """The client worker processes and their pipes."""

    def __init__(self, targets, args, servers_count):
        context = multiprocessing.get_context("spawn")
        procs = args.client_procs
        config = {
            "impl": args.client_impl,
            "compression": None if args.client_compression == "none" else "deflate",
            "event_type": args.event_type,
            "concurrency": max(1, args.connect_concurrency // procs),
            "connect_timeout": args.connect_timeout,
            "verify_frames": 10**12 if args.verify else 5,
            "servers": servers_count,
            "nice": args.nice,
            "detection": getattr(args, "detection", False),
        }
        self.pipes, self.processes = [], []
        for index in range(procs):
            parent, child = context.Pipe()
            process = context.Process(
                target=client_workers.worker_main,
                args=(child, targets[index::procs], config),
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.ps = [psutil.Process(process.pid) for process in self.processes]

    def receive(self, pipe, timeout):
        deadline = time.time() + timeout
        while not pipe.poll(0.2):
            if time.time() > deadline:
                raise RuntimeError("a client worker did not answer in time")
            if not all(process.is_alive() for process in self.processes):
                raise RuntimeError("a client worker died")
        return pipe.recv()

    def ask(self, command, timeout=120):
        for pipe in self.pipes:
            pipe.send(command)
        return [self.receive(pipe, timeout) for pipe in self.pipes]

    def connect_summaries(self, timeout):
        return [self.receive(pipe, timeout) for pipe in self.pipes]

    def cpu_seconds(self):
        total = []
        for ps in self.ps:
            times = ps.cpu_times()
            total.append(times.user + times.system)
        return total

    def close(self):
        try:
            self.ask({"cmd": "close"}, timeout=30)
        except Exception as exc:
            log(f"closing the client workers: {exc}")
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


# --- one phase --------------------------------------------------------------------------------


def publisher_config(args, phase, target, servers, publisher_token):
    burst = phase == "burst"
    config = {
        "mode": args.publisher if target == "ours" else "ceiling",
        "host": HOST,
        "port": servers[0].port,
        "token": publisher_token,
        "event_type": args.event_type,
        "priority": args.priority,
        "pad_bytes": args.pad_bytes,
        "burst": burst,
        "rate": args.rate,
        "count": args.burst_events if burst else max(1, int(args.rate * args.duration)),
        "duration": args.burst_duration if burst else args.duration + 5,
        "concurrency": args.publish_concurrency if target == "ours" else 1,
        "batch": args.publish_batch if target == "ours" and args.publisher == "rest" else 1,
    }
    return config


def run_phase(phase, target, args, servers, workers, env, publisher_token, profile_dir):
    config = publisher_config(args, phase, target, servers, publisher_token)
    workers.ask({"cmd": "phase", "expected": config["count"]})
    publisher = subprocess.Popen(
        [sys.executable, "-m", "bench.publisher", json.dumps(config)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=child_setup(args.nice),
    )
    ready = publisher.stdout.readline().strip()
    if ready != "READY":
        publisher.kill()
        raise RuntimeError(f"the publisher did not start (said {ready!r})")
    counters_before = [
        hub_counters(server, publisher_token) if target == "ours" else None for server in servers
    ]
    server_cpu = [server.cpu_seconds() for server in servers]
    client_cpu = workers.cpu_seconds()
    machine = psutil.cpu_times()
    started = time.time()
    spies = []
    if profile_dir and target == "ours":
        seconds = args.burst_duration if phase == "burst" else args.duration
        prefix = Path(profile_dir) / f"profile-{target}-{args.clients}-{phase}"
        spies = profiling.start(servers[0].pid, seconds, str(prefix))
        time.sleep(0.3)  # let py-spy attach before the first event
        started = time.time()
    publisher.stdin.write("go\n")
    publisher.stdin.flush()
    out, _ = publisher.communicate(timeout=config["duration"] + 120)
    if publisher.returncode != 0 or not out.strip():
        raise RuntimeError(f"the publisher failed (exit {publisher.returncode}; see above)")
    published = json.loads(out.strip().splitlines()[-1])
    wanted = len(published["published"]) * sum(summary["ok"] for summary in workers.connect_summary)
    last_total, last_change = -1, time.time()
    while True:
        total = sum(reply["total"] for reply in workers.ask({"cmd": "progress"}))
        if total >= wanted:
            break
        if total != last_total:
            last_total, last_change = total, time.time()
        elif time.time() - last_change > args.drain:
            break
        time.sleep(0.05)
    finished = time.time()
    server_cpu = [
        server.cpu_seconds() - before for server, before in zip(servers, server_cpu, strict=True)
    ]
    client_cpu = [
        after - before for after, before in zip(workers.cpu_seconds(), client_cpu, strict=True)
    ]
    machine_after = psutil.cpu_times()
    reports = workers.ask({"cmd": "report"})
    figures = report.phase_figures(phase, published, reports, len(servers))
    wall = max(1e-9, finished - started)
    delivered = figures["received"]
    total_machine = _cpu_total(machine_after) - _cpu_total(machine)
    idle = (machine_after.idle - machine.idle) + (
        getattr(machine_after, "iowait", 0) - getattr(machine, "iowait", 0)
    )
    busy = total_machine - idle
    ours = sum(server_cpu) + sum(client_cpu) + published.get("cpu_seconds", 0)
    cpus = psutil.cpu_count() or 1
    figures.update(
        {
            "wall_seconds": wall,
            "cpus": cpus,
            "server_cpu_seconds": sum(server_cpu),
            "server_cpu_percent": 100 * sum(server_cpu) / wall,
            "server_us_per_event": 1e6 * sum(server_cpu) / delivered if delivered else None,
            "client_processes": len(client_cpu),
            "client_cpu_seconds": sum(client_cpu),
            "client_cpu_percent_max": 100 * max(client_cpu) / wall,
            "client_saturated": max(client_cpu) / wall > 0.9,
            "publisher_cpu_seconds": published.get("cpu_seconds"),
            "machine_busy_percent": 100 * busy / total_machine if total_machine else 0,
            "other_cpu_percent": max(0.0, 100 * (busy - ours) / total_machine)
            if total_machine
            else 0,
        }
    )
    if target == "ours":
        deltas = [
            counters_delta(before, hub_counters(server, publisher_token))
            for server, before in zip(servers, counters_before, strict=True)
        ]
        if None not in deltas:
            figures["hub_counters"] = deltas
            figures["server_dropped"] = sum(delta["events_dropped"] for delta in deltas)
    if spies:
        profiling.wait(spies)
        raw = f"{prefix}.txt"
        if Path(raw).exists():
            profiling.flamegraph_svg(raw, f"{prefix}.svg")
            figures["profile_files"] = [f"{prefix}.svg", raw]
            figures["profile"] = (
                profiling.format_summary(profiling.summarise(raw))
                + "\n"
                + profiling.format_categories(raw)
            )
        else:
            figures["profile"] = f"py-spy wrote nothing; see {prefix}.txt.log"
    return figures


def _cpu_total(times):
    """All CPU time of the machine (guest time is already counted in user and nice)."""
    return sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)


# --- one target: our servers or the ceiling ---------------------------------------------------


def wait_for_quiet(seconds, below):
    """Wait (up to `seconds`) until other work on the machine leaves it nearly idle: the
    measurements share 2 cores with whatever else runs. Returns the last busy percentage."""
    deadline = time.time() + seconds
    busy = psutil.cpu_percent(interval=1)
    while busy >= below and time.time() < deadline:
        log(f"machine {busy:.0f}% busy before starting; waiting for it to settle below {below}%")
        busy = psutil.cpu_percent(interval=2)
    return busy


def run_target(target, args, env, workdir, prepared=None, password=None, profile_dir=None):
    """Start the server(s), connect the clients, run the phases; returns the figures."""
    kind = args.server if target == "ours" else target
    if target == "ours" and args.tracemalloc:
        kind = f"memprobe-{args.server}"
    busy_before = wait_for_quiet(args.quiet_wait, args.quiet_below) if args.quiet_wait else None
    count = args.processes if target == "ours" else 1
    servers = [
        ServerProcess(
            kind, env, workdir, f"{kind}-{index}", args.uvicorn_ws, args.nice, args.uvicorn_deflate
        )
        for index in range(count)
    ]
    # Set before anything can fail: the `finally` below stops whatever was started.
    workers = ingest = None
    try:
        for server in servers:
            server.start()
        log(f"{kind}: {count} process(es) on ports {[s.port for s in servers]}")
        publisher_token, client_tokens = None, [None]
        if target == "ours":
            publisher_token = obtain_token(servers[0], prepared["publisher"], password)
            client_tokens = [
                obtain_token(servers[0], name, password) for name in prepared["clients"]
            ]
        for server in servers:
            warm_up(server, client_tokens[0], args.event_type, publisher_token)
        time.sleep(1)
        baseline = [server.rss() for server in servers]
        if kind.startswith("memprobe-"):
            snapshot_before = servers[0].snapshot_memory(1)
        targets = []
        for index in range(args.clients):
            server_index = index % count
            server = servers[server_index]
            token = client_tokens[index % len(client_tokens)]
            targets.append(
                {
                    "url": server.ws_url() + (f"?token={token}" if token else ""),
                    "host": HOST,
                    "port": server.port,
                    "server": server_index,
                }
            )
        log(f"{kind}: opening {args.clients} clients in {args.client_procs} processes")
        spies = []
        if profile_dir and target == "ours":
            prefix = Path(profile_dir) / f"profile-{target}-{args.clients}-connect"
            spies = profiling.start(servers[0].pid, args.profile_connect, str(prefix))
            time.sleep(0.3)
        workers = Workers(targets, args, count)
        wave_timeout = args.connect_timeout + args.clients / 40 + 60
        first_wave = workers.connect_summaries(timeout=wave_timeout)
        time.sleep(args.settle)
        half = [server.rss() for server in servers]
        # The server's CPU time over the second wave (the first includes the clients'
        # start-up): CPU per connect, which holds when the machine is shared and rates
        # do not. Background audit rows are written after a wave, not counted here.
        cpu_before = sum(server.cpu_seconds() for server in servers)
        second_wave = workers.ask({"cmd": "connect_rest"}, timeout=wave_timeout)
        second_wave_cpu = sum(server.cpu_seconds() for server in servers) - cpu_before
        workers.connect_summary = first_wave + second_wave
        connect = report.connect_figures(workers.connect_summary)
        second_wave_ok = sum(summary["ok"] for summary in second_wave)
        connect["server_cpu_ms_per_connect"] = (
            1000 * second_wave_cpu / second_wave_ok if second_wave_ok else None
        )
        connect_profile = None
        if spies:
            profiling.wait(spies)
            if Path(f"{prefix}.txt").exists():
                profiling.flamegraph_svg(f"{prefix}.txt", f"{prefix}.svg")
                connect_profile = "connect: " + profiling.format_summary(
                    profiling.summarise(f"{prefix}.txt")
                )
        log(
            f"{kind}: {connect['ok']} connected, {connect['failed']} failed "
            f"({connect['per_second'] or 0:.0f}/s) {connect['errors'] or ''}"
        )
        idle_cpu = sum(server.cpu_seconds() for server in servers)
        time.sleep(args.settle)
        idle_cpu = sum(server.cpu_seconds() for server in servers) - idle_cpu
        idle = [server.rss() for server in servers]
        memory_profile = None
        if kind.startswith("memprobe-"):
            from bench import memprobe

            snapshot_after = servers[0].snapshot_memory(2)
            on_first = sum(1 for index in range(args.clients) if index % count == 0)
            memory_profile = memprobe.analyse(snapshot_before, snapshot_after, on_first)
        if args.ingest_rate:
            # The ceiling too: "ours / ceiling" then compares with a plain server on the
            # same loaded machine, not with one that has the cores to itself.
            ingest = IngestLoad(args, env, servers[0], beside=target != "ours").start()
        phases = []
        for phase in args.phase_list:
            log(f"{kind}: {phase} phase")
            figures = run_phase(
                phase, target, args, servers, workers, env, publisher_token, profile_dir
            )
            phases.append(figures)
            latency = figures["latency"]
            log(
                f"{kind}: {phase}: {figures['received']:,}/{figures['expected']:,} received, "
                f"{figures['delivered_per_second'] or 0:,.0f} events/s, "
                f"p99 {latency['p99_ms'] or 0:.1f} ms"
            )
        ingest_figures = ingest.stop() if ingest is not None else None
        time.sleep(1)
        after = [server.rss() for server in servers]
        mb = report.MB
        ok = connect["ok"]
        second_ok = sum(summary["ok"] for summary in second_wave)
        ws_chosen = args.uvicorn_ws != "auto"
        result = {
            "label": (
                f"{kind}{' x' + str(count) if count > 1 else ''}"
                f"{' --ws ' + args.uvicorn_ws if kind == 'uvicorn' and ws_chosen else ''}"
                f"{' (deflate accepted)' if kind == 'uvicorn' and args.uvicorn_deflate else ''}"
                f"{', clients offer deflate' if args.client_compression != 'none' else ''}"
                f"{' + Redis' if target == 'ours' and args.redis else ''}"
                f"{', publisher ' + args.publisher if target == 'ours' else ''}"
                f", {args.clients} clients"
            ),
            "target": target,
            "server": kind,
            "processes": count,
            "busy_before_percent": busy_before,
            "connect": connect,
            "idle_cpu_percent": 100 * idle_cpu / args.settle if args.settle else None,
            "memory": {
                "baseline_mb": sum(baseline) / mb,
                "idle_mb": sum(idle) / mb,
                "after_mb": sum(after) / mb,
                "per_1000_mb": (sum(idle) - sum(baseline)) / ok * 1000 / mb if ok else None,
                "half_mb": sum(half) / mb,
                "second_half_per_1000_mb": (
                    (sum(idle) - sum(half)) / second_ok * 1000 / mb if second_ok else None
                ),
                "per_server_idle_mb": [value / mb for value in idle],
            },
            "phases": phases,
        }
        if ingest_figures is not None:
            result["ingest"] = ingest_figures
            result["label"] += f", ingest {args.ingest_rate:g} lines/s"
            result["label"] += f" in {ingest.where}"
        if memory_profile:
            result["memory_profile"] = memory_profile
        profiles = [connect_profile] if connect_profile else []
        profiles += [f"{p['phase']}: " + p.pop("profile") for p in phases if "profile" in p]
        if profiles:
            result["profile"] = "\n".join(profiles)
        return result
    except Exception:
        for server in servers:
            if server.process is not None:
                log(f"{server.name} log tail:\n{server.log_tail()}")
        raise
    finally:
        if ingest is not None:
            ingest.stop()
        if workers is not None:
            workers.close()
        for server in servers:
            server.stop()


class IngestLoad:
    """Syslog traffic in the background (`--ingest-rate`): `bench.ingest_send` sending the
    realistic mix over TCP to the server's receiver, paced, until stopped; then how much
    it sent and how much the server processed (its /metrics).

    `beside`: a ceiling's load, `manage.py run_syslog` on a scratch copy of the database
    (the ceiling has no receiver, and the run's database stays as ours left it)."""

    WARM_UP = 3.0  # seconds of ingest before the phases start

    def __init__(self, args, env, server, *, beside=False):
        self.args = args
        self.env = scratch_environment(env, server.workdir) if beside else env
        self.server = server
        self.separate = beside or args.ingest_in == "run_syslog"
        self.where = {
            "server": "the server's child process",
            "loop": "the server's event loop",
        }.get(args.ingest_in, "run_syslog")
        if beside:
            self.where = "run_syslog beside it (scratch database)"
        self.process = None
        self.receiver = None
        self.figures = None
        self.processed_before = 0

    def start(self):
        log(
            f"ingest: {self.args.ingest_rate:g} lines/s over syslog TCP in the background, "
            f"received and processed in {self.where}"
        )
        if self.separate:
            self.processed_before = processed_lines(self.env) or 0
            self.receiver = ServerProcess(
                "run_syslog", self.env, self.server.workdir, "run_syslog", nice=self.args.nice
            )
            self.receiver.start_command(
                [sys.executable, "manage.py", "run_syslog"], self.args.syslog_port
            )
        self.started = time.time()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ingest_send",
                f"--port={self.args.syslog_port}",
                f"--rate={self.args.ingest_rate}",
                "--seconds=100000",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=child_setup(self.args.nice),
        )
        time.sleep(self.WARM_UP)
        return self

    def stop(self):
        if self.process is None or self.figures is not None:
            return self.figures
        self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        figures = {"rate": self.args.ingest_rate, "seconds": round(time.time() - self.started, 1)}
        try:
            figures.update(json.loads(output.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            figures["error"] = "the sender printed no figures"
        if self.receiver is not None:
            # Its /metrics are not served: what it processed is in the database.
            figures["receiver_cpu_seconds"] = round(self.receiver.cpu_seconds(), 1)
            self.receiver.stop(timeout=60)
            figures["lines_processed"] = (processed_lines(self.env) or 0) - self.processed_before
        else:
            figures.update(ingest_counters(self.server))
        self.figures = figures
        log(f"ingest: {figures}")
        return figures


def scratch_environment(env, workdir):
    """`env` on a copy of the run's SQLite database (a PostgreSQL one is shared)."""
    url = env.get("DATABASE_URL", "")
    if not url.startswith("sqlite:///"):
        return env
    import sqlite3

    scratch = Path(workdir) / "ingest-scratch.sqlite3"
    scratch.unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source,
        contextlib.closing(sqlite3.connect(scratch)) as target,
    ):
        source.backup(target)
    return {**env, "DATABASE_URL": f"sqlite:///{scratch}"}


def processed_lines(env):
    """Lines the raw logs of the run's database count processed."""
    code = (
        "import django; django.setup()\n"
        "from django.db.models import Sum\n"
        "from incidents.models import RawLog\n"
        "print(RawLog.objects.aggregate(n=Sum('lines_total'))['n'] or 0)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    try:
        return int(completed.stdout.split()[-1])
    except (ValueError, IndexError):
        return None


def ingest_counters(server):
    """Lines the server received and processed, and its queue, from /metrics."""
    try:
        with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    names = {
        "threatlens_ingest_lines_received_total": "lines_received",
        "threatlens_ingest_lines_processed_total": "lines_processed",
        "threatlens_ingest_lines_dropped_total": "lines_dropped",
        "threatlens_ingest_queue_depth": "queue_depth",
        "threatlens_ingest_lag_seconds": "lag_seconds",
    }
    found = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in names:
            found[names[name]] = float(value)
    return found


def machine_info():
    from importlib import metadata

    versions = {}
    for package in ("django", "channels", "channels-redis", "daphne", "uvicorn", "websockets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = None
    return {
        "realtime_digest": realtime_digest(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "versions": versions,
        "commit": commit,
    }


def realtime_digest():
    """A digest of realtime/*.py as run: the tree may hold uncommitted work."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "realtime").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def clean_redis(url, prefix):
    try:
        import redis

        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    except Exception as exc:
        log(f"could not remove this run's Redis keys ({prefix}*): {exc}")


def main(argv=None):
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="threatlens-bench-")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    env = base_environment(args, workdir, prefix)
    if args.processes > 1 and not args.redis:
        log("several processes without --redis: events cross processes only by table polling")
    profile_dir = None
    if args.profile:
        profile_dir = Path(args.profile).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "options": {key: value for key, value in vars(args).items() if key != "phase_list"},
        **machine_info(),
    }
    ok = False
    try:
        log(f"preparing the database ({'PostgreSQL' if args.database_url else 'SQLite'})")
        prepared = prepare_database(
            env, users=args.users, password=password, prefix=prefix, role=args.client_role
        )
        results["ours"] = run_target(
            "ours", args, env, workdir, prepared, password, profile_dir=profile_dir
        )
        if not args.no_ceiling and args.ceiling in ("websockets", "all"):
            results["ceiling"] = run_target("ceiling", args, env, workdir)
        if not args.no_ceiling and args.ceiling in ("asgi", "all"):
            results["asgi_ceiling"] = run_target("asgi-ceiling", args, env, workdir)
        if not args.no_ceiling and args.ceiling in ("asgi-tasks", "all"):
            results["asgi_tasks_ceiling"] = run_target("asgi-tasks-ceiling", args, env, workdir)
        ok = True
    finally:
        if args.redis:
            clean_redis(args.redis_url, prefix)
        if args.keep or not ok:
            log(f"kept {workdir} (logs, database)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_results(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return results


def format_results(results, args):
    lines = [
        f"## `{results['command']}`",
        "",
        f"{results['cpus']} CPUs, load average at start "
        f"{', '.join(f'{v:.2f}' for v in results['load_average'])}; Python {results['python']}; "
        + ", ".join(f"{k} {v}" for k, v in results["versions"].items())
        + f"; commit {results['commit']}, realtime/*.py digest {results['realtime_digest']}",
        "",
        report.format_target(results["ours"]),
    ]
    ceiling = results.get("ceiling")
    if ceiling:
        ratios = report.format_ratios(results["ours"], ceiling)
        lines += ["", report.format_target(ceiling), "", ratios]
    for key, name in (
        ("asgi_ceiling", "the bare ASGI ceiling"),
        ("asgi_tasks_ceiling", "the bare ASGI ceiling with writer tasks"),
    ):
        other = results.get(key)
        if other:
            ratios = report.format_ratios(results["ours"], other, name)
            lines += ["", report.format_target(other), "", ratios]
    checks = report.targets_check(results["ours"], ceiling, args.clients)
    if checks:
        lines += ["", "### Targets (issue 7)", ""]
        lines += [f"- {'MET' if passed else 'NOT MET'}: {text}" for text, passed in checks]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

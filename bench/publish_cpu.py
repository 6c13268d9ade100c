"""Server CPU per `POST /api/realtime/publish/` request: what a shared machine can measure.

    python -m bench.publish_cpu [--requests 2000] [--concurrency 4] [--batch 1]
                                [--redis] [--database-url URL] [--profile DIR [--profile-gil]]

Starts one uvicorn server on a fresh database (as bench.run does), warms it up, then sends
`--requests` publishes over `--concurrency` keep-alive connections and reports the
server's CPU time (user + system, psutil) per request and per event. Wall rates depend on
what else runs on the machine; CPU per request does much less. No WebSocket clients: the
figure is the request's own cost (the hub receives each event, with nobody to send it to).
With `--profile DIR`, py-spy samples the server during the requests (DIR/publish.txt and
a summary on stdout).
"""

import argparse
import json
import os
import resource
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import profile as profiling
from bench.publisher import RestPublisher, event_data
from bench.run import obtain_token
from bench.servers import ServerProcess, bench_environment, prepare_database


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1, help="events per request (>1: a list)")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--event-type", default="config_change")
    parser.add_argument("--pad-bytes", type=int, default=150)
    parser.add_argument("--profile", default=None, help="py-spy the server into this folder")
    parser.add_argument(
        "--profile-gil", action="store_true", help="with --profile: the GIL holder only"
    )
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="publish-cpu-")
    prefix = f"pubcpu{secrets.token_hex(3)}"
    env = bench_environment(
        workdir,
        database_url=args.database_url,
        redis_url=args.redis_url if args.redis else None,
        prefix=prefix,
        server_env=args.server_env,
    )
    password = secrets.token_urlsafe(16)
    users = prepare_database(env, users=0, password=password, prefix=prefix)
    server = ServerProcess("uvicorn", env, workdir, "server").start()
    try:
        token = obtain_token(server, users["publisher"], password)
        publisher = RestPublisher(
            {
                "host": "127.0.0.1",
                "port": server.port,
                "token": token,
                "event_type": args.event_type,
            }
        )
        pad = "x" * args.pad_bytes
        send = (
            (lambda seq: publisher.publish(event_data(seq, pad)))
            if args.batch == 1
            else (lambda seq: publisher.publish_many([event_data(seq, pad)] * args.batch))
        )
        for seq in range(50):  # warm up: lazy imports, threads, connections
            send(seq)
        time.sleep(1)
        sampler = None
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            sampler = profiling.start(
                server.pid, 3600, str(Path(args.profile) / "publish"), gil=args.profile_gil
            )
            time.sleep(1)
        counter = iter(range(args.requests))
        lock = threading.Lock()
        errors = []

        def worker():
            while True:
                with lock:
                    seq = next(counter, None)
                if seq is None:
                    return
                try:
                    send(seq)
                except Exception as exc:  # counted, not fatal
                    errors.append(repr(exc))

        client_before = _own_cpu()
        times_before, wall_before = server.ps.cpu_times(), time.perf_counter()
        load_before = os.getloadavg()[0]
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall_before
        times = server.ps.cpu_times()
        user, system = times.user - times_before.user, times.system - times_before.system
        cpu = user + system
        client_cpu = _own_cpu() - client_before
        if sampler:
            for process in sampler:
                process.send_signal(2)  # SIGINT: py-spy writes what it has
            profiling.wait(sampler)
        result = {
            "requests": args.requests,
            "batch": args.batch,
            "concurrency": args.concurrency,
            "redis": args.redis,
            "database": "postgresql" if args.database_url else "sqlite",
            "errors": len(errors),
            "wall_s": round(wall, 2),
            "requests_per_s_wall": round(args.requests / wall, 1),
            "server_cpu_s": round(cpu, 3),
            "server_cpu_ms_per_request": round(1000 * cpu / args.requests, 3),
            "of_which_system_ms": round(1000 * system / args.requests, 3),
            "server_cpu_us_per_event": round(1e6 * cpu / (args.requests * args.batch), 1),
            # The load generator (this process, `--concurrency` threads, http.client): at
            # some rate it, not the server, is the limit.
            "client_cpu_ms_per_request": round(1000 * client_cpu / args.requests, 3),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        print(json.dumps(result))
        if errors:
            print(f"first errors: {errors[:3]}", file=sys.stderr)
        if sampler:
            raw = str(Path(args.profile) / "publish.txt")
            print(profiling.format_summary(profiling.summarise(raw, 30)))
    finally:
        server.stop()


def _own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()

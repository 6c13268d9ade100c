"""Connects against the ceiling in alternating rounds: the reconnect storm after a deploy.

    python -m bench.connects --clients 5000 --client-role viewer --rounds 5
                             [--redis --redis-url URL] [any other option of bench.run]

`bench.run` measures our connects and then, a minute later, the ceiling's: on a shared
machine whose speed drifts by a fifth within minutes, one such pair can be off either
way. Here both servers are started once and kept up; each round opens the N clients on
one, closes them, waits for the server to be idle again (ours writes the sockets' audit
rows), then does the same on the other, the first of the pair alternating from round to
round. Each round gives a ratio measured seconds apart; the median of the rounds is the
figure, their range how much the machine moved.

Clients open in two waves of N/2 as in `bench.run` (the rate counts the time spent
connecting). Server CPU per connect is the server's CPU time from the first handshake to
the last, per connection.
"""

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.run import Workers, base_environment, clean_redis, log, obtain_token, parse_args, warm_up
from bench.servers import HOST, ServerProcess, prepare_database

IDLE_BELOW = 0.05  # a server using less than 5% of a core is idle again
IDLE_WAIT_AT_MOST = 60.0


def main(argv=None):
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--rounds", type=int, default=5)
    known, rest = extra.parse_known_args(argv)
    args = parse_args(rest)
    workdir = tempfile.mkdtemp(prefix="threatlens-bench-connects-")
    prefix = f"bench{time.time_ns():x}"
    password = secrets.token_urlsafe(18)
    env = base_environment(args, workdir, prefix)
    prepared = prepare_database(
        env, users=args.users, password=password, prefix=prefix, role=args.client_role
    )
    ours = ServerProcess(args.server, env, workdir, "ours", args.uvicorn_ws, args.nice)
    ceiling = ServerProcess("ceiling", env, workdir, "ceiling", args.uvicorn_ws, args.nice)
    rounds = []
    try:
        ours.start()
        ceiling.start()
        token = obtain_token(ours, prepared["clients"][0], password)
        warm_up(ours, token, args.event_type, None)
        warm_up(ceiling, None, args.event_type, None)
        for index in range(known.rounds):
            pair = [("ours", ours, token), ("ceiling", ceiling, None)]
            figures = {}
            for name, server, client_token in pair if index % 2 == 0 else pair[::-1]:
                wait_idle(server)
                figures[name] = connect_once(server, client_token, args)
                log(
                    f"round {index + 1} {name}: {figures[name]['per_second']:.0f}/s, "
                    f"{figures[name]['server_cpu_ms_per_connect']:.2f} ms CPU per connect"
                )
            wait_idle(ours)
            figures["ours_rss_mb_idle"] = ours.rss() / 2**20
            log(f"round {index + 1}: ours idle again at {figures['ours_rss_mb_idle']:.1f} MB")
            rounds.append(figures)
    finally:
        ours.stop()
        ceiling.stop()
        if args.redis:
            clean_redis(args.redis_url, prefix)
        if args.keep:
            log(f"kept {workdir} (logs, database)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results = {"command": " ".join(["python -m bench.connects", *sys.argv[1:]]), "rounds": rounds}
    print(format_rounds(results, args.clients))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return results


def connect_once(server, token, args):
    """Open `args.clients` clients on `server` in two waves, then close them."""
    url = server.ws_url() + (f"?token={token}" if token else "")
    targets = [
        {"url": url, "host": HOST, "port": server.port, "server": 0} for _ in range(args.clients)
    ]
    timeout = args.connect_timeout + args.clients / 40 + 60
    workers = Workers(targets, args, 1)
    try:
        first = workers.connect_summaries(timeout=timeout)
        cpu_before = server.cpu_seconds()
        second = workers.ask({"cmd": "connect_rest"}, timeout=timeout)
        cpu = server.cpu_seconds() - cpu_before
    finally:
        workers.close()
    figures = report.connect_figures(first + second)
    second_ok = sum(summary["ok"] for summary in second)
    # The second wave's, as in bench.run: the first includes the clients' start-up.
    figures["server_cpu_ms_per_connect"] = 1000 * cpu / second_ok if second_ok else None
    if figures["failed"]:
        raise RuntimeError(f"{figures['failed']} connections failed: {figures['errors']}")
    return figures


def wait_idle(server):
    """Until the server uses less than IDLE_BELOW of a core over half a second."""
    deadline = time.monotonic() + IDLE_WAIT_AT_MOST
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        time.sleep(0.5)
        if (server.cpu_seconds() - before) / 0.5 < IDLE_BELOW:
            return
    log(f"{server.name} still busy after {IDLE_WAIT_AT_MOST:.0f} s; going on")


def format_rounds(results, clients):
    lines = [
        f"## `{results['command']}`",
        "",
        "| round | ours connects/s | ceiling connects/s | ratio | ours: all back in | "
        "CPU ms/connect, ours | ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios, seconds = [], []
    for index, figures in enumerate(results["rounds"], 1):
        ours, ceiling = figures["ours"], figures["ceiling"]
        ratio = ours["per_second"] / ceiling["per_second"]
        ratios.append(ratio)
        seconds.append(ours["seconds"])
        lines.append(
            f"| {index} | {ours['per_second']:.0f} | {ceiling['per_second']:.0f} | "
            f"{ratio:.2f}x | {ours['seconds']:.1f} s | "
            f"{ours['server_cpu_ms_per_connect']:.2f} | "
            f"{ceiling['server_cpu_ms_per_connect']:.2f} |"
        )
    if ratios:
        lines += [
            "",
            f"- connect rate, ours / ceiling: median **{statistics.median(ratios):.2f}x** "
            f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds)",
            f"- all {clients:,} clients back in: median {statistics.median(seconds):.1f} s "
            f"(range {min(seconds):.1f}-{max(seconds):.1f} s)",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Ingest benchmark (issue 15): lines sent over syslog TCP to a running server, processed
into security events and alerts, against the parse-only ceiling measured in the same run.

    python -m bench.ingest [--mix realistic attack-heavy] [--lines 50000]
                           [--database-url postgres://...] [--server uvicorn|daphne]
                           [--sigma N]

For each mix (bench/ingest_mix.py), on a fresh database (a temporary SQLite file unless
--database-url):

1. `python -m bench.prepare` migrates it; a server (`uvicorn threatlens.asgi:application`,
   DEBUG=false, the syslog receiver in process on a free loopback TCP port) starts;
2. `--lines` messages of the mix (RFC 5424, LF-terminated) are sent over `--connections`
   TCP connections (default 1) as fast as the server takes them (TCP backpressure paces
   the sender);
3. the run waits until every line is processed (the raw logs' `lines_total`, read from
   the database every 0.2 s) and reports: lines/s accepted (first byte to last byte sent)
   and processed (first byte sent to last line processed), the server's CPU seconds
   (psutil, user + system) and lines per CPU-second, security events and alerts stored,
   the receiver's drops and malformed counts, and the server's RSS before and after;
4. in the same run, the ceilings in this process, CPU time over the same lines:
   `parse_line` alone (parse-only), and `parse_line` + the analyzer with every shipped
   rule (detection without storage). Our processed rate is printed as a ratio of them,
   and `events_match_detection_only` checks that the server stored exactly the events
   the analyzer alone finds in the same lines.

With `--sigma N` (issue 21), after the database is prepared and before the server starts,
the shipped Sigma rules (incidents/sigma/rules/) and N generated ones of SigmaHQ's shapes
(`bench.sigma.rule_texts`) are stored enabled through `incidents.sigma.services.upload_rule`,
the service REST uses, and the result's `sigma_rules` counts the ones loaded. The
detection-only ceiling then runs the same rules in a `SigmaEngine` beside the analyzer,
sharing its state as the server's pipeline does, so `events_match_detection_only` still
compares like with like. Without it no Sigma rule is stored (a kept database's are
removed), as before.

Prints a table and, with --json, one JSON object per mix.
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.ingest_mix import MIXES, generate
from bench.servers import (
    HOST,
    ROOT,
    ServerProcess,
    free_port,
    prepare_database,
    server_environment,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mix", nargs="+", choices=MIXES, default=list(MIXES))
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="TCP connections sending at once (more than one interleaves the lines: the "
        "order, and so what is detected, then differs from run to run)",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--server", choices=("uvicorn", "daphne"), default="uvicorn")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--json", action="store_true", help="print one JSON object per mix")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sigma",
        type=int,
        default=None,
        metavar="N",
        help="enable the shipped Sigma rules plus N generated ones (default: no Sigma rules)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    results = []
    sigma_texts = sigma_rule_texts(args.sigma)
    for mix in args.mix:
        lines = generate(mix, args.lines, seed=args.seed)
        result = {"mix": mix, "lines": len(lines), "load_1m_before": round(os.getloadavg()[0], 2)}
        result.update(ceilings(lines, sigma_texts))
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
            result.update(run_server(args, lines, Path(workdir)))
        # With one connection the server sees the lines in order: it must detect exactly
        # what the analyzer alone detects over the same lines.
        result["events_match_detection_only"] = (
            result["security_events"] == result["detection_only_events"]
        )
        ours = result["lines_per_cpu_second"]
        result["ratio_to_parse_only"] = round(ours / result["parse_only_per_cpu_second"], 3)
        result["ratio_to_detection_only"] = round(ours / result["detection_only_per_cpu_second"], 3)
        results.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    if not args.json:
        print_table(results)
    return results


# -- the ceilings ----------------------------------------------------------------------------


def sigma_rule_texts(generated):
    """The Sigma rules' YAML of `--sigma N` (none without it)."""
    if generated is None:
        return []
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    from bench.sigma import rule_texts

    return rule_texts(generated)


def ceilings(lines, sigma_texts=()):
    """Parse-only and parse + detect rates over `lines`' syslog messages, in this process.
    Detection is the built-in analyzer, plus a Sigma engine over `sigma_texts` if any,
    both on one state, in the order `incidents.processing` calls them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    import django

    django.setup()
    from incidents.pipeline.analyzer import Analyzer
    from incidents.pipeline.parsers import parse_line
    from incidents.pipeline.rules import load_rules
    from incidents.pipeline.state import BoundedState
    from incidents.syslog.routing import source_for

    messages = [(line.message, source_for(line.message)) for line in lines]
    started = time.process_time()
    for text, hint in messages:
        parse_line(text, source_hint=hint)
    parse_cpu = time.process_time() - started

    state = BoundedState()
    analyzer = Analyzer(load_rules(), state)
    drafts = 0
    if sigma_texts:
        from django.conf import settings

        from incidents.sigma.engine import SigmaEngine
        from incidents.sigma.loading import read_rule

        # Compiled before the clock starts: the server compiles its rules once too.
        engine = SigmaEngine(
            [read_rule(text) for text in sigma_texts], state, cooldown=settings.SIGMA_COOLDOWN
        )
        started = time.process_time()
        for text, hint in messages:
            parsed = parse_line(text, source_hint=hint)
            drafts += len(analyzer.analyze(parsed, source=hint))
            drafts += len(engine.analyze(parsed, source=hint))
    else:
        started = time.process_time()
        for text, hint in messages:
            drafts += len(analyzer.analyze(parse_line(text, source_hint=hint), source=hint))
    detect_cpu = time.process_time() - started
    return {
        "parse_only_per_cpu_second": round(len(lines) / parse_cpu),
        "detection_only_per_cpu_second": round(len(lines) / detect_cpu),
        "detection_only_events": drafts,
    }


# -- the server run ------------------------------------------------------------------------


def run_server(args, lines, workdir):
    port = free_port()
    overrides = {
        "DJANGO_SETTINGS_MODULE": "threatlens.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "SYSLOG_IN_PROCESS": "true",
        "SYSLOG_BIND": HOST,
        "SYSLOG_TCP_PORT": port,
        "SYSLOG_UDP_PORT": 0,
        "METRICS_PUBLIC": "true",
    }
    for item in args.server_env:
        name, _, value = item.partition("=")
        overrides[name] = value
    env = server_environment(os.environ, **overrides)
    prepare(env)
    reset(env)
    sigma_rules = store_sigma_rules(env, args.sigma) if args.sigma is not None else 0
    server = ServerProcess(args.server, env, workdir, f"{args.server}-ingest").start()
    try:
        wait_for_port(port, server)
        rss_before = server.rss()
        cpu_before = server.cpu_seconds()
        counter = Processed(env["DATABASE_URL"])
        sent_at, accepted_at = send(lines, port, args.connections)
        processed_at = counter.wait_for(len(lines), timeout=args.timeout, server=server)
        cpu = server.cpu_seconds() - cpu_before
        rss_after = server.rss()
        stored = counter.stored()
        metrics = read_metrics(server)
    finally:
        server.stop()
    elapsed = processed_at - sent_at
    return {
        "server": args.server,
        "database": "postgresql" if args.database_url else "sqlite",
        "accepted_per_second": round(len(lines) / max(1e-9, accepted_at - sent_at)),
        "processed_per_second": round(len(lines) / elapsed),
        "seconds": round(elapsed, 2),
        "server_cpu_seconds": round(cpu, 2),
        "lines_per_cpu_second": round(len(lines) / cpu),
        "sigma_rules": sigma_rules,
        "security_events": stored["events"],
        "alerts": stored["alerts"],
        "lines_processed": stored["lines"],
        "receiver": metrics,
        "server_cpu_share": round(cpu / elapsed, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
        "rss_mb_before": round(rss_before / 2**20, 1),
        "rss_mb_after": round(rss_after / 2**20, 1),
    }


def prepare(env):
    prepare_database(env, users=1, password=secrets.token_urlsafe(16), prefix="bench")


def reset(env):
    """A kept PostgreSQL database starts without the previous run's logs, events and
    Sigma rules."""
    code = (
        "import django; django.setup()\n"
        "from incidents.models import Alert, RawLog, SecurityEvent\n"
        "from threatlens.writeguard import service_writes\n"
        "from incidents.sigma.models import SigmaRule\n"
        "from realtime.models import Event\n"
        "SecurityEvent.objects.all().delete()\n"
        "with service_writes(): Alert.objects.all().delete()\n"
        "RawLog.objects.all().delete(); Event.objects.all().delete()\n"
        "SigmaRule.objects.all().delete()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=300)


def store_sigma_rules(env, generated):
    """Store the shipped and `generated` generated Sigma rules, enabled, in the bench
    database through the service REST uploads go through; returns how many loaded
    (a refused one would be stored but not run)."""
    code = (
        "import django, sys; django.setup()\n"
        "from bench.sigma import rule_texts\n"
        "from incidents.sigma.models import SigmaRule\n"
        "from incidents.sigma.services import upload_rule\n"
        "from threatlens.audit.context import audit_context\n"
        "with audit_context(source='bench.ingest --sigma'):\n"
        "    for text in rule_texts(int(sys.argv[1])):\n"
        "        upload_rule(text, actor=None)\n"
        # Counted at the end: a correlation stored before the rules it names is refused
        # until they arrive.
        "print(SigmaRule.objects.filter(enabled=True, refusal_code='').count())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(generated)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"storing the Sigma rules failed:\n{completed.stderr[-3000:]}")
    return int(completed.stdout.split()[-1])


def wait_for_port(port, server, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the syslog receiver did not listen on {port}:\n{server.log_tail()}")


def send(lines, port, connections):
    """Send every line (LF-terminated) over `connections` TCP connections at once; returns
    (time of the first send, time the last byte was accepted by the server's socket)."""
    parts = [lines[index::connections] for index in range(connections)]
    payloads = ["".join(line.message + "\n" for line in part).encode() for part in parts]
    sockets = [socket.create_connection((HOST, port)) for _ in payloads]
    done = []

    def push(sock, payload):
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        done.append(time.time())

    threads = [
        threading.Thread(target=push, args=(sock, payload))
        for sock, payload in zip(sockets, payloads, strict=True)
    ]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sock in sockets:
        sock.close()
    return started, max(done)


class Processed:
    """Reads the database the server writes (plain SQL, no Django): lines processed,
    events, alerts."""

    def __init__(self, database_url):
        if database_url.startswith("sqlite:///"):
            import sqlite3

            self.connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        else:
            import psycopg

            self.connection = psycopg.connect(database_url, autocommit=True)

    def _value(self, sql):
        cursor = self.connection.cursor()
        cursor.execute(sql)
        value = cursor.fetchone()[0]
        cursor.close()
        if hasattr(self.connection, "commit"):
            self.connection.commit()  # a new snapshot next time (SQLite)
        return int(value or 0)

    def lines(self):
        return self._value("SELECT SUM(lines_total) FROM incidents_rawlog")

    def wait_for(self, count, *, timeout, server):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.lines() >= count:
                return time.time()
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{server.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"only {self.lines()} of {count} lines processed in {timeout} s")

    def stored(self):
        return {
            "lines": self.lines(),
            "events": self._value("SELECT COUNT(*) FROM incidents_securityevent"),
            "alerts": self._value("SELECT COUNT(*) FROM incidents_alert"),
        }


def read_metrics(server):
    """The receiver's and the intake's counters from /metrics (METRICS_PUBLIC)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    wanted = ("threatlens_syslog_", "threatlens_ingest_")
    found = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def print_table(results):
    columns = [
        ("mix", "mix"),
        ("database", "db"),
        ("lines", "lines"),
        ("accepted_per_second", "accepted/s"),
        ("processed_per_second", "processed/s"),
        ("lines_per_cpu_second", "lines/CPU-s"),
        ("parse_only_per_cpu_second", "parse-only/CPU-s"),
        ("ratio_to_parse_only", "ratio"),
        ("detection_only_per_cpu_second", "detect-only/CPU-s"),
        ("sigma_rules", "sigma rules"),
        ("security_events", "events"),
        ("events_match_detection_only", "= detect-only"),
        ("alerts", "alerts"),
        ("server_cpu_share", "server CPU"),
        ("load_1m_before", "load"),
        ("rss_mb_after", "RSS MB"),
    ]
    print(" | ".join(title for _, title in columns))
    for result in results:
        print(" | ".join(str(result.get(key, "")) for key, _ in columns))


if __name__ == "__main__":
    main()

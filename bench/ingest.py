"""Ingest benchmark (issue 15): lines sent over syslog TCP to a running server, processed
into security events and alerts, against the parse-only ceiling measured in the same run.

    python -m bench.ingest [--mix realistic attack-heavy] [--lines 50000]
                           [--database-url postgres://...] [--redis redis://...]
                           [--server uvicorn|daphne]
                           [--sigma N [--sigma-without-shipped]]

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
   rule (detection without storage), over the lines in the form the transport sends
   them (syslog messages; for `--transport http` the lines as a log file holds them,
   with their source), detection per chunk of LOG_PROCESSING_CHUNK_LINES lines of one
   raw log, as the server detects (`analyze_many`, the state asked once per chunk), in
   memory even with --redis (the server's state round trips are part of its cost).
   Our processed rate is printed as a ratio of them,
   `events_match_detection_only` checks that the server stored exactly the events the
   analyzer alone finds in the same lines, and `events_match_processing_order` that it
   stored exactly what the analyzer alone finds over the raw logs it stored, in the
   order it processed them.

With `--sigma N` (issue 21), after the database is prepared and before the server starts,
the shipped Sigma rules (incidents/sigma/rules/) are stored as `migrate` stores them
(`incidents.sigma.services.sync_shipped`: the two that start disabled stay so) and N
generated ones of SigmaHQ's shapes (`bench.sigma.rule_texts`) are stored enabled through
`incidents.sigma.services.upload_rule`, the service REST uses; the result's `sigma_rules`
counts the ones loaded. The shipped correlations replace the built-in brute-force rules
(docs/sigma.md): the same events and alerts, from the Sigma rules. The detection-only
ceiling then runs the same rules in a `SigmaEngine` beside the analyzer (whose built-in
rules it replaces), sharing its state as the server's pipeline does, so
`events_match_detection_only` still compares like with like. Without it no Sigma rule is
stored (the shipped ones `migrate` stored, and a kept database's, are removed): the
built-in rules alone, as before.

Prints a table and, with --json, one JSON object per mix.
"""

import argparse
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.ingest_mix import MIXES, START, default_step, generate, iterate
from bench.ingest_send import percentile, send_http, send_tcp, send_udp
from bench.servers import (
    HOST,
    ROOT,
    ServerProcess,
    bench_environment,
    free_port,
    prepare_database,
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
    parser.add_argument(
        "--transport",
        choices=("tcp", "udp", "http"),
        default="tcp",
        help="syslog TCP (default), syslog UDP (a datagram per line), or POST /api/logs/",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="send at this many lines/s on a fixed schedule (default: as fast as possible)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --rate: send rate x SECONDS lines (replaces --lines)",
    )
    parser.add_argument(
        "--http-clients", type=int, default=4, help="--transport http: concurrent clients"
    )
    parser.add_argument(
        "--post-lines", type=int, default=200, help="--transport http: lines per call at most"
    )
    parser.add_argument(
        "--sockets",
        type=int,
        default=0,
        help="WebSocket clients subscribed to security_event during the run; with any, the "
        "detection latency (line sent -> security_event received) is measured",
    )
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--rss-interval", type=float, default=5.0, help="seconds between RSS samples"
    )
    parser.add_argument(
        "--ceiling-lines",
        type=int,
        default=50_000,
        help="the ceilings run over the first N lines (a long run's lines are not all kept)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy the server from the first line sent, for --profile-seconds: collapsed "
        "stacks, a flame graph and a summary in DIR",
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--nice",
        type=int,
        metavar="N",
        help="scheduling priority of the whole run (this process, the server, the clients; "
        "e.g. -10 on a busy shared machine, as bench.run's --nice; negative needs root)",
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="give the server REDIS_URL (redis://127.0.0.1:6379/4): the detection state, "
        "channel layer and cache in Redis, under a prefix of this run's, removed after",
    )
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
    parser.add_argument(
        "--sigma-without-shipped",
        action="store_true",
        help="with --sigma, leave out the shipped rules (SIGMA_SHIPPED_RULES=false): the "
        "built-in brute-force rules they replace run instead, with the same detections; "
        "this measures the generated rules alone",
    )
    args = parser.parse_args(argv)
    if args.duration is not None:
        if not args.rate:
            parser.error("--duration needs --rate")
        args.lines = int(args.rate * args.duration)
    if args.connections > 1 and (args.transport != "tcp" or args.rate):
        parser.error("--connections applies to unpaced TCP only")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every child process
    results = []
    sigma_texts = sigma_rule_texts(args.sigma, shipped=not args.sigma_without_shipped)
    for mix in args.mix:
        result = {
            "mix": mix,
            "transport": args.transport,
            "rate": args.rate,
            "sockets": args.sockets,
            "lines": args.lines,
            "load_1m_before": round(os.getloadavg()[0], 2),
        }
        sample = generate(mix, min(args.lines, args.ceiling_lines), seed=args.seed)
        result.update(
            ceilings(sample, sigma_texts, transport=args.transport, block_lines=block_lines(args))
        )
        result["ceiling_lines"] = len(sample)
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as workdir:
            result.update(run_server(args, mix, Path(workdir), sigma_texts))
        # With one connection (or one HTTP client) the server sees the lines in order: it
        # must detect exactly what the analyzer alone detects over the same lines (when
        # the ceilings saw them all, and none was lost on the way).
        result["events_match_detection_only"] = (
            result["security_events"] == result["detection_only_events"]
            if len(sample) == args.lines and result["lines_processed"] == args.lines
            else None
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


def block_lines(args):
    """Lines the server stores and processes together: an upload's for `http`, else the
    sink's batch."""
    return args.post_lines if args.transport == "http" else SINK_BATCH_LINES


def sigma_rule_texts(generated, *, shipped=True):
    """The Sigma rules' YAML of `--sigma N` (none without it): the ones the server runs,
    so the shipped rules that start disabled are left out."""
    if generated is None:
        return []
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    from bench.sigma import rule_texts
    from incidents.sigma.loading import read_rule

    texts = rule_texts(generated, shipped=shipped)
    return [text for text in texts if read_rule(text).enabled_by_default]


def ceilings(lines, sigma_texts=(), *, transport="tcp", block_lines=None):
    """Parse-only and parse + detect rates over `lines`, in this process, in the form the
    transport sends them: syslog messages with the receiver's source hint, or for `http`
    the lines as a log file holds them with their source (`{"source", "content"}`), as
    `incidents.processing` parses an upload.

    Detection runs as the server runs it: the lines in blocks of `block_lines` (the
    sink's batch, 5,000 lines; for `http` the lines per call), cut into raw logs as the
    server cuts them (`server_chunks`), each in chunks of LOG_PROCESSING_CHUNK_LINES
    parsed then analysed together:
    the built-in analyzer's `analyze_many` and, with `sigma_texts`, a Sigma engine's
    `analyze_many` on the same state, in the order `ChunkDetector` calls them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
    import django

    django.setup()
    from incidents.conf import pipeline_setting
    from incidents.pipeline.parsers import parse_line, parser_for_hint
    from incidents.syslog.routing import source_for

    if transport == "http":
        # An upload's `source` is its raw log's; the parser hint only if it names one.
        messages = [
            (line.text, line.source if parser_for_hint(line.source) else None, line.source)
            for line in lines
        ]
    else:
        messages = [
            (line.message, hint, hint) for line in lines for hint in [source_for(line.message)]
        ]
    started = time.process_time()
    for text, hint, _source in messages:
        parse_line(text, source_hint=hint)
    parse_cpu = time.process_time() - started

    chunks = server_chunks(
        messages,
        transport=transport,
        block_lines=block_lines or (200 if transport == "http" else SINK_BATCH_LINES),
        chunk_lines=pipeline_setting("LOG_PROCESSING_CHUNK_LINES"),
    )
    analyzer, engine = detectors(sigma_texts)
    drafts = 0
    started = time.process_time()
    for number, (hint, source, texts) in enumerate(chunks):
        parsed = [parse_line(text, source_hint=hint) for text in texts]
        ids = [f"{number}:{n}" for n in range(len(texts))]
        drafts += sum(map(len, analyzer.analyze_many(parsed, source=source, lines=ids)))
        if engine is not None:
            drafts += sum(map(len, engine.analyze_many(parsed, source=source, lines=ids)))
    detect_cpu = time.process_time() - started
    return {
        "parse_only_per_cpu_second": round(len(lines) / parse_cpu),
        "detection_only_per_cpu_second": round(len(lines) / detect_cpu),
        "detection_only_events": drafts,
    }


# The syslog sink's batch (`RawLogSink(batch_lines=...)`): lines stored and processed together.
SINK_BATCH_LINES = 5_000


def server_chunks(messages, *, transport, block_lines, chunk_lines):
    """[(parser hint, source, [texts])]: `messages` ((text, hint, source) in the order
    sent) cut as the server cuts them into raw logs, then into chunks of `chunk_lines`.
    Syslog: blocks of `block_lines` (the sink's batch), a raw log per source within a
    block (sources in order of first appearance, as `sink.store_lines`). HTTP: the calls
    of `ingest_send.send_http` unpaced (a source's lines, `block_lines` at a time, sent
    once full; the rest at the end), a raw log each."""
    raw_logs = []
    if transport == "http":
        pending = {}
        for text, hint, source in messages:
            texts = pending.setdefault((hint, source), [])
            texts.append(text)
            if len(texts) >= block_lines:
                raw_logs.append((hint, source, pending.pop((hint, source))))
        raw_logs += [(hint, source, texts) for (hint, source), texts in pending.items()]
    else:
        for start in range(0, len(messages), block_lines):
            by_source = {}
            for text, hint, source in messages[start : start + block_lines]:
                by_source.setdefault((hint, source), []).append(text)
            raw_logs += [(hint, source, texts) for (hint, source), texts in by_source.items()]
    return [
        (hint, source, texts[first : first + chunk_lines])
        for hint, source, texts in raw_logs
        for first in range(0, len(texts), chunk_lines)
    ]


def detectors(sigma_texts=()):
    """(analyzer, Sigma engine or None) over one fresh bounded state, as the server's
    pipeline has them (Sigma rules compiled before any clock starts, as the server
    compiles its rules once)."""
    from incidents.pipeline.analyzer import Analyzer
    from incidents.pipeline.rules import load_rules
    from incidents.pipeline.state import BoundedState

    state = BoundedState()
    if not sigma_texts:
        return Analyzer(load_rules(), state), None
    from django.conf import settings

    from incidents.sigma.engine import SigmaEngine
    from incidents.sigma.loading import read_rule

    engine = SigmaEngine(
        [read_rule(text) for text in sigma_texts], state, cooldown=settings.SIGMA_COOLDOWN
    )
    # The shipped correlations run in the analyzer, in place of the built-ins.
    return Analyzer(engine.builtin_rules(tuple(load_rules())), state), engine


def detected_in_processing_order(raw_logs, sigma_texts=()):
    """How many events the analyzer alone (and the Sigma engine) finds over the lines the
    server stored, raw log after raw log in the order the server processed them
    (`finished_at`: a process processes one raw log at a time), each parsed as
    `incidents.processing` parses it. Whatever order concurrent uploads arrived in, the
    server must store exactly these."""
    from incidents.pipeline.parsers import parse_line, parser_for_hint
    from incidents.raw_log_lines import content_lines

    analyzer, engine = detectors(sigma_texts)
    drafts = 0
    for source, file_name, content in raw_logs:
        hint = source if parser_for_hint(source) else file_name or None
        for line, _progress in content_lines(content):
            parsed = parse_line(line, source_hint=hint)
            drafts += len(analyzer.analyze(parsed, source=source))
            if engine is not None:
                drafts += len(engine.analyze(parsed, source=source))
    return drafts


# -- the server run ------------------------------------------------------------------------


def run_server(args, mix, workdir, sigma_texts=()):
    port = free_port()
    udp_port = free_udp_port() if args.transport == "udp" else 0
    settings = {
        "SYSLOG_IN_PROCESS": "true",
        "SYSLOG_BIND": HOST,
        "SYSLOG_TCP_PORT": port,
        "SYSLOG_UDP_PORT": udp_port,
        "METRICS_PUBLIC": "true",
    }
    if args.sockets:
        # As bench.run: every client subscribes once, all as the same user.
        settings.update(
            {
                "REALTIME_MAX_CONNECTIONS": args.sockets + 1000,
                "REALTIME_MAX_CONNECTIONS_PER_USER": args.sockets + 1000,
                "REALTIME_SUBSCRIPTION_RATE": 10_000_000,
                "REALTIME_MESSAGE_RATE": 10_000_000,
            }
        )
    # A prefix per run and mix: the detection state in Redis starts empty, as it does
    # in memory (a previous mix's windows and claims would change what is detected).
    prefix = f"bench-ingest-{secrets.token_hex(4)}:"
    env = bench_environment(
        workdir,
        database_url=args.database_url,
        redis_url=args.redis,
        prefix=prefix,
        server_env=args.server_env,
        **settings,
    )
    password = secrets.token_urlsafe(16)
    prepared = prepare(env, password)
    reset(env)
    sigma_rules = (
        store_sigma_rules(env, args.sigma, shipped=not args.sigma_without_shipped)
        if args.sigma is not None
        else 0
    )
    server = ServerProcess(args.server, env, workdir, f"{args.server}-ingest").start(timeout=180)
    workers = None
    sampler = None
    try:
        wait_for_port(port, server)
        token = None
        if args.transport == "http" or args.sockets:
            from bench.run import obtain_token

            token = obtain_token(server, prepared["clients"][0], password)
        if args.sockets:
            workers = open_sockets(server, token, args)
        rss_before = server.rss()
        cpu_before = server.cpu_seconds()
        counter = Processed(env["DATABASE_URL"])
        sampler = RssSampler(server, args.rss_interval).start()
        spies = start_profile(args, server, mix)
        lines = iterate(mix, args.lines, seed=args.seed)
        if args.transport == "tcp" and not args.rate:
            sent_at, accepted_at = send(list(lines), port, args.connections)
            log = None
        else:
            log = send_with(args, lines, port, udp_port, server, token)
            sent_at, accepted_at = log.started, log.finished
        expected = log.sent - log.errors if log is not None else args.lines
        if args.transport == "udp":
            processed_at = counter.wait_until_still(expected, timeout=args.timeout, server=server)
        else:
            processed_at = counter.wait_for(expected, timeout=args.timeout, server=server)
        cpu = server.cpu_seconds() - cpu_before
        rss_after = server.rss()
        samples = sampler.stop()
        stored = counter.stored()
        # (The lines of a long run are not all kept for this, as for the ceilings.)
        processing_order = (
            counter.raw_logs_in_processing_order() if args.lines <= args.ceiling_lines else []
        )
        metrics = read_metrics(server)
        profile = finish_profile(spies)
        latency = None
        if workers is not None:
            time.sleep(2)  # the last events on their way
            latency = detection_latency(workers, log, mix, args.sockets, stored["events"])
    finally:
        if sampler is not None:
            sampler.stop()
        if workers is not None:
            workers.close()
        server.stop()
        if args.redis:
            from bench.run import clean_redis

            clean_redis(args.redis, prefix)
    elapsed = processed_at - sent_at
    processed = stored["lines"]
    result = {
        "server": args.server,
        "database": "postgresql" if args.database_url else "sqlite",
        "redis": bool(args.redis),
        "accepted_per_second": round(args.lines / max(1e-9, accepted_at - sent_at)),
        "processed_per_second": round(processed / elapsed),
        "seconds": round(elapsed, 2),
        "server_cpu_seconds": round(cpu, 2),
        "lines_per_cpu_second": round(processed / cpu),
        "sigma_rules": sigma_rules,
        "security_events": stored["events"],
        "alerts": stored["alerts"],
        "lines_processed": processed,
        "lines_lost": args.lines - processed,
        "receiver": metrics,
        "server_cpu_share": round(cpu / elapsed, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
        "rss_mb_before": round(rss_before / 2**20, 1),
        "rss_mb_after": round(rss_after / 2**20, 1),
        "rss_mb_growth": round((rss_after - rss_before) / 2**20, 1),
        "rss_mb_samples": samples,
    }
    # The analyzer alone over the stored lines in the server's processing order: equal
    # whatever the transport and the number of connections or clients.
    if args.lines - processed == 0 and processing_order:
        in_order = detected_in_processing_order(processing_order, sigma_texts)
        result["processing_order_events"] = in_order
        result["events_match_processing_order"] = stored["events"] == in_order
    if log is not None:
        result.update(log.figures())
    if profile:
        result["profile"] = profile
    if args.transport == "udp":
        result["udp_dropped"] = args.lines - processed
    if latency is not None:
        result["detection_latency"] = latency
    return result


def start_profile(args, server, mix):
    if not args.profile:
        return None
    from bench import profile as profiling

    directory = Path(args.profile).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    prefix = directory / f"ingest-{mix}-{args.transport}-{args.sockets}"
    return str(prefix), profiling.start(server.pid, args.profile_seconds, str(prefix))


def finish_profile(spies):
    """Waits for py-spy; returns its summary (and writes the flame graph beside it)."""
    if spies is None:
        return None
    from bench import profile as profiling

    prefix, processes = spies
    profiling.wait(processes, timeout=120)
    if not Path(f"{prefix}.txt").exists():
        return None
    profiling.flamegraph_svg(f"{prefix}.txt", f"{prefix}.svg")
    summary = profiling.format_summary(profiling.summarise(f"{prefix}.txt"))
    print(summary, file=sys.stderr, flush=True)
    return f"{prefix}.txt"


def prepare(env, password):
    # Analysts may receive security_event (the sockets) and upload logs (HTTP).
    return prepare_database(env, users=1, password=password, prefix="bench", role="analyst")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def send_with(args, lines, port, udp_port, server, token):
    """Send over the chosen transport; returns the sender's SendLog."""
    if args.transport == "tcp":
        return send_tcp(lines, port, rate=args.rate)
    if args.transport == "udp":
        return send_udp(lines, udp_port, rate=args.rate)
    return send_http(
        lines,
        server.http_url,
        token,
        clients=args.http_clients,
        post_lines=args.post_lines,
        rate=args.rate,
    )


# -- sockets and detection latency ---------------------------------------------------------


def open_sockets(server, token, args):
    """`args.sockets` WebSocket clients (bench/clients.py, in `--client-procs` processes)
    subscribed to `security_event`; returns the running Workers."""
    from types import SimpleNamespace

    from bench.run import Workers

    options = SimpleNamespace(
        client_procs=max(1, min(args.client_procs, args.sockets)),
        client_impl="fast",
        client_compression="none",
        event_type="security_event",
        connect_concurrency=100,
        connect_timeout=60,
        verify=False,
        nice=None,
        detection=True,
    )
    url = server.ws_url() + f"?token={token}"
    targets = [{"url": url, "host": HOST, "port": server.port, "server": 0}] * args.sockets
    workers = Workers(targets, options, 1)
    timeout = 60 + args.sockets / 40 + 60
    try:
        summaries = workers.connect_summaries(timeout=timeout)
        summaries += workers.ask({"cmd": "connect_rest"}, timeout=timeout)
    except BaseException:
        workers.close()
        raise
    failed = sum(summary["failed"] for summary in summaries)
    if failed:
        errors = [summary["errors"] for summary in summaries if summary["errors"]]
        workers.close()
        raise RuntimeError(f"{failed} of {args.sockets} sockets failed to connect: {errors}")
    return workers


def detection_latency(workers, log, mix, sockets, stored_events):
    """Latency from the send of the line an event was detected in to the event's arrival,
    over every (socket, event). A security_event's `timestamp` is its line's own time,
    START + index x step in the generated mix, which gives the line's index (for a time
    rounded to the second, the first line of that second: the latency is then slightly
    overstated)."""
    from array import array
    from datetime import datetime

    step = default_step(mix)
    latencies = array("d")
    unmatched = 0
    received = frames = 0
    for reply in workers.ask({"cmd": "detections"}):
        received += reply["events"]
        frames += reply["frames"]
        for stamp, raw in reply["arrivals"].items():
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            index = math.ceil((moment - START).total_seconds() / step - 1e-6)
            sent = log.times[index] if log is not None and 0 <= index < log.sent else 0.0
            arrivals = array("d")
            arrivals.frombytes(raw)
            if not sent:
                unmatched += len(arrivals)
                continue
            latencies.extend(arrival - sent for arrival in arrivals)
    ordered = sorted(latencies)
    return {
        "sockets": sockets,
        "events_expected": stored_events * sockets,
        "events_received": received,
        "unmatched": unmatched,
        "frames_per_socket": round(frames / sockets, 1) if sockets else None,
        "p50_ms": _ms(percentile(ordered, 50)),
        "p99_ms": _ms(percentile(ordered, 99)),
        "max_ms": _ms(ordered[-1] if ordered else None),
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


class RssSampler:
    """The server's RSS every `interval` seconds, in a thread: [(seconds, MB)]."""

    def __init__(self, server, interval):
        self.server = server
        self.interval = interval
        self.samples = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.started = time.time()
        self.thread.start()
        return self

    def _run(self):
        while True:
            try:
                rss = self.server.rss()
            except Exception:  # the server went away: the run reports it
                return
            self.samples.append((round(time.time() - self.started, 1), round(rss / 2**20, 1)))
            if self.stopped.wait(self.interval):
                return

    def stop(self):
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join()
        return self.samples


def reset(env):
    """A kept PostgreSQL database starts without the previous run's logs, events and
    Sigma rules (and without the shipped ones `migrate` stored)."""
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


def store_sigma_rules(env, generated, *, shipped=True):
    """Store the shipped Sigma rules as `migrate` does (unless `shipped` is false) and
    `generated` generated ones, enabled, through the service REST uploads go through, in
    the bench database; returns how many loaded (a refused one would be stored but not
    run)."""
    code = (
        "import django, sys; django.setup()\n"
        "from bench.sigma import rule_texts\n"
        "from incidents.sigma.models import SigmaRule\n"
        "from incidents.sigma.services import sync_shipped, upload_rule\n"
        "from threatlens.audit.context import audit_context\n"
        "with audit_context(source='bench.ingest --sigma'):\n"
        "    if sys.argv[2] == 'yes':\n"
        "        sync_shipped()\n"
        "    for text in rule_texts(int(sys.argv[1]), shipped=False):\n"
        "        upload_rule(text, actor=None)\n"
        # Counted at the end: a correlation stored before the rules it names is refused
        # until they arrive.
        "print(SigmaRule.objects.filter(enabled=True, refusal_code='').count())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(generated), "yes" if shipped else "no"],
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

    def wait_until_still(self, count, *, timeout, server, still=5.0):
        """For UDP, where some lines may never arrive: until `count` lines are processed
        or the count has not moved for `still` seconds; returns the time of the last
        change."""
        deadline = time.time() + timeout
        last, changed_at = -1, time.time()
        while time.time() < deadline:
            current = self.lines()
            if current != last:
                last, changed_at = current, time.time()
            if current >= count or time.time() - changed_at >= still:
                return changed_at
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{server.log_tail()}")
            time.sleep(0.2)
        return changed_at

    def raw_logs_in_processing_order(self):
        """(source, file_name, content) of every completed raw log, in the order the
        server processed them."""
        cursor = self.connection.cursor()
        cursor.execute(
            "SELECT source, file_name, content FROM incidents_rawlog"
            " WHERE status = 'completed' ORDER BY finished_at, id"
        )
        rows = cursor.fetchall()
        cursor.close()
        if hasattr(self.connection, "commit"):
            self.connection.commit()
        return rows

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
        ("events_match_processing_order", "= in processing order"),
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

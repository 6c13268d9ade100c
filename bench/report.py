"""Figures of a benchmark run: aggregation of the workers' reports, and their presentation."""

import array
import math

MB = 1024 * 1024


def percentile(ordered, fraction):
    """Nearest-rank percentile of an already sorted sequence (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_figures(values):
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(ordered),
        "mean_ms": 1000 * sum(ordered) / len(ordered),
        "p50_ms": 1000 * percentile(ordered, 0.50),
        "p95_ms": 1000 * percentile(ordered, 0.95),
        "p99_ms": 1000 * percentile(ordered, 0.99),
        "max_ms": 1000 * ordered[-1],
    }


def connect_figures(summaries):
    ok = sum(s["ok"] for s in summaries)
    failed = sum(s["failed"] for s in summaries)
    errors = {}
    for summary in summaries:
        for reason, count in summary["errors"].items():
            errors[reason] = errors.get(reason, 0) + count
    # Connections open in waves with a pause between them (bench/clients.py): the rate
    # counts the time spent connecting, wave by wave.
    span = 0.0
    for wave in {s.get("wave") for s in summaries}:
        of_wave = [s for s in summaries if s.get("wave") == wave]
        span += max(s["finished"] for s in of_wave) - min(s["started"] for s in of_wave)
    handshakes = array.array("d")
    for summary in summaries:
        handshakes.frombytes(summary["handshake_seconds"])
    ordered = sorted(handshakes)
    return {
        "ok": ok,
        "failed": failed,
        "errors": errors,
        "seconds": span,
        "per_second": ok / span if span > 0 else None,
        "handshake_p50_ms": 1000 * percentile(ordered, 0.5) if ordered else None,
        "handshake_p99_ms": 1000 * percentile(ordered, 0.99) if ordered else None,
    }


def phase_figures(phase, published, reports, servers_count):
    """Loss, latency and throughput of one phase, for all clients and per server."""
    published_set = set(published["published"])
    planned_total = len(published_set)
    per_server = {
        index: {"clients": 0, "expected": 0, "received": 0, "lossy_clients": 0, "latencies": []}
        for index in range(servers_count)
    }
    all_latencies = array.array("d")
    duplicates = unexpected = frames = batch_frames = other_frames = verify_errors = 0
    max_client_loss = 0
    closed_during_run = 0
    close_codes = {}
    first_at, last_at = None, None
    for report in reports:
        for server_index, data in enumerate(report["latencies"]):
            chunk = array.array("d")
            chunk.frombytes(data)
            all_latencies.extend(chunk)
            per_server[server_index]["latencies"].append(chunk)
        duplicates += sum(report["duplicates"])
        unexpected += sum(report["unexpected"])
        frames += report["frames"]
        batch_frames += report["batch_frames"]
        other_frames += report["other_frames"]
        verify_errors += report["verify_errors"]
        for code, count in report["close_codes"].items():
            close_codes[str(code)] = close_codes.get(str(code), 0) + count
        if report["first_at"] is not None:
            first_at = min(first_at or report["first_at"], report["first_at"])
        if report["last_at"] is not None:
            last_at = max(last_at or 0, report["last_at"])
        for index, connected in enumerate(report["connected"]):
            if not connected:
                continue
            if not report["open"][index]:
                closed_during_run += 1
            seen = report["seen"][index]
            got = sum(1 for seq in published_set if seq < len(seen) and seen[seq])
            lost = planned_total - got
            server = per_server[report["server_index"][index]]
            server["clients"] += 1
            server["expected"] += planned_total
            server["received"] += got
            if lost:
                server["lossy_clients"] += 1
            max_client_loss = max(max_client_loss, lost)
    expected = sum(s["expected"] for s in per_server.values())
    received = sum(s["received"] for s in per_server.values())
    span = (last_at - published["started"]) if last_at else None
    figures = {
        "phase": phase,
        "published": planned_total,
        "publish_errors": published["errors"],
        "publish_seconds": published["finished"] - published["started"],
        "publish_rate": planned_total / max(1e-9, published["finished"] - published["started"])
        if phase == "burst"
        else published["rate"],
        "publish_call": latency_figures(published["call_seconds"]),
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "loss_percent": 100 * (expected - received) / expected if expected else 0.0,
        "lossy_clients": sum(s["lossy_clients"] for s in per_server.values()),
        "max_client_loss": max_client_loss,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "closed_during_run": closed_during_run,
        "close_codes": close_codes,
        "frames": frames,
        "batch_frames": batch_frames,
        "events_per_frame": received / frames if frames else None,
        "other_frames": other_frames,
        "verify_errors": verify_errors,
        "delivery_seconds": span,
        "delivered_per_second": received / span if span else None,
        "latency": latency_figures(all_latencies),
    }
    if servers_count > 1:
        figures["per_server"] = [
            {
                "server": index,
                "clients": s["clients"],
                "expected": s["expected"],
                "received": s["received"],
                "lossy_clients": s["lossy_clients"],
                "latency": latency_figures([v for chunk in s["latencies"] for v in chunk]),
            }
            for index, s in per_server.items()
        ]
    return figures


def _fmt(value, pattern="{:.1f}", none="-"):
    return none if value is None else pattern.format(value)


def _ratio(ours, ceiling):
    if ours is None or not ceiling:
        return "-"
    return f"{ours / ceiling:.2f}x"


def format_target(result):
    """A markdown block with one target's figures."""
    lines = [f"### {result['label']}", ""]
    connect = result["connect"]
    lines.append(
        f"- connections: {connect['ok']} ok, {connect['failed']} failed"
        + (f" ({connect['errors']})" if connect["errors"] else "")
        + f"; connect rate {_fmt(connect['per_second'], '{:.0f}')}/s over "
        f"{connect['seconds']:.1f} s (handshake+subscribe p50 "
        f"{_fmt(connect['handshake_p50_ms'])} ms, p99 {_fmt(connect['handshake_p99_ms'])} ms)"
        + (
            f"; server CPU {connect['server_cpu_ms_per_connect']:.2f} ms per connect (second wave)"
            if connect.get("server_cpu_ms_per_connect") is not None
            else ""
        )
    )
    memory = result["memory"]
    lines.append(
        f"- server RSS: {memory['baseline_mb']:.1f} MB before clients, "
        f"{memory['idle_mb']:.1f} MB idle with {connect['ok']} connections, "
        f"{memory['after_mb']:.1f} MB after the run; "
        f"**{_fmt(memory['per_1000_mb'])} MB per 1,000 idle connections** "
        f"({_fmt(memory.get('second_half_per_1000_mb'))} MB per 1,000 for the second half "
        f"alone, {memory.get('half_mb', 0):.1f} MB with the first); "
        f"server CPU while idle {_fmt(result.get('idle_cpu_percent'), '{:.0f}')}%"
    )
    ingest = result.get("ingest")
    if ingest:
        lines.append(
            f"- ingest in the background: {ingest.get('sent', '?')} lines sent at "
            f"{ingest['rate']:g}/s over {ingest['seconds']} s, "
            f"{_fmt(ingest.get('lines_processed'), '{:.0f}')} processed by the server, "
            f"queue {_fmt(ingest.get('queue_depth'), '{:.0f}')} lines at the end"
        )
    lines.append("")
    lines.append(
        "| phase | published (rate) | delivered events/s | frames (events/frame) | lost "
        "| p50 ms | p95 ms | p99 ms | max ms | server CPU | µs CPU/event | client CPU |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for phase in result["phases"]:
        latency = phase["latency"]
        lines.append(
            f"| {phase['phase']} | {phase['published']} ({phase['publish_rate']:.1f}/s) "
            f"| {_fmt(phase['delivered_per_second'], '{:,.0f}')} "
            f"| {phase['frames']:,} ({_fmt(phase['events_per_frame'], '{:.2f}')}) "
            f"| {phase['lost']:,} ({phase['loss_percent']:.2f}%) "
            f"| {_fmt(latency['p50_ms'])} | {_fmt(latency['p95_ms'])} "
            f"| {_fmt(latency['p99_ms'])} | {_fmt(latency['max_ms'])} "
            f"| {phase['server_cpu_percent']:.0f}% "
            f"| {_fmt(phase['server_us_per_event'])} "
            f"| {phase['client_cpu_percent_max']:.0f}% max/proc |"
        )
    for phase in result["phases"]:
        notes = []
        if phase["publish_errors"]:
            notes.append(f"publish errors {phase['publish_errors']}")
        if phase["duplicates"] or phase["unexpected"]:
            notes.append(f"duplicates {phase['duplicates']}, unexpected {phase['unexpected']}")
        if phase["verify_errors"]:
            notes.append(f"VERIFY ERRORS {phase['verify_errors']}")
        if phase["closed_during_run"]:
            notes.append(
                f"{phase['closed_during_run']} connections closed (codes {phase['close_codes']})"
            )
        if phase["lossy_clients"]:
            notes.append(
                f"{phase['lossy_clients']} clients lost events (at most {phase['max_client_loss']})"
            )
        if phase.get("server_dropped"):
            notes.append(f"server reports {phase['server_dropped']} events dropped")
        for index, counters in enumerate(phase.get("hub_counters") or []):
            notes.append(
                f"hub {index}: {counters['events_received']} events received, "
                f"{counters['events_from_table']} of them first from the table poll"
            )
        notes.append(
            f"publish call p50 {_fmt(phase['publish_call']['p50_ms'])} ms, "
            f"p99 {_fmt(phase['publish_call']['p99_ms'])} ms"
        )
        notes.append(
            f"machine busy {phase['machine_busy_percent']:.0f}% of {phase['cpus']} cores, "
            f"of which other processes {phase['other_cpu_percent']:.0f}%"
        )
        notes.append(
            f"load generator {phase['client_cpu_seconds']:.1f} CPU s in "
            f"{phase['client_processes']} processes"
            + (" (SATURATED: figures are a lower bound)" if phase["client_saturated"] else "")
        )
        lines.append(f"- {phase['phase']}: " + "; ".join(notes))
        for server in phase.get("per_server", []):
            latency = server["latency"]
            lines.append(
                f"  - server {server['server']}: {server['clients']} clients, received "
                f"{server['received']:,}/{server['expected']:,}, p50 {_fmt(latency['p50_ms'])} "
                f"ms, p99 {_fmt(latency['p99_ms'])} ms"
            )
    if result.get("memory_profile"):
        lines += ["", "```", result["memory_profile"], "```"]
    if result.get("profile"):
        lines.append("")
        lines.append("```")
        lines.append(result["profile"])
        lines.append("```")
    return "\n".join(lines)


def format_ratios(ours, ceiling, name="the ceiling"):
    lines = [f"### Ours as a ratio of {name}", ""]
    lines.append("| phase | delivered events/s | p50 latency | p99 latency |")
    lines.append("|---|---|---|---|")
    ceiling_phases = {phase["phase"]: phase for phase in ceiling["phases"]}
    for phase in ours["phases"]:
        other = ceiling_phases.get(phase["phase"])
        if other is None:
            continue
        lines.append(
            f"| {phase['phase']} "
            f"| {_ratio(phase['delivered_per_second'], other['delivered_per_second'])} "
            f"| {_ratio(phase['latency']['p50_ms'], other['latency']['p50_ms'])} "
            f"| {_ratio(phase['latency']['p99_ms'], other['latency']['p99_ms'])} |"
        )
    lines.append("")
    lines.append(
        f"- memory per 1,000 idle connections: "
        f"{_ratio(ours['memory']['per_1000_mb'], ceiling['memory']['per_1000_mb'])}; "
        f"connect rate: {_ratio(ours['connect']['per_second'], ceiling['connect']['per_second'])}"
    )
    return "\n".join(lines)


def targets_check(ours, ceiling, clients):
    """The issue's targets that this run can judge, each with its verdict."""
    checks = []
    phases = {phase["phase"]: phase for phase in ours["phases"]}
    ceiling_phases = {phase["phase"]: phase for phase in ceiling["phases"]} if ceiling else {}
    burst, steady = phases.get("burst"), phases.get("steady")
    if burst and "burst" in ceiling_phases and burst["delivered_per_second"]:
        ratio = burst["delivered_per_second"] / ceiling_phases["burst"]["delivered_per_second"]
        text = f"delivered events/s >= 50% of the ceiling (burst): {ratio:.2f}x"
        checks.append((text, ratio >= 0.5))
    if steady and steady["latency"]["p99_ms"] is not None:
        limit = 50 if clients <= 1000 else 250
        p99 = steady["latency"]["p99_ms"]
        checks.append((f"steady p99 < {limit} ms: {p99:.1f} ms", p99 < limit))
    if steady:
        checks.append((f"no loss at a steady rate: {steady['lost']} lost", steady["lost"] == 0))
    for phase in ours["phases"]:
        servers = phase.get("per_server")
        if servers:
            everywhere = all(s["clients"] and s["received"] == s["expected"] for s in servers)
            counts = ", ".join(
                f"server {s['server']} {s['received']:,}/{s['expected']:,}" for s in servers
            )
            text = (
                f"{len(servers)} processes, {phase['phase']}: every client on every server got "
                f"every event ({counts})"
            )
            checks.append((text, everywhere))
    per_1000 = ours["memory"]["per_1000_mb"]
    if per_1000 is not None:
        text = f"memory < 25 MB per 1,000 idle connections: {per_1000:.1f} MB"
        checks.append((text, per_1000 < 25))
    return checks

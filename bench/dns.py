"""DNS benchmark (issue 20): how soon named serves a change saved over REST, and how long
a large zone takes to sync and reload.

    .venv/bin/python -m bench.dns                       # 200 changes, a 10,000-record zone
    .venv/bin/python -m bench.dns --changes 50 --records 2000

One invocation: a SQLite file in a temporary directory (migrated, an admin user), the
server (uvicorn, as `make run` starts it) with the BIND integration writing a complete
named.conf there, and `named -g` on free loopback ports (docs/bind.md).

1. **Latency.** A record is changed `--changes` times over REST (PATCH, a new address
   each time, one after the other); from the moment the REST answer arrives, named is
   asked every 5 ms until it answers with the new address. p50/p99/max of that delay.
2. **Size.** A zone of `--records` A records is written to the database (bulk, in this
   process), then `bind.sync_bind()` (write, named-checkconf, named-checkzone, rndc
   reload) is timed, and the time until named answers for the zone's last record.

Prints the figures and one JSON line; targets: p99 under 2 s, size under 5 s.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LATENCY_TARGET_S = 2.0
SIZE_TARGET_S = 5.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="record changes (200)")
    parser.add_argument("--records", type=int, default=10_000, help="records of the zone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


def http_json(url, body=None, *, token=None, method=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait_served(named, name, expected, *, timeout=10.0):
    """Seconds until named answers `name` A with `expected` (None after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            reply = named.query(name, "A", timeout=0.5)
            if [str(rr.rdata) for rr in reply.rr] == [expected]:
                return time.monotonic() - started
        except TimeoutError:
            pass
        time.sleep(0.005)
    return None


def start_server(env, port, workdir):
    log = open(Path(workdir) / "server.log", "ab")  # noqa: SIM115 (lives as long as the server)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "threatlens.asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return process
        except urllib.error.HTTPError:
            return process  # answering, even if not healthy
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the server did not start; see server.log")


def free_ports(count):
    """Free loopback ports (UDP and TCP), before Django is set up."""
    import socket

    ports, held = [], []
    while len(ports) < count:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        held += [udp, tcp]
        ports.append(port)
    for sock in held:
        sock.close()
    return ports


def main(argv=None):
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="bench-dns-")
    bind_dir = Path(workdir) / "bind"
    port, control_port, stats_port = free_ports(3)
    password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "threatlens.settings",
        "DATABASE_URL": f"sqlite:///{Path(workdir) / 'bench.sqlite3'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "MONITORS_IN_PROCESS": "false",
        "SYSLOG_IN_PROCESS": "false",
        "DNS_BIND_ENABLED": "true",
        "DNS_BIND_DIR": str(bind_dir),
        "DNS_BIND_NAMED_CONF": "true",
        "DNS_BIND_PORT": str(port),
        "DNS_BIND_CONTROL_PORT": str(control_port),
        "DNS_BIND_STATS_PORT": str(stats_port),
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from dns import bind, services
    from dns.models import Record
    from dns.named_process import NamedProcess, find_named, free_port

    if find_named() is None:
        sys.exit("named is not installed (Debian: apt-get install bind9)")
    from threatlens.accounts.services import create_or_update_user

    call_command("migrate", interactive=False, verbosity=0)
    create_or_update_user("dnsbench", role="admin", password=password)
    first = bind.sync_bind(reason="bench: first run")  # named.conf and rndc.key
    print(f"first sync: {first.message}", flush=True)
    named = NamedProcess(bind_dir, port=port).start()
    http_port = free_port()
    server = start_server(env, http_port, workdir)
    base = f"http://127.0.0.1:{http_port}/api"
    results = {"changes": args.changes, "records": args.records}
    try:
        token = http_json(f"{base}/auth/token/", {"username": "dnsbench", "password": password})[
            "access"
        ]
        zone = http_json(
            f"{base}/dns/zones/",
            {"name": "lab.example", "email": "h@lab.example", "primary_ns": "ns1.lab.example"},
            token=token,
        )
        records = f"{base}/dns/zones/{zone['id']}/records/"
        http_json(records, {"name": "ns1", "record_type": "A", "value": "192.0.2.1"}, token=token)
        record = http_json(
            records, {"name": "www", "record_type": "A", "value": "10.0.0.0"}, token=token
        )
        wait_served(named, "www.lab.example", "10.0.0.0")
        delays, missed = [], 0
        for index in range(1, args.changes + 1):
            value = f"10.0.{index // 256}.{index % 256}"
            record = http_json(
                f"{records}{record['id']}/",
                {"value": value, "version": record["version"]},
                token=token,
                method="PATCH",
            )
            delay = wait_served(named, "www.lab.example", value)
            if delay is None:
                missed += 1
            else:
                delays.append(delay)
        results["latency"] = {
            "p50_ms": round(percentile(delays, 0.5) * 1000, 1),
            "p99_ms": round(percentile(delays, 0.99) * 1000, 1),
            "max_ms": round(max(delays) * 1000, 1),
            "missed": missed,
        }
        print(
            "REST answer -> served by named over {changes} changes: p50 {p50_ms} ms, "
            "p99 {p99_ms} ms, max {max_ms} ms, {missed} not served within 10 s".format(
                changes=args.changes, **results["latency"]
            ),
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)

    # Size: a zone of args.records records, synced and reloaded.
    big = services.create_zone(
        None, {"name": "big.example", "email": "h@big.example", "primary_ns": "ns1.big.example"}
    )
    with services.writing():
        Record.objects.bulk_create(
            [Record(zone=big, name="ns1", record_type="A", value="192.0.2.1")]
            + [
                Record(
                    zone=big,
                    name=f"host{i}",
                    record_type="A",
                    value=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                )
                for i in range(args.records - 1)
            ],
            batch_size=2000,
        )
    last = args.records - 2
    started = time.monotonic()
    outcome = bind.sync_bind(reason="bench: big zone")
    synced = time.monotonic() - started
    served = wait_served(
        named, f"host{last}.big.example", f"10.{last // 65536}.{last // 256 % 256}.{last % 256}"
    )
    served_total = synced + served if served is not None else None
    results["size"] = {
        "sync_ms": round(synced * 1000, 1),
        "served_ms": round(served_total * 1000, 1) if served_total is not None else None,
        "success": outcome.success,
        "stage": outcome.stage,
    }
    print(
        f"{args.records} records: sync (write, check, rndc reload) {synced * 1000:.0f} ms, "
        f"served by named after {served_total * 1000:.0f} ms"
        if served_total is not None
        else f"{args.records} records: not served ({outcome.message})",
        flush=True,
    )
    named.stop()
    latency_ok = results["latency"]["p99_ms"] < LATENCY_TARGET_S * 1000 and not missed
    size_ok = served_total is not None and served_total < SIZE_TARGET_S
    results["verdict"] = {"latency": latency_ok, "size": size_ok}
    print(json.dumps(results))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")
    return 0 if latency_ok and size_ok else 1


if __name__ == "__main__":
    sys.exit(main())

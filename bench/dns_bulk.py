"""A DNS bulk job of many records at one name, while another client keeps posting alerts.

    .venv/bin/python -m bench.dns_bulk [--records 10000] [--alert-interval 0.05]

Starts uvicorn on the embedded default (SQLite in a temporary directory, no Redis), makes
an admin and a zone, posts one bulk create of `--records` A records at one name, and
meanwhile posts an alert every `--alert-interval` seconds from another thread. Prints the
job's time and outcome, and the alert posts' outcomes and latencies: a job that held the
SQLite write lock for long shows as a slow or failed alert. `tests/e2e/test_dns_bulk.py`
runs `bulk_job_under_load` against a test server with a time bound.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.servers import ROOT, ServerProcess, server_environment

PASSWORD = "bench-password-0123456789"


def request(base_url, method, path, body=None, token=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base_url}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, {"raw": raw[:200].decode(errors="replace")}


def records_at_one_name(count, name="www"):
    return [
        {"name": name, "record_type": "A", "value": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
        for i in range(count)
    ]


class AlertPoster(threading.Thread):
    """Posts an alert every `interval` seconds until stopped; keeps each outcome."""

    def __init__(self, base_url, token, interval):
        super().__init__(daemon=True)
        self.base_url, self.token, self.interval = base_url, token, interval
        self.stopped = threading.Event()
        self.latencies, self.failures, self.timeline = [], [], []

    def run(self):
        n = 0
        while not self.stopped.is_set():
            n += 1
            body = {"title": f"bench alert {n}", "severity": "low", "source": "bench"}
            started = time.perf_counter()
            status, reply = request(self.base_url, "POST", "/api/alerts/", body, self.token)
            elapsed = time.perf_counter() - started
            if status == 201:
                self.latencies.append(elapsed)
                self.timeline.append((started, elapsed))
            else:
                self.failures.append((status, reply))
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join(60)


def bulk_job_under_load(base_url, token, zone_id, *, records, alert_interval=0.05, timeout=300):
    """Run one bulk create of `records` records at one name while alerts are posted.
    Returns the figures (a dict)."""
    poster = AlertPoster(base_url, token, alert_interval)
    poster.start()
    time.sleep(0.5)  # a few alerts before the job, for a baseline latency
    started = time.perf_counter()
    status, reply = request(
        base_url,
        "POST",
        f"/api/dns/zones/{zone_id}/records/bulk/",
        {"operation": "create", "records": records_at_one_name(records)},
        token,
    )
    if status != 202:
        poster.stop()
        raise RuntimeError(f"bulk job refused: {status} {reply}")
    job = reply
    stages = []  # (seconds since the job was posted, progress)
    while time.perf_counter() - started < timeout:
        _, job = request(base_url, "GET", reply["url"], token=token)
        stages.append((round(time.perf_counter() - started, 2), job.get("progress")))
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    job_seconds = time.perf_counter() - started
    time.sleep(0.5)
    poster.stop()
    latencies = sorted(poster.latencies)
    slowest = max(poster.timeline, key=lambda item: item[1], default=(started, 0))
    return {
        "slowest_alert_at_s": round(slowest[0] - started, 2),
        "job_progress_timeline": stages[:: max(1, len(stages) // 12)],
        "records": records,
        "job_status": job["status"],
        "job_errors": job.get("errors"),
        "job_seconds": round(job_seconds, 2),
        "alerts_posted": len(latencies),
        "alerts_failed": len(poster.failures),
        "alert_failures": poster.failures[:3],
        "alert_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "alert_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
    }


SETUP = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from dns import services
user = get_user_model().objects.create_superuser("bench-admin", "b@example.com", {password!r})
user.groups.add(Group.objects.get(name="admin"))
zone = services.create_zone(user, {{"name": "bulk.example", "email": "h@example.com"}})
print(zone.pk)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--alert-interval", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="threatlens-dns-bulk-") as workdir:
        env = server_environment(
            os.environ,
            DATABASE_URL=f"sqlite:///{Path(workdir) / 'bench.sqlite3'}",
            SECRET_KEY_FILE=str(Path(workdir) / "secret"),
        )
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        zone_id = int(
            subprocess.run(
                [*manage, "shell", "-c", SETUP.format(password=PASSWORD)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
        )
        server = ServerProcess("uvicorn", env, workdir, "server").start()
        try:
            _, tokens = request(
                server.http_url,
                "POST",
                "/api/auth/token/",
                {"username": "bench-admin", "password": PASSWORD},
            )
            figures = bulk_job_under_load(
                server.http_url,
                tokens["access"],
                zone_id,
                records=args.records,
                alert_interval=args.alert_interval,
            )
        finally:
            server.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

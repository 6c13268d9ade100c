"""BIND integration, behind the DNS setting BIND_ENABLED.

`sync_bind()` writes every active zone to BIND_DIR as BIND reads it: a zone file per
master zone (`zones/db.<name>`), the response policy zone when there are rules, and
`named.conf.threatlens`, a file of `zone` statements for named.conf to `include`. The
files are first written to a staging folder and checked (BIND_CHECKCONF_COMMAND on the
include, BIND_CHECKZONE_COMMAND on each zone file); only when every check passes are they
moved into place and BIND_RELOAD_COMMAND run. A failed check never reloads: the files in
place stay as they were, and `bind_reload` says which check failed and what it printed.
Every sync publishes `bind_reload` and `health_update` (component `bind9`).

Changes to zones, records and RPZ rules request a sync after their transaction commits
(`request_sync`); requests that arrive while a sync runs are folded into one more sync.
"""

import fcntl
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from dns import zonefile
from dns.conf import dns_setting
from dns.models import Zone
from realtime.publishing import publish

logger = logging.getLogger(__name__)

CONF_NAME = "named.conf.threatlens"
ZONES_DIR = "zones"


@dataclass
class SyncOutcome:
    success: bool
    stage: str  # check | install | reload | done
    message: str
    zones: int = 0
    errors: list = field(default_factory=list)
    duration_ms: float = 0.0
    reloaded: bool = False


def enabled():
    return bool(dns_setting("BIND_ENABLED") and dns_setting("BIND_DIR"))


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(zones, zone_dir, *, rpz_zone=None):
    """The `zone` statements of the active zones (`rpz_zone`: the RPZ's name, if any)."""
    lines = ["// Written by ThreatLens; changes here are overwritten. Include it from named.conf."]
    for zone in zones:
        name = _quote(zone.name)
        if zone.zone_type == Zone.ZoneType.MASTER:
            path = _quote(str(zone_dir / f"db.{zone.name}"))
            lines.append(f"zone {name} {{ type master; file {path}; }};")
        elif zone.zone_type == Zone.ZoneType.SLAVE:
            masters = " ".join(f"{address};" for address in zone.masters)
            path = _quote(str(zone_dir / f"bak.{zone.name}"))
            lines.append(f"zone {name} {{ type slave; masters {{ {masters} }}; file {path}; }};")
        else:
            forwarders = " ".join(f"{address};" for address in zone.forwarders)
            lines.append(
                f"zone {name} {{ type forward; forward only; forwarders {{ {forwarders} }}; }};"
            )
    if rpz_zone:
        path = _quote(str(zone_dir / f"db.{rpz_zone}"))
        lines.append(f"// In options {{ }}: response-policy {{ zone {_quote(rpz_zone)}; }};")
        lines.append(f"zone {_quote(rpz_zone)} {{ type master; file {path}; }};")
    return "\n".join(lines) + "\n"


def _run(template, **values):
    """Run a configured command (an argument list, no shell); None when not configured."""
    if not template:
        return None
    args = [str(part).format(**values) for part in template]
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=dns_setting("BIND_COMMAND_TIMEOUT")
        )
    except FileNotFoundError:
        return 127, f"command not found: {args[0]}"
    except subprocess.TimeoutExpired:
        return 124, f"{args[0]} did not finish in {dns_setting('BIND_COMMAND_TIMEOUT')} s"
    return result.returncode, (result.stdout + result.stderr).strip()


def sync_bind(*, reason=""):
    """Write, check, install and reload; returns the SyncOutcome (None when disabled)."""
    if not enabled():
        return None
    started = time.monotonic()
    directory = Path(dns_setting("BIND_DIR"))
    directory.mkdir(parents=True, exist_ok=True)
    # One sync at a time, across processes: the staging folder and files are shared.
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcome = _sync_locked(directory)
    outcome.duration_ms = round((time.monotonic() - started) * 1000, 1)
    _announce(outcome, reason)
    return outcome


def _sync_locked(directory):
    from dns.rpz import active_rules, render_active_rpz

    staging = directory / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / ZONES_DIR).mkdir(parents=True)
    final_zones = directory / ZONES_DIR
    zones = list(Zone.objects.filter(is_active=True).order_by("name"))
    rpz_zone = dns_setting("RPZ_ZONE") if active_rules().exists() else None
    staged = {}  # staged path -> zone name, for checkzone
    for zone in zones:
        if zone.zone_type == Zone.ZoneType.MASTER:
            path = staging / ZONES_DIR / f"db.{zone.name}"
            path.write_text(zonefile.render_zone(zone, zone.records.all()))
            staged[path] = zone.name
    if rpz_zone:
        path = staging / ZONES_DIR / f"db.{rpz_zone}"
        path.write_text(render_active_rpz())
        staged[path] = rpz_zone
    conf = staging / CONF_NAME
    conf.write_text(render_config(zones, final_zones, rpz_zone=rpz_zone))

    errors = []
    checked = _run(dns_setting("BIND_CHECKCONF_COMMAND"), conf=conf)
    if checked and checked[0] != 0:
        errors.append({"check": "named.conf", "output": checked[1]})
    for path, name in staged.items():
        checked = _run(dns_setting("BIND_CHECKZONE_COMMAND"), zone=name, file=path)
        if checked and checked[0] != 0:
            errors.append({"check": "zone", "zone": name, "output": checked[1]})
    if errors:
        names = ", ".join(e.get("zone", e["check"]) for e in errors)
        return SyncOutcome(
            False,
            "check",
            f"check failed for {names}; BIND was not reloaded",
            zones=len(zones),
            errors=errors,
        )

    final_zones.mkdir(exist_ok=True)
    for path in staged:
        os.replace(path, final_zones / path.name)
    keep = {path.name for path in staged}
    for old in final_zones.glob("db.*"):
        if old.name not in keep:
            old.unlink()  # a zone deleted here must not linger in BIND's folder
    os.replace(conf, directory / CONF_NAME)
    shutil.rmtree(staging, ignore_errors=True)

    reloaded = _run(dns_setting("BIND_RELOAD_COMMAND"))
    if reloaded and reloaded[0] != 0:
        return SyncOutcome(
            False,
            "reload",
            f"files installed, reload failed: {reloaded[1]}",
            zones=len(zones),
            errors=[{"check": "reload", "output": reloaded[1]}],
        )
    return SyncOutcome(
        True,
        "done",
        "zone files written, checked and reloaded"
        if reloaded
        else "zone files written and checked (no reload command)",
        zones=len(zones),
        reloaded=bool(reloaded),
    )


def _announce(outcome, reason):
    now = timezone.now()
    publish(
        "bind_reload",
        {
            **asdict(outcome),
            "reason": reason,
            "timestamp": now,
            "source": "dns",
            "category": "bind",
        },
        priority=8 if not outcome.success else None,
    )
    status = (
        "healthy" if outcome.success else ("warning" if outcome.stage == "check" else "critical")
    )
    publish(
        "health_update",
        {
            "component": "bind9",
            "status": status,
            "metrics": {
                "response_time": outcome.duration_ms,
                "error_rate": 0.0 if outcome.success else 1.0,
            },
            "message": outcome.message,
            "timestamp": now,
            "source": "dns",
            "category": "health",
        },
    )


# --- Syncing after changes ------------------------------------------------------------------

_pending = threading.Event()
_worker_lock = threading.Lock()
_worker = None
_reasons = []


def request_sync(reason):
    """After the current transaction commits, sync BIND in the background (when enabled)."""
    if enabled():
        transaction.on_commit(lambda: _wake(reason))


def _wake(reason):
    global _worker
    with _worker_lock:
        _reasons.append(reason)
        _pending.set()
        if _worker is None:
            _worker = threading.Thread(target=_work, name="dns-bind-sync", daemon=True)
            _worker.start()


def _work():
    global _worker
    try:
        while True:
            if not _pending.wait(timeout=5):
                with _worker_lock:
                    # Decided under the lock, so a request made now starts a new worker.
                    if not _pending.is_set():
                        _worker = None
                        return
                continue
            time.sleep(0.2)  # let a burst of changes settle into one sync
            with _worker_lock:
                _pending.clear()
                reasons = sorted(set(_reasons))
                _reasons.clear()
            close_old_connections()
            try:
                sync_bind(reason=", ".join(reasons)[:200])
            except Exception:
                logger.exception("BIND sync failed")
    finally:
        connection.close()

"""BIND integration, behind the DNS setting BIND_ENABLED.

`sync_bind()` writes every active zone to BIND_DIR as BIND reads it: a zone file per
master zone (`zones/db.<name>`), the response policy zone when there are rules, and
`named.conf.threatlens`, a file of `zone` statements for named.conf to `include`. The
files are first written to a staging folder and checked (BIND_CHECKCONF_COMMAND on the
include, BIND_CHECKZONE_COMMAND on each zone file); only when every check passes are they
moved into place and BIND_RELOAD_COMMAND run. A failed check never reloads: the files in
place stay as they were, and `bind_reload` says which check failed and what it printed.
Every sync publishes `bind_reload` and `health_update` (component `bind9`).

The response policy zone is always written (empty when there are no rules), so a
named.conf whose options name it in `response-policy` always loads. With BIND_NAMED_CONF
the sync also writes `named.conf`, a complete configuration for a named that serves only
ThreatLens (listen address and port, rndc control channel, statistics channel, the RPZ),
and `rndc.key` is generated on the first sync (docs/bind.md). Files whose text did not
change are left alone, so named reloads only the zones that changed.

Changes to zones, records and RPZ rules request a sync after their transaction commits
(`request_sync`); requests that arrive while a sync runs are folded into one more sync.
"""

import base64
import fcntl
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from dns import events, zonefile
from dns.conf import dns_setting
from dns.models import Zone
from realtime.publishing import publish

logger = logging.getLogger(__name__)

CONF_NAME = "named.conf.threatlens"
NAMED_CONF_NAME = "named.conf"
RNDC_KEY_NAME = "rndc.key"
RNDC_KEY_ID = "threatlens-rndc"
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


def render_named_conf(directory):
    """A complete named.conf for a named that serves only ThreatLens (BIND_NAMED_CONF):
    no recursion for others, RPZ applied before any recursion, rndc and the statistics
    channel on loopback ports, everything kept in `directory` so named runs unprivileged."""
    d = Path(directory)
    listen = dns_setting("BIND_LISTEN")
    rpz = _quote(dns_setting("RPZ_ZONE"))
    lines = [
        "// Written by ThreatLens (DNS BIND_NAMED_CONF); changes here are overwritten.",
        f"include {_quote(str(d / RNDC_KEY_NAME))};",
        "options {",
        f"    directory {_quote(str(d))};",
        f"    pid-file {_quote(str(d / 'named.pid'))};",
        f"    session-keyfile {_quote(str(d / 'session.key'))};",
        f"    managed-keys-directory {_quote(str(d))};",
        f"    listen-on port {int(dns_setting('BIND_PORT'))} {{ {listen}; }};",
        "    listen-on-v6 { none; };",
        "    allow-query { any; };",
        # Recursion only for the loopback: RPZ rewrites recursive answers, and the
        # policy names are answered from the policy before any recursion is tried.
        "    recursion yes;",
        "    allow-recursion { 127.0.0.1; ::1; };",
        "    dnssec-validation no;",
        # min-update-interval 0: a changed policy applies now, not up to 60 s later.
        f"    response-policy {{ zone {rpz}; }} qname-wait-recurse no recursive-only no"
        " min-update-interval 0;",
        "};",
        f"controls {{ inet 127.0.0.1 port {int(dns_setting('BIND_CONTROL_PORT'))} "
        f'allow {{ 127.0.0.1; }} keys {{ "{RNDC_KEY_ID}"; }}; }};',
    ]
    stats_port = dns_setting("BIND_STATS_PORT")
    if stats_port:
        lines.append(
            f"statistics-channels {{ inet 127.0.0.1 port {int(stats_port)} "
            "allow { 127.0.0.1; }; };"
        )
    lines.append(f"include {_quote(str(d / CONF_NAME))};")
    return "\n".join(lines) + "\n"


def ensure_rndc_key(directory):
    """`rndc.key` in `directory`, generated on first use (hmac-sha256, mode 0600)."""
    path = Path(directory) / RNDC_KEY_NAME
    if not path.exists():
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key_file:
            key_file.write(
                f'key "{RNDC_KEY_ID}" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
            )
    return path


def reload_command():
    """BIND_RELOAD_COMMAND; when unset (None): `rndc reload` with the generated key and
    control port for a managed named.conf, else plain `rndc reload` (the system's named)."""
    command = dns_setting("BIND_RELOAD_COMMAND")
    if command is not None:
        return command
    if dns_setting("BIND_NAMED_CONF"):
        return ["rndc", "-k", "{rndc_key}", "-s", "127.0.0.1", "-p", "{control_port}", "reload"]
    return ["rndc", "reload"]


def command_values(directory):
    """Placeholders every configured command may use."""
    directory = Path(directory)
    return {
        "dir": directory,
        "rndc_key": directory / RNDC_KEY_NAME,
        "control_port": dns_setting("BIND_CONTROL_PORT"),
        "named_conf": directory / NAMED_CONF_NAME,
    }


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
    from dns.rpz import render_active_rpz

    staging = directory / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / ZONES_DIR).mkdir(parents=True)
    final_zones = directory / ZONES_DIR
    values = command_values(directory)
    ensure_rndc_key(directory)
    zones = list(Zone.objects.filter(is_active=True).order_by("name"))
    # Always written, empty without rules: a `response-policy` naming it keeps loading.
    rpz_zone = dns_setting("RPZ_ZONE")
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
    installs = [(conf, directory / CONF_NAME)]
    check_conf = conf
    if dns_setting("BIND_NAMED_CONF"):
        # Checked as named will read it: the include it names is the staged one.
        named_conf = staging / NAMED_CONF_NAME
        text = render_named_conf(directory)
        named_conf.write_text(text)
        (staging / "named.conf.check").write_text(
            text.replace(_quote(str(directory / CONF_NAME)), _quote(str(conf)))
        )
        check_conf = staging / "named.conf.check"
        installs.append((named_conf, directory / NAMED_CONF_NAME))

    errors = []
    checked = _run(dns_setting("BIND_CHECKCONF_COMMAND"), **values, conf=check_conf)
    if checked and checked[0] != 0:
        errors.append({"check": "named.conf", "output": checked[1]})
    for path, name in staged.items():
        checked = _run(dns_setting("BIND_CHECKZONE_COMMAND"), **values, zone=name, file=path)
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
        _install(path, final_zones / path.name)
    keep = {path.name for path in staged}
    for old in final_zones.glob("db.*"):
        if old.name not in keep:
            old.unlink()  # a zone deleted here must not linger in BIND's folder
    for staged_conf, final_conf in installs:
        _install(staged_conf, final_conf)
    shutil.rmtree(staging, ignore_errors=True)

    reloaded = _run(reload_command(), **values)
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


def _install(staged, final):
    """Move a checked file into place, unless the file there has the same text: its
    modification time then stays, and named does not reload a zone that did not change."""
    try:
        if final.read_bytes() == staged.read_bytes():
            return
    except FileNotFoundError:
        pass
    os.replace(staged, final)


def _announce(outcome, reason):
    now = timezone.now()
    publish(
        "bind_reload",
        events.bind_reload_data(outcome, reason, timestamp=now),
        priority=8 if not outcome.success else None,
    )
    publish("health_update", events.bind_health(outcome, timestamp=now))


# --- Syncing after changes ------------------------------------------------------------------

_pending = threading.Event()
_worker_lock = threading.Lock()
_worker = None
_reasons = []
_syncing = threading.Event()


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
                _syncing.set()  # before the request is cleared: never both look idle
                _pending.clear()
                reasons = sorted(set(_reasons))
                _reasons.clear()
            close_old_connections()
            try:
                sync_bind(reason=", ".join(reasons)[:200])
            except Exception:
                logger.exception("BIND sync failed")
            finally:
                _syncing.clear()
    finally:
        connection.close()


def wait_until_synced(timeout=10.0):
    """Block until no sync is requested or running (tests, the benchmark); True if so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pending.is_set() and not _syncing.is_set():
            time.sleep(0.01)
            if not _pending.is_set() and not _syncing.is_set():
                return True
        time.sleep(0.02)
    return False

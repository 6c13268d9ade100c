"""The DNS side's monitors, run by the monitor runner (in the server process in the
embedded default, or by `manage.py run_monitors`), registered in `DnsConfig.ready()`:

- `dns_forwarders`: a round of forwarder probes (`dns.forwarders.check_all`: health per
  forwarder and `forwarder_status_change`) every FORWARDER_CHECK_INTERVAL;
- `threat_feeds`: due feed downloads (`dns.feed_download`) every FEED_CHECK_INTERVAL;
- `bind9` (with the BIND integration on): a SOA query for the RPZ to named;
- the DNS figures of `system_metrics` from named's statistics channel.

Probes and downloads run in a thread of their own (`RoundInThread`), never longer than
the runner's check timeout: a check starts a round when none runs and reports from the
state the rounds keep in the database.
"""

import json
import logging
import threading
import time
import urllib.request

import dnslib
from django.db import connections

from dns import bind
from dns.conf import dns_setting
from dns.models import Forwarder, Record, ThreatFeed, Zone

logger = logging.getLogger(__name__)


class RoundInThread:
    """Runs `work()` in a daemon thread, one round at a time."""

    def __init__(self, name, work):
        self.name, self.work = name, work
        self._thread = None
        self._lock = threading.Lock()

    def kick(self):
        """Start a round unless one runs; True when one was started."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._round, name=self.name, daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout=None):
        """Wait for the round in progress, if any; True when none runs any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _round(self):
        try:
            self.work()
        except Exception:
            logger.exception("%s failed", self.name)
        finally:
            # The thread ends here: give its connection back now, not when the garbage
            # collector finds it (a pool counts it as in use until then).
            connections.close_all()


def _health(component, status, message="", **metrics):
    from threatlens.monitoring.health import ComponentHealth

    return ComponentHealth(component, status, metrics=metrics, message=message)


class ForwarderMonitor:
    """`check()`: start a probe round, report the forwarders' stored health."""

    def __init__(self):
        from dns import forwarders

        self.rounds = RoundInThread("dns-forwarder-probes", forwarders.check_all)

    def check(self):
        self.rounds.kick()
        # A round of answering forwarders is quick: report it. A slow one (several silent
        # forwarders) goes on in its thread, and this reports the previous round.
        self.rounds.wait(timeout=dns_setting("FORWARDER_TIMEOUT") + 0.5)
        rows = list(
            Forwarder.objects.filter(is_active=True).values_list("health_status", flat=True)
        )
        critical = rows.count("critical")
        metrics = {"forwarders": len(rows), "critical": critical, "warning": rows.count("warning")}
        if not rows:
            return _health("dns_forwarders", "healthy", "no active forwarders", **metrics)
        if rows.count("unknown") == len(rows):
            return _health("dns_forwarders", "unknown", "not probed yet", **metrics)
        if critical == len(rows):
            return _health("dns_forwarders", "critical", "no forwarder answers", **metrics)
        if critical or metrics["warning"]:
            bad = critical + metrics["warning"]
            return _health("dns_forwarders", "warning", f"{bad} of {len(rows)} unwell", **metrics)
        return _health("dns_forwarders", "healthy", **metrics)


class FeedMonitor:
    """`check()`: start the due downloads, report the feeds whose last download failed."""

    def __init__(self):
        from dns import feed_download

        self.rounds = RoundInThread("dns-feed-downloads", feed_download.download_due_feeds)

    def check(self):
        self.rounds.kick()
        failing = list(
            ThreatFeed.objects.filter(is_active=True)
            .exclude(url="")
            .exclude(last_error="")
            .values_list("name", "last_error")
        )
        if failing:
            message = "; ".join(f"{name}: {error}" for name, error in failing)[:500]
            return _health("threat_feeds", "warning", message, failing=len(failing))
        return _health("threat_feeds", "healthy", failing=0)


def check_bind():
    """named answers a SOA query for the RPZ (always written) on BIND_LISTEN:BIND_PORT."""
    address = dns_setting("BIND_LISTEN").split(";")[0].strip() or "127.0.0.1"
    port = int(dns_setting("BIND_PORT"))
    zone = dns_setting("RPZ_ZONE")
    query = dnslib.DNSRecord.question(zone, "SOA")
    started = time.monotonic()
    try:
        reply = dnslib.DNSRecord.parse(query.send(address, port, timeout=2.0))
    except (OSError, dnslib.DNSError) as exc:
        return _health("bind9", "critical", f"named does not answer on {address}:{port}: {exc}")
    elapsed = round((time.monotonic() - started) * 1000, 2)
    if reply.header.rcode != dnslib.RCODE.NOERROR or not reply.rr:
        rcode = dnslib.RCODE.get(reply.header.rcode)
        return _health("bind9", "critical", f"{zone} not served ({rcode})", response_time=elapsed)
    serial = reply.rr[0].rdata.times[0]
    return _health("bind9", "healthy", f"serving {zone} serial {serial}", response_time=elapsed)


class NamedStatistics:
    """DNS figures for `system_metrics`: zones and records from the database, and from
    named's statistics channel (BIND_STATS_PORT, JSON) the queries, NXDOMAIN, SERVFAIL
    answers and RPZ rewrites since the previous sample (zeros for the first one, or when
    named cannot be read)."""

    COUNTERS = {
        "queries": ("opcodes", "QUERY"),
        "nxdomain": ("rcodes", "NXDOMAIN"),
        "servfail": ("rcodes", "SERVFAIL"),
        "rpz_hits": ("nsstats", "RPZRewrites"),
    }

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._previous = None  # (time, counters)
        self._lock = threading.Lock()

    def read_counters(self):
        port = dns_setting("BIND_STATS_PORT")
        if not (bind.enabled() and port):
            return None
        url = f"http://127.0.0.1:{int(port)}/json/v1/server"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                data = json.load(response)
        except (OSError, ValueError) as exc:
            logger.debug("named statistics unavailable: %s", exc)
            return None
        return {
            name: int(data.get(section, {}).get(key, 0) or 0)
            for name, (section, key) in self.COUNTERS.items()
        }

    def __call__(self):
        figures = {
            "active_zones": Zone.objects.filter(is_active=True).count(),
            "total_records": Record.objects.filter(zone__is_active=True).count(),
            "queries_per_second": 0.0,
            **dict.fromkeys(self.COUNTERS, 0),
        }
        counters, now = self.read_counters(), self.clock()
        with self._lock:
            previous, self._previous = self._previous, (now, counters) if counters else None
        if counters and previous:
            then, before = previous
            # A counter that went down means named restarted: count from zero again.
            deltas = {
                name: value - before[name] if value >= before[name] else value
                for name, value in counters.items()
            }
            figures.update(deltas)
            if now > then:
                figures["queries_per_second"] = deltas["queries"] / (now - then)
        return figures


def monitors():
    """{component: (check, interval)} for the monitor runner."""
    checks = {
        "dns_forwarders": (ForwarderMonitor().check, dns_setting("FORWARDER_CHECK_INTERVAL")),
        "threat_feeds": (FeedMonitor().check, dns_setting("FEED_CHECK_INTERVAL")),
    }
    if bind.enabled():
        checks["bind9"] = (check_bind, dns_setting("BIND_CHECK_INTERVAL"))
    return checks

"""Forwarder health: resolve a probe name through each forwarder over UDP (dnslib).

A forwarder is `healthy` when it answers (NOERROR or NXDOMAIN) within the slow
threshold, `warning` when it answers slowly, and `critical` when it times out, cannot be
reached, or answers SERVFAIL/REFUSED. Each round publishes `health_update` (component
`forwarder`) per forwarder and `forwarder_status_change` when a status changed.
"""

import logging
import socket
import time
from dataclasses import dataclass

import dnslib
from django.utils import timezone

from dns.conf import dns_setting
from dns.models import Forwarder
from realtime.publishing import publish

logger = logging.getLogger(__name__)

OK_RCODES = {dnslib.RCODE.NOERROR, dnslib.RCODE.NXDOMAIN}


@dataclass
class ProbeResult:
    status: str
    response_time_ms: float | None
    error: str = ""
    rcode: str | None = None


def probe(address, port, name, *, timeout, slow_ms):
    """Send one A query for `name` to `address:port` and judge the answer."""
    query = dnslib.DNSRecord.question(name, "A")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    started = time.monotonic()
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(query.pack(), (address, port))
            while True:
                data, _ = sock.recvfrom(4096)
                reply = dnslib.DNSRecord.parse(data)
                if reply.header.id == query.header.id:
                    break  # a late answer to an earlier query is not ours
    except TimeoutError:
        return ProbeResult("critical", None, f"no answer within {timeout:g} s")
    except OSError as exc:
        return ProbeResult("critical", None, f"cannot reach {address}:{port}: {exc}")
    except dnslib.DNSError as exc:
        return ProbeResult("critical", None, f"unreadable answer: {exc}")
    elapsed = (time.monotonic() - started) * 1000
    rcode = dnslib.RCODE.get(reply.header.rcode)
    if reply.header.rcode not in OK_RCODES:
        return ProbeResult("critical", round(elapsed, 2), f"answered {rcode}", rcode)
    if elapsed > slow_ms:
        return ProbeResult("warning", round(elapsed, 2), f"slow: {elapsed:.0f} ms", rcode)
    return ProbeResult("healthy", round(elapsed, 2), "", rcode)


def check_forwarder(forwarder, *, name=None, timeout=None, slow_ms=None):
    """Probe one forwarder, store the outcome, publish; returns the ProbeResult."""
    result = probe(
        forwarder.address,
        forwarder.port,
        name or dns_setting("FORWARDER_PROBE_NAME"),
        timeout=timeout or dns_setting("FORWARDER_TIMEOUT"),
        slow_ms=slow_ms or dns_setting("FORWARDER_SLOW_MS"),
    )
    now = timezone.now()
    previous = forwarder.health_status
    # A queryset update: health bookkeeping is not a configuration change (no signals).
    Forwarder.objects.filter(pk=forwarder.pk).update(
        health_status=result.status,
        last_check=now,
        last_error=result.error,
        response_time_ms=result.response_time_ms,
    )
    forwarder.health_status, forwarder.last_check = result.status, now
    forwarder.last_error, forwarder.response_time_ms = result.error, result.response_time_ms
    publish("health_update", health_event(forwarder, result))
    if previous != result.status:
        publish(
            "forwarder_status_change",
            {
                "forwarder_id": str(forwarder.pk),
                "name": str(forwarder),
                "address": forwarder.address,
                "port": forwarder.port,
                "old_status": previous,
                "new_status": result.status,
                "response_time": result.response_time_ms,
                "error": result.error or None,
                "timestamp": now,
                "source": "dns",
                "category": "forwarder",
            },
            priority=9 if result.status == "critical" else None,
        )
    return result


def health_event(forwarder, result):
    """HealthEvent (unified-ws.md) of one forwarder."""
    message = f"{forwarder} ({forwarder.address}:{forwarder.port}): {result.status}"
    if result.error:
        message += f", {result.error}"
    return {
        "component": "forwarder",
        "status": result.status,
        "metrics": {
            "response_time": result.response_time_ms,
            "error_rate": 0.0 if result.status != "critical" else 1.0,
        },
        "message": message,
        "forwarder_id": str(forwarder.pk),
        "error": result.error or None,
        "timestamp": timezone.now(),
        "source": "dns",
        "category": "health",
    }


def check_all():
    """One round over the active forwarders; returns {forwarder id: ProbeResult}."""
    return {
        forwarder.pk: check_forwarder(forwarder)
        for forwarder in Forwarder.objects.filter(is_active=True)
    }

"""The forwarder health monitor against a tiny dnslib responder on 127.0.0.1."""

import io
import socket
import threading
import time

import dnslib
import pytest
from django.core.management import call_command

from dns import forwarders
from dns.models import Forwarder
from tests.dns.helpers import events
from threatlens.writeguard import service_writes


class Responder:
    """A UDP DNS responder on a loopback port: answers A queries with 192.0.2.1, or
    SERVFAIL, or stays silent, or answers late, as `mode` says."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.mode = "answer"
        self.delay = 0.0
        self.queries = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dnslib.DNSRecord.parse(data)
            self.queries.append(str(query.q.qname))
            if self.mode == "silent":
                continue
            reply = query.reply()
            if self.mode == "servfail":
                reply.header.rcode = dnslib.RCODE.SERVFAIL
            else:
                reply.add_answer(
                    dnslib.RR(query.q.qname, dnslib.QTYPE.A, rdata=dnslib.A("192.0.2.1"), ttl=60)
                )
            time.sleep(self.delay)
            self.sock.sendto(reply.pack(), client)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def responder():
    server = Responder()
    yield server
    server.close()


@pytest.fixture
def fast_probe(settings):
    settings.DNS = {
        "FORWARDER_TIMEOUT": 0.3,
        "FORWARDER_SLOW_MS": 200.0,
        "FORWARDER_PROBE_NAME": "probe.threatlens.test",
    }


def test_a_responsive_forwarder_is_healthy(responder, fast_probe, db):
    with service_writes():
        forwarder = Forwarder.objects.create(address="127.0.0.1", port=responder.port)
    result = forwarders.check_forwarder(forwarder)
    assert result.status == "healthy" and result.response_time_ms is not None
    assert responder.queries == ["probe.threatlens.test."]
    forwarder.refresh_from_db()
    assert forwarder.health_status == "healthy" and forwarder.last_check is not None


def test_status_changes_are_published_and_health_every_round(responder, fast_probe, db):
    with service_writes():
        forwarder = Forwarder.objects.create(address="127.0.0.1", port=responder.port, name="lab")
    forwarders.check_forwarder(forwarder)
    forwarders.check_forwarder(forwarder)  # unchanged: no second status change
    responder.mode = "silent"
    assert forwarders.check_forwarder(forwarder).status == "critical"
    responder.mode = "servfail"
    servfail = forwarders.check_forwarder(forwarder)
    assert servfail.status == "critical" and "SERVFAIL" in servfail.error
    changes = [
        (e.data["old_status"], e.data["new_status"]) for e in events("forwarder_status_change")
    ]
    assert changes == [("unknown", "healthy"), ("healthy", "critical")]
    critical = events("forwarder_status_change")[-1]
    assert critical.priority == 9 and "no answer" in critical.data["error"]
    health = events("health_update")
    assert len(health) == 4
    assert {e.data["component"] for e in health} == {"forwarder"}
    assert [e.data["status"] for e in health] == ["healthy", "healthy", "critical", "critical"]


def test_a_slow_forwarder_is_a_warning(responder, settings, db):
    settings.DNS = {"FORWARDER_TIMEOUT": 1.0, "FORWARDER_SLOW_MS": 50.0}
    responder.delay = 0.15
    with service_writes():
        forwarder = Forwarder.objects.create(address="127.0.0.1", port=responder.port)
    result = forwarders.check_forwarder(forwarder)
    assert result.status == "warning" and "slow" in result.error


def test_an_unreachable_forwarder_is_critical(fast_probe, db):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    with service_writes():
        forwarder = Forwarder.objects.create(address="127.0.0.1", port=port)
    assert forwarders.check_forwarder(forwarder).status == "critical"


def test_health_bookkeeping_is_not_a_configuration_change(responder, fast_probe, db):
    with service_writes():
        forwarder = Forwarder.objects.create(address="127.0.0.1", port=responder.port)
    before = len(events("config_change"))
    forwarders.check_forwarder(forwarder)
    assert len(events("config_change")) == before


def test_the_monitor_command_checks_every_active_forwarder_once(responder, fast_probe, db):
    with service_writes():
        Forwarder.objects.create(address="127.0.0.1", port=responder.port)
    with service_writes():
        Forwarder.objects.create(address="127.0.0.1", port=1, is_active=False)
    out = io.StringIO()
    call_command("monitor_forwarders", "--once", stdout=out)
    assert out.getvalue().count("healthy") == 1
    assert len(responder.queries) == 1

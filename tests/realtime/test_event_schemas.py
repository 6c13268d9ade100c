"""Every declared event type builds its payload in one place, and that payload has the
fields its schema and the protocol documents list (in the manner of Zulip's test_events).

The tests iterate the catalogue: a new event type fails here until it has a builder, a
schema, a sample below and a place in the protocol documents (`DOCUMENTED`).
"""

import json
import re
import typing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rest_framework import serializers

from realtime import catalogue

PROTOCOLS = Path(__file__).resolve().parents[2] / "docs" / "protocols"

# Where each type's fields are documented: ("interface", <TypeScript interface of
# unified-ws.md>), ("example", <threatlens-ws.md JSON example of that type>), ("rest",
# <incidents-ws.md: the object REST answers>), or ("named", <document>) for the types the
# documents list without their fields (the TypedDict beside the builder is then the spec).
DOCUMENTED = {
    "zone_created": ("interface", "ZoneEvent"),
    "zone_updated": ("interface", "ZoneEvent"),
    "zone_deleted": ("interface", "ZoneEvent"),
    "record_created": ("interface", "RecordEvent"),
    "record_updated": ("interface", "RecordEvent"),
    "record_deleted": ("interface", "RecordEvent"),
    "security_alert": ("interface", "SecurityEvent"),
    "health_update": ("interface", "HealthEvent"),
    "health_alert": ("interface", "HealthEvent"),
    "system_metrics": ("interface", "SystemMetricsEvent"),
    "security_event": ("example", "security_event"),
    "system_status": ("example", "system_status"),
    "processing_update": ("example", "processing_update"),
    "health_check": ("example", "health_check"),
    "new_alert": ("rest", "incidents-ws.md"),
    "alert_updated": ("rest", "incidents-ws.md"),
    "incident_created": ("rest", "incidents-ws.md"),
    "incident_updated": ("rest", "incidents-ws.md"),
    "bulk_operation_progress": ("named", "unified-ws.md"),
    "bulk_operation_complete": ("named", "unified-ws.md"),
    "threat_detected": ("named", "unified-ws.md"),
    "rpz_updated": ("named", "unified-ws.md"),
    "threat_feed_updated": ("named", "unified-ws.md"),
    "forwarder_status_change": ("named", "unified-ws.md"),
    "bind_reload": ("named", "unified-ws.md"),
    "config_change": ("named", "unified-ws.md"),
    "user_login": ("named", "unified-ws.md"),
    "user_logout": ("named", "unified-ws.md"),
    "session_expired": ("named", "unified-ws.md"),
    "permission_changed": ("named", "unified-ws.md"),
    "user_action": ("named", "threatlens-ws.md"),
    # Ours, beyond the documents: named in the README's "Where we differ", the TypedDict
    # beside the builder is the spec.
    "zone_access_changed": ("ours", "README.md"),
}


# --- What the documents say ---------------------------------------------------------------


def interface_fields(name):
    """{field: required} of a TypeScript interface of unified-ws.md (top level only)."""
    text = (PROTOCOLS / "unified-ws.md").read_text()
    body = re.search(rf"interface {name} \{{\n(.*?)\n\}}", text, re.S).group(1)
    return {
        match.group(1): not match.group(2) for match in re.finditer(r"^  (\w+)(\?)?:", body, re.M)
    }


def example_fields(event_type):
    """{field: True} of the `data` of threatlens-ws.md's JSON example of `event_type`."""
    text = (PROTOCOLS / "threatlens-ws.md").read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        try:
            message = json.loads(block)
        except ValueError:
            continue
        if message.get("type") == event_type:
            return dict.fromkeys(message["data"], True)
    raise AssertionError(f"threatlens-ws.md has no JSON example of {event_type}")


# --- What the code says ---------------------------------------------------------------------


def schema_fields(schema):
    """{field: required} of a TypedDict or a REST serializer."""
    if isinstance(schema, type) and issubclass(schema, serializers.BaseSerializer):
        return dict.fromkeys(schema.Meta.fields, True)
    assert typing.is_typeddict(schema), f"{schema!r} is neither a TypedDict nor a serializer"
    return {
        **dict.fromkeys(schema.__optional_keys__, False),
        **dict.fromkeys(schema.__required_keys__, True),
    }


# --- One sample per type: the builder called as its callers call it -----------------------

NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


def _draft(**overrides):
    fields = {
        "event_id": "evt-1",
        "severity": 9,
        "category": "dns",
        "source": "bind",
        "message": "query for a listed domain",
        "timestamp": NOW,
        "analysis": {"confidence": 0.9},
        "recommendations": ["block it"],
        "rule_id": "dns_threat_feed_match",
        "correlation_key": "dns_threat_feed_match:10.0.0.5",
        "src_ip": "10.0.0.5",
        "user": None,
        "raw_line": "query: bad.example IN A",
        "alert_category": "malware",
        "details": {
            "fields": {"domain": "bad.example", "qtype": "A"},
            "listing": {"feed": "URLhaus", "rule": "bad.example", "action": "NXDOMAIN"},
        },
    }
    return _draft_class()(**{**fields, **overrides})


def _draft_class():
    from incidents.pipeline.analyzer import SecurityEventDraft

    return SecurityEventDraft


def _zone():
    from dns import services

    return services.create_zone(None, {"name": "schema.example", "email": "h@example.com"})


def _record():
    from dns import services

    zone = _zone()
    return services.create_record(
        None, zone.pk, {"name": "www", "record_type": "A", "value": "192.0.2.1"}
    ), zone


def _access(carol):
    from dns import services

    services.grant_access(None, _zone().pk, user=carol, can_change=True)
    return carol.dns_zone_access.get()


def _bulk():
    from dns.models import BulkOperation

    zone = _zone()
    job = BulkOperation.objects.create(
        zone=zone, operation="create", total=2, status="succeeded", result={"created": [1, 2]}
    )
    return job, zone


def _health(component="database", status="critical"):
    from threatlens.monitoring.health import ComponentHealth

    return ComponentHealth(component, status, metrics={"response_time": 3.0}, message="slow")


def _sample(name, carol):
    from dns.bind import SyncOutcome
    from dns.forwarders import ProbeResult
    from dns.models import Forwarder, RpzRule, ThreatFeed
    from incidents.models import Alert, Incident, RawLog, SecurityEvent
    from threatlens.audit.services import record

    build = lambda *args, **kwargs: catalogue.build(name, *args, **kwargs)  # noqa: E731
    samples = {
        "zone_created": lambda: build(_zone(), "created", [], carol),
        "zone_updated": lambda: build(
            _zone(), "updated", [{"field": "ttl", "old_value": 1, "new_value": 2}], carol
        ),
        "zone_deleted": lambda: build(_zone(), "deleted", [], None),
        "zone_access_changed": lambda: build(_access(carol), "granted", carol),
        "record_created": lambda: build(*_record(), "created", [], carol),
        "record_updated": lambda: build(*_record(), "updated", [], carol),
        "record_deleted": lambda: build(*_record(), "deleted", [], carol),
        "bulk_operation_progress": lambda: build(
            *_bulk(), stage="applying", processed=1, progress=0.5
        ),
        "bulk_operation_complete": lambda: build(*_bulk(), carol),
        "config_change": lambda: build("record", "record_updated", carol, zone=_zone()),
        "rpz_updated": lambda: build(
            RpzRule.objects.create(domain="bad.example"), "created", [], carol
        ),
        "threat_feed_updated": lambda: build(
            ThreatFeed.objects.create(name="URLhaus"), "created", carol
        ),
        "forwarder_status_change": lambda: build(
            Forwarder.objects.create(address="192.0.2.53"),
            "healthy",
            ProbeResult("critical", None, "timeout"),
        ),
        "bind_reload": lambda: build(SyncOutcome(True, "done", "reloaded", zones=1), "deploy"),
        "security_event": lambda: build(
            SecurityEvent.objects.create(
                event_id="evt-1",
                severity=8,
                category="auth",
                source="auth.log",
                message="m",
                timestamp=NOW,
                rule_id="r",
                src_ip="10.0.0.5",
            )  # fmt: skip
        ),
        "processing_update": lambda: build(
            RawLog.objects.create(source="auth.log", status="failed", error="bad gzip"),
            status="failed",
        ),
        "new_alert": lambda: build(Alert.objects.create(title="a", severity="high", source="s")),
        "alert_updated": lambda: build(
            Alert.objects.create(title="a", severity="high", source="s")
        ),
        "incident_created": lambda: build(Incident.objects.create(title="i", owner=carol)),
        "incident_updated": lambda: build(Incident.objects.create(title="i", owner=carol)),
        "security_alert": lambda: build(_draft(), alert_id=7),
        "threat_detected": lambda: build(_draft()),
        "health_update": lambda: build(_health()),
        "health_alert": lambda: build(_health(), "healthy"),
        "system_status": lambda: build(_health(), uptime=12.0),
        "health_check": lambda: build([_health()], extra={"monitors": {"status": "healthy"}}),
        "system_metrics": lambda: build(),
        "user_login": lambda: build(carol, method="token", ip_address="192.0.2.7"),
        "user_logout": lambda: build(carol, method="session"),
        "session_expired": lambda: build(user_id=carol.pk, username=carol.username),
        "permission_changed": lambda: build(carol),
        "user_action": lambda: build(record("alert.take_ownership", actor=carol, target=carol)),
    }
    assert name in samples, f"{name}: add a sample to tests/realtime/test_event_schemas.py"
    return samples[name]()


@pytest.mark.parametrize("entry", catalogue.all_types(), ids=lambda entry: entry.name)
def test_every_declared_type_has_a_builder_and_a_schema(entry):
    assert entry.builder is not None, f"{entry.name}: declare it with builder=..."
    assert entry.schema is not None, f"{entry.name}: declare it with schema=..."
    assert entry.name in DOCUMENTED, f"{entry.name}: document it in docs/protocols/"


@pytest.mark.django_db
@pytest.mark.parametrize("entry", catalogue.all_types(), ids=lambda entry: entry.name)
def test_the_built_payload_has_the_fields_of_its_schema_and_of_the_documents(entry, carol):
    from threatlens.writeguard import service_writes

    with service_writes():  # sample rows written directly, as test setup
        data = _sample(entry.name, carol)
    assert isinstance(data, dict)
    fields = schema_fields(entry.schema)
    required = {field for field, needed in fields.items() if needed}
    assert required <= set(data), f"{entry.name}: missing {required - set(data)}"
    assert set(data) <= set(fields), f"{entry.name}: not in its schema {set(data) - set(fields)}"

    kind, where = DOCUMENTED[entry.name]
    if kind == "interface":
        documented = interface_fields(where)
    elif kind == "example":
        documented = example_fields(where)
    elif kind == "ours":
        documented = {}
        readme = (PROTOCOLS.parents[1] / where).read_text()
        differ = readme.split("### Where we differ from the documents", 1)[1].split("\n## ", 1)[0]
        assert f"`{entry.name}`" in differ, f"{entry.name}: name it in {where}'s Where we differ"
    elif kind == "rest":
        documented = {}  # "// Alert object": the REST serializer, i.e. the schema above
        assert entry.name in (PROTOCOLS / where).read_text()
    else:
        documented = {}
        assert f"'{entry.name}'" in (PROTOCOLS / where).read_text() or (
            f"`{entry.name}`" in (PROTOCOLS / where).read_text()
        ), f"{entry.name} is not named in {where}"
    missing = {field for field, needed in documented.items() if needed} - set(data)
    assert not missing, f"{entry.name}: {where} lists {missing}"
    unknown = set(documented) - set(fields)
    assert not unknown, f"{entry.name}: {where} lists {unknown}, its schema does not"
    # And it goes through the event encoder as it is.
    from realtime.envelopes import encode

    assert json.loads(encode(data)).keys() == data.keys()

"""Event types of DNS management, each declared with its payload (unified-ws.md
"Event Data Formats").

One place per type: the declaration, the `TypedDict` its data follows, and the builder
that makes it. Zone and record events embed the REST representation of the object
(`zone`, `record`), built with the REST serializers, so a socket client and a REST
client see one shape. The `health_update` of forwarders and BIND uses the monitoring
app's builder (that app declares the type).
"""

from dataclasses import asdict
from typing import Any, NotRequired, TypedDict

from django.utils import timezone

from realtime import catalogue
from realtime.catalogue import RECEIVE_DNS, RECEIVE_SECURITY, RECEIVE_SYSTEM, Audience, Family
from threatlens.monitoring.events import health_update_data
from threatlens.monitoring.health import CRITICAL, HEALTHY, WARNING, ComponentHealth

VIEW_ALL_ZONES = "dns.view_all_zones"
SOURCE = "dns"


class FieldChange(TypedDict):
    field: str
    old_value: Any
    new_value: Any


class ZoneEvent(TypedDict):
    zone_id: str
    zone_name: str
    zone_type: str
    action: str  # created | updated | deleted
    changes: list[FieldChange]
    user_id: str | None
    username: str | None  # who made the change, as the console shows it
    timestamp: Any
    source: str
    category: str
    zone: dict


class RecordEvent(TypedDict):
    record_id: str
    zone_id: str
    zone_name: str
    record_name: str  # the absolute name, without the final dot
    record_type: str
    record_value: str
    action: str
    changes: list[FieldChange]
    user_id: str | None
    username: str | None  # who made the change, as the console shows it
    timestamp: Any
    source: str
    category: str
    record: dict


class BulkProgressEvent(TypedDict):
    operation_id: str
    zone_id: str
    zone_name: str
    operation: str
    stage: str  # validating | applying | done
    processed: int
    total: int
    progress: float  # 0..1
    source: str
    category: str


class BulkCompleteEvent(TypedDict):
    operation_id: str
    zone_id: str
    zone_name: str
    operation: str
    status: str  # succeeded | failed
    total: int
    created: list[int]
    updated: list[int]
    deleted: list[int]
    errors: list[dict]
    serial: int
    user_id: str | None
    username: str | None  # who made the change, as the console shows it
    timestamp: Any
    source: str
    category: str


class ZoneAccessEvent(TypedDict):
    """To the user (or group) whose access to a zone was granted, changed or revoked, so
    that their open console shows the zone (or drops it) without a reload."""

    zone_id: str
    zone_name: str
    action: str  # granted | revoked
    can_change: bool
    user_id: str | None
    username: str | None
    timestamp: Any
    source: str
    category: str
    zone: NotRequired[dict]  # granted only: a revoked user may no longer read it


class ConfigChangeEvent(TypedDict):
    """System family, to everyone with receive_system: says what changed, never record data."""

    component: str
    object_type: str  # zone | record | records | forwarder | rpz
    action: str  # e.g. zone_updated, record_created, bulk_create
    zone_name: NotRequired[str]
    zone_id: NotRequired[str]
    user_id: str | None
    timestamp: Any
    source: str
    category: str


class RpzUpdatedData(TypedDict):
    """One rule changed (`rule_id` ... `rule`) or many at once (a feed import:
    `added` ... `feed_name`)."""

    action: str
    rule_id: NotRequired[str]
    domain: NotRequired[str]
    rpz_action: NotRequired[str]
    changes: NotRequired[list[FieldChange]]
    rule_source: NotRequired[str]
    rule: NotRequired[dict]
    added: NotRequired[int]
    removed: NotRequired[int]
    total_rules: NotRequired[int]
    feed_id: NotRequired[str | None]
    feed_name: NotRequired[str | None]
    user_id: str | None
    username: str | None  # who made the change, as the console shows it
    timestamp: Any
    source: str
    category: str


class FeedEvent(TypedDict):
    feed_id: str
    feed_name: str
    action: str  # created | updated | deleted | imported | fetch_failed
    entries_count: int
    added: int
    removed: int
    changes: list[FieldChange]
    last_update: Any
    user_id: str | None
    username: str | None  # who made the change, as the console shows it
    timestamp: Any
    source: str
    category: str
    feed: dict


class ForwarderStatusData(TypedDict):
    forwarder_id: str
    name: str
    address: str
    port: int
    old_status: str
    new_status: str
    response_time: float | None
    error: str | None
    timestamp: Any
    source: str
    category: str


class BindReloadData(TypedDict):
    """A BIND sync's outcome (`dns.bind.SyncOutcome`) and why it ran."""

    success: bool
    stage: str  # check | install | reload | done
    message: str
    zones: int
    errors: list
    duration_ms: float
    reloaded: bool
    reason: str
    timestamp: Any
    source: str
    category: str


def changes_between(old, new):
    """`[{field, old_value, new_value}]` for the keys whose values differ (old/new: dicts;
    a missing side reads as None, so creations and deletions list every field)."""
    keys = list(old or {}) + [key for key in (new or {}) if key not in (old or {})]
    result = []
    for key in keys:
        before = (old or {}).get(key)
        after = (new or {}).get(key)
        if before != after:
            result.append(FieldChange(field=key, old_value=before, new_value=after))
    return result


def merge_changes(earlier, later):
    """One zone or record event standing for two of one transaction: the later one's
    data, with `changes` from each field's first old value to its last new value."""
    first = {change["field"]: change for change in earlier.get("changes", [])}
    changes = []
    for change in later.get("changes", []):
        before = first.pop(change["field"], change)["old_value"]
        if before != change["new_value"]:
            changes.append(
                FieldChange(field=change["field"], old_value=before, new_value=change["new_value"])
            )
    return {**later, "changes": list(first.values()) + changes}


def _user_id(actor):
    return str(actor.pk) if actor is not None and actor.pk else None


def _username(actor):
    return actor.get_username() if actor is not None and actor.pk else None


def zone_event_data(zone, action, changes, actor) -> ZoneEvent:
    from dns.serializers import ZoneSerializer

    return ZoneEvent(
        zone_id=str(zone.pk),
        zone_name=zone.name,
        zone_type=zone.zone_type,
        action=action,
        changes=changes,
        user_id=_user_id(actor),
        username=_username(actor),
        timestamp=timezone.now(),
        source=SOURCE,
        category="zone",
        zone=ZoneSerializer(zone).data,
    )


def record_event_data(record, zone, action, changes, actor) -> RecordEvent:
    from dns.serializers import RecordSerializer

    record.zone = zone  # the representation names the zone without another query
    return RecordEvent(
        record_id=str(record.pk),
        zone_id=str(zone.pk),
        zone_name=zone.name,
        record_name=record.fqdn,
        record_type=record.record_type,
        record_value=record.value,
        action=action,
        changes=changes,
        user_id=_user_id(actor),
        username=_username(actor),
        timestamp=timezone.now(),
        source=SOURCE,
        category="record",
        record=RecordSerializer(record).data,
    )


def bulk_progress_data(operation, zone, *, stage, processed, progress) -> BulkProgressEvent:
    return BulkProgressEvent(
        operation_id=str(operation.pk),
        zone_id=str(zone.pk),
        zone_name=zone.name,
        operation=operation.operation,
        stage=stage,
        processed=processed,
        total=operation.total,
        progress=round(min(max(progress, 0.0), 1.0), 4),
        source=SOURCE,
        category="bulk",
    )


def bulk_complete_data(operation, zone, actor) -> BulkCompleteEvent:
    result = operation.result or {}
    return BulkCompleteEvent(
        operation_id=str(operation.pk),
        zone_id=str(zone.pk),
        zone_name=zone.name,
        operation=operation.operation,
        status=operation.status,
        total=operation.total,
        created=result.get("created", []),
        updated=result.get("updated", []),
        deleted=result.get("deleted", []),
        errors=operation.errors or [],
        serial=zone.serial,
        user_id=_user_id(actor),
        username=_username(actor),
        timestamp=timezone.now(),
        source=SOURCE,
        category="bulk",
    )


def zone_access_data(access, action, actor) -> ZoneAccessEvent:
    """`zone_access_changed` for one ZoneAccess row `granted` (or changed) or `revoked`."""
    from dns.serializers import ZoneSerializer

    event = ZoneAccessEvent(
        zone_id=str(access.zone_id),
        zone_name=access.zone.name,
        action=action,
        can_change=bool(access.can_change) if action != "revoked" else False,
        user_id=_user_id(actor),
        username=_username(actor),
        timestamp=timezone.now(),
        source=SOURCE,
        category="access",
    )
    if action != "revoked":
        event["zone"] = ZoneSerializer(access.zone).data
    return event


def config_change_data(
    object_type, action, actor, *, zone=None, component="dns"
) -> ConfigChangeEvent:
    data = ConfigChangeEvent(
        component=component,
        object_type=object_type,
        action=action,
        user_id=_user_id(actor),
        timestamp=timezone.now(),
        source=SOURCE,
        category="config",
    )
    if zone is not None:
        data["zone_name"] = zone.name
        data["zone_id"] = str(zone.pk)
    return data


def rpz_rule_data(rule, action, changes, actor) -> RpzUpdatedData:
    """`rpz_updated` for one rule `created`/`updated`/`deleted`."""
    from dns.serializers import RpzRuleSerializer

    return {
        "rule_id": str(rule.pk),
        "domain": rule.domain,
        "rpz_action": rule.action,
        "action": action,
        "changes": changes,
        "rule_source": rule.source,
        "user_id": _user_id(actor),
        "username": _username(actor),
        "timestamp": timezone.now(),
        "source": SOURCE,
        "category": rule.category,
        "rule": RpzRuleSerializer(rule).data,
    }


def rpz_bulk_data(action, *, added, removed, total, feed=None, actor=None) -> RpzUpdatedData:
    """`rpz_updated` for a change of many rules at once (a feed import)."""
    return {
        "action": action,
        "added": added,
        "removed": removed,
        "total_rules": total,
        "feed_id": str(feed.pk) if feed else None,
        "feed_name": feed.name if feed else None,
        "user_id": _user_id(actor),
        "username": _username(actor),
        "timestamp": timezone.now(),
        "source": SOURCE,
        "category": feed.category if feed else "custom",
    }


def threat_feed_data(feed, action, actor, *, added=0, removed=0, changes=None) -> FeedEvent:
    from dns.serializers import ThreatFeedSerializer

    return {
        "feed_id": str(feed.pk),
        "feed_name": feed.name,
        "action": action,
        "entries_count": feed.entries_count,
        "added": added,
        "removed": removed,
        "changes": changes or [],
        "last_update": feed.last_update,
        "user_id": _user_id(actor),
        "username": _username(actor),
        "timestamp": timezone.now(),
        "source": SOURCE,
        "category": feed.category,
        "feed": ThreatFeedSerializer(feed).data,
    }


def forwarder_status_data(forwarder, previous, result, *, timestamp=None) -> ForwarderStatusData:
    """`forwarder_status_change`: a probe (`dns.forwarders.ProbeResult`) changed the
    forwarder's status from `previous`."""
    return ForwarderStatusData(
        forwarder_id=str(forwarder.pk),
        name=str(forwarder),
        address=forwarder.address,
        port=forwarder.port,
        old_status=previous,
        new_status=result.status,
        response_time=result.response_time_ms,
        error=result.error or None,
        timestamp=timestamp or timezone.now(),
        source=SOURCE,
        category="forwarder",
    )


def bind_reload_data(outcome, reason, *, timestamp=None) -> BindReloadData:
    return BindReloadData(
        **asdict(outcome),
        reason=reason,
        timestamp=timestamp or timezone.now(),
        source=SOURCE,
        category="bind",
    )


def forwarder_health(forwarder, result, *, timestamp=None):
    """`health_update` (declared by monitoring) of one forwarder probe."""
    message = f"{forwarder} ({forwarder.address}:{forwarder.port}): {result.status}"
    if result.error:
        message += f", {result.error}"
    health = ComponentHealth(
        "forwarder",
        result.status,
        metrics={
            "response_time": result.response_time_ms,
            "error_rate": 0.0 if result.status != "critical" else 1.0,
        },
        message=message,
    )
    return health_update_data(
        health,
        timestamp=timestamp or timezone.now(),
        forwarder_id=str(forwarder.pk),
        error=result.error or None,
        source=SOURCE,
        category="health",
    )


def bind_health(outcome, *, timestamp=None):
    """`health_update` (declared by monitoring) of the `bind9` component after a sync."""
    status = HEALTHY if outcome.success else WARNING if outcome.stage == "check" else CRITICAL
    health = ComponentHealth(
        "bind9",
        status,
        metrics={
            "response_time": outcome.duration_ms,
            "error_rate": 0.0 if outcome.success else 1.0,
        },
        message=outcome.message,
    )
    return health_update_data(
        health, timestamp=timestamp or timezone.now(), source=SOURCE, category="health"
    )


# --- Declarations -----------------------------------------------------------------------------
# Zone and record events reach only the zone's readers (and holders of VIEW_ALL_ZONES).

for name, priority, builder, schema in [
    ("zone_created", 7, zone_event_data, ZoneEvent),
    ("zone_updated", 7, zone_event_data, ZoneEvent),
    ("zone_deleted", 7, zone_event_data, ZoneEvent),
    ("record_created", 7, record_event_data, RecordEvent),
    ("record_updated", 7, record_event_data, RecordEvent),
    ("record_deleted", 7, record_event_data, RecordEvent),
    ("bulk_operation_progress", 5, bulk_progress_data, BulkProgressEvent),
    ("bulk_operation_complete", 7, bulk_complete_data, BulkCompleteEvent),
]:
    catalogue.declare(
        name,
        family=Family.DNS,
        priority=priority,
        permission=RECEIVE_DNS,
        audience=Audience.LISTED,
        see_all_permission=VIEW_ALL_ZONES,
        description="To users who may read the zone.",
        builder=builder,
        schema=schema,
    )
catalogue.declare(
    "zone_access_changed",
    family=Family.DNS,
    priority=7,
    permission=RECEIVE_DNS,
    audience=Audience.LISTED,
    see_all_permission=VIEW_ALL_ZONES,
    description="To the user or group granted (or revoked) access to a zone.",
    builder=zone_access_data,
    schema=ZoneAccessEvent,
)
catalogue.declare(
    "rpz_updated",
    family=Family.SECURITY,
    priority=7,
    permission=RECEIVE_SECURITY,
    builder=rpz_rule_data,
    schema=RpzUpdatedData,
)
catalogue.declare(
    "threat_feed_updated",
    family=Family.SECURITY,
    priority=5,
    permission=RECEIVE_SECURITY,
    builder=threat_feed_data,
    schema=FeedEvent,
)
catalogue.declare(
    "forwarder_status_change",
    family=Family.SYSTEM,
    priority=8,
    permission=RECEIVE_SYSTEM,
    builder=forwarder_status_data,
    schema=ForwarderStatusData,
)
catalogue.declare(
    "bind_reload",
    family=Family.SYSTEM,
    priority=7,
    permission=RECEIVE_SYSTEM,
    builder=bind_reload_data,
    schema=BindReloadData,
)
# Everyone with receive_system learns that the configuration changed; which zone, only
# those who may read every zone (a zone's readers get its own zone_*/record_* events).
# Otherwise a viewer learns names and ids of zones REST answers 404 for.
catalogue.declare(
    "config_change",
    family=Family.SYSTEM,
    priority=5,
    permission=RECEIVE_SYSTEM,
    sensitive_fields=("zone_name", "zone_id"),
    sensitive_permission=VIEW_ALL_ZONES,
    description="What kind of DNS configuration changed; the zone only to admins.",
    builder=config_change_data,
    schema=ConfigChangeEvent,
)

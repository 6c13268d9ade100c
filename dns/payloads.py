"""Event payloads of DNS management, defined once (unified-ws.md "Event Data Formats").

Zone and record events embed the REST representation of the object (`zone`, `record`),
built with the REST serializers, so a socket client and a REST client see one shape.
"""

from typing import Any, NotRequired, TypedDict

from django.utils import timezone

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
    username: str | None
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
    username: str | None
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


def _user_id(actor):
    return str(actor.pk) if actor is not None and actor.pk else None


def _username(actor):
    return actor.get_username() if actor is not None and actor.pk else None


def zone_event(zone, action, changes, actor):
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


def record_event(record, zone, action, changes, actor):
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


def bulk_progress_event(operation, zone, *, stage, processed, progress):
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


def bulk_complete_event(operation, zone, actor):
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


def zone_access_event(access, action, actor):
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


def config_change_event(object_type, action, actor, *, zone=None, component="dns"):
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


def rpz_event(rule, action, changes, actor):
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


def rpz_bulk_event(action, *, added, removed, total, feed=None, actor=None):
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


def feed_event(feed, action, actor, *, added=0, removed=0, changes=None):
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

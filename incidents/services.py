"""Writes of incident response: ingest, ownership, status, incident changes, comments, watchers.

Each public function is one transaction that checks the actor's permission, writes, adds
an audit row (`threatlens.audit.services.record`) and leaves the broadcast to
`incidents.broadcast` (after commit). REST views, the `/ws/incidents` consumer, the admin
and commands call these, never the ORM directly. Refusals raise `incidents.exceptions`
errors and change nothing.

`actor` is the user acting. Ingest also accepts `actor=None` for trusted internal callers
(the log pipeline, `manage.py` commands): no permission check, audited as "system".
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework import serializers

from incidents import broadcast
from incidents.exceptions import (
    ConflictError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from incidents.inputs import incident_lookup, parse_id, parse_status
from incidents.models import (
    ALERT_TRANSITIONS,
    CLOSED_ALERT_STATUSES,
    INCIDENT_STATUS_ALIASES,
    INCIDENT_TRANSITIONS,
    OPEN_INCIDENT_STATUSES,
    PRIORITY_FOR_SEVERITY,
    SEVERITY_RANK,
    Alert,
    AlertStatus,
    Incident,
    IncidentComment,
    IncidentStatus,
    IncidentTimelineEntry,
    IncidentWatcher,
    TimelineKind,
    alert_transition_allowed,
    incident_transition_allowed,
)
from incidents.serializers import AlertIngestSerializer, IncidentUpdateSerializer
from incidents.writes import save_alert, save_incident, service
from threatlens.audit.services import record

ADD_ALERT = "incidents.add_alert"
CHANGE_ALERT = "incidents.change_alert"
REASSIGN_ALERT = "incidents.reassign_alert"
CHANGE_OTHERS_ALERT = "incidents.change_others_alert"
CHANGE_INCIDENT = "incidents.change_incident"
VIEW_INCIDENT = "incidents.view_incident"
ADD_COMMENT = "incidents.add_incidentcomment"
# Lets a user follow incidents they could not otherwise see (see `watch_incident`).
ADD_WATCHER = "incidents.add_incidentwatcher"

MAX_BULK_ALERTS = 1000
MAX_COMMENT_LENGTH = 10_000

# Fields a repeated delivery may not change: its identity, and when it was first detected.
_DUPLICATE_KEEPS = frozenset({"source", "external_id", "detected_at"})


# --- Alerts: ingest --------------------------------------------------------------------


@service
def ingest_alert(data, *, actor, request=None):
    """Raise an alert from `data` (the fields of `AlertIngestSerializer`).

    A second delivery with the same `source` and non-empty `external_id` updates the
    existing alert instead (the fields it sends, plus `occurrence_count` and
    `last_seen_at`); its status, owner and incident stay. Returns `(alert, created)`.
    Updating needs the permission to change that alert (`_require_may_update`).
    """
    _require(actor, ADD_ALERT, "raise alerts", system_allowed=True)
    fields = _validated_alert(data)
    alert, created, changes = _upsert_alert(fields, occurrences=1, actor=actor)
    if created:
        record(
            "alert.create",
            actor=actor,
            target=alert,
            request=request,
            new=_alert_identity(alert),
        )
    else:
        record(
            "alert.duplicate",
            actor=actor,
            target=alert,
            request=request,
            old=changes[0],
            new=changes[1],
            details={"occurrence_count": alert.occurrence_count},
        )
    return alert, created


@dataclass
class BulkIngestResult:
    """What `ingest_alerts` did: `results[i]` is `(alert_id, created)` for input item i."""

    created: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    results: list = field(default_factory=list)


@dataclass(frozen=True)
class CheckedAlerts:
    """Alert bodies that passed validation (`check_alerts`), for `ingest_alerts`.

    Checked before the caller's transaction, so that the database write lock is not held
    while a serializer runs (the pipeline's chunks, docs/ingest.md)."""

    fields: tuple  # the validated fields of each alert
    external_id_field: serializers.Field

    def with_external_ids(self, external_ids):
        """The same alerts, alert i with the external id `external_ids[i]` (validated as
        the serializer validates it; raises ValidationError)."""
        fields = []
        for index, (alert, external_id) in enumerate(zip(self.fields, external_ids, strict=True)):
            try:
                value = self.external_id_field.run_validation(external_id)
            except serializers.ValidationError as exc:
                raise ValidationError(
                    "An external id is invalid; none were stored.",
                    details={"errors": {str(index): {"external_id": exc.detail}}},
                ) from None
            fields.append({**alert, "external_id": value})
        return CheckedAlerts(tuple(fields), self.external_id_field)


def check_alerts(items):
    """`CheckedAlerts` for a list of alert bodies, as `ingest_alerts` would check them;
    raises ValidationError (each bad item by its index) when one is invalid."""
    if not isinstance(items, list):
        raise ValidationError("Expected a list of alerts.")
    if not items:
        raise ValidationError("The list of alerts is empty.")
    if len(items) > MAX_BULK_ALERTS:
        raise ValidationError(f"At most {MAX_BULK_ALERTS} alerts per request, not {len(items)}.")
    serializer = AlertIngestSerializer()
    validated, errors = _validated_alerts(items, serializer)
    if errors:
        raise ValidationError(
            f"{len(errors)} of {len(items)} alerts are invalid; none were stored.",
            details={"errors": errors},
        )
    return CheckedAlerts(tuple(validated), serializer.fields["external_id"])


@service
def ingest_alerts(items, *, actor, request=None):
    """Raise many alerts at once, all or nothing: if any item is invalid, nothing is stored
    and the error lists each bad item by its index. `items` is a list of alert bodies, or
    `CheckedAlerts` (`check_alerts`) checked earlier.

    Items with the same (source, external_id) within the list, or matching an existing
    alert, are merged as in `ingest_alert` (with the same permission check: one refused
    update refuses the whole list). New alerts are inserted with one `bulk_create` (and
    announced explicitly, as `bulk_create` does not go through `save_alert`).
    """
    _require(actor, ADD_ALERT, "raise alerts", system_allowed=True)
    checked = items if isinstance(items, CheckedAlerts) else check_alerts(items)
    validated = [dict(fields) for fields in checked.fields]

    # One group per distinct (source, external_id); alerts without an external id are
    # each their own group. A group's later items update its first, as a repeat would.
    groups, index_group = {}, []
    for index, fields in enumerate(validated):
        key = (fields["source"], fields["external_id"]) if fields.get("external_id") else index
        group = groups.get(key)
        if group is None:
            groups[key] = group = _Group(fields=dict(fields))
        else:
            group.merge(fields)
        index_group.append(group)

    external_ids = {key[1] for key in groups if isinstance(key, tuple)}
    existing = {}
    if external_ids:
        # Locked in id order: two overlapping bulk ingests queue instead of deadlocking.
        locked = Alert.objects.select_for_update().filter(external_id__in=external_ids)
        for alert in locked.order_by("pk"):
            existing[(alert.source, alert.external_id)] = alert
        for key in groups:
            if key in existing:
                _require_may_update(actor, existing[key])

    result = BulkIngestResult()
    new_groups = []
    for key, group in groups.items():
        alert = existing.get(key) if isinstance(key, tuple) else None
        if alert is None:
            new_groups.append(group)
        else:
            _merge_duplicate(alert, group.fields, occurrences=group.occurrences)
            group.alert, group.created = alert, False
            result.updated.append(alert)
    _bulk_create(new_groups, actor=actor)
    for group in new_groups:
        (result.created if group.created else result.updated).append(group.alert)
    result.results = [(group.alert.pk, group.created) for group in index_group]

    record(
        "alert.bulk_ingest",
        actor=actor,
        request=request,
        target_type="incidents.alert",
        target_repr=f"{len(result.created)} created, {len(result.updated)} updated",
        details={
            "created": [alert.pk for alert in result.created],
            "updated": [alert.pk for alert in result.updated],
        },
    )
    return result


@dataclass
class _Group:
    fields: dict
    occurrences: int = 1
    alert: Alert | None = None
    created: bool = True

    def merge(self, fields):
        self.fields.update({k: v for k, v in fields.items() if k not in _DUPLICATE_KEEPS})
        self.occurrences += 1


def _bulk_create(groups, *, actor):
    if not groups:
        return
    now = timezone.now()
    alerts = [
        _new_alert(group.fields, now, occurrences=group.occurrences, actor=actor)
        for group in groups
    ]
    if connection.features.can_return_rows_from_bulk_insert:
        try:
            # A concurrent ingest may insert one of our (source, external_id) first; the
            # savepoint lets us fall back to the row-by-row path that handles that.
            with transaction.atomic():
                Alert.objects.bulk_create(alerts)
        except IntegrityError:
            pass
        else:
            for group, alert in zip(groups, alerts, strict=True):
                group.alert, group.created = alert, True
            broadcast.alerts_changed([alert.pk for alert in alerts], created=True)
            return
    for group in groups:
        group.alert, group.created, _changes = _upsert_alert(
            group.fields, occurrences=group.occurrences, actor=actor
        )


def _validated_alert(data):
    if not isinstance(data, dict):
        raise ValidationError(
            "An alert must be a JSON object.",
            details={"errors": {"non_field_errors": ["Expected an object."]}},
        )
    serializer = AlertIngestSerializer(data=data)
    if not serializer.is_valid():
        errors = serializer.errors
        summary = "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in errors.items()
        )
        raise ValidationError(f"Invalid alert: {summary}", details={"errors": errors})
    return dict(serializer.validated_data)


def _validated_alerts(items, serializer):
    """`_validated_alert` of every item, through one serializer instance: DRF builds a
    serializer's fields per instance, so they are built once, not once per alert (what
    a list serializer does, without its version-dependent error format).
    Returns (validated fields, {str(index): errors})."""
    validated, errors = [], {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[str(index)] = {"non_field_errors": ["Expected an object."]}
            continue
        try:
            validated.append(dict(serializer.run_validation(item)))
        except serializers.ValidationError as exc:
            errors[str(index)] = exc.detail
    return validated, errors


def _new_alert(fields, now, *, occurrences, actor):
    fields = dict(fields)
    fields.setdefault("detected_at", now)
    return Alert(
        **fields,
        received_at=now,
        last_seen_at=now,
        occurrence_count=occurrences,
        raised_by=actor if actor is not None and actor.pk else None,
    )


def _upsert_alert(fields, *, occurrences, actor):
    """Create the alert, or merge into the one with the same (source, external_id) when
    `actor` may change that one. Returns `(alert, created, (old, new) or None)`."""
    external_id = fields.get("external_id", "")
    if not external_id:
        alert = _new_alert(fields, timezone.now(), occurrences=occurrences, actor=actor)
        save_alert(alert)
        return alert, True, None
    same = Alert.objects.select_for_update().filter(
        source=fields["source"], external_id=external_id
    )
    alert = same.first()
    if alert is None:
        try:
            # Of two first deliveries at once, the second insert fails on the unique
            # constraint (PostgreSQL makes it wait for the first's commit); it then
            # updates the winner's row like any repeat.
            with transaction.atomic():
                alert = _new_alert(fields, timezone.now(), occurrences=occurrences, actor=actor)
                save_alert(alert)
            return alert, True, None
        except IntegrityError:
            alert = same.first()
            if alert is None:
                raise
    _require_may_update(actor, alert)
    return alert, False, _merge_duplicate(alert, fields, occurrences=occurrences)


def _require_may_update(actor, alert):
    """A repeat delivery rewrites an alert's fields, so it needs what changing that alert
    needs: being the system (`actor=None`), the account that raised it (a source updates
    its own alerts), its owner, or `incidents.change_others_alert` (as for its status).
    Source and external_id are readable by every role: without this check, anyone allowed
    to raise alerts could rewrite anyone's."""
    if actor is None or actor.pk in (alert.raised_by_id, alert.assigned_analyst_id):
        return
    if actor.has_perm(CHANGE_OTHERS_ALERT):
        return
    details = {"alert_id": alert.pk, "permission": CHANGE_OTHERS_ALERT}
    if alert.assigned_analyst_id is not None:
        details["owner"] = _owner_summary(alert.assigned_analyst)
    raise PermissionDenied(
        f"Alert {alert.pk} already exists (same source and external_id) and you may not "
        "change it: only the account that raised it, its owner, or a user allowed to change "
        "others' alerts may.",
        details=details,
    )


def _merge_duplicate(alert, fields, *, occurrences):
    old, new = {}, {}
    for name, value in fields.items():
        if name in _DUPLICATE_KEEPS or getattr(alert, name) == value:
            continue
        old[name], new[name] = getattr(alert, name), value
        setattr(alert, name, value)
    old["occurrence_count"] = alert.occurrence_count
    alert.occurrence_count += occurrences
    new["occurrence_count"] = alert.occurrence_count
    alert.last_seen_at = timezone.now()
    save_alert(alert, update_fields=[*new, "last_seen_at", "updated_at"])
    return old, new


def _alert_identity(alert):
    return {
        "title": alert.title,
        "severity": alert.severity,
        "source": alert.source,
        "external_id": alert.external_id,
        "correlation_key": alert.correlation_key,
    }


# --- Alerts: ownership and status ------------------------------------------------------


@service
def take_alert_ownership(alert_id, *, actor, request=None):
    """`actor` takes the alert. Returns `(alert, new_incident)`; `new_incident` is None
    when the alert joined an incident the actor already had.

    The alert joins the actor's oldest open incident (open, investigating or contained)
    that holds an alert with the same non-empty correlation key, or else a new incident
    owned by the actor. An alert someone else owns can only be taken over with
    `incidents.reassign_alert` (audited as `alert.reassign`); otherwise `ConflictError`
    names the owner. Taking an alert you already own changes nothing. Its status goes
    from `new` to `in_progress`.
    """
    _require(actor, CHANGE_ALERT, "take alerts")
    # The row lock makes concurrent takers queue here: the second one sees the first
    # one's owner after its commit and gets a CONFLICT (or reassigns, if permitted).
    alert = _locked_alert(alert_id)
    if alert.assigned_analyst_id == actor.pk:
        return alert, None
    previous_owner = alert.assigned_analyst
    if previous_owner is not None and not actor.has_perm(REASSIGN_ALERT):
        raise ConflictError(
            f"Alert {alert.pk} is already owned by {previous_owner.username}.",
            details={"owner": _owner_summary(previous_owner), "alert_id": alert.pk},
        )
    if alert.status in CLOSED_ALERT_STATUSES:
        raise ConflictError(
            f"Alert {alert.pk} is {alert.status}; reopen it (status in_progress) before taking it.",
            details={"alert_id": alert.pk, "status": alert.status},
        )
    now = timezone.now()
    incident, created = _place_in_incident(alert, owner=actor, actor=actor, now=now)
    alert.assigned_analyst = actor
    update_fields = ["assigned_analyst", "incident", "updated_at"]
    _mark_worked_on(alert, now, update_fields)
    save_alert(alert, update_fields=update_fields)

    record(
        "alert.reassign" if previous_owner is not None else "alert.take_ownership",
        actor=actor,
        target=alert,
        request=request,
        old={"assigned_analyst": previous_owner.username if previous_owner else None},
        new={"assigned_analyst": actor.username, "status": alert.status},
        details={"incident": incident.reference, "incident_created": created},
    )
    return alert, incident if created else None


@service
def update_alert_status(alert_id, status, *, actor, request=None):
    """Set an alert's status (allowed moves: `models.ALERT_TRANSITIONS`). Only its owner,
    or a user with `incidents.change_others_alert`. Escalating puts an alert that has no
    incident into one (as taking it would, for its owner). Setting the current status
    changes nothing. Returns the alert."""
    _require(actor, CHANGE_ALERT, "change alerts")
    status = parse_status(status, AlertStatus, "alert")
    alert = _locked_alert(alert_id)
    if alert.assigned_analyst_id != actor.pk and not actor.has_perm(CHANGE_OTHERS_ALERT):
        if alert.assigned_analyst_id is None:
            raise PermissionDenied(f"Alert {alert.pk} has no owner; take ownership of it first.")
        raise PermissionDenied(
            f"Alert {alert.pk} is owned by {alert.assigned_analyst.username}; only its owner "
            "may change its status.",
            details={"owner": _owner_summary(alert.assigned_analyst)},
        )
    if status == alert.status:
        return alert
    if not alert_transition_allowed(alert.status, status):
        raise _invalid_transition("Alert", alert.pk, alert.status, status, ALERT_TRANSITIONS)

    now = timezone.now()
    old_status = alert.status
    alert.status = status
    update_fields = ["status", "updated_at"]
    if alert.first_response_at is None:
        alert.first_response_at = now
        update_fields.append("first_response_at")
    if status in CLOSED_ALERT_STATUSES:
        alert.resolved_at = now
        update_fields.append("resolved_at")
    elif old_status in CLOSED_ALERT_STATUSES:
        alert.resolved_at = None  # reopened
        update_fields.append("resolved_at")
    new_incident = None
    if status == AlertStatus.ESCALATED and alert.incident_id is None:
        incident, created = _place_in_incident(
            alert, owner=alert.assigned_analyst or actor, actor=actor, now=now
        )
        update_fields.append("incident")
        new_incident = incident if created else None
    elif alert.incident_id is not None:
        _timeline(
            alert.incident,
            TimelineKind.FIELD_CHANGED,
            actor,
            field=f"alert:{alert.pk}:status",
            old=old_status,
            new=status,
            message=f"Alert #{alert.pk} status: {old_status} -> {status}",
        )
    save_alert(alert, update_fields=update_fields)

    record(
        "alert.status_change",
        actor=actor,
        target=alert,
        request=request,
        old={"status": old_status},
        new={"status": status},
        details={
            "incident": alert.incident.reference if alert.incident_id else None,
            "incident_created": new_incident is not None,
        },
    )
    return alert


def _mark_worked_on(alert, now, update_fields):
    """Someone now works on `alert` (taken, assigned, placed in an incident): a new alert is
    in progress, and its first response is `now` unless it had one. Adds what changed to
    `update_fields`."""
    if alert.status == AlertStatus.NEW:
        alert.status = AlertStatus.IN_PROGRESS
        update_fields.append("status")
    if alert.first_response_at is None:
        alert.first_response_at = now
        update_fields.append("first_response_at")


def _place_in_incident(alert, *, owner, actor, now):
    """Put `alert` into `owner`'s open incident with the same correlation key, or a new
    one. Sets `alert.incident` (the caller saves the alert). Returns `(incident, created)`."""
    # One placement per owner at a time: two alerts with one correlation key taken (or
    # escalated) for the same analyst at once must end in one incident, not two.
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    target_id = None
    if alert.correlation_key:
        related = (
            Alert.objects.filter(correlation_key=alert.correlation_key, incident__isnull=False)
            .exclude(pk=alert.pk)
            .values("incident_id")
        )
        target_id = (
            Incident.objects.filter(pk__in=related, owner=owner, status__in=OPEN_INCIDENT_STATUSES)
            .order_by("created_at", "id")
            .values_list("pk", flat=True)
            .first()
        )
    # Lock the alert's current incident and the target in id order, so that two moves
    # between the same two incidents in opposite directions cannot deadlock.
    wanted = sorted({pk for pk in (alert.incident_id, target_id) if pk is not None})
    locked = {
        i.pk: i for i in Incident.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
    }
    current = locked.get(alert.incident_id)
    if current is not None and current.owner_id == owner.pk and current.is_open:
        return current, False
    target = locked.get(target_id)
    if target is not None and not (target.owner_id == owner.pk and target.is_open):
        target = None  # closed or handed over before we locked it
    created = target is None
    if created:
        target = Incident(
            title=alert.title,
            description=alert.description,
            severity=alert.severity,
            priority=PRIORITY_FOR_SEVERITY[alert.severity],
            owner=owner,
            created_by=actor,
            created_at=now,
            first_response_at=now,
        )
        save_incident(target)
        _timeline(
            target,
            TimelineKind.CREATED,
            actor,
            message=f"Opened from alert #{alert.pk}: {alert.title}",
        )
        _timeline(
            target,
            TimelineKind.ALERT_ADDED,
            actor,
            field="alerts",
            new=alert.pk,
            message=f"Alert #{alert.pk} added",
        )
        record(
            "incident.create",
            actor=actor,
            target=target,
            new={
                "reference": target.reference,
                "owner": owner.username,
                "severity": target.severity,
                "alert": alert.pk,
            },
        )
    else:
        _timeline(
            target,
            TimelineKind.ALERT_ADDED,
            actor,
            field="alerts",
            new=alert.pk,
            message=f"Alert #{alert.pk} added",
        )
        update_fields = ["updated_at"]
        if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[target.severity]:
            _timeline(
                target,
                TimelineKind.FIELD_CHANGED,
                actor,
                field="severity",
                old=target.severity,
                new=alert.severity,
                message=f"Severity raised to that of alert #{alert.pk}",
            )
            target.severity = alert.severity
            update_fields.append("severity")
        save_incident(target, update_fields=update_fields)
    if current is not None:
        _timeline(
            current,
            TimelineKind.ALERT_REMOVED,
            actor,
            field="alerts",
            old=alert.pk,
            message=f"Alert #{alert.pk} moved to {target.reference}",
        )
        save_incident(current, update_fields=["updated_at"])
    alert.incident = target
    return target, created


# --- Incidents -------------------------------------------------------------------------


@service
def update_incident_status(incident_id, status, *, actor, request=None):
    """Set an incident's status (allowed moves: `models.INCIDENT_TRANSITIONS`), stamping
    first response, contained, resolved and closed times; reopening clears the resolved
    and closed times. Needs `incidents.change_incident` and an incident the actor may see."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    status = parse_status(status, IncidentStatus, "incident", INCIDENT_STATUS_ALIASES)
    incident = _locked_incident(incident_id, actor)
    if status == incident.status:
        return incident
    if not incident_transition_allowed(incident.status, status):
        raise _invalid_transition(
            "Incident", incident.reference, incident.status, status, INCIDENT_TRANSITIONS
        )
    now = timezone.now()
    old_status = incident.status
    incident.status = status
    stamps = []
    if incident.first_response_at is None:
        incident.first_response_at = now
        stamps.append("first_response_at")
    if status == IncidentStatus.CONTAINED and incident.contained_at is None:
        incident.contained_at = now
        stamps.append("contained_at")
    if status == IncidentStatus.RESOLVED:
        incident.resolved_at = now
        stamps.append("resolved_at")
    if status == IncidentStatus.CLOSED:
        incident.closed_at = now
        stamps.append("closed_at")
        if incident.resolved_at is None:
            incident.resolved_at = now
            stamps.append("resolved_at")
    if status in OPEN_INCIDENT_STATUSES and old_status not in OPEN_INCIDENT_STATUSES:
        incident.resolved_at = incident.closed_at = None  # reopened
        stamps += ["resolved_at", "closed_at"]
    _timeline(
        incident,
        TimelineKind.STATUS_CHANGED,
        actor,
        field="status",
        old=old_status,
        new=status,
        message=f"Status: {old_status} -> {status}",
    )
    save_incident(incident, update_fields=["status", "updated_at", *dict.fromkeys(stamps)])
    record(
        "incident.status_change",
        actor=actor,
        target=incident,
        request=request,
        old={"status": old_status},
        new={"status": status},
    )
    return incident


@service
def update_incident(incident_id, changes, *, actor, request=None):
    """Change an incident's title, description, severity, priority or owner (a user id or
    None). Handing an incident to someone else, or taking one someone else owns, needs
    `incidents.reassign_alert`; the new owner must be able to work alerts. Each changed
    field gets a timeline entry. Returns the incident."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    if not isinstance(changes, dict):
        raise ValidationError("Expected an object of fields to change.")
    serializer = IncidentUpdateSerializer(data=changes)
    if not serializer.is_valid():
        raise ValidationError(
            "Invalid incident change: "
            + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items()),
            details={"errors": serializer.errors},
        )
    data = serializer.validated_data
    if not data:
        raise ValidationError(
            "Nothing to change: give title, description, severity, priority or owner."
        )
    incident = _locked_incident(incident_id, actor)
    old, new, update_fields = {}, {}, ["updated_at"]
    previous_owner_id = incident.owner_id

    if "owner" in data and data["owner"] != incident.owner_id:
        new_owner = _new_incident_owner(incident, data["owner"], actor)
        old["owner"] = incident.owner.username if incident.owner_id else None
        new["owner"] = new_owner.username if new_owner else None
        _timeline(
            incident,
            TimelineKind.OWNER_CHANGED,
            actor,
            field="owner",
            old=old["owner"],
            new=new["owner"],
            message=f"Owner: {old['owner'] or 'nobody'} -> {new['owner'] or 'nobody'}",
        )
        incident.owner = new_owner
        update_fields.append("owner")
    for name in ("title", "description", "severity", "priority"):
        if name in data and data[name] != getattr(incident, name):
            old[name], new[name] = getattr(incident, name), data[name]
            _timeline(
                incident,
                TimelineKind.FIELD_CHANGED,
                actor,
                field=name,
                old=old[name],
                new=new[name],
                message=f"{name.capitalize()} changed",
            )
            setattr(incident, name, data[name])
            update_fields.append(name)
    if not new:
        return incident
    save_incident(incident, update_fields=update_fields)
    if "owner" in new and previous_owner_id is not None:
        # The previous owner loses sight of it with this event; tell them once more.
        broadcast.incident_changed(incident.pk, also_notify={previous_owner_id})
    record("incident.update", actor=actor, target=incident, request=request, old=old, new=new)
    return incident


def _new_incident_owner(incident, owner_id, actor):
    taking_unowned = incident.owner_id is None and owner_id == actor.pk
    if not taking_unowned and not actor.has_perm(REASSIGN_ALERT):
        raise PermissionDenied(
            f"Changing the owner of {incident.reference} needs the permission to reassign."
        )
    if owner_id is None:
        return None
    owner = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
    if owner is None:
        raise ValidationError(
            f"No active user with id {owner_id}.", details={"errors": {"owner": ["Unknown user."]}}
        )
    if not owner.has_perm(CHANGE_ALERT):
        raise ValidationError(
            f"{owner.username} may not work incidents.",
            details={"errors": {"owner": ["This user may not work incidents."]}},
        )
    return owner


@service
def add_incident_comment(incident_id, body, *, actor, request=None):
    """Add a comment (and a timeline entry) to an incident the actor may see."""
    _require(actor, ADD_COMMENT, "comment on incidents")
    if not isinstance(body, str) or not body.strip():
        raise ValidationError("body is required.", details={"errors": {"body": ["Required."]}})
    body = body.strip()
    if len(body) > MAX_COMMENT_LENGTH:
        raise ValidationError(
            f"A comment may have at most {MAX_COMMENT_LENGTH} characters.",
            details={"errors": {"body": ["Too long."]}},
        )
    incident = _locked_incident(incident_id, actor)
    comment = IncidentComment.objects.create(incident=incident, author=actor, body=body)
    _timeline(
        incident,
        TimelineKind.COMMENT,
        actor,
        new=comment.pk,
        message=body if len(body) <= 200 else body[:199] + "…",
    )
    save_incident(incident, update_fields=["updated_at"])
    record(
        "incident.comment",
        actor=actor,
        target=incident,
        request=request,
        details={"comment_id": comment.pk},
    )
    return comment


@service
def watch_incident(incident_id, *, actor, request=None):
    """The actor follows the incident: they receive its `incident_*` events and see it in
    their lists. Needs `incidents.view_incident` and either an incident they may already see
    or `incidents.add_incidentwatcher` (which lets a user follow any incident). Watching
    twice is harmless. Returns the incident."""
    _require(actor, VIEW_INCIDENT, "watch incidents")
    lookup = incident_lookup(incident_id)
    incident = Incident.objects.visible_to(actor).filter(**lookup).first()
    if incident is None and actor.has_perm(ADD_WATCHER):
        incident = Incident.objects.filter(**lookup).first()
    if incident is None:
        raise NotFound(f"Incident {_shown(lookup)} not found.")
    _watcher, created = IncidentWatcher.objects.get_or_create(incident=incident, user=actor)
    if created:
        record("incident.watch", actor=actor, target=incident, request=request)
    return incident


@service
def unwatch_incident(incident_id, *, actor, request=None):
    """The actor stops following the incident (harmless if they were not). Returns it."""
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied("You must be logged in.")
    lookup = incident_lookup(incident_id)
    incident = Incident.objects.filter(**lookup).first()
    deleted = 0
    if incident is not None:
        deleted, _ = IncidentWatcher.objects.filter(incident=incident, user=actor).delete()
    if deleted:
        record("incident.unwatch", actor=actor, target=incident, request=request)
    elif incident is None or not Incident.objects.visible_to(actor).filter(**lookup).exists():
        raise NotFound(f"Incident {_shown(lookup)} not found.")
    return incident


# --- Helpers -----------------------------------------------------------------------------


def _require(actor, permission, doing, *, system_allowed=False):
    if actor is None:
        if system_allowed:
            return
        raise PermissionDenied(f"You must be logged in to {doing}.")
    if not actor.is_authenticated or not actor.is_active or not actor.has_perm(permission):
        raise PermissionDenied(f"You may not {doing}.", details={"permission": permission})


def _locked_alert(alert_id):
    pk = parse_id(alert_id, "alert_id")
    alert = Alert.objects.select_for_update().filter(pk=pk).first()
    if alert is None:
        raise NotFound(f"Alert {pk} not found.")
    return alert


def _locked_incident(incident_id, actor):
    lookup = incident_lookup(incident_id)
    incident = Incident.objects.visible_to(actor).select_for_update().filter(**lookup).first()
    if incident is None:
        raise NotFound(f"Incident {_shown(lookup)} not found.")
    return incident


def _shown(lookup):
    return next(iter(lookup.values()))


def _owner_summary(user):
    return {"id": user.pk, "username": user.username}


def _invalid_transition(what, ident, old, new, table):
    allowed = sorted(table.get(old, ()))
    return InvalidTransition(
        f"{what} {ident} cannot go from {old} to {new}"
        + (f" (allowed: {', '.join(allowed)})." if allowed else "."),
        details={"from": str(old), "to": str(new), "allowed": [str(s) for s in allowed]},
    )


def _timeline(incident, kind, actor, *, field="", old=None, new=None, message=""):
    return IncidentTimelineEntry.objects.create(
        incident=incident,
        actor=actor,
        kind=kind,
        field=field,
        old_value=old,
        new_value=new,
        message=message[:500],
    )

"""Case work on incidents: adding alerts to an incident, moving an alert between incidents,
and merging incidents.

Each public function is one transaction, as in `incidents.services`: it checks the actor's
permissions, writes, adds timeline entries and an audit row; its saves
(`incidents.writes.save_alert` / `save_incident`) announce `incident_updated` and
`alert_updated`, published after commit.

Rules:

- The actor needs `incidents.change_incident` and must see every incident involved.
- An alert may be placed by its owner, by anyone when it has no owner, or by a user with
  `incidents.change_others_alert`. A closed incident takes no alerts.
- An alert without an owner that joins an incident gets the incident's owner (or the actor,
  for an incident nobody owns), and `new` becomes `in_progress`, as taking it would.
- Merging moves the sources' alerts and comments into the target, adds their owners and
  watchers as watchers of the target (nobody loses sight of the case), raises the target's
  severity and priority to the highest among them, and closes each source with
  `merged_into` set. Merging an incident someone else owns needs `incidents.reassign_alert`.

Lock order (as in `services`): incidents by id, then alerts by id.
"""

from django.utils import timezone

from incidents.exceptions import ConflictError, NotFound, PermissionDenied, ValidationError
from incidents.inputs import parse_id
from incidents.models import (
    OPEN_INCIDENT_STATUSES,
    SEVERITY_RANK,
    Alert,
    Incident,
    IncidentComment,
    IncidentStatus,
    IncidentWatcher,
    TimelineKind,
)
from incidents.services import (
    CHANGE_ALERT,
    CHANGE_INCIDENT,
    CHANGE_OTHERS_ALERT,
    REASSIGN_ALERT,
    _mark_worked_on,
    _require,
    _timeline,
)
from incidents.writes import save_alert, save_incident, service
from threatlens.audit.services import record

MAX_ALERTS_PER_REQUEST = 500
MAX_MERGE_SOURCES = 50


def parse_ids(values, name, *, limit):
    """A non-empty list of distinct positive ids (order kept), or a ValidationError."""
    if not isinstance(values, list) or not values:
        raise ValidationError(
            f"{name} must be a non-empty list of ids.",
            details={"errors": {name: ["A non-empty list of ids is required."]}},
        )
    if len(values) > limit:
        raise ValidationError(
            f"At most {limit} {name} per request, not {len(values)}.",
            details={"errors": {name: [f"At most {limit}."]}},
        )
    return list(dict.fromkeys(parse_id(value, name) for value in values))


def _locked_incidents(ids, actor):
    """The incidents with these ids that the actor may see, locked in id order."""
    found = {
        incident.pk: incident
        for incident in Incident.objects.visible_to(actor)
        .select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
    }
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise NotFound(f"Incident {missing[0]} not found.", details={"incident_ids": missing})
    return found


def _locked_alerts(ids):
    found = {alert.pk: alert for alert in Alert.objects.select_for_update().filter(pk__in=ids)}
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise NotFound(f"Alert {missing[0]} not found.", details={"alert_ids": missing})
    return [found[pk] for pk in ids]


def _check_may_place(alert, actor):
    owner_id = alert.assigned_analyst_id
    if owner_id is None or owner_id == actor.pk or actor.has_perm(CHANGE_OTHERS_ALERT):
        return
    raise PermissionDenied(
        f"Alert {alert.pk} is owned by {alert.assigned_analyst.username}; only its owner may "
        "move it.",
        details={"alert_id": alert.pk, "owner": {"id": owner_id}},
    )


def _check_open(incident):
    if incident.status not in OPEN_INCIDENT_STATUSES:
        raise ConflictError(
            f"{incident.reference} is {incident.status}; reopen it before adding alerts.",
            details={"incident_id": incident.pk, "status": incident.status},
        )


@service
def add_alerts_to_incident(incident_id, alert_ids, *, actor, request=None):
    """Put these alerts into the incident (moving each out of the incident it was in).
    All or nothing. Returns `(incident, moved_alerts)`; alerts already there are skipped."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    _require(actor, CHANGE_ALERT, "change alerts")
    incident_pk = parse_id(incident_id, "incident_id")
    ids = parse_ids(alert_ids, "alert_ids", limit=MAX_ALERTS_PER_REQUEST)
    # Lock order: every incident involved (target and the alerts' current ones) by id,
    # then the alerts. The alerts' incidents are read first without a lock; an alert
    # that moved meanwhile is caught by the check after its lock.
    current_ids = set(
        Alert.objects.filter(pk__in=ids, incident__isnull=False).values_list(
            "incident_id", flat=True
        )
    )
    if not Incident.objects.visible_to(actor).filter(pk=incident_pk).exists():
        raise NotFound(f"Incident {incident_pk} not found.")
    # The actor must see every incident involved: an alert is not pulled out of (and a
    # timeline entry not written on) an incident they cannot see.
    locked = _locked_incidents(sorted(current_ids | {incident_pk}), actor)
    target = locked[incident_pk]
    _check_open(target)
    others = {pk: i for pk, i in locked.items() if pk != incident_pk}
    alerts = _locked_alerts(ids)
    for alert in alerts:
        _check_may_place(alert, actor)
        if alert.incident_id not in (None, incident_pk) and alert.incident_id not in others:
            raise ConflictError(
                f"Alert {alert.pk} moved while this request ran; try again.",
                details={"alert_id": alert.pk},
            )
    moved = _place(alerts, target, others, actor)
    if moved:
        record(
            "incident.add_alerts",
            actor=actor,
            target=target,
            request=request,
            new={"alerts": [alert.pk for alert in moved]},
            details={
                "from": {
                    str(alert.pk): others[alert.incident_was].reference
                    for alert in moved
                    if alert.incident_was in others
                }
            },
        )
    return target, moved


def move_alert(alert_id, incident_id, *, actor, request=None):
    """Move one alert into another incident (`add_alerts_to_incident` with one alert).
    Returns the alert."""
    _incident, moved = add_alerts_to_incident(
        incident_id, [parse_id(alert_id, "alert_id")], actor=actor, request=request
    )
    pk = parse_id(alert_id, "alert_id")
    return moved[0] if moved else Alert.objects.get(pk=pk)


def _place(alerts, target, others, actor):
    """Move `alerts` into `target`, with timeline entries on both sides; returns the alerts
    that moved, each with `incident_was` set."""
    now = timezone.now()
    moved = []
    raised_to = None
    for alert in alerts:
        if alert.incident_id == target.pk:
            continue
        alert.incident_was = alert.incident_id
        source = others.get(alert.incident_id)
        update_fields = ["incident", "updated_at"]
        alert.incident = target
        if alert.assigned_analyst_id is None:
            alert.assigned_analyst_id = target.owner_id or actor.pk
            update_fields.append("assigned_analyst")
            _mark_worked_on(alert, now, update_fields)
        save_alert(alert, update_fields=update_fields)
        _timeline(
            target,
            TimelineKind.ALERT_ADDED,
            actor,
            field="alerts",
            new=alert.pk,
            message=f"Alert #{alert.pk} added"
            + (f" from {source.reference}" if source is not None else ""),
        )
        if source is not None:
            _timeline(
                source,
                TimelineKind.ALERT_REMOVED,
                actor,
                field="alerts",
                old=alert.pk,
                message=f"Alert #{alert.pk} moved to {target.reference}",
            )
        if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[raised_to or target.severity]:
            raised_to = alert.severity
        moved.append(alert)
    update_fields = ["updated_at"]
    if raised_to is not None:
        _timeline(
            target,
            TimelineKind.FIELD_CHANGED,
            actor,
            field="severity",
            old=target.severity,
            new=raised_to,
            message=f"Severity raised to {raised_to} by the alerts added",
        )
        target.severity = raised_to
        update_fields.append("severity")
    if moved:
        save_incident(target, update_fields=update_fields)
        for source in {alert.incident_was for alert in moved} & set(others):
            save_incident(others[source], update_fields=["updated_at"])
    return moved


@service
def merge_incidents(target_id, source_ids, *, actor, request=None):
    """Merge the source incidents into the target (see the module's rules). Returns the
    target."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    target_pk = parse_id(target_id, "incident_id")
    sources_pk = parse_ids(source_ids, "incident_ids", limit=MAX_MERGE_SOURCES)
    if target_pk in sources_pk:
        raise ValidationError(
            "An incident cannot be merged into itself.",
            details={"errors": {"incident_ids": ["Must not contain the target."]}},
        )
    locked = _locked_incidents([target_pk, *sources_pk], actor)
    target = locked[target_pk]
    sources = [locked[pk] for pk in sources_pk]
    if target.status == IncidentStatus.CLOSED:
        raise ConflictError(
            f"{target.reference} is closed; reopen it before merging into it.",
            details={"incident_id": target.pk, "status": target.status},
        )
    for source in sources:
        if source.status == IncidentStatus.CLOSED:
            raise ConflictError(
                f"{source.reference} is closed; only open incidents can be merged.",
                details={"incident_id": source.pk, "status": source.status},
            )
        if source.owner_id not in (None, actor.pk, target.owner_id) and not actor.has_perm(
            REASSIGN_ALERT
        ):
            raise PermissionDenied(
                f"{source.reference} is owned by {source.owner.username}; merging it into "
                f"{target.reference} needs the permission to reassign.",
                details={"incident_id": source.pk},
            )

    now = timezone.now()
    alerts = list(Alert.objects.select_for_update().filter(incident__in=sources).order_by("pk"))
    by_source = {
        source.pk: [a.pk for a in alerts if a.incident_id == source.pk] for source in sources
    }
    for alert in alerts:
        alert.incident = target
        save_alert(alert, update_fields=["incident", "updated_at"])
    moved_comments = IncidentComment.objects.filter(incident__in=sources).update(incident=target)

    # Everyone who followed a source follows the target: its owner and its watchers.
    followers = set(
        IncidentWatcher.objects.filter(incident__in=sources).values_list("user_id", flat=True)
    )
    followers.update(source.owner_id for source in sources if source.owner_id)
    followers.discard(target.owner_id)
    already = set(IncidentWatcher.objects.filter(incident=target).values_list("user_id", flat=True))
    IncidentWatcher.objects.bulk_create(
        [
            IncidentWatcher(incident=target, user_id=user_id)
            for user_id in sorted(followers - already)
        ]
    )

    update_fields = ["updated_at"]
    severity = max([target, *sources], key=lambda i: SEVERITY_RANK[i.severity]).severity
    priority = min(i.priority for i in [target, *sources])
    if severity != target.severity:
        message = f"Severity raised to {severity} by the merge"
        _timeline(
            target, TimelineKind.FIELD_CHANGED, actor, field="severity",
            old=target.severity, new=severity, message=message,
        )  # fmt: skip
        target.severity = severity
        update_fields.append("severity")
    if priority != target.priority:
        message = f"Priority raised to P{priority} by the merge"
        _timeline(
            target, TimelineKind.FIELD_CHANGED, actor, field="priority",
            old=target.priority, new=priority, message=message,
        )  # fmt: skip
        target.priority = priority
        update_fields.append("priority")
    for source in sources:
        _timeline(
            target,
            TimelineKind.MERGED,
            actor,
            field="merged_from",
            new={
                "incident": source.pk,
                "reference": source.reference,
                "alerts": by_source[source.pk],
            },
            message=f"Merged {source.reference} ({source.title}) into this incident: "
            f"{len(by_source[source.pk])} alert(s), its comments and watchers",
        )
        _timeline(
            source,
            TimelineKind.MERGED,
            actor,
            field="merged_into",
            new={"incident": target.pk, "reference": target.reference},
            message=f"Merged into {target.reference}; closed",
        )
        old_status = source.status
        source.status = IncidentStatus.CLOSED
        source.merged_into = target
        source.closed_at = now
        fields = ["status", "merged_into", "closed_at", "updated_at"]
        if source.resolved_at is None:
            source.resolved_at = now
            fields.append("resolved_at")
        save_incident(source, update_fields=fields)
        record(
            "incident.merged",
            actor=actor,
            target=source,
            request=request,
            old={"status": old_status},
            new={"status": IncidentStatus.CLOSED, "merged_into": target.reference},
        )
    save_incident(target, update_fields=update_fields)
    record(
        "incident.merge",
        actor=actor,
        target=target,
        request=request,
        new={"merged": [source.reference for source in sources]},
        details={
            "alerts": [alert.pk for alert in alerts],
            "comments": moved_comments,
            "watchers_added": sorted(followers - already),
        },
    )
    return target

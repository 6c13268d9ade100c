"""Bulk triage: one action on many alerts in one request, all or nothing.

The actions are the single-alert services run for each alert inside one transaction, so
the permission rules, audit rows, timeline entries and events are exactly those of one
alert at a time: `take` (`services.take_alert_ownership`), `status`
(`services.update_alert_status`), `assign` (`assign_alert`, below) and `add_to_incident`
(`cases.add_alerts_to_incident`). When any alert is refused, the transaction rolls back,
nothing is published, and the error lists every refused alert under `errors` by id.

Alerts are processed in id order, so two bulk requests over overlapping alerts lock them in
the same order and queue instead of deadlocking.
"""

from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents import cases, services
from incidents.exceptions import (
    ConflictError,
    IncidentsError,
    PermissionDenied,
    ValidationError,
)
from incidents.inputs import parse_id, parse_status
from incidents.models import CLOSED_ALERT_STATUSES, AlertStatus
from incidents.writes import save_alert, service
from threatlens.audit.services import record

TAKE, STATUS, ASSIGN, ADD_TO_INCIDENT = "take", "status", "assign", "add_to_incident"
ACTIONS = frozenset({TAKE, STATUS, ASSIGN, ADD_TO_INCIDENT})
MAX_ALERTS = 500


@service
def assign_alert(alert_id, assignee_id, *, actor, request=None):
    """Give the alert to `assignee_id` (a user who may work alerts): it joins their open
    incident with its correlation key, or a new one, as if they had taken it. Assigning to
    yourself is taking it; assigning to someone else needs `incidents.reassign_alert`.
    Returns the alert."""
    services._require(actor, services.CHANGE_ALERT, "change alerts")
    assignee_pk = parse_id(assignee_id, "assignee")
    if assignee_pk == actor.pk:
        alert, _incident = services.take_alert_ownership(alert_id, actor=actor, request=request)
        return alert
    if not actor.has_perm(services.REASSIGN_ALERT):
        raise PermissionDenied(
            "Assigning alerts to someone else needs the permission to reassign.",
            details={"permission": services.REASSIGN_ALERT},
        )
    assignee = get_user_model().objects.filter(pk=assignee_pk, is_active=True).first()
    if assignee is None or not assignee.has_perm(services.CHANGE_ALERT):
        raise ValidationError(
            f"User {assignee_pk} may not work alerts.",
            details={"errors": {"assignee": ["Not an active user who may work alerts."]}},
        )
    alert = services._locked_alert(alert_id)
    if alert.assigned_analyst_id == assignee.pk:
        return alert
    if alert.status in CLOSED_ALERT_STATUSES:
        raise ConflictError(
            f"Alert {alert.pk} is {alert.status}; reopen it before assigning it.",
            details={"alert_id": alert.pk, "status": alert.status},
        )
    previous = alert.assigned_analyst
    now = timezone.now()
    incident, created = services._place_in_incident(alert, owner=assignee, actor=actor, now=now)
    alert.assigned_analyst = assignee
    update_fields = ["assigned_analyst", "incident", "updated_at"]
    services._mark_worked_on(alert, now, update_fields)
    save_alert(alert, update_fields=update_fields)
    record(
        "alert.assign",
        actor=actor,
        target=alert,
        request=request,
        old={"assigned_analyst": previous.username if previous else None},
        new={"assigned_analyst": assignee.username, "status": alert.status},
        details={"incident": incident.reference, "incident_created": created},
    )
    return alert


@service
def bulk_triage(data, *, actor, request=None):
    """Run `data["action"]` on every alert of `data["alert_ids"]` (see the module).
    Returns the alerts, in id order."""
    services._require(actor, services.CHANGE_ALERT, "change alerts")
    if not isinstance(data, dict):
        raise ValidationError("Expected an object with action and alert_ids.")
    action = data.get("action")
    if action not in ACTIONS:
        raise ValidationError(
            f"action must be one of: {', '.join(sorted(ACTIONS))}.",
            details={"errors": {"action": [f"One of: {', '.join(sorted(ACTIONS))}."]}},
        )
    ids = sorted(cases.parse_ids(data.get("alert_ids"), "alert_ids", limit=MAX_ALERTS))

    if action == ADD_TO_INCIDENT:
        # Already one all-or-nothing service call over the whole list.
        cases.add_alerts_to_incident(data.get("incident"), ids, actor=actor, request=request)
        alerts = sorted(services.Alert.objects.filter(pk__in=ids), key=lambda alert: alert.pk)
    else:
        if action == STATUS:
            status = parse_status(data.get("status"), AlertStatus, "alert")
            run = lambda pk: services.update_alert_status(pk, status, actor=actor)  # noqa: E731
        elif action == ASSIGN:
            assignee = parse_id(data.get("assignee"), "assignee")
            run = lambda pk: assign_alert(pk, assignee, actor=actor)  # noqa: E731
        else:
            run = lambda pk: services.take_alert_ownership(pk, actor=actor)[0]  # noqa: E731
        alerts, errors = [], {}
        for pk in ids:
            try:
                # Each service call is its own savepoint: a refusal undoes only its own
                # writes, so the others' errors can still be collected for the reply.
                alerts.append(run(pk))
            except IncidentsError as exc:
                errors[str(pk)] = exc.as_dict()
        if errors:
            first = next(iter(errors.values()))
            kinds = {error["error_code"] for error in errors.values()}
            error_class = _ERROR_CLASSES.get(first["error_code"], ConflictError)
            if len(kinds) > 1:
                error_class = ConflictError
            raise error_class(
                f"{len(errors)} of {len(ids)} alerts refused; none were changed. "
                f"First: alert {next(iter(errors))}: {first['detail']}",
                details={"errors": errors},
            )
    record(
        "alert.bulk_triage",
        actor=actor,
        request=request,
        target_type="incidents.alert",
        target_repr=f"{action} on {len(ids)} alerts",
        new={
            key: data.get(key)
            for key in ("status", "assignee", "incident")
            if data.get(key) is not None
        },
        details={"action": action, "alerts": ids},
    )
    return alerts


_ERROR_CLASSES = {
    cls.error_code: cls
    for cls in (ConflictError, PermissionDenied, ValidationError, services.NotFound)
}

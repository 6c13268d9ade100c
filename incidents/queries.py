"""Reads the `/ws/incidents` consumer (and anything else) serves, per user.

Synchronous ORM code: call it from async code through `database_sync_to_async`. Each
returns plain JSON-ready data built by the REST serializers, and raises
`incidents.exceptions` errors (PERMISSION_DENIED, NOT_FOUND, INVALID_MESSAGE) on refusal.
"""

from incidents.exceptions import NotFound, PermissionDenied
from incidents.inputs import incident_lookup, parse_id
from incidents.models import Alert, Incident, IncidentStatus
from incidents.serializers import (
    AlertSerializer,
    IncidentSerializer,
    alert_payload,
    incident_payload,
    user_payload,
)

VIEW_ALERT = "incidents.view_alert"
VIEW_INCIDENT = "incidents.view_incident"

RECENT_ALERTS = 50
RECENT_INCIDENTS = 20
OWNED_INCIDENTS = 100


def initial_data_for(user):
    """The socket's `initial_data`: `user`, `recent_incidents`, `recent_alerts` and
    `owned_incidents` (lists are empty where the user lacks the view permission)."""
    may_view_alerts = user.has_perm(VIEW_ALERT)
    may_view_incidents = user.has_perm(VIEW_INCIDENT)
    return {
        "user": user_payload(user),
        "recent_incidents": recent_incidents_for(user) if may_view_incidents else [],
        "recent_alerts": recent_alerts_for(user) if may_view_alerts else [],
        "owned_incidents": owned_incidents_for(user) if may_view_incidents else [],
    }


def recent_alerts_for(user, *, limit=RECENT_ALERTS):
    """The newest alerts (by received time), newest first."""
    _require(user, VIEW_ALERT, "view alerts")
    alerts = Alert.objects.for_payload().order_by("-received_at", "-id")[:limit]
    return AlertSerializer(alerts, many=True).data


def recent_incidents_for(user, *, limit=RECENT_INCIDENTS):
    """The incidents the user may see, most recently changed first."""
    _require(user, VIEW_INCIDENT, "view incidents")
    incidents = Incident.objects.visible_to(user).for_payload().order_by("-updated_at", "-id")
    return IncidentSerializer(incidents[:limit], many=True).data


def owned_incidents_for(user, *, limit=OWNED_INCIDENTS):
    """The user's own incidents that are not closed, most recently changed first."""
    _require(user, VIEW_INCIDENT, "view incidents")
    incidents = (
        Incident.objects.for_payload()
        .filter(owner=user)
        .exclude(status=IncidentStatus.CLOSED)
        .order_by("-updated_at", "-id")
    )
    return IncidentSerializer(incidents[:limit], many=True).data


def alert_details_for(alert_id, user):
    """The full alert object (`AlertSerializer`) of one alert."""
    _require(user, VIEW_ALERT, "view alerts")
    pk = parse_id(alert_id, "alert_id")
    alert = Alert.objects.for_payload().filter(pk=pk).first()
    if alert is None:
        raise NotFound(f"Alert {pk} not found.")
    return alert_payload(alert)


def incident_details_for(incident_id, user):
    """One incident the user may see (`IncidentSerializer`)."""
    _require(user, VIEW_INCIDENT, "view incidents")
    lookup = incident_lookup(incident_id)
    incident = Incident.objects.visible_to(user).for_payload().filter(**lookup).first()
    if incident is None:
        raise NotFound(f"Incident {_shown(lookup)} not found.")
    return incident_payload(incident)


def _shown(lookup):
    return next(iter(lookup.values()))


def _require(user, permission, doing):
    if user is None or not user.is_authenticated or not user.has_perm(permission):
        raise PermissionDenied(f"You may not {doing}.", details={"permission": permission})

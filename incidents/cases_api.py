"""REST for case work and bulk triage (mounted at /api/ before the router's routes):

- `POST /api/incidents/{id}/alerts/` `{"alert_ids": [...]}`: add alerts to the incident;
- `POST /api/incidents/{id}/merge/` `{"incident_ids": [...]}`: merge those into this one;
- `POST /api/alerts/{id}/move/` `{"incident": id}`: move one alert to another incident;
- `GET /api/incidents/assignees/`: who may own incidents (for the owner picker);
- `POST /api/alerts/bulk-triage/`: one action on many alerts, all or nothing;
- `GET|POST /api/incidents/{id}/blocks/`, `DELETE .../blocks/{rule_id}/`: the RPZ rules
  an incident made (`incidents.response`).

Each write calls `incidents.cases` or `incidents.triage`; refusals answer
`{"detail", "error_code", ...}` with the error's HTTP status, as `incidents.api` does.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import cases, response, triage
from incidents.exceptions import IncidentsError, NotFound, PermissionDenied
from incidents.models import Alert, Incident
from incidents.serializers import (
    AlertSerializer,
    IncidentSerializer,
    UserSummarySerializer,
    alert_payload,
    incident_payload,
)

_error = OpenApiResponse(description='{"detail": "...", "error_code": "..."}')


class CaseView(APIView):
    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc):
        if isinstance(exc, IncidentsError):
            return Response(exc.as_dict(), status=exc.http_status)
        return super().handle_exception(exc)

    def body_field(self, name):
        data = self.request.data
        return data.get(name) if hasattr(data, "get") else None


def _incident(pk):
    return incident_payload(Incident.objects.for_payload().get(pk=pk))


class IncidentAlertsView(CaseView):
    @extend_schema(
        request=inline_serializer(
            "IncidentAddAlerts",
            {"alert_ids": serializers.ListField(child=serializers.IntegerField())},
        ),
        responses={
            200: inline_serializer(
                "IncidentAlertsAdded",
                {
                    "incident": IncidentSerializer(),
                    "moved": serializers.ListField(child=serializers.IntegerField()),
                },
            ),
            400: _error,
            403: _error,
            404: _error,
            409: _error,
        },
    )
    def post(self, request, pk):
        """Add alerts to this incident, moving them out of any other (all or nothing)."""
        incident, moved = cases.add_alerts_to_incident(
            pk, self.body_field("alert_ids"), actor=request.user, request=request
        )
        return Response({"incident": _incident(incident.pk), "moved": [a.pk for a in moved]})


class IncidentMergeView(CaseView):
    @extend_schema(
        request=inline_serializer(
            "IncidentMerge",
            {"incident_ids": serializers.ListField(child=serializers.IntegerField())},
        ),
        responses={200: IncidentSerializer, 400: _error, 403: _error, 404: _error, 409: _error},
    )
    def post(self, request, pk):
        """Merge the listed incidents into this one: their alerts, comments and watchers
        come here, the timeline records it, and they are closed."""
        incident = cases.merge_incidents(
            pk, self.body_field("incident_ids"), actor=request.user, request=request
        )
        return Response(_incident(incident.pk))


class AlertMoveView(CaseView):
    @extend_schema(
        request=inline_serializer("AlertMove", {"incident": serializers.IntegerField()}),
        responses={200: AlertSerializer, 400: _error, 403: _error, 404: _error, 409: _error},
    )
    def post(self, request, pk):
        """Move the alert into another incident."""
        alert = cases.move_alert(
            pk, self.body_field("incident"), actor=request.user, request=request
        )
        return Response(alert_payload(Alert.objects.for_payload().get(pk=alert.pk)))


class AssigneesView(CaseView):
    @extend_schema(responses={200: UserSummarySerializer(many=True), 403: _error})
    def get(self, request):
        """Active users who may own alerts and incidents, by username."""
        if not request.user.has_perm("incidents.view_incident"):
            raise PermissionDenied("You may not view incidents.")
        users = (
            get_user_model()
            .objects.filter(is_active=True)
            .filter(
                Q(is_superuser=True)
                | Q(user_permissions__codename="change_alert")
                | Q(groups__permissions__codename="change_alert")
            )
            .distinct()
            .order_by("username")
        )
        return Response(UserSummarySerializer(users, many=True).data)


class BulkTriageView(CaseView):
    @extend_schema(
        request=inline_serializer(
            "AlertBulkTriage",
            {
                "alert_ids": serializers.ListField(child=serializers.IntegerField()),
                "action": serializers.ChoiceField(choices=sorted(triage.ACTIONS)),
                "status": serializers.CharField(required=False),
                "assignee": serializers.IntegerField(required=False),
                "incident": serializers.IntegerField(required=False),
            },
        ),
        responses={
            200: inline_serializer(
                "AlertBulkTriaged",
                {
                    "action": serializers.CharField(),
                    "alerts": AlertSerializer(many=True),
                },
            ),
            400: _error,
            403: _error,
            404: _error,
            409: _error,
        },
    )
    def post(self, request):
        """One action on many alerts: `take`, `status` (with `status`), `assign` (with
        `assignee`, a user id) or `add_to_incident` (with `incident`). All or nothing: any
        refusal changes nothing and lists each refused alert under `errors`."""
        data = request.data if isinstance(request.data, dict) else {}
        alerts = triage.bulk_triage(data, actor=request.user, request=request)
        fresh = Alert.objects.for_payload().in_bulk([a.pk for a in alerts])
        return Response(
            {
                "action": data.get("action"),
                "alerts": [alert_payload(fresh[a.pk]) for a in alerts],
            }
        )


def rule_summary(rule):
    return {
        "id": rule.pk,
        "domain": rule.domain,
        "action": rule.action,
        "is_active": rule.is_active,
        "description": rule.description,
        "created_at": rule.created_at,
    }


class IncidentBlocksView(CaseView):
    @extend_schema(responses={200: _error, 404: _error})
    def get(self, request, pk):
        """The RPZ rules this incident made, newest first (for readers of RPZ rules)."""
        if not request.user.has_perm("dns.view_rpzrule"):
            raise PermissionDenied("You may not read response-policy rules.")
        incident = Incident.objects.visible_to(request.user).filter(pk=pk).first()
        if incident is None:
            raise NotFound(f"Incident {pk} not found.")
        return Response([rule_summary(rule) for rule in response.rules_of(incident)])

    @extend_schema(
        request=inline_serializer(
            "IncidentBlockDomain",
            {
                "domain": serializers.CharField(),
                "action": serializers.CharField(required=False),
                "reason": serializers.CharField(),
            },
        ),
        responses={201: _error, 400: _error, 403: _error, 404: _error, 409: _error},
    )
    def post(self, request, pk):
        """Block a domain with an RPZ rule (needs `dns.add_rpzrule`); the timeline
        records it with the reason."""
        data = request.data if isinstance(request.data, dict) else None
        rule = response.block_domain(pk, data, actor=request.user, request=request)
        return Response(rule_summary(rule), status=201)


class IncidentBlockView(CaseView):
    @extend_schema(responses={204: None, 403: _error, 404: _error})
    def delete(self, request, pk, rule_id):
        """Undo a block this incident made (the rule is deleted; needs `dns.delete_rpzrule`)."""
        response.unblock_domain(pk, rule_id, actor=request.user, request=request)
        return Response(status=204)


urlpatterns = [
    path("incidents/<int:pk>/blocks/", IncidentBlocksView.as_view(), name="incident-blocks"),
    path(
        "incidents/<int:pk>/blocks/<int:rule_id>/",
        IncidentBlockView.as_view(),
        name="incident-block",
    ),
    path("alerts/bulk-triage/", BulkTriageView.as_view(), name="alert-bulk-triage"),
    path("alerts/<int:pk>/move/", AlertMoveView.as_view(), name="alert-move"),
    path("incidents/assignees/", AssigneesView.as_view(), name="incident-assignees"),
    path("incidents/<int:pk>/alerts/", IncidentAlertsView.as_view(), name="incident-alerts"),
    path("incidents/<int:pk>/merge/", IncidentMergeView.as_view(), name="incident-merge"),
]

"""REST API of incident response (mounted at /api/): short views over `services`.

Reads are restricted per user by the querysets (`Incident.objects.visible_to`); every
write calls the same service function the `/ws/incidents` socket calls, so REST and the
socket behave identically. Service refusals answer
`{"detail": "...", "error_code": "CONFLICT", ...}` with the error's HTTP status.
"""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response

from incidents import services
from incidents.exceptions import IncidentsError
from incidents.filters import AlertFilter, IncidentFilter
from incidents.models import Alert, Incident
from incidents.serializers import (
    AlertIngestSerializer,
    AlertSerializer,
    CommentSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    StatusSerializer,
    TimelineEntrySerializer,
    alert_payload,
    incident_payload,
    ownership_taken_data,
    status_updated_data,
)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class ReadPermission(BasePermission):
    """Reading needs the view's `read_permission`; writes are checked by the services."""

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return request.user.has_perm(view.read_permission)
        return True


class ServiceView(viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, ReadPermission]
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend, SearchFilter]

    def handle_exception(self, exc):
        if isinstance(exc, IncidentsError):
            return Response(exc.as_dict(), status=exc.http_status)
        return super().handle_exception(exc)

    def body_field(self, name):
        data = self.request.data
        return data.get(name) if hasattr(data, "get") else None


_error = OpenApiResponse(description='{"detail": "...", "error_code": "..."}')
_ownership_reply = inline_serializer(
    "AlertOwnershipTaken",
    {
        "alert_id": serializers.IntegerField(),
        "incident": IncidentSerializer(allow_null=True),
        "incident_id": serializers.IntegerField(),
        "alert": AlertSerializer(),
    },
)
_status_reply = inline_serializer(
    "AlertStatusUpdated",
    {
        "alert_id": serializers.IntegerField(),
        "status": serializers.CharField(),
        "alert": AlertSerializer(),
    },
)
_bulk_reply = inline_serializer(
    "AlertBulkIngest",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "results": inline_serializer(
            "AlertBulkIngestItem",
            {
                "index": serializers.IntegerField(),
                "id": serializers.IntegerField(),
                "created": serializers.BooleanField(),
            },
            many=True,
        ),
    },
)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceView):
    """Alerts: list, detail, ingest (one or many), take ownership, change status."""

    serializer_class = AlertSerializer
    read_permission = "incidents.view_alert"
    filterset_class = AlertFilter
    search_fields = [
        "title",
        "description",
        "affected_host",
        "affected_user",
        "source_ip",
        "destination_ip",
    ]

    def get_queryset(self):
        return Alert.objects.for_payload().with_severity_rank().order_by("-received_at", "-id")

    @extend_schema(
        request=AlertIngestSerializer,
        responses={201: AlertSerializer, 200: AlertSerializer, 400: _error, 403: _error},
    )
    def create(self, request):
        """Raise an alert; a repeat of (source, external_id) updates that alert (200)."""
        alert, created = services.ingest_alert(request.data, actor=request.user, request=request)
        alert = Alert.objects.for_payload().get(pk=alert.pk)
        return Response(
            alert_payload(alert), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        request=AlertIngestSerializer(many=True),
        responses={201: _bulk_reply, 200: _bulk_reply, 400: _error, 403: _error},
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Raise many alerts, all or nothing (up to 1000)."""
        result = services.ingest_alerts(request.data, actor=request.user, request=request)
        body = {
            "created": len(result.created),
            "updated": len(result.updated),
            "results": [
                {"index": index, "id": alert_id, "created": created}
                for index, (alert_id, created) in enumerate(result.results)
            ],
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else 200)

    @extend_schema(
        request=None, responses={200: _ownership_reply, 403: _error, 404: _error, 409: _error}
    )
    @action(detail=True, methods=["post"], url_path="take-ownership")
    def take_ownership(self, request, pk=None):
        """Take the alert: it joins your open incident with the same correlation key, or a
        new one (`incident` in the reply; null when it joined). 409 names the owner."""
        alert, incident = services.take_alert_ownership(pk, actor=request.user, request=request)
        return Response(ownership_taken_data(alert, incident))

    @extend_schema(
        request=StatusSerializer,
        responses={200: _status_reply, 400: _error, 403: _error, 404: _error, 409: _error},
    )
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        """Change the alert's status (its owner, or with change_others_alert)."""
        alert = services.update_alert_status(
            pk, self.body_field("status"), actor=request.user, request=request
        )
        return Response(status_updated_data(alert))


class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceView):
    """Incidents you may see: list, detail, change, status, comments, timeline, watch."""

    serializer_class = IncidentSerializer
    read_permission = "incidents.view_incident"
    filterset_class = IncidentFilter
    search_fields = ["reference", "title", "description"]

    def get_queryset(self):
        return (
            Incident.objects.visible_to(self.request.user)
            .for_payload()
            .with_severity_rank()
            .order_by("-created_at", "-id")
        )

    def _incident(self):
        # Visibility only: the list's filters and search do not apply to nested resources.
        return get_object_or_404(
            Incident.objects.visible_to(self.request.user), pk=self.kwargs["pk"]
        )

    def _fresh(self, incident):
        return incident_payload(Incident.objects.for_payload().get(pk=incident.pk))

    @extend_schema(
        request=IncidentUpdateSerializer,
        responses={200: IncidentSerializer, 400: _error, 403: _error, 404: _error},
    )
    def partial_update(self, request, pk=None):
        """Change title, description, severity, priority or owner (a user id or null)."""
        incident = services.update_incident(pk, request.data, actor=request.user, request=request)
        return Response(self._fresh(incident))

    @extend_schema(
        request=StatusSerializer,
        responses={200: IncidentSerializer, 400: _error, 403: _error, 404: _error, 409: _error},
    )
    @action(detail=True, methods=["post"], url_path="status")
    def set_status(self, request, pk=None):
        incident = services.update_incident_status(
            pk, self.body_field("status"), actor=request.user, request=request
        )
        return Response(self._fresh(incident))

    @extend_schema(methods=["GET"], responses={200: CommentSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=CommentSerializer,
        responses={201: CommentSerializer, 400: _error, 403: _error, 404: _error},
    )
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        if request.method == "POST":
            comment = services.add_incident_comment(
                pk, self.body_field("body"), actor=request.user, request=request
            )
            return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        incident = self._incident()
        page = self.paginate_queryset(incident.comments.select_related("author"))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)

    @extend_schema(responses={200: TimelineEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def timeline(self, request, pk=None):
        incident = self._incident()
        page = self.paginate_queryset(incident.timeline.select_related("actor"))
        return self.get_paginated_response(TimelineEntrySerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "IncidentWatch",
                {"incident_id": serializers.IntegerField(), "watching": serializers.BooleanField()},
            ),
            403: _error,
            404: _error,
        },
    )
    @action(detail=True, methods=["post", "delete"])
    def watch(self, request, pk=None):
        """Follow (POST) or stop following (DELETE) the incident's updates."""
        if request.method == "DELETE":
            incident = services.unwatch_incident(pk, actor=request.user, request=request)
            return Response({"incident_id": incident.pk, "watching": False})
        incident = services.watch_incident(pk, actor=request.user, request=request)
        return Response({"incident_id": incident.pk, "watching": True})

"""REST of the detection pipeline (mounted at /api/): raw logs in, security events out.

- `POST /api/logs/`: `{"source", "content"}` (JSON) or a multipart `file` plus `source`;
  answers 202 with the raw log's status (processed inline when small, else in a
  process's processing worker; follow it at `GET /api/logs/<id>/` or through `processing_update`).
- `GET /api/logs/`, `GET /api/logs/<id>/`: raw logs and their processing status.
- `GET /api/events/`, `GET /api/events/<event_id>/`: security events, in the shape of the
  `security_event` payload (same serializer).
"""

import ipaddress
import json

import django_filters
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from incidents import ingest
from incidents.api import ServiceView
from incidents.conf import pipeline_setting
from incidents.exceptions import ValidationError
from incidents.filters import StableOrderingFilter
from incidents.models import RawLog, SecurityEvent
from incidents.security_events import (
    READ_PIPELINE_DATA,
    RawLogSerializer,
    SecurityEventDetailSerializer,
    SecurityEventSerializer,
    raw_log_payload,
)
from incidents.sigma.filters import TechniqueFilter
from realtime.parsers import BoundedJSONParser

# Room for the JSON or multipart framing around the log itself.
REQUEST_OVERHEAD_BYTES = 64 * 1024

_error = OpenApiResponse(description='{"detail": "...", "error_code": "..."}')
_upload = inline_serializer(
    "RawLogUpload",
    {
        "source": serializers.CharField(help_text="Where the lines come from: auth.log, nginx"),
        "content": serializers.CharField(required=False, help_text="The log lines as text."),
        "file": serializers.FileField(required=False, help_text="The log as a file (multipart)."),
    },
)


class MayReadPipelineData(BasePermission):
    """Reads need what the `security_event` socket type needs (`READ_PIPELINE_DATA`), on
    top of the model's view permission: one rule for REST and the socket. Uploads are
    checked by `ingest.receive_raw_log`."""

    message = "Security events and raw logs are for users who may receive security events."

    def has_permission(self, request, view):
        return request.method not in SAFE_METHODS or request.user.has_perm(READ_PIPELINE_DATA)


class RawLogViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ServiceView
):
    """Raw logs: upload one, see their processing status."""

    serializer_class = RawLogSerializer
    read_permission = "incidents.view_rawlog"
    permission_classes = [*ServiceView.permission_classes, MayReadPipelineData]
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]
    filterset_fields = ["status", "source"]
    search_fields = ["source", "file_name"]

    def get_queryset(self):
        return RawLog.objects.select_related("created_by").order_by("-received_at", "-id")

    @extend_schema(
        request={"application/json": _upload, "multipart/form-data": _upload},
        responses={202: RawLogSerializer, 400: _error, 403: _error, 413: _error},
    )
    def create(self, request):
        """Upload a log: 202 with its id and status; 413 when it is larger than
        LOG_UPLOAD_MAX_BYTES."""
        limit = pipeline_setting("LOG_UPLOAD_MAX_BYTES")
        if _content_length(request) > limit + REQUEST_OVERHEAD_BYTES:
            raise ingest.too_large(_content_length(request), limit)
        if request.content_type.split(";")[0].strip() == "application/json":
            data, files = _json_body(request, limit), {}
        else:
            try:
                data, files = request.data, request.FILES
            except RequestDataTooBig:
                raise ValidationError(
                    "The form fields are too large: send the log as the `file` part.",
                    details={"errors": {"content": ["Too large for a form field."]}},
                ) from None
        raw_log = ingest.receive_raw_log(
            source=_field(data, "source"),
            content=_field(data, "content"),
            file=files.get("file"),
            actor=request.user,
            request=request,
        )
        raw_log = ingest.start_processing(raw_log)
        body = raw_log_payload(raw_log)
        body["url"] = request.build_absolute_uri(f"/api/logs/{raw_log.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _content_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _json_body(request, limit):
    """The JSON object of the request, read directly: a log may be larger than what
    DATA_UPLOAD_MAX_MEMORY_SIZE lets `request.data` read, but never than the upload limit
    (plus the JSON around it); the user is authenticated by now."""
    stream = request.stream
    raw = stream.read(limit + REQUEST_OVERHEAD_BYTES + 1) if stream is not None else b""
    if len(raw) > limit + REQUEST_OVERHEAD_BYTES:
        raise ingest.too_large(len(raw), limit)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise ValidationError("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ValidationError('Expected a JSON object: {"source": ..., "content": ...}.')
    return data


def _field(data, name):
    return data.get(name) if hasattr(data, "get") else None


class SecurityEventFilter(django_filters.FilterSet):
    category = django_filters.BaseInFilter(
        field_name="category", help_text="One or more categories, comma-separated."
    )
    source = django_filters.BaseInFilter(
        field_name="source", help_text="One or more sources, comma-separated."
    )
    severity_min = django_filters.NumberFilter(
        field_name="severity", lookup_expr="gte", min_value=1, max_value=10
    )
    severity_max = django_filters.NumberFilter(
        field_name="severity", lookup_expr="lte", min_value=1, max_value=10
    )
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    rule_id = django_filters.CharFilter()
    correlation_key = django_filters.CharFilter()
    technique = TechniqueFilter(field_name="analysis__attack__techniques")
    src_ip = django_filters.CharFilter(method="filter_src_ip", help_text="An IP address.")
    user = django_filters.CharFilter()
    raw_log = django_filters.NumberFilter(field_name="raw_log_id")
    alert = django_filters.NumberFilter(field_name="alert_id")
    ordering = StableOrderingFilter(
        fields=(
            ("timestamp", "timestamp"),
            ("severity", "severity"),
            ("created_at", "created_at"),
        )
    )

    class Meta:
        model = SecurityEvent
        fields = []

    def filter_src_ip(self, queryset, name, value):
        # Compared as an address: PostgreSQL's inet column refuses anything else.
        try:
            address = str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return queryset.none()
        return queryset.filter(src_ip=address)


class SecurityEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceView):
    """Security events: filter by category, severity range, source and time range; search
    the message; `ordering=timestamp|severity|created_at` (minus for descending)."""

    read_permission = "incidents.view_securityevent"
    permission_classes = [*ServiceView.permission_classes, MayReadPipelineData]
    filterset_class = SecurityEventFilter
    search_fields = ["message", "rule_id", "user", "correlation_key"]
    lookup_field = "event_id"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return SecurityEvent.objects.order_by("-timestamp", "-id")

    def get_serializer_class(self):
        return (
            SecurityEventDetailSerializer if self.action == "retrieve" else SecurityEventSerializer
        )

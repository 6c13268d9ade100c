"""Monitoring and publishing endpoints of the hub."""

import logging

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError
from django.dispatch import Signal
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime import control, monitoring
from realtime.auth import SnapshotJWTAuthentication
from realtime.parsers import BoundedJSONParser
from realtime.permissions import CanPublish, CanViewConnections
from realtime.publishing import publish, publish_many
from realtime.serializers import DisconnectSerializer, PublishSerializer

logger = logging.getLogger(__name__)

# An administrator's action on live connections over HTTP, for the audit log (which
# connects a receiver: realtime imports no project app). Sent with `action`, `request`,
# `target_type`, `target_id`.
connections_action = Signal()

# Events one `POST /api/realtime/publish/` may carry as a list.
MAX_EVENTS_PER_REQUEST = 1000

# One instance checks every single-event body: a serializer's fields are copied for each
# new instance, and `run_validation` keeps nothing on the instance (DRF's `is_valid` is
# `run_validation` of `initial_data`, its errors the ValidationError's detail).
publish_checker = PublishSerializer()


class PublishFailed(APIException):
    """The database did not take the event: nothing was published, the client may retry."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The event could not be stored: nothing was published. Retry later."
    default_code = "publish_failed"
    wait = 1  # seconds: DRF's exception handler answers it as Retry-After


class InvalidEventData(APIException):
    """The database refused the event's data (a DataError or IntegrityError, e.g. a
    NUL character in `data` on PostgreSQL's jsonb): retrying the same event cannot help."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The database refused the event's data: nothing was published."
    default_code = "invalid_event_data"


def error_body(exc_class):
    """The JSON body of one of these errors, as the API's exception handler gives it."""
    return {"detail": str(exc_class.default_detail), "error_code": exc_class.default_code.upper()}


async def _no_health_report():
    return {"status": "healthy", "components": {}}


def health_report_provider():
    """REALTIME_HEALTH_REPORT: the dotted path of an async function returning the
    server's health report (`{"status": "healthy" | ..., "components": {...}}`)."""
    path = getattr(settings, "REALTIME_HEALTH_REPORT", None)
    return import_string(path) if path else _no_health_report


@never_cache
@require_GET
def realtime_status(request):
    """`GET /realtime/status`: components, their health and queued messages. No login,
    no user data. 503 only when a component is critical (down), as `/healthz`: a slow
    component (warning) still answers 200."""
    report = dict(async_to_sync(health_report_provider())())
    report["realtime"] = async_to_sync(monitoring.hub_status)()
    code = 503 if report.get("status") == "critical" else 200
    return JsonResponse(report, status=code)


class ConnectionsInfoView(APIView):
    """`GET /ws/info`: every live connection in every server process (admins)."""

    permission_classes = [CanViewConnections]

    @extend_schema(
        responses={
            200: inline_serializer(
                "ConnectionsInfo",
                {
                    "totals": serializers.DictField(),
                    "limits": serializers.DictField(),
                    "processes": serializers.ListField(),
                    "connections": serializers.ListField(),
                },
            )
        }
    )
    def get(self, request):
        return Response(async_to_sync(monitoring.connections_info)())


class MetricsView(APIView):
    """`GET /metrics`: this process's figures in the Prometheus text format. Admins only,
    unless METRICS_PUBLIC is set (for a scraper on a private network)."""

    permission_classes = [CanViewConnections]

    def get_permissions(self):
        return [] if settings.METRICS_PUBLIC else super().get_permissions()

    @extend_schema(responses={200: str})
    def get(self, request):
        # Other apps add their figures with `monitoring.register_metrics` (a collector).
        text = async_to_sync(monitoring.metrics_text)()
        return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")


class PublishView(APIView):
    """`POST /api/realtime/publish/`: publish an event, or a list of events, from an
    integration or an admin.

    A list is checked whole first: one bad item publishes none, and the answer names
    every bad item by its index. The events of a list are stored in one INSERT.
    """

    authentication_classes = [SnapshotJWTAuthentication, SessionAuthentication]
    permission_classes = [CanPublish]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=PublishSerializer,
        responses={
            201: inline_serializer(
                "Published",
                {"message_id": serializers.CharField(), "event_type": serializers.CharField()},
            )
        },
    )
    def post(self, request):
        if isinstance(request.data, list):
            return self.publish_list(request.data)
        try:
            values = publish_checker.run_validation(request.data)
        except ValidationError:
            # A 400 with its errors as `is_valid` words them (a body of `null`: "No data
            # provided" under non_field_errors, so the answer is an object with an
            # error_code, not a bare list).
            PublishSerializer(data=request.data).is_valid(raise_exception=True)
            raise
        try:
            # Stored together with what other requests publish at the same time (one
            # INSERT, one commit); this returns once this one is committed.
            event = publish(
                values["event_type"],
                values["data"],
                priority=values.get("priority"),
                recipients=values.get("recipients"),
            )
        except (DataError, IntegrityError):
            logger.exception("the database refused a published %s event", values["event_type"])
            raise InvalidEventData() from None
        except DatabaseError:
            logger.exception("storing a published %s event failed", values["event_type"])
            raise PublishFailed() from None
        return Response(_published(event), status=status.HTTP_201_CREATED)

    def publish_list(self, items):
        if not items:
            raise ValidationError({"detail": "The list of events is empty."})
        if len(items) > MAX_EVENTS_PER_REQUEST:
            return Response(
                {
                    "detail": f"At most {MAX_EVENTS_PER_REQUEST} events per request.",
                    "error_code": "TOO_MANY_EVENTS",
                    "max_events": MAX_EVENTS_PER_REQUEST,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        serializer = PublishSerializer(data=items, many=True)
        if not serializer.is_valid():
            return Response(
                {
                    "detail": "Some events are invalid: none was published.",
                    "error_code": "INVALID",
                    "errors": _item_errors(serializer.errors),
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            events = publish_many(
                [
                    (
                        values["event_type"],
                        values["data"],
                        {
                            "priority": values.get("priority"),
                            "recipients": values.get("recipients"),
                        },
                    )
                    for values in serializer.validated_data
                ]
            )
        except (DataError, IntegrityError):
            logger.exception("the database refused %d published events", len(items))
            raise InvalidEventData() from None
        except DatabaseError:
            logger.exception("storing %d published events failed", len(items))
            raise PublishFailed() from None
        return Response({"events": [_published(event) for event in events]}, status=201)


def _item_errors(errors):
    """`[{"index": i, field: [messages]}]` for the bad items of a list (DRF gives a list
    with `{}` for good items, or a dict keyed by index, depending on its version)."""
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
    return [
        {"index": index, **error}
        if isinstance(index, int) and isinstance(error, dict)
        else {"index": index, "non_field_errors": error}
        for index, error in sorted(pairs, key=lambda pair: str(pair[0]).zfill(12))
        if error
    ]


def _published(event):
    return {"message_id": event.message_id, "event_type": event.event_type}


class DisconnectView(APIView):
    """`POST /api/realtime/connections/disconnect/`: close every socket of a user."""

    permission_classes = [CanViewConnections]

    @extend_schema(request=DisconnectSerializer, responses={202: None})
    def post(self, request):
        serializer = DisconnectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_id = serializer.validated_data["user_id"]
        control.disconnect_user(user_id)
        connections_action.send(
            sender=DisconnectView,
            action="realtime.disconnect_user",
            request=request,
            target_type="auth.user",
            target_id=str(user_id),
        )
        return Response(status=status.HTTP_202_ACCEPTED)

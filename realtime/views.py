"""Monitoring and publishing endpoints of the hub."""

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime import control, monitoring
from realtime.permissions import CanPublish, CanViewConnections
from realtime.publishing import publish
from realtime.serializers import DisconnectSerializer, PublishSerializer
from threatlens import health
from threatlens.audit.services import record


@never_cache
@require_GET
def realtime_status(request):
    """`GET /realtime/status`: components, their health and queued messages. No login,
    no user data."""
    report = async_to_sync(health.health_report)()
    report["realtime"] = async_to_sync(monitoring.hub_status)()
    code = 200 if report["status"] == health.HEALTHY else 503
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
        text = async_to_sync(monitoring.metrics_text)()
        # Other apps' figures (METRICS_EXTRA: dotted paths of functions returning
        # Prometheus text), so this module imports none of them.
        for path in getattr(settings, "METRICS_EXTRA", ()):
            text += import_string(path)()
        return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")


class PublishView(APIView):
    """`POST /api/realtime/publish/`: publish an event from an integration or an admin."""

    permission_classes = [CanPublish]

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
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        event = publish(
            values["event_type"],
            values["data"],
            priority=values.get("priority"),
            recipients=values.get("recipients"),
        )
        return Response(
            {"message_id": event.message_id, "event_type": event.event_type},
            status=status.HTTP_201_CREATED,
        )


class DisconnectView(APIView):
    """`POST /api/realtime/connections/disconnect/`: close every socket of a user."""

    permission_classes = [CanViewConnections]

    @extend_schema(request=DisconnectSerializer, responses={202: None})
    def post(self, request):
        serializer = DisconnectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_id = serializer.validated_data["user_id"]
        control.disconnect_user(user_id)
        record(
            "realtime.disconnect_user",
            request=request,
            target_type="auth.user",
            target_id=str(user_id),
        )
        return Response(status=status.HTTP_202_ACCEPTED)

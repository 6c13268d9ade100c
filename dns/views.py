"""REST API of DNS management (mounted at /api/dns/): short views over `dns.services`.

Every queryset of zones and records goes through `for_user(request.user)`; writes call the
services, which check change access, audit and publish. Errors: 400 with field errors,
403, 404 (also for zones the user may not read), and 409 with the current object when an
update names a version that is no longer current.
"""

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import DjangoModelPermissions, IsAuthenticated
from rest_framework.response import Response

from dns import bulk, imports, services, zonefile
from dns.chunked import ZoneBusy
from dns.conf import dns_setting
from dns.models import BulkOperation, Forwarder, Record, RpzRule, ThreatFeed, Zone, ZoneAccess
from dns.natural_sort import record_sort_key
from dns.serializers import (
    BulkItemsSerializer,
    BulkOperationSerializer,
    ForwarderSerializer,
    RecordSerializer,
    RpzRuleSerializer,
    ThreatFeedSerializer,
    ZoneAccessSerializer,
    ZoneImportSerializer,
    ZoneSerializer,
    as_drf_error,
)
from dns.services import StaleVersion


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class DnsView(viewsets.GenericViewSet):
    """Shared base: pagination, filters, and service errors as HTTP answers."""

    permission_classes = [IsAuthenticated]
    pagination_class = Pagination
    filter_backends = [filters.DjangoFilterBackend, SearchFilter, OrderingFilter]
    current_serializer = None  # serializer of the object a 409 answer carries

    def handle_exception(self, exc):
        if isinstance(exc, ZoneBusy):
            return Response(
                {"detail": str(exc), "error_code": "ZONE_BUSY", "operation_id": str(exc.job_id)},
                status=status.HTTP_409_CONFLICT,
                headers={"Retry-After": str(exc.retry_after)},
            )
        if isinstance(exc, StaleVersion):
            serializer = self.current_serializer or self.get_serializer_class()
            return Response(
                {
                    "detail": str(exc),
                    "error_code": "CONFLICT",
                    "current": serializer(exc.current, context=self.get_serializer_context()).data,
                },
                status=status.HTTP_409_CONFLICT,
            )
        if isinstance(exc, DjangoValidationError):
            exc = as_drf_error(exc)
        elif isinstance(exc, DjangoPermissionDenied):
            exc = PermissionDenied(str(exc) or None)
        elif isinstance(exc, ObjectDoesNotExist):
            exc = NotFound()
        return super().handle_exception(exc)

    def version_from(self, *, required):
        """The `version` the client read: body field, or `?version=` (DELETE)."""
        data = self.request.data if hasattr(self.request.data, "get") else {}
        value = data.get("version", self.request.query_params.get("version"))
        if value in (None, ""):
            if required:
                raise ValidationError(
                    {
                        "version": [
                            "Send the version you read, so that a concurrent change is "
                            "not overwritten."
                        ]
                    }
                )
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValidationError({"version": ["A whole number."]}) from None


# --- Zones ----------------------------------------------------------------------------------


class ZoneFilter(filters.FilterSet):
    class Meta:
        model = Zone
        fields = ["zone_type", "is_active"]


class ZoneViewSet(
    DnsView,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
):
    """Zones the user may read. Create needs `dns.add_zone`; update and delete need change
    access to the zone (delete also `dns.delete_zone`); updates carry `version`."""

    serializer_class = ZoneSerializer
    filterset_class = ZoneFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "zone_type", "created_at", "updated_at", "serial"]
    ordering = ["name"]

    def get_queryset(self):
        user = self.request.user
        return (
            Zone.objects.for_user(user)
            .with_can_change(user)
            .annotate(records_count=Count("records"))
        )

    def _annotated(self, zone):
        return self.get_queryset().get(pk=zone.pk)

    def perform_create(self, serializer):
        zone = services.create_zone(
            self.request.user, serializer.validated_data, request=self.request
        )
        serializer.instance = self._annotated(zone)

    def perform_update(self, serializer):
        zone = services.update_zone(
            self.request.user,
            serializer.instance.pk,
            serializer.validated_data,
            version=self.version_from(required=True),
            request=self.request,
        )
        serializer.instance = self._annotated(zone)

    def perform_destroy(self, instance):
        services.delete_zone(
            self.request.user,
            instance.pk,
            version=self.version_from(required=False),
            request=self.request,
        )

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """The zone in BIND zone file format (master zones)."""
        zone = self.get_object()
        if zone.zone_type != Zone.ZoneType.MASTER:
            raise ValidationError({"zone_type": ["Only master zones have a zone file."]})
        text = zonefile.render_zone(zone, zone.records.all(), generated_at=timezone.now())
        response = HttpResponse(text, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="db.{zone.name}"'
        return response

    @extend_schema(
        request=ZoneImportSerializer, responses={201: ZoneSerializer, 200: ZoneSerializer}
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_file(self, request):
        """Import a BIND zone file into a new zone, or into `zone` (add, or `replace`)."""
        body = ZoneImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        options = {key: data[key] for key in ("email", "description", "is_active") if key in data}
        zone, summary = imports.import_zone_file(
            request.user,
            data["zone_file"],
            zone_id=data.get("zone"),
            name=data.get("name") or None,
            replace=data["replace"],
            options=options,
            request=request,
        )
        reply = {"zone": ZoneSerializer(self._annotated(zone)).data, "import": summary}
        created = data.get("zone") is None
        return Response(reply, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ZoneAccessViewSet(
    DnsView, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin
):
    """`/zones/<zone_pk>/access/`: who may read or change the zone (administrators)."""

    serializer_class = ZoneAccessSerializer
    filter_backends = []

    def _zone(self):
        if not self.request.user.has_perm("dns.change_zoneaccess"):
            raise PermissionDenied("Only administrators manage zone access.")
        return Zone.objects.for_user(self.request.user).get(pk=self.kwargs["zone_pk"])

    def get_queryset(self):
        zone = self._zone()
        return ZoneAccess.objects.filter(zone=zone).select_related("user", "group").order_by("id")

    def perform_create(self, serializer):
        zone = self._zone()
        data = serializer.validated_data
        serializer.instance = services.grant_access(
            self.request.user,
            zone.pk,
            user=data.get("user"),
            group=data.get("group"),
            can_change=data.get("can_change", False),
            request=self.request,
        )

    def perform_destroy(self, instance):
        services.revoke_access(
            self.request.user, instance.pk, zone_id=instance.zone_id, request=self.request
        )


# --- Records --------------------------------------------------------------------------------


class RecordFilter(filters.FilterSet):
    name = filters.CharFilter(field_name="name", lookup_expr="iexact")
    record_type = filters.MultipleChoiceFilter(choices=Record.RecordType.choices)

    class Meta:
        model = Record
        fields = ["zone", "record_type", "name"]


class RecordViewSet(
    DnsView,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
):
    """Records of readable zones: flat at `/records/` and nested at
    `/zones/<zone_pk>/records/`. Writes need change access; updates carry `version`.

    `search` matches name and value, `record_type` filters by type (repeatable). A zone's
    records come in natural order of names (`host2` before `host10`) unless `ordering`
    names another; the flat list sorts naturally on `ordering=natural` (zone, then name).
    """

    serializer_class = RecordSerializer
    filterset_class = RecordFilter
    search_fields = ["name", "value"]
    ordering_fields = ["name", "record_type", "created_at", "updated_at"]
    ordering = ["zone_id", "name", "record_type", "id"]

    def zone(self):
        if "zone_pk" not in self.kwargs:
            return None
        if not hasattr(self, "_zone"):
            self._zone = Zone.objects.for_user(self.request.user).get(pk=self.kwargs["zone_pk"])
        return self._zone

    def get_queryset(self):
        queryset = Record.objects.for_user(self.request.user).select_related("zone")
        zone = self.zone()
        return queryset.filter(zone=zone) if zone is not None else queryset

    def natural_order_requested(self):
        ordering = self.request.query_params.get("ordering", "").strip()
        if ordering == "natural":
            return True
        return not ordering and "zone_pk" in self.kwargs

    def list(self, request, *args, **kwargs):
        if not self.natural_order_requested():
            return super().list(request, *args, **kwargs)
        # Natural order is not an SQL collation on every backend: sort the (filtered)
        # rows here, then page the sorted list. A zone's records fit in memory.
        records = sorted(
            self.filter_queryset(self.get_queryset()),
            key=lambda record: (record.zone.name, *record_sort_key(record)),
        )
        page = self.paginate_queryset(records)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(records, many=True).data)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request is not None and "zone_pk" in self.kwargs:
            context["zone"] = self.zone()
        return context

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        zone = data.pop("zone")
        serializer.instance = services.create_record(
            self.request.user, zone.pk, data, request=self.request
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("zone", None)
        serializer.instance = services.update_record(
            self.request.user,
            serializer.instance.pk,
            data,
            version=self.version_from(required=True),
            request=self.request,
        )

    def perform_destroy(self, instance):
        services.delete_record(
            self.request.user,
            instance.pk,
            version=self.version_from(required=False),
            request=self.request,
        )

    @extend_schema(
        request=BulkItemsSerializer,
        responses={202: OpenApiResponse(description='{"operation_id", "status", "url"}')},
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request, zone_pk=None):
        """Start a bulk create/update/delete job of a zone's records (HTTP 202). Nested
        under the zone, or flat at `/records/bulk/` with `zone` in the body."""
        body = BulkItemsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        zone_id = self.zone().pk if zone_pk is not None else request.data.get("zone")
        if not isinstance(zone_id, int) or isinstance(zone_id, bool):
            raise ValidationError({"zone": ["The id of the zone is required."]})
        job = bulk.start_bulk_operation(
            request.user,
            zone_id,
            body.validated_data["operation"],
            body.validated_data["records"],
            request=request,
        )
        bulk.run_in_background(job.pk)
        return Response(
            {
                "operation_id": str(job.pk),
                "status": job.status,
                "total": job.total,
                "url": f"/api/dns/bulk-operations/{job.pk}/",
            },
            status=status.HTTP_202_ACCEPTED,
        )


class BulkOperationViewSet(DnsView, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Bulk jobs of the zones the user may read."""

    serializer_class = BulkOperationSerializer
    filterset_fields = ["zone", "status", "operation"]

    def get_queryset(self):
        zones = Zone.objects.for_user(self.request.user).values("pk")
        return BulkOperation.objects.filter(zone__in=zones).select_related("zone")


class BindSyncView(DnsView):
    """`POST /bind/sync/`: write, check and reload BIND now (administrators)."""

    serializer_class = None
    filter_backends = []

    @extend_schema(request=None, responses={200: OpenApiResponse(description="SyncOutcome")})
    def sync(self, request):
        from dataclasses import asdict

        from dns import bind

        if not request.user.has_perm("dns.change_all_zones"):
            raise PermissionDenied("Only administrators sync BIND.")
        if not bind.enabled():
            return Response(
                {
                    "detail": "The BIND integration is off (DNS_BIND_ENABLED, DNS_BIND_DIR).",
                    "error_code": "CONFLICT",
                },
                status=status.HTTP_409_CONFLICT,
            )
        outcome = bind.sync_bind(reason=f"REST by {request.user.get_username()}")
        return Response(asdict(outcome))


# --- RPZ, feeds, forwarders --------------------------------------------------------------------


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, reading included (`view_<model>`)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class SimpleModelViewSet(
    DnsView,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
):
    permission_classes = [IsAuthenticated, ModelPermissions]
    create_service = update_service = delete_service = None

    def perform_create(self, serializer):
        serializer.instance = type(self).create_service(
            self.request.user, serializer.validated_data, request=self.request
        )

    def perform_update(self, serializer):
        serializer.instance = type(self).update_service(
            self.request.user,
            serializer.instance.pk,
            serializer.validated_data,
            request=self.request,
        )

    def perform_destroy(self, instance):
        type(self).delete_service(self.request.user, instance.pk, request=self.request)


class RpzRuleViewSet(SimpleModelViewSet):
    """Response policy rules; `GET /rpz/export/` is the RPZ zone file."""

    queryset = RpzRule.objects.select_related("feed")
    serializer_class = RpzRuleSerializer
    filterset_fields = ["action", "category", "feed", "is_active", "source"]
    search_fields = ["domain", "description"]
    ordering_fields = ["domain", "created_at", "updated_at"]
    create_service = services.create_rpz_rule
    update_service = services.update_rpz_rule
    delete_service = services.delete_rpz_rule

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"])
    def export(self, request):
        from dns.rpz import render_active_rpz

        response = HttpResponse(render_active_rpz(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="db.{dns_setting("RPZ_ZONE")}"'
        return response


class ThreatFeedViewSet(SimpleModelViewSet):
    queryset = ThreatFeed.objects.all()
    serializer_class = ThreatFeedSerializer
    filterset_fields = ["format", "is_active", "category"]
    search_fields = ["name", "description"]
    create_service = services.create_feed
    update_service = services.update_feed
    delete_service = services.delete_feed


class ForwarderViewSet(SimpleModelViewSet):
    queryset = Forwarder.objects.all()
    serializer_class = ForwarderSerializer
    filterset_fields = ["is_active", "health_status"]
    search_fields = ["name", "address"]
    create_service = services.create_forwarder
    update_service = services.update_forwarder
    delete_service = services.delete_forwarder

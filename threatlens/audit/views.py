"""Audit API for admins: the filtered, paginated list and the streamed CSV export."""

import csv
import json

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.filters import OrderingFilter
from rest_framework.generics import GenericAPIView, ListAPIView

from threatlens.audit.filters import AuditLogFilter
from threatlens.audit.models import AuditLog
from threatlens.audit.permissions import CanViewAuditLog
from threatlens.audit.serializers import EXPORT_FIELDS, AuditLogSerializer

EXPORT_CHUNK = 1000


class AuditLogAccess:
    """Shared by the list and the export: who may read, which rows, which filters."""

    permission_classes = [CanViewAuditLog]
    queryset = AuditLog.objects.all()
    serializer_class = AuditLogSerializer
    filterset_class = AuditLogFilter
    search_fields = ["action", "actor_username", "target_repr", "target_id"]
    ordering_fields = ["created_at", "id", "action", "actor_username", "target_type"]
    ordering = ["-created_at", "-id"]


class AuditLogListView(AuditLogAccess, ListAPIView):
    """The audit log, newest first, filterable and paginated (`?page=`)."""


class AuditLogExportView(AuditLogAccess, GenericAPIView):
    """The filtered audit log as CSV, streamed newest first (ordering does not apply)."""

    pagination_class = None
    served_over_asgi = False

    def initialize_request(self, request, *args, **kwargs):
        # The Django request, before DRF wraps it (DRF's documented dispatch hook; the
        # wrapped one is only reachable through a private attribute).
        self.served_over_asgi = isinstance(request, ASGIRequest)
        return super().initialize_request(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        # Same filters and search as the list; the order is fixed so rows can be read
        # in chunks by id.
        backends = [b for b in self.filter_backends if not issubclass(b, OrderingFilter)]
        for backend in backends:
            queryset = backend().filter_queryset(self.request, queryset, self)
        return queryset

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")}
    )
    def get(self, request, *args, **kwargs):
        rows = CsvRows(self.filter_queryset(self.get_queryset()))
        # Under ASGI (daphne) an async iterator keeps the server's loop free and reads
        # the database chunk by chunk; Django would otherwise read a sync iterator whole
        # into memory before sending. The sync one serves WSGI and the test client.
        content = rows.aiter() if self.served_over_asgi else rows.iter()
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response


class _Line:
    """A file-like object for csv.writer that hands back each written line."""

    def write(self, value):
        return value


# Cells starting with these are formulas to a spreadsheet; audit data is partly
# attacker-controlled (attempted usernames), so such cells are prefixed with a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    elif hasattr(value, "isoformat"):
        return value.isoformat()
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class CsvRows:
    """CSV lines of a queryset: a header, then rows read EXPORT_CHUNK at a time by id."""

    def __init__(self, queryset):
        self.queryset = queryset.order_by("-id")
        self.writer = csv.writer(_Line())

    def _chunk(self, before_id):
        queryset = self.queryset
        if before_id is not None:
            queryset = queryset.filter(id__lt=before_id)
        rows = list(queryset.values_list(*[_column(f) for f in EXPORT_FIELDS])[:EXPORT_CHUNK])
        lines = "".join(self.writer.writerow([_cell(v) for v in row]) for row in rows)
        return lines, (rows[-1][0] if len(rows) == EXPORT_CHUNK else None)

    def iter(self):
        yield self.writer.writerow(EXPORT_FIELDS)
        lines, last = self._chunk(None)
        yield lines
        while last is not None:
            lines, last = self._chunk(last)
            yield lines

    async def aiter(self):
        yield self.writer.writerow(EXPORT_FIELDS)
        lines, last = await sync_to_async(self._chunk)(None)
        yield lines
        while last is not None:
            lines, last = await sync_to_async(self._chunk)(last)
            yield lines


def _column(field):
    return "actor_id" if field == "actor" else field

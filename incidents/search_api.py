"""REST for search and pivot (read only), mounted at /api/:

- `GET /api/search/?q=...`: alerts, incidents, security events, zones and records that
  match, each group restricted to what the user may read (`incidents.search.search`);
- `GET /api/pivot/?type=ip|user|host|domain&value=...`: everything about one value
  (`incidents.search.pivot`).

Bad input answers 400 with `error_code`, like the rest of the incidents API.
"""

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import search
from incidents.exceptions import IncidentsError
from incidents.security_events import SecurityEventSerializer
from incidents.serializers import AlertSerializer, IncidentSerializer

_reply = OpenApiResponse(description="Groups of matching objects; see the view's description.")
_error = OpenApiResponse(description='{"detail": "...", "error_code": "..."}')


def zone_summary(zone):
    return {"id": zone.pk, "name": zone.name}


def record_summary(record):
    return {
        "id": record.pk,
        "zone": record.zone_id,
        "zone_name": record.zone.name,
        "name": record.name,
        "record_type": record.record_type,
        "value": record.value,
    }


class SearchView(APIView):
    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc):
        if isinstance(exc, IncidentsError):
            return Response(exc.as_dict(), status=exc.http_status)
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True)],
        responses={200: _reply, 400: _error},
    )
    def get(self, request):
        """Alerts, incidents, security events, zones and records matching `q` (text, an
        IP address, an alert or incident number), at most 10 of each, newest first."""
        found = search.search(request.user, request.query_params.get("q"))
        body = {}
        if "alerts" in found:
            body["alerts"] = AlertSerializer(found["alerts"], many=True).data
        if "incidents" in found:
            body["incidents"] = IncidentSerializer(found["incidents"], many=True).data
        if "events" in found:
            body["events"] = SecurityEventSerializer(found["events"], many=True).data
        if "zones" in found:
            body["zones"] = [zone_summary(zone) for zone in found["zones"]]
            body["records"] = [record_summary(record) for record in found["records"]]
        return Response(body)


class PivotView(SearchView):
    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, required=True, enum=list(search.PIVOT_KINDS)),
            OpenApiParameter("value", str, required=True),
        ],
        responses={200: _reply, 400: _error},
    )
    def get(self, request):
        """Everything about one IP address, user, host or domain: counts, first and last
        seen, security events per hour over the last 24 h, events, alerts, incidents and
        DNS queries (each list the newest 50)."""
        found = search.pivot(
            request.user, request.query_params.get("type"), request.query_params.get("value")
        )
        return Response(
            {
                **{k: found[k] for k in ("type", "value", "counts", "first_seen", "last_seen")},
                "histogram": found["histogram"],
                "events": SecurityEventSerializer(found["events"], many=True).data,
                "dns_queries": SecurityEventSerializer(found["dns_queries"], many=True).data,
                "alerts": AlertSerializer(found["alerts"], many=True).data,
                "incidents": IncidentSerializer(found["incidents"], many=True).data,
            }
        )


class ObservablesView(SearchView):
    @extend_schema(responses={200: _reply, 404: _error})
    def get(self, request, pk):
        """The incident's observables (IPs, users, hosts, domains of its alerts), each with
        `alerts` (how many of this incident's alerts show it) and `other_incidents` (how
        many other incidents you may see show it too)."""
        return Response(search.incident_observables(request.user, pk))


urlpatterns = [
    path("incidents/<int:pk>/observables/", ObservablesView.as_view(), name="incident-observables"),
    path("search/", SearchView.as_view(), name="search"),
    path("pivot/", PivotView.as_view(), name="pivot"),
]

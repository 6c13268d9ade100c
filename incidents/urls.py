"""Incident-response and pipeline REST routes, mounted at /api/ (so /api/alerts/...,
/api/incidents/..., /api/logs/..., /api/events/...)."""

from rest_framework.routers import SimpleRouter

from incidents import cases_api, search_api
from incidents.api import AlertViewSet, IncidentViewSet
from incidents.logs_api import RawLogViewSet, SecurityEventViewSet

router = SimpleRouter()
router.register("alerts", AlertViewSet, basename="alert")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("logs", RawLogViewSet, basename="rawlog")
router.register("events", SecurityEventViewSet, basename="securityevent")

# Case work and bulk triage first: `alerts/bulk-triage/` would otherwise reach the router's
# alert detail route.
urlpatterns = [*cases_api.urlpatterns, *search_api.urlpatterns, *router.urls]

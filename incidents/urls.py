"""Incident-response and pipeline REST routes, mounted at /api/ (so /api/alerts/...,
/api/incidents/..., /api/logs/..., /api/events/...)."""

from rest_framework.routers import SimpleRouter

from incidents.api import AlertViewSet, IncidentViewSet
from incidents.logs_api import RawLogViewSet, SecurityEventViewSet

router = SimpleRouter()
router.register("alerts", AlertViewSet, basename="alert")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("logs", RawLogViewSet, basename="rawlog")
router.register("events", SecurityEventViewSet, basename="securityevent")

urlpatterns = router.urls

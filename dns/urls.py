"""DNS REST routes, mounted at /api/dns/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from dns import views

router = SimpleRouter()
router.register("zones", views.ZoneViewSet, basename="dns-zone")
router.register("records", views.RecordViewSet, basename="dns-record")
router.register("rpz/rules", views.RpzRuleViewSet, basename="dns-rpz-rule")
router.register("feeds", views.ThreatFeedViewSet, basename="dns-feed")
router.register("forwarders", views.ForwarderViewSet, basename="dns-forwarder")
router.register("bulk-operations", views.BulkOperationViewSet, basename="dns-bulk-operation")

zone_records = views.RecordViewSet.as_view({"get": "list", "post": "create"})
zone_record = views.RecordViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)
zone_records_bulk = views.RecordViewSet.as_view({"post": "bulk"})
zone_access = views.ZoneAccessViewSet.as_view({"get": "list", "post": "create"})
zone_access_row = views.ZoneAccessViewSet.as_view({"delete": "destroy"})

urlpatterns = [
    path("zones/<int:zone_pk>/records/", zone_records, name="dns-zone-records"),
    path("zones/<int:zone_pk>/records/bulk/", zone_records_bulk, name="dns-zone-records-bulk"),
    path("zones/<int:zone_pk>/records/<int:pk>/", zone_record, name="dns-zone-record"),
    path("zones/<int:zone_pk>/access/", zone_access, name="dns-zone-access"),
    path("zones/<int:zone_pk>/access/<int:pk>/", zone_access_row, name="dns-zone-access-row"),
    path(
        "rpz/export/",
        views.RpzRuleViewSet.as_view({"get": "export"}),
        name="dns-rpz-export",
    ),
    path("bind/sync/", views.BindSyncView.as_view({"post": "sync"}), name="dns-bind-sync"),
    *router.urls,
]

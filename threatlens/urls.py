"""Root URLs: REST API under /api/, monitoring, admin and the analyst UI."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from threatlens import health

api_patterns = [
    path("auth/", include("threatlens.accounts.urls")),
    path("audit/", include("threatlens.audit.urls")),
    path("realtime/", include("realtime.api_urls")),
    path("", include("incidents.urls")),
    path("dns/", include("dns.urls")),
    path("", include("threatlens.ui.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("healthz", health.healthz, name="healthz"),
    path("", include("realtime.urls")),
    path("", include("threatlens.ui.urls")),
]

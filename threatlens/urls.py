"""Root URLs: REST API under /api/, monitoring, admin and the analyst UI."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from threatlens import api, health

api_patterns = [
    path("auth/", include("threatlens.accounts.urls")),
    path("audit/", include("threatlens.audit.urls")),
    path("realtime/", include("realtime.api_urls")),
    path("", include("incidents.urls")),
    path("dns/", include("dns.urls")),
    path("sigma/", include("incidents.sigma.urls")),
    path("", include("threatlens.ui.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other path under /api/ answers a JSON 404.
    re_path(r"^(?P<path>.*)$", api.api_not_found),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("healthz", health.healthz, name="healthz"),
    path("", include("realtime.urls")),
    path("", include("threatlens.ui.urls")),
]

# JSON under /api/, Django's pages elsewhere (threatlens.api).
handler400 = "threatlens.api.bad_request"
handler403 = "threatlens.api.permission_denied"
handler404 = "threatlens.api.page_not_found"
handler500 = "threatlens.api.server_error"

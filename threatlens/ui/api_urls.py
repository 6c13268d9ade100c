"""REST routes of the console's own data, mounted at /api/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from threatlens.ui.api import ChartHistoryView, PreferencesView, SavedViewViewSet

router = SimpleRouter()
router.register("saved-views", SavedViewViewSet, basename="saved-view")
urlpatterns = [
    path("preferences/", PreferencesView.as_view(), name="console-preferences"),
    path("console/charts/", ChartHistoryView.as_view(), name="console-charts"),
    *router.urls,
]

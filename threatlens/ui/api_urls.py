"""REST routes of the console's own data, mounted at /api/."""

from rest_framework.routers import SimpleRouter

from threatlens.ui.api import SavedViewViewSet

router = SimpleRouter()
router.register("saved-views", SavedViewViewSet, basename="saved-view")
urlpatterns = router.urls

"""Sigma REST routes, mounted at /api/sigma/ (see `incidents.sigma.api`)."""

from rest_framework.routers import SimpleRouter

from incidents.sigma.api import SigmaRuleViewSet

router = SimpleRouter()
router.register("rules", SigmaRuleViewSet, basename="sigmarule")

urlpatterns = router.urls

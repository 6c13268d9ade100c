"""WebSocket routes of the hub (DESIGN.md "Routes"). `/ws/incidents` is routed before
these by the project (threatlens/routing.py), so `incidents` is never a client_id."""

from django.urls import re_path

from realtime.consumers import LEGACY_TOPICS, HubConsumer, LegacyHubConsumer

_topics = "|".join(LEGACY_TOPICS)

websocket_urlpatterns = [
    re_path(rf"^/?ws/(?P<topic>{_topics})/(?P<user_id>[^/]+)/?$", LegacyHubConsumer.as_asgi()),
    re_path(r"^/?ws/?$", HubConsumer.as_asgi()),
    re_path(r"^/?ws/(?P<client_id>[^/]+)/?$", HubConsumer.as_asgi()),
]

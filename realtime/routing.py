"""WebSocket routes of the hub (DESIGN.md "Routes"). `/ws/incidents` is routed before
these by the project (threatlens/routing.py), so `incidents` is never a client_id.

`/api/websocket/ws` and `/api/websocket/ws/<connection_type>` are where the DNS management
server's own frontends connect: aliases of `/ws` and of the legacy topic sockets that
speak those frontends' flat envelope (realtime/compat.py, docs/migrating.md)."""

from django.urls import re_path

from realtime.compat import CompatibleHubConsumer, CompatibleTopicConsumer
from realtime.consumers import LEGACY_TOPICS, LegacyHubConsumer

_topics = "|".join(LEGACY_TOPICS)
FLAT = {"envelope": "flat"}

websocket_urlpatterns = [
    re_path(rf"^/?ws/(?P<topic>{_topics})/(?P<user_id>[^/]+)/?$", LegacyHubConsumer.as_asgi()),
    re_path(r"^/?ws/?$", CompatibleHubConsumer.as_asgi()),
    re_path(r"^/?ws/(?P<client_id>[^/]+)/?$", CompatibleHubConsumer.as_asgi()),
    re_path(r"^/?api/websocket/ws/?$", CompatibleHubConsumer.as_asgi(), FLAT),
    re_path(
        rf"^/?api/websocket/ws/(?P<topic>{_topics})/?$", CompatibleTopicConsumer.as_asgi(), FLAT
    ),
]

"""WebSocket route of incident response (before the hub's `/ws/<client_id>`)."""

from django.urls import re_path

from incidents.consumers import IncidentsConsumer

websocket_urlpatterns = [
    re_path(r"^/?ws/incidents/?$", IncidentsConsumer.as_asgi()),
]

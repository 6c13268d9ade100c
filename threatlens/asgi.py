"""ASGI entry point: HTTP through Django, WebSockets through the realtime hub's router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from realtime import daphne_close_codes  # noqa: E402
from threatlens.routing import websocket_application  # noqa: E402

daphne_close_codes.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_application(),
    }
)

"""ASGI entry point: HTTP through Django, WebSockets through the realtime hub's router."""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from threatlens import logredaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threatlens.settings")
# First: the server logs every request line (tokens in query strings) once it serves.
logredaction.install()

from threatlens.handlers import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from realtime import servers  # noqa: E402
from realtime.fast_publish import PublishFastPath  # noqa: E402
from threatlens import collector  # noqa: E402
from threatlens.monitoring.startup import InProcessServicesMiddleware  # noqa: E402
from threatlens.routing import websocket_application  # noqa: E402

servers.install()  # checks the pinned versions, patches daphne if it serves

# The monitors and log watchers run inside the server when MONITORS_IN_PROCESS / WATCH_LOGS
# say so: started at lifespan startup (uvicorn) or on the first request or socket (daphne).
application = InProcessServicesMiddleware(
    ProtocolTypeRouter(
        {
            # The UI's static files are served by the app itself: no build step, no extra
            # server needed for the embedded default (a proxy may serve STATIC_ROOT instead).
            # Single-event publishes that need no database check skip Django's request
            # cycle (realtime/fast_publish.py); everything else goes through Django.
            "http": PublishFastPath(ASGIStaticFilesHandler(django_asgi_app)),
            "websocket": websocket_application(),
        }
    )
)

# Last: what is loaded by now lives as long as the process (threatlens/collector.py).
collector.tune_for_server(settings.SERVER_GC_YOUNG_THRESHOLD)

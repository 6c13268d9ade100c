"""System checks of the incidents app (`manage.py check`)."""

import os

from django.conf import settings
from django.core.checks import Tags, Warning, register

REMOVED_SETTINGS = {
    "LOG_PROCESSING_WORKERS": (
        "a process has one processing worker (docs/ingest.md, 'Detection state'); run "
        "`manage.py process_logs` processes beside the server to process in parallel"
    ),
}


@register(Tags.compatibility)
def removed_settings(app_configs, **kwargs):
    """A setting or environment variable that no longer does anything, named."""
    return [
        Warning(
            f"{name} is set but no longer used: {instead}.",
            id="incidents.W001",
        )
        for name, instead in REMOVED_SETTINGS.items()
        if name in os.environ or hasattr(settings, name)
    ]

"""`GET /healthz`: the health report of `threatlens.monitoring.checks`, over HTTP.

The same checks, statuses and component entries as `manage.py healthcheck` and the
monitors' `health_check` event (see `threatlens.monitoring.health`), so they cannot
disagree. HTTP 503 when a component is critical (down), else 200; the body says
"warning" for a slow component. It needs no login and holds no user data.
"""

from asgiref.sync import async_to_sync
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from threatlens.monitoring.checks import run_checks
from threatlens.monitoring.events import health_check_data
from threatlens.monitoring.health import CRITICAL, HEALTHY

__all__ = ["CRITICAL", "HEALTHY", "health_report", "healthz", "http_status"]

# Seconds a check may take before its component counts as down (critical).
CHECK_TIMEOUT = 3.0


async def health_report(timeout=CHECK_TIMEOUT):
    """{"status", "components": {name: {"status", "response_time", "message"?}},
    "timestamp"}: every check at once; `status` is the worst component's."""
    payload = health_check_data(await run_checks(timeout=timeout))
    return {
        "status": payload["overall_status"],
        "components": payload["components"],
        "timestamp": payload["timestamp"],
    }


def health_report_sync(timeout=CHECK_TIMEOUT):
    """`health_report` for sync callers."""
    return async_to_sync(health_report)(timeout)


def http_status(report):
    """503 when something is down (a load balancer takes the process out), else 200."""
    return 503 if report["status"] == CRITICAL else 200


@never_cache
@require_safe
async def healthz(request):
    """GET /healthz: the health report; 503 when a component is critical."""
    report = await health_report()
    return JsonResponse(report, status=http_status(report))

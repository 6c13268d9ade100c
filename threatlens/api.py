"""REST API conventions shared by every app."""

from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, plus a stable `error_code` beside DRF's `detail` on errors."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        code = getattr(exc, "default_code", None) or "error"
        response.data.setdefault("error_code", str(code).upper())
    return response

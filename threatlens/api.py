"""REST API conventions shared by every app."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, plus a stable upper-case `error_code` beside DRF's `detail` on errors.

    The code is the exception's own (`AuthenticationFailed(..., "no_active_account")` gives
    `NO_ACTIVE_ACCOUNT`), else its class default (`NOT_FOUND`, `PERMISSION_DENIED`,
    `INVALID` for validation errors, `THROTTLED`). Field errors stay as DRF returns them.
    """
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        response.data.setdefault("error_code", error_code(exc))
    return response


def error_code(exc):
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
    code = codes if isinstance(codes, str) else getattr(exc, "default_code", None)
    return str(code or "error").upper()

"""REST API conventions shared by every app.

Every answer under /api/ is JSON with an `error_code`, whatever went wrong: DRF's errors
through `exception_handler`, and what happens outside DRF (an unknown path, a body over
Django's size limits, an unexpected exception) through `api_not_found` and the root
URLconf's `handler400/403/404/500`, which answer JSON under /api/ and Django's pages
elsewhere.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def exception_handler(exc, context):
    """DRF's handler, plus a stable upper-case `error_code` beside DRF's `detail` on errors.

    The code is the exception's own (`AuthenticationFailed(..., "no_active_account")` gives
    `NO_ACTIVE_ACCOUNT`), else its class default (`NOT_FOUND`, `PERMISSION_DENIED`,
    `INVALID` for validation errors, `THROTTLED`). Field errors stay as DRF returns them.
    """
    if isinstance(exc, RequestDataTooBig):
        return Response(_too_large_body(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return Response(_bad_request_body(), status=status.HTTP_400_BAD_REQUEST)
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


def _too_large_body():
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return {
        "detail": f"The request body is larger than the {limit} bytes accepted.",
        "error_code": "REQUEST_TOO_LARGE",
        "max_bytes": limit,
    }


def _bad_request_body():
    return {"detail": "Bad request.", "error_code": "BAD_REQUEST"}


def is_api_request(request):
    return request.path.startswith(API_PREFIX)


def _resolves_to_an_endpoint(path):
    try:
        return resolve(path).func is not api_not_found
    except Resolver404:
        return False


def api_not_found(request, path=""):
    """The last route under /api/: an unknown path answers a JSON 404, in DEBUG too. A
    path that exists with a trailing slash is redirected as APPEND_SLASH would (this
    route matches first, so CommonMiddleware no longer sees a 404)."""
    slashed = f"{request.path_info}/"
    if (
        settings.APPEND_SLASH
        and request.method in ("GET", "HEAD")
        and not request.path_info.endswith("/")
        and _resolves_to_an_endpoint(slashed)
    ):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return JsonResponse(
        {"detail": f"No API endpoint at {request.path}.", "error_code": "NOT_FOUND"}, status=404
    )


# The root URLconf's error handlers (DEBUG off): JSON under /api/, Django's pages elsewhere.


def bad_request(request, exception=None):
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(_too_large_body(), status=413)
    return JsonResponse(_bad_request_body(), status=400)


def permission_denied(request, exception=None):
    if not is_api_request(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(
        {"detail": "You may not do this.", "error_code": "PERMISSION_DENIED"}, status=403
    )


def page_not_found(request, exception=None):
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return api_not_found(request)


def server_error(request):
    if not is_api_request(request):
        return defaults.server_error(request)
    # Django has logged the exception with its traceback; the client learns nothing of it.
    return JsonResponse(
        {"detail": "Internal server error.", "error_code": "INTERNAL_ERROR"}, status=500
    )

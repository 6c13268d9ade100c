"""Authenticating sockets: JWT (query, header or `auth` message) or the session cookie."""

from importlib import import_module
from urllib.parse import urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.http.request import validate_host
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from realtime import access


class AuthFailed(Exception):
    """Credentials were given and are not valid (bad, expired, or an inactive user)."""


def header(scope, name):
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_token(scope):
    value = header(scope, b"authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def origin_allowed(scope):
    """Browsers send Origin; a cross-site page must not ride on a user's cookie.
    Clients that send no Origin (scripts, services with a token) are not browsers."""
    origin = header(scope, b"origin")
    if not origin:
        return True
    if origin in settings.REALTIME["ALLOWED_ORIGINS"]:
        return True
    host = urlsplit(origin).netloc.rsplit("@", 1)[-1]
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    allowed = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    return validate_host(hostname, allowed)


def token_claims(raw_token):
    """(user id, expiry as a UNIX time) of a valid access token; raises AuthFailed. Checks
    the signature and the expiry only: no database."""
    try:
        token = AccessToken(raw_token)
    except TokenError as exc:
        raise AuthFailed(f"Authentication token invalid or expired: {exc}") from None
    return token.get(api_settings.USER_ID_CLAIM), float(token["exp"])


async def principal_from_token(raw_token):
    """(principal, expiry) for a valid access token of an active user; raises AuthFailed.

    The user is read from the database unless this process holds a fresh snapshot of
    them: snapshots are dropped in every process whenever a user's access changes
    (deactivated, deleted, roles), so one that is held is as current as the live sockets'
    checks. Thousands of sockets of one user reconnecting at once then cost no query each.
    """
    user_id, expires_at = token_claims(raw_token)
    principal = None
    pk = get_user_model()._meta.pk
    if pk.attname == api_settings.USER_ID_FIELD:
        try:
            principal = access.cached_principal(pk.to_python(user_id))  # the claim is text
        except ValidationError:
            raise AuthFailed("Authentication token names no active user") from None
    if principal is None:
        principal = await _read_principal(user_id)
    return principal, expires_at


@database_sync_to_async
def _read_principal(user_id):
    user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not user.is_active:
        raise AuthFailed("Authentication token names no active user")
    return access.principal_for(user)


async def session_user(scope):
    """The logged-in user of the session cookie, or None."""
    session_key = parse_cookie(header(scope, b"cookie") or "").get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # Channels' get_user does what django.contrib.auth.get_user does for a request,
    # session hash check included; it only needs the session.
    user = await get_user({"session": session})
    return user if user.is_authenticated and user.is_active else None

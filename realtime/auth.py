"""Authenticating sockets: JWT (query, header or `auth` message) or the session cookie."""

import asyncio
import contextlib
import functools
import hashlib
from importlib import import_module
from urllib.parse import urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from realtime import access, clock


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
    Clients that send no Origin (scripts, services with a token) are not browsers.

    As Django's CSRF check does, the whole origin (scheme, host and port) must be the
    socket's own (the scheme the connection came in on, its Host header, which must be
    an allowed host) or one of REALTIME_ALLOWED_ORIGINS / CSRF_TRUSTED_ORIGINS
    (`https://*.example.com` matches subdomains)."""
    origin = header(scope, b"origin")
    if not origin:
        return True
    origin = origin.strip().lower()
    trusted = [
        *settings.REALTIME["ALLOWED_ORIGINS"],
        *getattr(settings, "CSRF_TRUSTED_ORIGINS", ()),
    ]
    if any(_origin_matches(origin, item.lower()) for item in trusted):
        return True
    host = (header(scope, b"host") or "").strip().lower()
    hostname, _port = split_domain_port(host)
    if not hostname or not validate_host(hostname, allowed_hosts()):
        return False
    return origin == f"{http_scheme(scope)}://{host}"


def _origin_matches(origin, trusted):
    if "://*." not in trusted:
        return origin == trusted
    scheme, _, pattern = trusted.partition("://*.")
    given = urlsplit(origin)
    return given.scheme == scheme and (given.netloc or "").endswith("." + pattern)


def allowed_hosts():
    """ALLOWED_HOSTS as Django's request checks it (with DEBUG, the loopback names)."""
    return settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])


def http_scheme(scope):
    """http or https: how the browser reached the socket (through a TLS proxy, the
    header SECURE_PROXY_SSL_HEADER names, as for requests)."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        name = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
        value = header(scope, name)
        if value is not None:
            return "https" if value.split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


# Access tokens whose signature was checked, by digest (never the token itself):
# {digest: (user id claim, expiry)}. Thousands of sockets come back with the same few
# tokens after a deploy (a user's tabs, a service's workers); checking a signature costs
# more than the rest of a connect. A token's claims never change, its expiry is checked on
# every use, and the dictionary is emptied when full.
_verified = {}
VERIFIED_TOKENS = 4096


def forget_verified_tokens():
    """Check every token's signature again (a signing key changed; tests)."""
    _verified.clear()


def token_claims(raw_token):
    """(user id, expiry as a UNIX time) of a valid access token; raises AuthFailed. Checks
    the signature and the expiry only: no database."""
    key = _digest(raw_token)
    known = _known_claims(key)
    if known is not None:
        return known
    try:
        token = AccessToken(raw_token)
    except TokenError as exc:
        raise AuthFailed(f"Authentication token invalid or expired: {exc}") from None
    return _remember(key, token)


def known_token_claims(raw_token):
    """`token_claims` of a token whose signature was checked here before, else None
    without checking it; raises AuthFailed once it has expired."""
    return _known_claims(_digest(raw_token))


def _digest(raw_token):
    return hashlib.sha256(raw_token.encode("utf-8", "replace")).digest()


def _known_claims(key):
    """The claims of a token whose signature was checked here before, or None; raises
    AuthFailed once it has expired."""
    known = _verified.get(key)
    if known is not None and known[1] <= clock.now():
        raise AuthFailed("Authentication token invalid or expired: Token is expired")
    return known


def _remember(key, token):
    """Keep the claims of a token whose signature was just checked; raises AuthFailed
    (keeping nothing) if it has expired by our clock."""
    claims = (token.get(api_settings.USER_ID_CLAIM), float(token["exp"]))
    if claims[1] <= clock.now():  # simplejwt reads the real clock; ours may be ahead
        raise AuthFailed("Authentication token invalid or expired: Token is expired")
    if len(_verified) >= VERIFIED_TOKENS:
        _verified.clear()
    _verified[key] = claims
    return claims


async def principal_from_token(raw_token):
    """(principal, expiry) for a valid access token of an active user; raises AuthFailed.

    The user is read from the database unless this process holds a fresh snapshot of
    them: snapshots are dropped in every process whenever a user's access changes
    (deactivated, deleted, roles), so one that is held is as current as the live sockets'
    checks. Thousands of sockets of one user reconnecting at once then cost no query each.
    """
    user_id, expires_at = token_claims(raw_token)
    principal = cached_principal_of_claim(user_id)
    if principal is None:
        principal = await _shared_read(user_id)
    return principal, expires_at


def cached_principal_of_claim(user_id):
    """The fresh snapshot held for a token's user id claim, or None (no database; raises
    AuthFailed for a claim that cannot name a user)."""
    pk = get_user_model()._meta.pk
    if pk.attname != api_settings.USER_ID_FIELD:
        return None  # tokens name users by another field: the snapshot cannot be found
    try:
        return access.cached_principal(pk.to_python(user_id))  # the claim is text
    except ValidationError:
        raise AuthFailed("Authentication token names no active user") from None


def authenticated_at_once(raw_token):
    """(principal, expiry) of a token known to authenticate without asking anyone:
    valid, and its user has a fresh snapshot here (so the user is active); else None.
    No database, no store."""
    try:
        user_id, expires_at = token_claims(raw_token)
        principal = cached_principal_of_claim(user_id)
    except AuthFailed:
        return None
    return None if principal is None else (principal, expires_at)


# Snapshot reads under way: {(event loop, user id claim, access.forgotten()): task}.
_reads = {}


async def _shared_read(user_id):
    """The user's snapshot, read once for every socket of theirs that finds none at the
    same time: when it expires during a reconnect storm, the hundred sockets connecting
    then would each read it (a queue of queries on the database thread, holding the
    interpreter from the connects). A read begun before a change's `access.forget` is
    not shared with sockets that come after it."""
    loop = asyncio.get_running_loop()
    key = (loop, user_id, access.forgotten())
    task = _reads.get(key)
    if task is None:
        task = _reads[key] = loop.create_task(_read_principal(user_id))
        task.add_done_callback(functools.partial(_read_done, key))
    try:
        return await asyncio.shield(task)  # a socket that goes away leaves it to the others
    except AuthFailed as exc:
        raise AuthFailed(str(exc)) from None  # one exception each, not one raised by all


def _read_done(key, task):
    _reads.pop(key, None)
    if not task.cancelled():
        task.exception()  # retrieved: every socket that waited may have gone


@database_sync_to_async
def _read_principal(user_id):
    user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not user.is_active:
        raise AuthFailed("Authentication token names no active user")
    return access.principal_for(user)


class SnapshotJWTAuthentication(JWTAuthentication):
    """simplejwt's JWT authentication for DRF, without the user query when this process
    holds a fresh snapshot of the token's user (`realtime.access`), and without checking
    again the signature of a token this process verified (`token_claims`).

    The snapshot is what the realtime permissions check anyway; it exists only for an
    active user and is dropped in every process when the user's access changes (and read
    again after REALTIME_ACCESS_CHECK_INTERVAL at most), so a deactivated user is refused
    as soon as the live sockets are. The user handed to the view is built from it (id,
    username, superuser flag): enough for the endpoints that use this class, which read
    nothing else from `request.user`. Without a snapshot, or with simplejwt's password
    check on (CHECK_REVOKE_TOKEN), the user is read as simplejwt does and snapshotted.
    """

    def get_validated_token(self, raw_token):
        """The access token, its signature checked once per process (`token_claims`
        keeps it) and its expiry on every use. A token not known valid, or with other
        token classes configured, goes through simplejwt's checks and its errors, once."""
        if list(api_settings.AUTH_TOKEN_CLASSES) != [AccessToken]:
            return super().get_validated_token(raw_token)
        text = raw_token.decode("latin-1") if isinstance(raw_token, bytes) else raw_token
        key = _digest(text)
        with contextlib.suppress(AuthFailed):  # expired by our clock: simplejwt decides
            if _known_claims(key) is not None:
                # Checked before (signature, token type) and not expired: decoded
                # without the checks.
                return AccessToken(text, verify=False)
        token = super().get_validated_token(raw_token)
        with contextlib.suppress(AuthFailed):  # valid by simplejwt's clock, not by ours
            _remember(key, token)
        return token

    def get_user(self, validated_token):
        principal = None
        if not api_settings.CHECK_REVOKE_TOKEN:
            try:
                principal = cached_principal_of_claim(
                    validated_token.get(api_settings.USER_ID_CLAIM)
                )
            except AuthFailed:
                principal = None  # simplejwt's own lookup gives its own error
        if principal is None:
            user = super().get_user(validated_token)
            access.principal_for(user)  # snapshotted for the next request
            return user
        return get_user_model()(
            pk=principal.user_id,
            is_active=True,
            is_superuser=principal.is_superuser,
            **{get_user_model().USERNAME_FIELD: principal.username},
        )


def session_key(scope):
    """The session cookie's value, or None."""
    return parse_cookie(header(scope, b"cookie") or "").get(settings.SESSION_COOKIE_NAME)


async def session_user(scope):
    """The logged-in user of the session cookie, or None."""
    key = session_key(scope)
    if not key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    # Channels' get_user does what django.contrib.auth.get_user does for a request,
    # session hash check included; it only needs the session.
    user = await get_user({"session": session})
    return user if user.is_authenticated and user.is_active else None

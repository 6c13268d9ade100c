"""Who a socket belongs to: the four ways to authenticate one, and the failures."""

import asyncio
from typing import NamedTuple

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from realtime import access, auth_failures
from realtime.auth import (
    AuthFailed,
    authenticated_at_once,
    bearer_token,
    principal_from_token,
    session_key,
    session_user,
)
from realtime.consumers.protocol import ProtocolError, auth_token
from realtime.hub import get_hub


class Credentials(NamedTuple):
    """Who authenticated a socket, and how."""

    principal: object  # realtime.access.Principal
    expires_at: object  # the token's expiry (a datetime), None for a session
    method: str  # "token" (query string or header), "session" or "auth_message"
    session_key: str | None = None  # the session cookie's key, for "session"
    request_id: object = None  # the `auth` message's id, for "auth_message"


class SocketAuthenticator:
    """How one socket proves who it is, in one of four ways: a JWT in the query string
    (`?token=`) or in an `Authorization: Bearer` header, the session cookie, or, with
    none of those, a JWT in a first `auth` message within REALTIME_AUTH_TIMEOUT (which
    keeps tokens out of URLs). It also counts and audits failures, refuses before the
    handshake credentials that keep failing from one source, and renews the token of a
    live socket."""

    __slots__ = ("scope", "token", "credential", "known", "timer")

    def __init__(self, scope, query):
        self.scope = scope
        # Not kept: a socket lives long, its token is checked once, in from_handshake().
        self.token = query.pop("token", None) or bearer_token(scope)
        self.credential = self.token or session_key(scope)  # what failures count against
        self.known = None  # the token's (principal, expiry), when known to authenticate
        self.timer = None

    @property
    def failure_key(self):
        """The store key of the credential's failures from this source, None without one
        (a digest: made only when needed, which most connects never are)."""
        if not self.credential:
            return None
        return auth_failures.credential_key(self.scope, self.credential)

    async def failed_repeatedly(self):
        """Whether the handshake's credentials keep failing from here (a client
        reconnecting with an expired token): refused before accepting, counted, not
        audited alone."""
        # A token known to work (valid, its user snapshotted here) is not looked up in
        # the failure counts: a round trip to the store saved on most connects.
        self.known = authenticated_at_once(self.token) if self.token else None
        if (
            self.credential
            and self.known is None
            and await auth_failures.failed_repeatedly(get_hub().store, self.failure_key)
        ):
            auth_failures.audit().refused_early(self.scope)
            return True
        return False

    async def from_handshake(self):
        """The credentials of the handshake (a token, else the session cookie), or None
        when it carried none. Raises AuthFailed."""
        token, self.token = self.token, None
        if token:
            known, self.known = self.known, None
            # Known to authenticate a moment ago (failed_repeatedly): not checked twice.
            principal, expires_at = known or await principal_from_token(token)
            return Credentials(principal, expires_at, "token")
        user = await session_user(self.scope)
        if user is None:
            return None
        principal = await database_sync_to_async(access.principal_for)(user)
        # The key is kept to close the socket when the session ends (logout, expiry,
        # password change).
        return Credentials(principal, None, "session", session_key=session_key(self.scope))

    async def from_message(self, message, request_id):
        """The credentials of a first `auth` message. Raises ProtocolError (no token)
        and AuthFailed."""
        token = auth_token(message)
        self.credential = token
        principal, expires_at = await principal_from_token(token)
        return Credentials(principal, expires_at, "auth_message", request_id=request_id)

    @staticmethod
    async def renewed(data, principal):
        """The expiry of the new token an `auth` message gives a live socket (of the same
        user only). Raises ProtocolError."""
        token = auth_token({"data": data})
        try:
            renewed, expires_at = await principal_from_token(token)
        except AuthFailed as exc:
            raise ProtocolError("AUTH_FAILED", str(exc)) from None
        if renewed.user_id != principal.user_id:
            raise ProtocolError("AUTH_FAILED", "The token belongs to another user")
        return expires_at

    def no_credentials(self):
        """The client sent something else than `auth` first: nothing to count."""
        self.credential = None

    async def failed(self, reason, client_id):
        """Counted against the credentials, audited once per source and window."""
        if self.credential:
            await auth_failures.count_failure(get_hub().store, self.failure_key)
        details = {"client_id": client_id, "reason": reason, "path": self.scope.get("path")}
        await auth_failures.audit().failed(self.scope, details)

    def wait_for_message(self, on_timeout):
        """No credentials yet: `on_timeout()` runs unless stop_waiting() comes first."""
        self.timer = asyncio.get_running_loop().call_later(
            settings.REALTIME["AUTH_TIMEOUT"], on_timeout
        )

    def stop_waiting(self):
        if self.timer is not None:
            self.timer.cancel()


async def current_principal(user_id):
    """The user's principal read afresh; None once the account is gone or inactive. One
    trip to a database thread reads both."""
    return await database_sync_to_async(_read_current_principal)(user_id)


def _read_current_principal(user_id):
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return None
    return access.principal_for(user)

"""`POST /api/realtime/publish/` of one event, answered without Django's request cycle
when nothing but a 201 can come of it.

An integration publishing events one per request spends most of each request in the
framework: Django's ASGI handler (three hops to the request's thread: `request_started`,
the middleware and view, the response's close), eight middleware and DRF's dispatch,
for a request whose every check needs no database. This ASGI layer sits in front of
Django for that one path and serves the common case itself:

- a POST of a JSON object (`Content-Type: application/json`) of at most 64 KiB, its
  Content-Length given and matching the body, no Accept but `*/*` or `application/json`
  and no `?format=`, to an allowed Host, with a Bearer access token whose signature this
  process checked before and whose user has a fresh snapshot here holding the publish
  permission (the checks `SnapshotJWTAuthentication` and `CanPublish` make, no
  database);
- a body that the endpoint's own serializer (`PublishSerializer`) accepts.

Such a request is published through `realtime.publishing.publish_each` (one hop to a
publishing thread; concurrent ones share an INSERT and a commit) and answered 201 with
the view's body and headers once its event is committed; its event goes to the hubs
after that answer (the view sends before its response: a hub that misses the send here
still finds the event by its event-table poll). Anything else (another method or path, a
session cookie instead of a token, a token not seen here, a list, form data, invalid
input, a larger or chunked body, another Accept, a request a security setting would
redirect, too many events waiting) goes to Django unchanged, its body replayed, and gets
the view's answer, errors and `error_code`s included. The fast path's own answers besides
the 201 are the view's for the same database outcome: 400 `INVALID_EVENT_DATA` when the
database refuses the event's data, 503 `PUBLISH_FAILED` (with Retry-After) when it fails
otherwise. `PUBLISH_FAST_PATH=false` turns the layer off.
"""

import asyncio
import contextvars
import logging
import weakref
from io import BytesIO
from urllib.parse import parse_qs

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from realtime import auth
from realtime.catalogue import PUBLISH
from realtime.group_commit import each_its_own
from realtime.parsers import BoundedJSONParser
from realtime.publish_lanes import Lanes
from realtime.publishing import PublishError, publish_each
from realtime.transport import send_held, sends_held
from realtime.views import InvalidEventData, PublishFailed, error_body, publish_checker

logger = logging.getLogger(__name__)

PATH = "/api/realtime/publish/"
JSON = "application/json"
# Bodies parsed and validated on the event loop: larger ones go to the view's thread.
FAST_BODY_MAX = 64 * 1024

_parser = BoundedJSONParser()
_renderer = JSONRenderer()


def _publish_group(items):
    """`publish_each` in a publishing lane's thread (`realtime.publish_lanes`, which
    keeps the thread's database connection between groups). The outcomes are
    publish_each's: once it returned, its events are committed."""
    return publish_each(items)


# The threads that store the fast path's events, a group each (_Groups).
publishing_lanes = Lanes(_publish_group, "publish")


class PublishFastPath:
    """ASGI middleware: serves eligible single-event publishes, passes the rest on."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == PATH
            and settings.PUBLISH_FAST_PATH
            and eligible(scope)
        ):
            return await self.application(scope, receive, send)
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client left before its body was read: nothing to answer
        values = None
        if complete and len(body) == int(dict(scope["headers"])[b"content-length"]):
            values = checked_event(body)  # else the view answers the mismatch
        outcome = None
        if values is not None:
            outcome = await _groups().publish(
                values["event_type"],
                values["data"],
                {"priority": values.get("priority"), "recipients": values.get("recipients")},
            )
        if outcome is None or isinstance(outcome, PublishError):
            # Not for this path, too many waiting, or not stored: the view says why.
            return await self.application(scope, _replay(body, complete, receive), send)
        if isinstance(outcome, (DataError, IntegrityError)):
            logger.error(
                "the database refused a published %s event", values["event_type"], exc_info=outcome
            )
            return await _answer(send, scope, 400, error_body(InvalidEventData))
        if isinstance(outcome, DatabaseError):
            logger.error(
                "storing a published %s event failed", values["event_type"], exc_info=outcome
            )
            retry_after = [(b"retry-after", str(PublishFailed.wait).encode())]
            return await _answer(send, scope, 503, error_body(PublishFailed), retry_after)
        if isinstance(outcome, Exception):
            raise outcome
        published = {"message_id": outcome.message_id, "event_type": outcome.event_type}
        return await _answer(send, scope, 201, published)


# Events the fast path of one event loop holds waiting for the group being stored; beyond
# this the request goes to the view (its thread pool bounds it) instead of queueing here.
MAX_WAITING = 1000


class _Groups:
    """The fast path's events of one event loop, stored a group at a time: those that
    arrive while every lane is storing a group form the next one (one hop to a publishing
    thread, one INSERT, one commit). Each of `lanes` (`realtime.publish_lanes`) stores a
    group at a time, with its own database connection (PUBLISH_COMMITS_IN_FLIGHT, 1:
    with more, overlapping groups' ids interleave and their events reach the hubs out of
    id order). Each request is answered once its own event is committed; the groups'
    events then go to the hubs in the order the groups were stored (the view sends before
    it answers; here a missed send is caught by the hubs' event-table poll)."""

    def __init__(self, lanes):
        self.free = list(lanes)  # the lanes storing no group now
        self.waiting = []  # ((event_type, data, options), future)
        self.storing = set()  # the tasks storing a group each (the loop keeps weak references)
        self.sending = None  # the task sending the last stored group

    async def publish(self, event_type, data, options):
        """The stored Event, the exception storing it raised, or None if too many events
        wait already (the caller hands the request to the view)."""
        if len(self.waiting) >= MAX_WAITING:
            return None
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(((event_type, data, options), future))
        if self.free:
            self._store_next()
        # Shielded: a request given up on (its client left) leaves its event to its group.
        return await asyncio.shield(future)

    def _store_next(self):
        """Take every waiting event into a group and start storing it."""
        group, self.waiting = self.waiting, []
        # The lane used last: its connection is the one most likely kept (others give
        # theirs back when they have been idle a while).
        lane = self.free.pop()
        # A context of its own: the group's sends are not the starting request's.
        task = asyncio.get_running_loop().create_task(
            self._store(lane, group), context=contextvars.Context()
        )
        self.storing.add(task)

    async def _store(self, lane, group):
        held = []
        try:
            with sends_held(held):
                outcomes = await lane.run([item for item, _ in group])
        except Exception as exc:  # nothing was stored: every event of the group
            outcomes = each_its_own(exc, len(group))
        except BaseException:  # cancelled (the loop closes): no request waits on
            for _, future in group + self.waiting:
                if not future.done():
                    future.set_result(RuntimeError("the publishing was cancelled"))
            self.waiting = []
            raise
        finally:
            self.storing.discard(asyncio.current_task())
            self.free.append(lane)
        if self.waiting and self.free:
            self._store_next()
        futures = [future for _, future in group]
        self.sending = asyncio.ensure_future(
            _answer_then_send(self.sending, held, futures, outcomes)
        )


async def _answer_then_send(previous, held, futures, outcomes):
    """Answer a stored group's requests (their events are committed), then send its
    events after the group before it: a hub that misses a send still finds the events
    in the event table."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if not future.done():
            future.set_result(outcome)
    if previous is not None:
        await asyncio.wait([previous])
    await send_held(held)


_loop_groups = weakref.WeakKeyDictionary()  # event loop -> _Groups


def _groups():
    loop = asyncio.get_running_loop()
    groups = _loop_groups.get(loop)
    if groups is None:
        groups = _loop_groups[loop] = _Groups(
            publishing_lanes.get(settings.PUBLISH_COMMITS_IN_FLIGHT)
        )
    return groups


def eligible(scope):
    """Whether the request's headers alone allow the fast path: JSON, an allowed Host, no
    redirect to HTTPS due, and a Bearer token known valid here whose user, snapshotted
    here, may publish. No database."""
    headers = dict(scope["headers"])
    if len(headers) != len(scope["headers"]):
        return False  # a repeated header: Django joins them, and answers for itself
    if headers.get(b"accept", b"*/*").replace(b" ", b"").lower() not in (b"*/*", JSON.encode()):
        return False  # DRF's content negotiation answers another Accept (a 406, or HTML)
    if "format" in parse_qs(scope.get("query_string", b"").decode("latin-1")):
        return False  # ?format= picks DRF's renderer
    length = headers.get(b"content-length", b"")
    if not length.isdigit() or int(length) > body_limit():
        return False  # chunked (no length), or too large to parse on the event loop
    content_type = headers.get(b"content-type", b"").decode("latin-1").lower().replace(" ", "")
    if content_type not in (JSON, f"{JSON};charset=utf-8"):
        return False  # another type or charset: DRF reads those, not this path
    host, _port = split_domain_port(headers.get(b"host", b"").decode("latin-1").lower())
    if not host or not validate_host(host, auth.allowed_hosts()):
        return False
    if (settings.SECURE_SSL_REDIRECT and not _secure(scope)) or settings.DISALLOWED_USER_AGENTS:
        return False
    # What SnapshotJWTAuthentication accepts without asking anyone: simplejwt's header
    # (its name and types, compared as simplejwt does), access tokens only, no revoke check.
    if (
        jwt_settings.AUTH_HEADER_NAME != "HTTP_AUTHORIZATION"
        or list(jwt_settings.AUTH_TOKEN_CLASSES) != [AccessToken]
        or jwt_settings.CHECK_REVOKE_TOKEN
    ):
        return False
    header_types = jwt_settings.AUTH_HEADER_TYPES
    if not isinstance(header_types, (list, tuple)):
        header_types = (header_types,)  # as simplejwt reads a single type
    parts = headers.get(b"authorization", b"").split()
    if len(parts) != 2 or parts[0].decode("latin-1") not in header_types:
        return False
    try:
        # Only a token whose signature was checked here before (no signature check on
        # the event loop): an unseen one goes to the view, which checks and keeps it.
        claims = auth.known_token_claims(parts[1].decode("latin-1"))
        principal = claims and auth.cached_principal_of_claim(claims[0])
    except auth.AuthFailed:
        return False
    return principal is not None and principal.has_perm(PUBLISH)


def checked_event(body):
    """The validated values of a single-event JSON body, or None (a list, bad JSON, too
    large, invalid: the view answers those)."""
    if len(body) > body_limit() or not body.lstrip().startswith(b"{"):
        return None  # a list is the view's, not parsed twice
    try:
        data = _parser.parse(BytesIO(body), JSON, {"encoding": "utf-8"})
    except ParseError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return publish_checker.run_validation(data)
    except ValidationError:
        return None


def body_limit():
    """The largest body this path takes: FAST_BODY_MAX (parsed and checked on the event
    loop, so small), less if Django takes less (DATA_UPLOAD_MAX_MEMORY_SIZE, None: no
    limit)."""
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return FAST_BODY_MAX if django_limit is None else min(FAST_BODY_MAX, django_limit)


async def _read_body(receive):
    """(body, complete): complete is False when the body is larger than this path takes
    (the rest is not read here); (None, False) when the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > body_limit():
            return b"".join(chunks), False


def _replay(body, complete, receive):
    """`receive` for the next application: what was read, then the rest from the client."""
    given = False

    async def replayed():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed


async def _answer(send, scope, status, payload, extra_headers=()):
    content = _renderer.render(payload)
    headers = [
        *extra_headers,
        (b"content-type", JSON.encode()),
        (b"vary", b"Accept"),
        (b"allow", b"POST, OPTIONS"),
        (b"content-length", str(len(content)).encode()),
        *_security_headers(scope),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _security_headers(scope):
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to the view's
    answer (tests/realtime/test_fast_publish.py compares the two paths' headers)."""
    headers = []
    if settings.X_FRAME_OPTIONS:
        headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
    if settings.SECURE_HSTS_SECONDS and _secure(scope):
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(
            (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
        )
    return headers


def _secure(scope):
    return auth.http_scheme(scope) == "https"

"""`POST /api/realtime/publish/` of one event before Django's request cycle
(realtime/fast_publish.py): same answers as the view, errors left to the view."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings as django_settings
from django.core.signals import request_started
from django.db import DatabaseError, DataError

from realtime import publishing
from realtime.fast_publish import PublishFastPath
from realtime.group_commit import GroupCommit
from realtime.models import Event
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/realtime/publish/"
TIMEOUT = 20  # seconds: a loaded machine, not a hung request


@pytest.fixture
def https(settings):
    """Requests through a TLS proxy, HSTS on (set before the middleware is built)."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True


@pytest.fixture
async def server(request, settings):
    """The fast path in front of the server's Django handler, counting the requests that
    reach Django. On even where the suite runs with fast paths off: it is what is tested."""
    from threatlens.handlers import ThreadKeepingASGIHandler

    settings.PUBLISH_FAST_PATH = True
    if "https" in request.fixturenames:
        request.getfixturevalue("https")
    handler = ThreadKeepingASGIHandler()
    reached = []

    def count(**kwargs):
        reached.append(1)

    request_started.connect(count)
    application = PublishFastPath(handler)
    application.reached_django = reached
    yield application
    request_started.disconnect(count)
    handler.request_threads.close(wait=True)


async def post(application, body, token=None, content_type=b"application/json", host=b"localhost"):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [(b"host", host), (b"content-type", content_type)]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    response = await HttpCommunicator(application, "POST", URL, body, headers).get_response(
        timeout=TIMEOUT
    )
    response["json"] = json.loads(response["body"]) if response["body"] else None
    response["headers"] = {
        name.lower(): value
        for name, value in response["headers"]
        if name.lower() != b"content-length"
    }
    return response


def stored(**filters):
    return Event.objects.filter(event_type="security_event", **filters).count()


@pytest.fixture
async def carol_token(carol, token_for):
    return await sync_to_async(token_for)(carol)


async def test_a_known_token_publishes_without_django_and_answers_as_the_view(
    server, carol_token, settings
):
    first = await post(server, {"event_type": "security_event", "data": {"n": 1}}, carol_token)
    assert first["status"] == 201 and len(server.reached_django) == 1  # snapshots carol
    fast = await post(server, {"event_type": "security_event", "data": {"n": 2}}, carol_token)
    assert fast["status"] == 201 and len(server.reached_django) == 1
    assert fast["json"] == {
        "message_id": fast["json"]["message_id"],
        "event_type": "security_event",
    }
    assert int(fast["json"]["message_id"]) > int(first["json"]["message_id"])
    assert fast["headers"] == first["headers"]  # the view's, security headers included
    assert await sync_to_async(stored)(data__n=2) == 1

    settings.PUBLISH_FAST_PATH = False
    slow = await post(server, {"event_type": "security_event", "data": {"n": 3}}, carol_token)
    assert slow["status"] == 201 and len(server.reached_django) == 2


async def test_https_headers_are_the_views_too(https, server, carol_token):
    answers = []
    for _ in range(2):
        body = json.dumps({"event_type": "security_event", "data": {}}).encode()
        headers = [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {carol_token}".encode()),
            (b"x-forwarded-proto", b"https"),
            (b"content-length", str(len(body)).encode()),
        ]
        answers.append(
            await HttpCommunicator(server, "POST", URL, body, headers).get_response(TIMEOUT)
        )
    assert [answer["status"] for answer in answers] == [201, 201]
    assert len(server.reached_django) == 1
    django_headers, fast_headers = (
        sorted((n.lower(), v) for n, v in answer["headers"] if n.lower() != b"content-length")
        for answer in answers
    )
    assert fast_headers == django_headers
    assert (b"strict-transport-security", b"max-age=3600; includeSubDomains") in fast_headers


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "nope", "data": {}}, "event_type"),
        ({"event_type": "security_event", "data": "text"}, "data"),
        ({"event_type": "security_event", "data": {}, "priority": 11}, "priority"),
        ({"event_type": "zone_created", "data": {}}, "recipients"),
        (b'{"event_type": "security_event", "data": ', "detail"),
    ],
)
async def test_bad_input_gets_the_views_error_code_and_stores_nothing(
    server, carol_token, body, field
):
    await post(server, {"event_type": "security_event", "data": {"n": 0}}, carol_token)
    response = await post(server, body, carol_token)
    assert response["status"] == 400
    assert response["json"]["error_code"] in ("INVALID", "PARSE_ERROR")
    assert field in response["json"]
    assert len(server.reached_django) == 2  # the error is the view's own
    assert await sync_to_async(stored)() == 1


async def test_a_viewer_may_not_publish_and_no_token_is_refused(
    server, bob, token_for, carol_token
):
    bob_token = await sync_to_async(token_for)(bob)
    for _ in range(2):  # the second time bob's snapshot is held
        response = await post(server, {"event_type": "security_event", "data": {}}, bob_token)
        assert response["status"] == 403
        assert response["json"]["error_code"] == "PERMISSION_DENIED"
    response = await post(server, {"event_type": "security_event", "data": {}})
    assert response["status"] == 401 and response["json"]["error_code"] == "NOT_AUTHENTICATED"
    response = await post(server, {"event_type": "security_event", "data": {}}, "not-a-token")
    assert response["status"] == 401 and response["json"]["error_code"] == "TOKEN_NOT_VALID"
    assert await sync_to_async(stored)() == 0


async def test_an_unknown_host_is_refused_by_django(server, carol_token):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    response = await post(
        server, {"event_type": "security_event", "data": {}}, carol_token, host=b"evil.example"
    )
    assert response["status"] == 400
    assert await sync_to_async(stored)() == 1


async def test_another_charset_or_a_repeated_header_goes_through_the_view(server, carol_token):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    body = '{"event_type": "security_event", "data": {"city": "Düsseldorf"}}'.encode("latin-1")
    response = await post(
        server, body, carol_token, content_type=b"application/json; charset=latin-1"
    )
    assert response["status"] == 201 and len(server.reached_django) == 2
    stored_city = await sync_to_async(
        lambda: Event.objects.get(pk=response["json"]["message_id"]).data["city"]
    )()
    assert stored_city == "Düsseldorf"
    body = json.dumps({"event_type": "security_event", "data": {}}).encode()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {carol_token}".encode()),
        (b"authorization", b"Bearer not-a-token"),
        (b"content-length", str(len(body)).encode()),
    ]
    answer = await HttpCommunicator(server, "POST", URL, body, headers).get_response(TIMEOUT)
    assert answer["status"] == 401 and len(server.reached_django) == 3


async def test_lists_and_forms_go_through_the_view(server, carol_token):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    items = [{"event_type": "security_event", "data": {"n": n}} for n in range(3)]
    response = await post(server, items, carol_token)
    assert response["status"] == 201 and len(response["json"]["events"]) == 3
    response = await post(
        server,
        b"event_type=security_event",
        carol_token,
        content_type=b"application/x-www-form-urlencoded",
    )
    assert response["status"] == 415  # the view takes JSON only
    assert response["json"]["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert len(server.reached_django) == 3
    assert await sync_to_async(stored)() == 4


def refuse(events=None):
    raise DatabaseError("disk I/O error")


async def test_a_database_failure_is_a_503_publish_failed_and_stores_nothing(
    server, carol_token, monkeypatch
):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    monkeypatch.setattr(publishing, "_store_many", refuse)
    monkeypatch.setattr(publishing, "_store_one", refuse)
    response = await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    assert response["status"] == 503 and response["headers"][b"retry-after"] == b"1"
    assert response["json"]["error_code"] == "PUBLISH_FAILED"
    assert len(server.reached_django) == 1  # answered by the fast path
    assert await sync_to_async(stored)() == 1


def refuse_data(events=None):
    raise DataError("unsupported Unicode escape sequence")


async def test_data_the_database_refuses_is_a_400_invalid_event_data(
    server, carol_token, monkeypatch
):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    monkeypatch.setattr(publishing, "_store_many", refuse_data)
    monkeypatch.setattr(publishing, "_store_one", refuse_data)
    response = await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    assert response["status"] == 400 and b"retry-after" not in response["headers"]
    assert response["json"]["error_code"] == "INVALID_EVENT_DATA"
    assert len(server.reached_django) == 1
    assert await sync_to_async(stored)() == 1


async def test_concurrent_requests_are_stored_in_groups_each_answered_its_own(
    server, carol_token, monkeypatch
):
    groups = []
    store_many = publishing._store_many

    def recording(events):
        groups.append(len(events))
        store_many(events)

    await post(server, {"event_type": "security_event", "data": {"n": -1}}, carol_token)
    monkeypatch.setattr(publishing, "_store_many", recording)
    answers = await asyncio.gather(
        *(
            post(server, {"event_type": "security_event", "data": {"n": n}}, carol_token)
            for n in range(8)
        )
    )
    assert [answer["status"] for answer in answers] == [201] * 8
    ids = [int(answer["json"]["message_id"]) for answer in answers]
    assert len(set(ids)) == 8 and sum(groups) == 8
    assert len(groups) < 8  # those that came while a group was stored waited for the next
    by_id = await sync_to_async(
        lambda: dict(Event.objects.filter(pk__in=ids).values_list("pk", "data__n"))
    )()
    assert [by_id[i] for i in ids] == list(range(8))


def test_a_database_failure_in_the_view_is_a_503_publish_failed_too(
    api_client, carol, token_for, monkeypatch
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    monkeypatch.setattr(publishing, "_stored_together", GroupCommit(refuse, refuse))
    response = api_client.post(URL, {"event_type": "security_event", "data": {}}, format="json")
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error_code"] == "PUBLISH_FAILED"
    assert stored() == 0


@pytest.mark.parametrize("many", [False, True])
def test_data_the_database_refuses_is_a_400_in_the_view_too(
    api_client, carol, token_for, monkeypatch, many
):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    monkeypatch.setattr(publishing, "_stored_together", GroupCommit(refuse_data, refuse_data))
    monkeypatch.setattr(publishing._OneStatementInsert, "execute", refuse_data)  # one INSERT
    body = {"event_type": "security_event", "data": {}}
    response = api_client.post(URL, [body, body] if many else body, format="json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_EVENT_DATA"
    assert stored() == 0


async def test_beyond_the_events_waiting_a_request_goes_to_the_view(
    server, carol_token, monkeypatch
):
    from realtime import fast_publish

    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    monkeypatch.setattr(fast_publish, "MAX_WAITING", 0)
    response = await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    assert response["status"] == 201 and len(server.reached_django) == 2
    assert await sync_to_async(stored)() == 2


async def test_a_failure_giving_the_connection_back_after_the_commit_is_no_503(
    server, carol_token, monkeypatch, caplog
):
    """The events are committed: a 503 ("nothing was published, retry") would duplicate
    them on retry. (The lane gives its connection back once idle: at once here.)"""
    from realtime import publish_lanes

    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    calls = []

    real = publish_lanes.connections.close_all

    def close_all():
        if not threading.current_thread().name.startswith("publish"):
            return real()
        calls.append(1)
        raise DatabaseError("connection lost while closing")

    monkeypatch.setattr(publish_lanes, "IDLE", 0)
    monkeypatch.setattr(publish_lanes.connections, "close_all", close_all)
    for _ in range(2):
        response = await post(server, {"event_type": "security_event", "data": {}}, carol_token)
        assert response["status"] == 201 and len(server.reached_django) == 1
    assert await sync_to_async(stored)() == 3
    # The lane gives back after answering: wait for it (and its log line) within the test.
    await until(
        lambda: calls and "giving back a publishing thread" in caplog.text,
        "the lane tried to give its connection back, and logged the failure",
    )


async def send_raw(application, body, headers, query_string=b""):
    scope_path = URL + (f"?{query_string.decode()}" if query_string else "")
    response = await HttpCommunicator(application, "POST", scope_path, body, headers).get_response(
        timeout=TIMEOUT
    )
    return response


@pytest.mark.parametrize(
    "accept, query, status",
    [
        (b"text/html", b"", 201),  # DRF's browsable API renders it, not this path
        (b"application/xml", b"", 406),
        (None, b"format=api", 201),
        (None, b"format=xml", 404),
    ],
)
async def test_another_accept_or_format_goes_through_the_view(
    server, carol_token, accept, query, status
):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    body = json.dumps({"event_type": "security_event", "data": {}}).encode()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {carol_token}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if accept:
        headers.append((b"accept", accept))
    response = await send_raw(server, body, headers, query)
    assert len(server.reached_django) == 2
    assert response["status"] == status


async def test_a_chunked_or_large_body_goes_through_the_view(server, carol_token, settings):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    body = json.dumps({"event_type": "security_event", "data": {}}).encode()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {carol_token}".encode()),
    ]
    chunked = await send_raw(server, body, [*headers, (b"transfer-encoding", b"chunked")])
    assert len(server.reached_django) == 2
    assert chunked["status"] == 400  # as the view answers a body it cannot read
    large = {"event_type": "security_event", "data": {"text": "x" * 70_000}}
    response = await post(server, large, carol_token)
    assert response["status"] == 201 and len(server.reached_django) == 3
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # no limit: not an error
    response = await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    assert response["status"] == 201 and len(server.reached_django) == 3


async def test_a_token_not_seen_here_goes_to_the_view_which_checks_it(
    server, carol, token_for, carol_token
):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    other_token = await sync_to_async(token_for)(carol)  # carol's snapshot is held
    response = await post(server, {"event_type": "security_event", "data": {}}, other_token)
    assert response["status"] == 201 and len(server.reached_django) == 2
    response = await post(server, {"event_type": "security_event", "data": {}}, other_token)
    assert response["status"] == 201 and len(server.reached_django) == 2  # now known


async def test_a_single_header_type_is_compared_whole_as_simplejwt_does(
    server, carol_token, monkeypatch
):
    from rest_framework_simplejwt.settings import api_settings

    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    monkeypatch.setattr(api_settings, "AUTH_HEADER_TYPES", "Bearer")  # as SIMPLE_JWT gives it
    body = json.dumps({"event_type": "security_event", "data": {}}).encode()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bear {carol_token}".encode()),  # "Bear" is in "Bearer"
        (b"content-length", str(len(body)).encode()),
    ]
    response = await send_raw(server, body, headers)
    assert response["status"] == 401 and len(server.reached_django) == 2


async def test_a_client_gone_before_its_body_is_answered_nothing(server, carol_token):
    await post(server, {"event_type": "security_event", "data": {}}, carol_token)
    scope = {
        "type": "http",
        "method": "POST",
        "path": URL,
        "query_string": b"",
        "scheme": "http",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {carol_token}".encode()),
            (b"content-length", b"60"),
        ],
    }
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(server(scope, receive, send), TIMEOUT)
    assert sent == [] and len(server.reached_django) == 1
    assert await sync_to_async(stored)() == 1


@pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="PostgreSQL's jsonb refuses a NUL",
)
async def test_a_nul_in_data_is_a_400_invalid_event_data_on_postgresql(server, carol_token):
    body = {"event_type": "security_event", "data": {"text": "a\u0000b"}}
    through_view = await post(server, body, carol_token)  # the first: snapshots carol
    fast = await post(server, body, carol_token)
    assert len(server.reached_django) == 1
    for response in (through_view, fast):
        assert response["status"] == 400
        assert response["json"]["error_code"] == "INVALID_EVENT_DATA"
    assert await sync_to_async(stored)() == 0

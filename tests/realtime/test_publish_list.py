"""`POST /api/realtime/publish/` with a list of events, and its user lookup from the snapshot."""

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.backends import TokenBackend

from realtime import access, auth
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/realtime/publish/"


@pytest.fixture
def as_carol(api_client, carol, token_for):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    return api_client


def published():
    return Event.objects.filter(event_type__in=("security_event", "zone_created"))


def event(n, **extra):
    return {"event_type": "security_event", "data": {"n": n}, **extra}


def test_a_list_of_events_is_published_in_order(as_carol):
    response = as_carol.post(URL, [event(1), event(2, priority=9), event(3)], format="json")
    assert response.status_code == 201
    published = response.json()["events"]
    stored = Event.objects.filter(pk__in=[item["message_id"] for item in published])
    assert [e.data["n"] for e in stored.order_by("pk")] == [1, 2, 3]
    assert [item["event_type"] for item in published] == ["security_event"] * 3
    assert stored.get(data__n=2).priority == 9


def statements(queries):
    """The statements run, less transaction control (SQLite's BEGIN and COMMIT, and the
    busy timeout `realtime.write_lock` sets around a publish)."""
    return [
        query["sql"].split()[0]
        for query in queries.captured_queries
        if query["sql"].split()[0] not in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "PRAGMA")
    ]


def test_a_list_is_one_insert_and_no_user_query(as_carol):
    assert as_carol.post(URL, [event(0)], format="json").status_code == 201  # snapshots carol
    with CaptureQueriesContext(connection) as queries:
        response = as_carol.post(URL, [event(n) for n in range(50)], format="json")
    assert response.status_code == 201
    assert statements(queries) == ["INSERT"]


def test_one_event_needs_no_user_query_once_the_user_is_snapshotted(as_carol):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert as_carol.post(URL, event(1), format="json").status_code == 201
    assert statements(queries) == ["INSERT"]


captured = []


def capturing_middleware(get_response):
    """Outermost middleware of the test below: the statements of each request, counted
    in the thread that serves it."""

    def middleware(request):
        with CaptureQueriesContext(connection) as queries:
            response = get_response(request)
        captured.append(statements(queries))
        return response

    return middleware


async def test_one_event_through_the_asgi_handler_is_one_insert(settings, carol, token_for):
    """The server's own path: the kept request thread, every middleware, the view."""
    from threatlens.handlers import ThreadKeepingASGIHandler

    settings.MIDDLEWARE = [f"{__name__}.capturing_middleware", *settings.MIDDLEWARE]
    handler = ThreadKeepingASGIHandler()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {await sync_to_async(token_for)(carol)}".encode()),
    ]
    captured.clear()
    for n in range(2):  # the first one snapshots carol
        body = json.dumps(event(n)).encode()
        length = [(b"content-length", str(len(body)).encode())]
        communicator = HttpCommunicator(handler, "POST", URL, body, headers + length)
        response = await communicator.get_response()
        assert response["status"] == 201, response["body"]
    handler.request_threads.close(wait=True)
    assert captured[1] == ["INSERT"]


def test_one_bad_item_publishes_none_and_each_bad_item_is_named(as_carol):
    items = [event(0), {"event_type": "nope", "data": {}}, event(2), event(3, priority=11)]
    response = as_carol.post(URL, items, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID"
    assert [error["index"] for error in body["errors"]] == [1, 3]
    assert "event_type" in body["errors"][0] and "priority" in body["errors"][1]
    assert not published()


@pytest.mark.parametrize(
    "body",
    [
        [],
        ["security_event"],
        [None],
        [[event(0)]],
        [{"event_type": "security_event", "data": {}, "priority": True}],
        [{"event_type": "security_event", "data": {}, "priority": 10**40}],
        [{"event_type": {"$ne": 1}, "data": {}}],
        [{"event_type": "zone_created", "data": {}, "recipients": {"users": ["1; DROP"]}}],
        [{"event_type": "security_event", "data": "x" * 100}],
        [event(0), {"event_type": "security_event", "data": {}, "recipients": {"users": [1]}}],
    ],
)
def test_hostile_lists_are_a_400_with_an_error_code_and_store_nothing(as_carol, body):
    response = as_carol.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error_code"]
    assert not published()


def test_a_list_longer_than_the_limit_is_refused_whole(as_carol, monkeypatch):
    from realtime import views

    monkeypatch.setattr(views, "MAX_EVENTS_PER_REQUEST", 3)
    response = as_carol.post(URL, [event(n) for n in range(4)], format="json")
    assert response.status_code == 400
    assert (response.json()["error_code"], response.json()["max_events"]) == ("TOO_MANY_EVENTS", 3)
    assert not published()


def test_deeply_nested_data_is_refused_cleanly(as_carol):
    body = '[{"event_type": "security_event", "data": ' + "[" * 100_000 + "]" * 100_000 + "}]"
    response = as_carol.post(URL, body, content_type="application/json")
    assert response.status_code in (400, 413)
    assert response.json()["error_code"]
    assert not published()


def test_an_analyst_may_not_publish_a_list(api_client, alice, token_for):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}")
    assert api_client.post(URL, [event(0)], format="json").status_code == 403
    assert not published()


# --- the snapshot in place of simplejwt's user query ----------------------------------------


@pytest.mark.parametrize("change", ["deactivate", "delete"])
def test_a_user_who_loses_access_is_refused_at_once(as_carol, carol, change):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    assert access.cached_principal(carol.pk) is not None
    if change == "delete":
        carol.delete()
    else:
        carol.is_active = False
        carol.save(update_fields=["is_active"])
    response = as_carol.post(URL, event(1), format="json")
    assert response.status_code == 401
    assert published().count() == 1


def test_a_role_change_is_seen_at_once(as_carol, carol):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    carol.groups.set([Group.objects.get(name="viewer")])
    assert as_carol.post(URL, event(1), format="json").status_code == 403
    carol.groups.set([Group.objects.get(name="admin")])
    assert as_carol.post(URL, event(2), format="json").status_code == 201


def test_a_stale_snapshot_is_read_again(as_carol, carol):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    access._principals[carol.pk] = (access._principals[carol.pk][0], -1e9)  # read long ago
    with CaptureQueriesContext(connection) as queries:
        assert as_carol.post(URL, event(1), format="json").status_code == 201
    assert statements(queries).count("SELECT") >= 2  # the user, then the snapshot


def test_a_bad_token_is_refused(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert api_client.post(URL, event(0), format="json").status_code == 401


# --- the verified-token cache (realtime.auth.token_claims) ----------------------------------


def test_a_token_is_verified_once_per_process(as_carol, monkeypatch):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    decoded = []
    decode = TokenBackend.decode

    def recorded(self, token, verify=True):
        decoded.append(verify)
        return decode(self, token, verify)

    monkeypatch.setattr(TokenBackend, "decode", recorded)
    assert as_carol.post(URL, event(1), format="json").status_code == 201
    assert decoded == [False]  # read, not verified again


def test_a_forged_token_is_checked_once_and_refused(api_client, carol, token_for, monkeypatch):
    header, payload, _signature = token_for(carol).split(".")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{payload}.forged")
    decoded = []
    decode = TokenBackend.decode

    def recorded(self, token, verify=True):
        decoded.append(verify)
        return decode(self, token, verify)

    monkeypatch.setattr(TokenBackend, "decode", recorded)
    response = api_client.post(URL, event(0), format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
    assert decoded == [True]  # its signature checked once


def test_a_verified_token_is_refused_once_it_expires(as_carol, clock, monkeypatch):
    assert as_carol.post(URL, event(0), format="json").status_code == 201
    clock.advance(24 * 3600)  # the cache's clock, and simplejwt's:
    later = tokens.aware_utcnow() + timedelta(days=1)
    monkeypatch.setattr(tokens, "aware_utcnow", lambda: later)
    response = as_carol.post(URL, event(1), format="json")
    assert response.status_code == 401
    auth.forget_verified_tokens()  # the answer of a process that never saw the token
    never_seen = as_carol.post(URL, event(2), format="json")
    assert (never_seen.status_code, never_seen.json()) == (401, response.json())
    assert published().count() == 1

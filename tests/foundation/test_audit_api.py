"""GET /api/audit/ and /api/audit/export.csv: admins only, filtered, paginated, streamed."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from threatlens.audit.models import AuditLog
from threatlens.audit.services import record

pytestmark = pytest.mark.django_db


def make_entry(**overrides):
    """make_entry(action=..., created_at=..., ...) -> an AuditLog row written through record()."""
    created_at = overrides.pop("created_at", None)
    defaults = {"action": "alert.take_ownership", "target_type": "incidents.alert",
                "target_id": "1", "target_repr": "Alert 1", "ip": "192.0.2.1"}  # fmt: skip
    fields = defaults | overrides
    entry = record(fields.pop("action"), **fields)
    if created_at is not None:
        AuditLog.objects.filter(pk=entry.pk).update(created_at=created_at)
    return entry


@pytest.fixture
def as_carol(api_client, carol, alice, bob, token_for):
    AuditLog.objects.all().delete()  # the personas' own creation rows
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(carol)}")
    return api_client


def actions(response):
    assert response.status_code == 200, response.content
    return [row["action"] for row in response.json()["results"]]


@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_only_admins_may_read_the_audit_log(request, api_client, token_for, persona):
    api_client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {token_for(request.getfixturevalue(persona))}"
    )
    for url in ("/api/audit/", "/api/audit/export.csv"):
        response = api_client.get(url)
        assert response.status_code == 403
        assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_anonymous_users_are_refused(api_client):
    assert api_client.get("/api/audit/").status_code == 401
    assert api_client.get("/api/audit/export.csv").status_code == 401


def test_the_list_is_newest_first_with_every_field(as_carol, alice):
    make_entry(action="first", actor=alice, old={"status": "new"}, new={"status": "open"})
    make_entry(action="second")

    body = as_carol.get("/api/audit/").json()

    assert body["count"] == 2
    assert [r["action"] for r in body["results"]] == ["second", "first"]
    first = body["results"][1]
    assert first["actor"] == alice.pk
    assert first["actor_username"] == "alice"
    assert first["old_values"] == {"status": "new"}
    assert first["new_values"] == {"status": "open"}
    assert first["ip_address"] == "192.0.2.1"
    assert {"id", "created_at", "target_type", "target_id", "target_repr", "details",
            "user_agent"} <= set(first)  # fmt: skip


def test_filters_by_actor_action_target_and_address(as_carol, alice, bob):
    make_entry(action="auth.login", actor=alice)
    make_entry(action="auth.login_failed", ip="198.51.100.1")
    make_entry(action="alert.update", actor=bob, target_id="7")
    make_entry(action="zone.create", target_type="dns.zone", target_id="7")

    assert actions(as_carol.get("/api/audit/?actor=alice")) == ["auth.login"]
    assert actions(as_carol.get("/api/audit/?action=auth.login")) == ["auth.login"]
    assert actions(as_carol.get("/api/audit/?action=auth.*")) == ["auth.login_failed", "auth.login"]
    assert actions(as_carol.get("/api/audit/?target_type=dns.zone")) == ["zone.create"]
    assert actions(as_carol.get("/api/audit/?target_id=7")) == ["zone.create", "alert.update"]
    assert actions(as_carol.get("/api/audit/?ip=198.51.100.1")) == ["auth.login_failed"]
    assert actions(as_carol.get("/api/audit/?search=zone")) == ["zone.create"]


def test_filters_by_time(as_carol):
    now = timezone.now()
    make_entry(action="old", created_at=now - timedelta(days=3))
    make_entry(action="recent", created_at=now - timedelta(hours=1))

    since = (now - timedelta(days=1)).isoformat()
    until = (now - timedelta(days=2)).isoformat()
    assert actions(as_carol.get("/api/audit/", {"since": since})) == ["recent"]
    assert actions(as_carol.get("/api/audit/", {"until": until})) == ["old"]
    assert actions(as_carol.get("/api/audit/", {"since": "2000-01-01T00:00:00Z"})) == [
        "recent", "old",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "query,field",
    [("since=yesterday", "since"), ("until=2024-13-01", "until"), ("ip=not-an-ip", "ip"),
     ("since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z", "until")],
)  # fmt: skip
def test_bad_filter_values_are_refused_with_a_reason(as_carol, query, field):
    for url in ("/api/audit/", "/api/audit/export.csv"):
        response = as_carol.get(f"{url}?{query}")
        assert response.status_code == 400
        body = response.json()
        assert body[field] and isinstance(body[field][0], str)
        assert body["error_code"] == "INVALID"


def test_ordering_can_be_chosen(as_carol):
    for action in ("b", "c", "a"):
        make_entry(action=action)
    assert actions(as_carol.get("/api/audit/?ordering=action")) == ["a", "b", "c"]
    assert actions(as_carol.get("/api/audit/?ordering=-action")) == ["c", "b", "a"]


def test_the_list_is_paginated(as_carol, monkeypatch):
    # PAGE_SIZE is read when DRF's pagination class is defined.
    monkeypatch.setattr("rest_framework.pagination.PageNumberPagination.page_size", 2)
    for n in range(5):
        make_entry(action=f"a{n}")
    first = as_carol.get("/api/audit/").json()
    assert first["count"] == 5
    assert len(first["results"]) == 2
    assert first["next"].endswith("page=2")
    last = as_carol.get("/api/audit/?page=3").json()
    assert [r["action"] for r in last["results"]] == ["a0"]


def test_the_list_query_count_does_not_grow_with_rows(as_carol, alice, django_assert_num_queries):
    for n in range(30):
        make_entry(action=f"a{n}", actor=alice, details={"n": n})
    # user, user permissions, group permissions, count, page
    with django_assert_num_queries(5):
        assert len(actions(as_carol.get("/api/audit/"))) == 30


def test_the_csv_export_streams_the_filtered_rows_with_a_header(as_carol, alice):
    make_entry(action="auth.login", actor=alice, details={"method": "token"})
    make_entry(action="zone.create", target_repr='=HYPERLINK("x")')
    make_entry(action="auth.logout", actor=alice)

    response = as_carol.get("/api/audit/export.csv?action=auth.*")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["id", "created_at", "actor", "actor_username", "action"]
    assert [r[4] for r in rows[1:]] == ["auth.logout", "auth.login"]
    login = dict(zip(rows[0], rows[2], strict=True))
    assert login["actor_username"] == "alice"
    assert login["details"] == '{"method": "token"}'

    everything = as_carol.get("/api/audit/export.csv")
    text = b"".join(everything.streaming_content).decode()
    # Spreadsheet formulas in data are neutralised.
    assert "'=HYPERLINK" in text


def test_the_csv_export_reads_large_logs_in_chunks(as_carol, monkeypatch):
    monkeypatch.setattr("threatlens.audit.views.EXPORT_CHUNK", 3)
    AuditLog.objects.bulk_create(AuditLog(action=f"bulk.{n}") for n in range(10))
    response = as_carol.get("/api/audit/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 11
    assert rows[1][4] == "bulk.9"
    assert rows[-1][4] == "bulk.0"


@pytest.mark.django_db(transaction=True)
async def test_the_csv_export_streams_asynchronously_under_asgi(async_client, make_user):
    from asgiref.sync import sync_to_async
    from django.db import connections
    from rest_framework_simplejwt.tokens import AccessToken

    carol = await sync_to_async(make_user)("carol", role="admin")
    await sync_to_async(make_entry)(action="auth.login")
    token = await sync_to_async(lambda: str(AccessToken.for_user(carol)))()

    response = await async_client.get(
        "/api/audit/export.csv?action=auth.login", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    assert response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0].startswith("id,created_at")
    assert len(lines) == 2 and ",auth.login," in lines[1]
    # The sync thread's connection would keep the test database busy at teardown.
    await sync_to_async(connections.close_all)()


def test_exclude_action_leaves_out_socket_rows_and_prefixes(as_carol):
    make_entry(action="realtime.connect")
    make_entry(action="realtime.disconnect")
    make_entry(action="auth.login")
    make_entry(action="alert.take_ownership")
    hidden = as_carol.get(
        "/api/audit/", {"exclude_action": "realtime.connect, realtime.disconnect"}
    )
    assert actions(hidden) == ["alert.take_ownership", "auth.login"]
    assert actions(as_carol.get("/api/audit/", {"exclude_action": "realtime.*,auth.*"})) == [
        "alert.take_ownership"
    ]
    export = as_carol.get("/api/audit/export.csv", {"exclude_action": "realtime.*"})
    text = b"".join(export.streaming_content).decode()
    assert "realtime.connect" not in text and "auth.login" in text

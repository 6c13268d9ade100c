"""POST /api/logs/, GET /api/logs/<id>/, GET /api/events/ and /api/events/<event_id>/."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from incidents.ingest import wait_for_background_processing
from incidents.models import RawLog, RawLogStatus, SecurityEvent
from realtime.models import Event
from tests.ingest.helpers import T0, brute_force, cron_line, text

pytestmark = pytest.mark.django_db


def post_log(upload, user, **body):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return upload(user, **body)


# --- uploads ------------------------------------------------------------------------------------


def test_an_analyst_uploads_a_log_and_gets_202_with_its_id_and_status(upload, alice):
    response = post_log(upload, alice, source="auth.log", content=text(brute_force(10)))

    assert response.status_code == 202
    body = response.json()
    raw_log = RawLog.objects.get()
    assert body["id"] == str(raw_log.pk)
    assert body["status"] == "completed"
    assert body["events_created"] == 1
    assert body["created_by"]["username"] == "alice"
    assert body["url"].endswith(f"/api/logs/{raw_log.pk}/")
    assert raw_log.created_by == alice


def test_the_status_of_a_raw_log_is_readable(upload, api_client, alice, carol):
    raw_id = post_log(upload, alice, source="auth.log", content=text([cron_line(0)])).json()["id"]

    api_client.force_authenticate(carol)
    body = api_client.get(f"/api/logs/{raw_id}/").json()
    assert body["status"] == "completed"
    assert body["stage"] == "completed"
    assert body["lines_total"] == 1 and body["lines_malformed"] == 0
    assert body["progress"] == 1.0
    assert "content" not in body
    assert api_client.get("/api/logs/").json()["results"][0]["id"] == raw_id


def test_a_log_file_can_be_uploaded_as_multipart(api_client, alice):
    api_client.force_authenticate(alice)
    upload = SimpleUploadedFile("auth.log", text(brute_force(10)).encode(), "text/plain")
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(
            "/api/logs/", {"source": "web01", "file": upload}, format="multipart"
        )

    assert response.status_code == 202, response.json()
    raw_log = RawLog.objects.get()
    assert raw_log.file_name == "auth.log"
    assert raw_log.source == "web01"
    assert raw_log.events_created == 1


def test_the_upload_is_audited(upload, alice):
    from threatlens.audit.models import AuditLog

    post_log(upload, alice, source="auth.log", content=text([cron_line(0)]))
    entry = AuditLog.objects.get(action="raw_log.receive")
    assert entry.actor == alice
    assert entry.new_values["source"] == "auth.log"


def nothing_stored():
    return (
        not RawLog.objects.exists()
        and not SecurityEvent.objects.exists()
        and not (Event.objects.exclude(event_type="user_action").exists())
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "a line\n"}, "source"),
        ({"source": "   ", "content": "a line\n"}, "source"),
        ({"source": "x" * 129, "content": "a line\n"}, "source"),
        ({"source": "auth.log"}, "content"),
        ({"source": "auth.log", "content": ""}, "content"),
        ({"source": "auth.log", "content": " \n\n "}, "content"),
        ({"source": "auth.log", "content": 42}, "content"),
    ],
)
def test_a_bad_upload_is_refused_and_changes_nothing(upload, alice, body, field):
    response = post_log(upload, alice, **body)

    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_MESSAGE"
    assert field in response.json()["errors"]
    assert nothing_stored()


def test_a_too_large_upload_is_refused_with_413(upload, alice, settings):
    settings.LOG_UPLOAD_MAX_BYTES = 100
    response = post_log(upload, alice, source="auth.log", content="x" * 101)

    assert response.status_code == 413
    assert response.json()["max_bytes"] == 100
    assert nothing_stored()


def test_a_too_large_file_is_refused_with_413(api_client, alice, settings):
    settings.LOG_UPLOAD_MAX_BYTES = 100
    api_client.force_authenticate(alice)
    upload = SimpleUploadedFile("big.log", b"y" * 101)
    response = api_client.post("/api/logs/", {"source": "s", "file": upload}, format="multipart")

    assert response.status_code == 413
    assert nothing_stored()


def test_a_request_far_beyond_the_limit_is_refused_before_it_is_read(api_client, alice, settings):
    settings.LOG_UPLOAD_MAX_BYTES = 10
    api_client.force_authenticate(alice)
    response = api_client.post(
        "/api/logs/", {"source": "s", "content": "z" * 70_000}, format="json"
    )

    assert response.status_code == 413
    assert nothing_stored()


def test_a_json_upload_larger_than_djangos_body_limit_is_accepted(upload, alice, settings):
    settings.LOG_PROCESSING = "thread"  # stored only: the commit never comes in this test
    content = text([cron_line(i % 3600) for i in range(30_000)])  # 3.7 MB
    assert len(content) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = upload(alice, source="auth.log", content=content)

    assert response.status_code == 202, response.json()
    assert RawLog.objects.get().size == len(content)


@pytest.mark.parametrize("body", [b"{not json", b'["a list"]'])
def test_a_body_that_is_not_a_json_object_is_refused(api_client, alice, body):
    api_client.force_authenticate(alice)
    response = api_client.post("/api/logs/", body, content_type="application/json")

    assert response.status_code == 400
    assert nothing_stored()


def test_a_viewer_may_not_upload(upload, bob):
    response = post_log(upload, bob, source="auth.log", content="a line\n")

    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert nothing_stored()


def test_an_anonymous_upload_is_refused(upload):
    response = upload(None, source="auth.log", content="a line\n")
    assert response.status_code == 401
    assert not RawLog.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_large_upload_is_processed_by_a_background_worker(upload, alice, settings):
    settings.LOG_PROCESSING = "auto"
    settings.LOG_PROCESSING_INLINE_MAX_BYTES = 10
    response = upload(alice, source="auth.log", content=text(brute_force(10)))

    assert response.status_code == 202
    assert response.json()["status"] == "received"
    assert wait_for_background_processing(timeout=10)
    raw_log = RawLog.objects.get()
    assert raw_log.status == RawLogStatus.COMPLETED
    assert raw_log.events_created == 1


# --- security events --------------------------------------------------------------------------


@pytest.fixture
def make_event(db):
    """make_event(**overrides) -> a stored SecurityEvent."""
    counter = iter(range(1, 10_000))

    def make(**overrides):
        n = next(counter)
        fields = {
            "severity": 5,
            "category": "authentication",
            "source": "auth.log",
            "message": f"Event number {n}",
            "timestamp": T0 + timedelta(minutes=n),
            "analysis": {"threat_level": "medium", "confidence": 0.5, "explanation": "x"},
            "recommendations": ["Look at it"],
            "rule_id": "some_rule",
            "raw_line": f"line {n}",
        }
        fields.update(overrides)
        return SecurityEvent.objects.create(**fields)

    return make


def listed(api_client, user, query=""):
    api_client.force_authenticate(user)
    response = api_client.get(f"/api/events/{query}")
    assert response.status_code == 200, response.json()
    return [item["message"] for item in response.json()["results"]]


def test_events_are_listed_newest_first_in_the_security_event_shape(api_client, alice, make_event):
    older, newer = make_event(), make_event()
    api_client.force_authenticate(alice)
    body = api_client.get("/api/events/").json()

    assert body["count"] == 2
    assert [item["event_id"] for item in body["results"]] == [newer.event_id, older.event_id]
    from incidents.security_events import security_event_payload

    assert body["results"][0] == security_event_payload(newer)


def test_events_filter_by_category_severity_source_and_time(api_client, alice, make_event):
    make_event(message="a", category="web_attack", severity=8, source="nginx")
    make_event(message="b", category="authentication", severity=3)
    make_event(message="c", category="dns", severity=9, source="bind")

    assert listed(api_client, alice, "?category=web_attack,dns") == ["c", "a"]
    assert listed(api_client, alice, "?severity_min=8") == ["c", "a"]
    assert listed(api_client, alice, "?severity_max=8&severity_min=4") == ["a"]
    assert listed(api_client, alice, "?source=auth.log") == ["b"]
    since = (T0 + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    until = (T0 + timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    assert listed(api_client, alice, f"?since={since}") == ["c", "b"]
    assert listed(api_client, alice, f"?since={since}&until={until}") == ["b"]
    assert listed(api_client, alice, "?search=a") == ["a"]
    assert listed(api_client, alice, "?ordering=severity") == ["b", "a", "c"]
    assert listed(api_client, alice, "?ordering=-severity") == ["c", "a", "b"]


def test_bad_filters_are_refused_or_match_nothing(api_client, alice, make_event):
    make_event(src_ip="203.0.113.45")
    api_client.force_authenticate(alice)

    assert api_client.get("/api/events/?severity_min=11").status_code == 400
    assert api_client.get("/api/events/?since=yesterday").status_code == 400
    assert listed(api_client, alice, "?src_ip=not-an-address") == []
    assert len(listed(api_client, alice, "?src_ip=203.0.113.45")) == 1


def test_events_are_paginated(api_client, alice, make_event):
    for _ in range(5):
        make_event()
    api_client.force_authenticate(alice)
    body = api_client.get("/api/events/?page_size=2&page=2").json()

    assert body["count"] == 5 and len(body["results"]) == 2 and body["next"]


def test_the_event_list_costs_the_same_queries_for_any_page_size(
    api_client, alice, make_event, django_assert_num_queries
):
    for _ in range(3):
        make_event()
    api_client.force_authenticate(alice)
    api_client.get("/api/events/")  # loads alice's permissions (cached on the user)
    with django_assert_num_queries(2):  # the count and the page
        assert len(api_client.get("/api/events/").json()["results"]) == 3
    for _ in range(20):
        make_event()
    with django_assert_num_queries(2):
        assert len(api_client.get("/api/events/").json()["results"]) == 23


def test_one_event_is_read_by_its_event_id_with_its_line(api_client, alice, make_event):
    event = make_event(details={"rule_name": "Some rule"})
    api_client.force_authenticate(alice)
    body = api_client.get(f"/api/events/{event.event_id}/").json()

    assert body["event_id"] == event.event_id
    assert body["raw_line"] == event.raw_line
    assert body["details"] == {"rule_name": "Some rule"}
    assert api_client.get("/api/events/no-such-event/").status_code == 404


def test_events_need_a_login_and_the_view_permission(api_client, make_user, make_event):
    make_event()
    assert api_client.get("/api/events/").status_code == 401
    api_client.force_authenticate(make_user("nobody"))
    assert api_client.get("/api/events/").status_code == 403


def test_a_viewer_reads_no_security_event_nor_raw_log_over_rest(
    upload, api_client, alice, bob, make_event
):
    """The socket refuses a viewer `security_event` and `processing_update`; REST applies
    the same rule (`READ_PIPELINE_DATA`) to the events, their raw lines and the raw logs."""
    event = make_event()
    raw_id = post_log(upload, alice, source="auth.log", content=text([cron_line(0)])).json()["id"]
    api_client.force_authenticate(bob)
    for path in ("/api/events/", f"/api/events/{event.event_id}/", "/api/logs/"):
        response = api_client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error_code"] == "PERMISSION_DENIED"
        assert event.raw_line not in response.content.decode()
    assert api_client.get(f"/api/logs/{raw_id}/").status_code == 403

"""The hub's HTTP endpoints: publish, /ws/info, /realtime/status, /metrics, disconnect."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission

from realtime.models import Event
from tests.prometheus_samples import families
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def publisher(make_user):
    user = make_user("integration")
    user.user_permissions.add(Permission.objects.get(codename="publish_event"))
    return user


def test_admin_publishes_an_event(api_client, carol):
    api_client.force_authenticate(carol)
    response = api_client.post(
        "/api/realtime/publish/",
        {
            "event_type": "security_event",
            "data": {"severity": 9},
            "priority": 9,
        },
        format="json",
    )
    assert response.status_code == 201
    event = Event.objects.get(pk=response.json()["message_id"])
    assert (event.event_type, event.priority, event.data) == ("security_event", 9, {"severity": 9})


def test_publisher_permission_allows_integrations(api_client, publisher):
    api_client.force_authenticate(publisher)
    response = api_client.post(
        "/api/realtime/publish/",
        {
            "event_type": "health_update",
            "data": {"component": "system"},
        },
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"event_type": "nope", "data": {}}, "event_type"),
        ({"event_type": "security_event", "data": []}, "data"),
        ({"event_type": "security_event", "data": {}, "priority": 11}, "priority"),
        ({"event_type": "security_event", "data": {}, "priority": "high"}, "priority"),
        ({"event_type": "zone_created", "data": {}}, "recipients"),
        ({"event_type": "security_event", "data": {}, "recipients": {"users": [1]}}, "recipients"),
        ({"data": {}}, "event_type"),
    ],
)
def test_bad_publish_is_a_400_with_a_reason_and_stores_nothing(api_client, carol, body, field):
    api_client.force_authenticate(carol)
    stored = Event.objects.count()
    response = api_client.post("/api/realtime/publish/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Event.objects.count() == stored


@pytest.mark.parametrize("body", ["null", '"text"', "3"])
def test_a_publish_body_that_is_no_object_is_a_400_with_an_error_code(api_client, carol, body):
    api_client.force_authenticate(carol)
    stored = Event.objects.count()
    response = api_client.post("/api/realtime/publish/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID"
    assert response.json()["non_field_errors"]
    assert Event.objects.count() == stored


def test_analyst_may_not_publish(api_client, alice):
    api_client.force_authenticate(alice)
    response = api_client.post(
        "/api/realtime/publish/", {"event_type": "security_event", "data": {}}, format="json"
    )
    assert response.status_code == 403


async def test_ws_info_lists_live_connections_for_admins(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws/info-test", token=token_for(alice))
    await client.receive()
    http = AsyncClient()
    response = await http.get("/ws/info", headers={"authorization": f"Bearer {token_for(carol)}"})
    assert response.status_code == 200
    info = response.json()
    assert info["totals"]["connections"] == 1
    assert info["connections"][0]["client_id"] == "info-test"
    assert info["connections"][0]["user"] == "alice"
    assert info["limits"]["max_connections"] == 100
    forbidden = await http.get("/ws/info", headers={"authorization": f"Bearer {token_for(alice)}"})
    assert forbidden.status_code == 403


class OtherProcess:
    """Another server process as this one sees it through the store and the layer."""

    def __init__(self, monkeypatch, hub, *, answers):
        from realtime import monitoring

        self.asked = []
        self.summary = {
            "origin": "elsewhere",
            "pid": 4242,
            "started_at": "2026-01-01T00:00:00Z",
            "layer_healthy": True,
            "connections": 2,
            "queued_messages": 3,
            "events_dropped": 1,
            "counters": {},
        }
        rows = [{"connection_id": "c-far", "user": "dave", "user_id": 999}]

        async def all_summaries():
            return [self.summary]

        async def get_reports(request_id):
            asked = any(group == "rt.control" for group, _ in self.asked)
            return {"elsewhere": rows} if answers and asked else {}

        outer = self

        class Layer:
            async def group_send(self, group, message):
                outer.asked.append((group, message))

        monkeypatch.setattr(hub.store, "all_summaries", all_summaries, raising=False)
        monkeypatch.setattr(hub.store, "get_reports", get_reports, raising=False)
        monkeypatch.setattr(monitoring.transport, "shared_layer", lambda: Layer())
        monkeypatch.setattr(monitoring, "REPORT_TIMEOUT", 0.3)


async def ws_info(token):
    from django.test import AsyncClient

    response = await AsyncClient().get("/ws/info", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return response.json()


async def test_ws_info_asks_other_processes_for_their_connections(
    ws, alice, carol, token_for, monkeypatch
):
    from realtime.hub import get_hub

    client = await ws("/ws/here", token=token_for(alice))
    await client.receive()
    other = OtherProcess(monkeypatch, get_hub(), answers=True)
    info = await ws_info(token_for(carol))
    (request,) = [message for group, message in other.asked if group == "rt.control"]
    assert request["action"] == "report_connections"
    assert sorted(c["connection_id"] for c in info["connections"])[0] == "c-far"
    assert {c["client_id"] for c in info["connections"] if "client_id" in c} == {"here"}
    assert info["totals"]["connections"] == 3
    assert info["totals"]["queued_messages"] == 3
    assert all(p["connections_listed"] for p in info["processes"])


async def test_ws_info_shows_a_process_that_does_not_answer_by_its_count(
    ws, alice, carol, token_for, monkeypatch
):
    from realtime.hub import get_hub

    client = await ws("/ws/here", token=token_for(alice))
    await client.receive()
    OtherProcess(monkeypatch, get_hub(), answers=False)
    info = await ws_info(token_for(carol))
    assert [c["client_id"] for c in info["connections"]] == ["here"]
    assert info["totals"]["connections"] == 3
    listed = {p["pid"]: p["connections_listed"] for p in info["processes"]}
    assert listed[4242] is False
    assert list(listed.values()).count(True) == 1


async def test_realtime_status_needs_no_login_and_shows_no_user_data(ws, alice, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().get("/realtime/status")
    assert response.status_code == 200
    body = response.json()
    assert body["realtime"]["connections"] == 1
    assert "queued_messages" in body["realtime"]
    assert {"database", "channel_layer"} <= set(body["components"])
    assert "alice" not in response.content.decode()


async def _warning_report():
    return {"status": "warning", "components": {"database": {"status": "warning"}}}


async def _critical_report():
    return {"status": "critical", "components": {"database": {"status": "critical"}}}


@pytest.mark.parametrize(
    ("report", "code"),
    [("_warning_report", 200), ("_critical_report", 503)],
)
async def test_realtime_status_is_503_only_when_something_is_critical(settings, report, code):
    """As /healthz: a slow component (warning) keeps a load balancer's 200."""
    from django.test import AsyncClient

    settings.REALTIME_HEALTH_REPORT = f"tests.realtime.test_http.{report}"
    response = await AsyncClient().get("/realtime/status")
    assert response.status_code == code
    assert response.json()["status"] == report.strip("_").split("_")[0]


async def test_metrics_are_prometheus_text_for_admins(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().get(
        "/metrics", headers={"authorization": f"Bearer {token_for(carol)}"}
    )
    assert response.status_code == 200
    figures = families(response.content.decode())  # prometheus_client's parser accepts it
    assert figures["threatlens_ws_connections"] == ("gauge", {"threatlens_ws_connections": 1})
    kind, latency = figures["threatlens_ws_delivery_latency_seconds"]
    assert (
        kind == "histogram"
        and 'threatlens_ws_delivery_latency_seconds_bucket{le="+Inf"}' in latency
    )
    kind, sent = figures["threatlens_ws_messages_out"]  # the parser drops a counter's _total
    assert kind == "counter" and sent["threatlens_ws_messages_out_total"] >= 1
    assert {"threatlens_ingest_lines_received", "threatlens_sigma_rules_loaded"} <= set(figures)
    anonymous = await AsyncClient().get("/metrics")
    assert anonymous.status_code in (401, 403)


async def test_rest_disconnect_closes_the_users_sockets(ws, alice, carol, token_for):
    from django.test import AsyncClient

    client = await ws("/ws", token=token_for(alice))
    await client.receive()
    response = await AsyncClient().post(
        "/api/realtime/connections/disconnect/",
        {"user_id": alice.pk},
        content_type="application/json",
        headers={"authorization": f"Bearer {token_for(carol)}"},
    )
    assert response.status_code == 202
    error, code = await client.receive_close()
    assert code == 1008
    assert await sync_to_async(
        AuditLog.objects.filter(action="realtime.disconnect_user", target_id=str(alice.pk)).exists
    )()

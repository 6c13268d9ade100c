"""Every write path broadcasts, after commit only, with the REST serializers' payloads."""

import pytest
from django.db import transaction

from incidents import broadcast, services
from incidents.exceptions import ConflictError
from incidents.models import Alert, Incident, IncidentComment
from incidents.serializers import AlertSerializer, IncidentSerializer
from incidents.writes import save_alert, save_incident
from tests.incidents.helpers import events, grant, new_alert, new_incident
from threatlens.writeguard import DirectWrite, service_writes

pytestmark = pytest.mark.django_db


def about(event):
    """What an alert or incident event is about: `alert:12`, `incident:3`."""
    kind = "incident" if event.event_type.startswith("incident") else "alert"
    return f"{kind}:{event.data['id']}"


def kinds():
    return [(e.event_type, about(e)) for e in events()]


def test_ingest_publishes_new_alert_with_the_rest_payload(
    alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = services.ingest_alert(
            {"title": "t", "severity": "critical", "source": "suricata", "category": "malware"},
            actor=alice,
        )
    [event] = events()
    assert (event.event_type, event.priority, about(event)) == (
        "new_alert",
        10,
        f"alert:{alert.pk}",
    )
    assert (event.category, event.source) == ("malware", "suricata")
    rest = AlertSerializer(Alert.objects.for_payload().get(pk=alert.pk)).data
    assert event.data == dict(rest)


def test_nothing_is_published_before_the_commit(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.ingest_alert({"title": "t", "severity": "low", "source": "s"}, actor=alice)
    assert callbacks  # scheduled...
    assert events() == []  # ...but not published


def test_a_rolled_back_transaction_publishes_nothing(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                alert, _ = services.ingest_alert(
                    {"title": "t", "severity": "low", "source": "s"}, actor=alice
                )
                services.take_alert_ownership(alert.pk, actor=alice)
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    assert callbacks == []
    assert events() == []
    assert not Alert.objects.exists()


def test_a_rolled_back_savepoint_drops_only_its_own_events(
    alice, make_alert, django_capture_on_commit_callbacks
):
    kept = make_alert()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        broadcast.alert_changed(kept.pk)
        try:
            with transaction.atomic():
                dropped, _ = services.ingest_alert(
                    {"title": "x", "severity": "low", "source": "s"}, actor=alice
                )
                raise RuntimeError
        except RuntimeError:
            pass
    assert kinds() == [("alert_updated", f"alert:{kept.pk}")]
    assert not Alert.objects.filter(pk=dropped.pk).exists()


def test_a_refused_request_publishes_nothing(alice, dave, take, django_capture_on_commit_callbacks):
    alert, _ = take(alice)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ConflictError):
        services.take_alert_ownership(alert.pk, actor=dave)
    assert events() == []


def test_duplicate_ingest_publishes_alert_updated(alice, django_capture_on_commit_callbacks):
    data = {"title": "t", "severity": "low", "source": "s", "external_id": "e"}
    services.ingest_alert(data, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = services.ingest_alert(data, actor=alice)
    [event] = events()
    assert event.event_type == "alert_updated"
    assert event.data["occurrence_count"] == 2


def test_bulk_ingest_publishes_each_alert(alice, django_capture_on_commit_callbacks):
    existing, _ = services.ingest_alert(
        {"title": "t", "severity": "low", "source": "s", "external_id": "old"}, actor=alice
    )
    items = [
        {"title": "a", "severity": "low", "source": "s", "external_id": "old"},
        {"title": "b", "severity": "high", "source": "s"},
        {"title": "c", "severity": "medium", "source": "s"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = services.ingest_alerts(items, actor=alice)
    published = {(e.event_type, e.data["id"]) for e in events()}
    assert published == {
        ("alert_updated", existing.pk),
        *(("new_alert", a.pk) for a in result.created),
    }
    assert len(result.created) == 2


def test_taking_an_alert_publishes_one_incident_created_with_its_alert(
    alice, make_alert, django_capture_on_commit_callbacks
):
    alert = make_alert()
    with django_capture_on_commit_callbacks(execute=True):
        _, incident = services.take_alert_ownership(alert.pk, actor=alice)
    assert kinds() == [
        ("incident_created", f"incident:{incident.pk}"),
        ("alert_updated", f"alert:{alert.pk}"),
    ]
    created, updated = events()
    assert created.data["alert_ids"] == [alert.pk]
    assert created.data == dict(IncidentSerializer(Incident.objects.for_payload().get()).data)
    assert created.recipient_users == [alice.pk]
    assert updated.data["assigned_analyst"]["username"] == "alice"
    assert updated.data["incident"] == incident.pk


def test_joining_publishes_incident_updated(
    alice, take, make_alert, django_capture_on_commit_callbacks
):
    _, incident = take(alice, correlation_key="k")
    second = make_alert(correlation_key="k")
    with django_capture_on_commit_callbacks(execute=True):
        services.take_alert_ownership(second.pk, actor=alice)
    assert [e.event_type for e in events()] == ["incident_updated", "alert_updated"]
    assert len(events("incident_updated")[0].data["alert_ids"]) == 2


def test_reassigning_tells_both_incidents(alice, dave, take, django_capture_on_commit_callbacks):
    alert, alices = take(alice)
    dave = grant(dave, "reassign_alert")
    with django_capture_on_commit_callbacks(execute=True):
        _, daves = services.take_alert_ownership(alert.pk, actor=dave)
    by_type = {(e.event_type, about(e)): e for e in events()}
    assert by_type[("incident_created", f"incident:{daves.pk}")].recipient_users == [dave.pk]
    old = by_type[("incident_updated", f"incident:{alices.pk}")]
    assert old.recipient_users == [alice.pk] and old.data["alert_ids"] == []


def test_status_changes_publish(alice, take, django_capture_on_commit_callbacks):
    alert, incident = take(alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_alert_status(alert.pk, "resolved", actor=alice)
    assert kinds() == [("alert_updated", f"alert:{alert.pk}")]
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident_status(incident.pk, "investigating", actor=alice)
    assert kinds()[-1] == ("incident_updated", f"incident:{incident.pk}")
    assert events()[-1].data["status"] == "investigating"


def test_escalating_publishes_the_new_incident(
    carol, make_alert, django_capture_on_commit_callbacks
):
    alert = make_alert()
    with django_capture_on_commit_callbacks(execute=True):
        services.update_alert_status(alert.pk, "escalated", actor=carol)
    assert [e.event_type for e in events()] == ["incident_created", "alert_updated"]


def test_comments_and_field_changes_publish_incident_updated(
    alice, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    # Two transactions (one capture each): an event each.
    with django_capture_on_commit_callbacks(execute=True):
        services.add_incident_comment(incident.pk, "note", actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident(incident.pk, {"title": "renamed"}, actor=alice)
    assert [e.event_type for e in events()] == ["incident_updated", "incident_updated"]
    assert events()[-1].data["title"] == "renamed"


def test_changes_in_one_transaction_publish_one_event_with_the_latest_state(
    alice, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.add_incident_comment(incident.pk, "note", actor=alice)
        services.update_incident(incident.pk, {"title": "renamed"}, actor=alice)
        services.update_incident(incident.pk, {"title": "renamed again"}, actor=alice)
    assert [e.event_type for e in events()[-1:]] == ["incident_updated"]
    assert len(events("incident_updated")) == 1
    assert events()[-1].data["title"] == "renamed again"


def test_handing_over_an_incident_also_tells_the_previous_owner(
    alice, dave, carol, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident(incident.pk, {"owner": dave.pk}, actor=carol)
    [event] = events()
    assert sorted(event.recipient_users) == sorted([alice.pk, dave.pk])


def test_incident_events_go_to_owner_and_watchers(
    alice, dave, take, django_capture_on_commit_callbacks
):
    _, incident = take(alice)
    services.watch_incident(incident.pk, actor=dave)
    with django_capture_on_commit_callbacks(execute=True):
        services.update_incident_status(incident.pk, "investigating", actor=alice)
    [event] = events()
    assert sorted(event.recipient_users) == sorted([alice.pk, dave.pk])
    incident = Incident.objects.prefetch_related("watchers").get()
    assert broadcast.incident_recipients(incident).users == frozenset({alice.pk, dave.pk})


@pytest.mark.parametrize(
    "write",
    [
        lambda: Alert.objects.create(title="shell", severity="low", source="manage.py"),
        lambda: Incident.objects.create(title="by hand", severity="low"),
        lambda: IncidentComment.objects.create(incident=new_incident(title="i"), body="hi"),
        lambda: new_alert().save(update_fields=["title", "updated_at"]),
        lambda: new_incident(title="i").delete(),
        lambda: Alert.objects.filter(pk=new_alert().pk).delete(),
    ],
    ids=["alert", "incident", "comment", "alert-save", "incident-delete", "queryset-delete"],
)
def test_a_plain_write_outside_the_services_is_refused(write, django_capture_on_commit_callbacks):
    # (in a savepoint: a delete's refusal breaks the transaction it runs in)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(DirectWrite),
        transaction.atomic(),
    ):
        write()
    assert events() == []


def test_a_saved_incident_without_owner_goes_to_see_all_users_only(
    make_alert, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        save_incident(Incident(title="by hand", severity="low"))
    [event] = events("incident_created")
    assert event.recipient_users == []


def test_deleting_a_user_takes_their_watchers_along(alice, dave, take):
    _, incident = take(alice)
    services.watch_incident(incident.pk, actor=dave)
    dave.delete()  # a cascade from an unguarded row: allowed
    assert not incident.watchers.filter(user_id=dave.pk).exists()


def test_queryset_update_paths_publish_through_broadcast(
    make_alert, django_capture_on_commit_callbacks
):
    alerts = [make_alert(), make_alert()]
    with django_capture_on_commit_callbacks(execute=True):
        Alert.objects.filter(pk__in=[a.pk for a in alerts]).update(category="retagged")
        broadcast.alerts_changed([a.pk for a in alerts])
    assert [e.data["category"] for e in events("alert_updated")] == ["retagged", "retagged"]


def test_several_saves_in_one_transaction_publish_once(
    make_alert, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), service_writes():
        alert = Alert(title="a", severity="low", source="s")
        save_alert(alert)
        for title in ("b", "c"):
            alert.title = title
            save_alert(alert)
    [event] = events()
    assert (event.event_type, event.data["title"]) == ("new_alert", "c")


def test_autocommit_saves_publish_at_once(transactional_db):
    alert, _ = services.ingest_alert({"title": "now", "severity": "low", "source": "s"}, actor=None)
    assert kinds() == [("new_alert", f"alert:{alert.pk}")]

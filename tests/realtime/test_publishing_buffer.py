"""The one publishing path: a transaction's events wait for its commit in a buffer, and
go out together in one INSERT, merged, without what rolled back."""

from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from realtime.models import Event
from realtime.publishing import (
    CommittedChange,
    PublishError,
    Recipients,
    build_on_commit,
    publish_many_on_commit,
    publish_on_commit,
)

pytestmark = pytest.mark.django_db(transaction=True)  # real commits, real on_commit


def status(n, **extra):
    return {"component": f"c{n}", "status": "healthy", "uptime": 1.0, "metrics": {}, **extra}


def published():
    return [(e.event_type, e.data.get("component")) for e in Event.objects.order_by("id")]


def event_inserts(captured):
    return [q for q in captured.captured_queries if 'INSERT INTO "realtime_event"' in q["sql"]]


def test_a_transactions_events_go_out_after_the_commit_in_one_insert():
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        publish_on_commit("system_status", status(1))
        publish_many_on_commit([("system_status", status(2)), ("system_status", status(3))])
        with transaction.atomic():
            publish_on_commit("system_status", status(4))
        assert not Event.objects.exists()  # nothing before the commit
    assert published() == [("system_status", f"c{n}") for n in (1, 2, 3, 4)]
    assert len(event_inserts(captured)) == 1


def test_a_rolled_back_savepoint_publishes_none_of_its_events():
    with transaction.atomic():
        publish_on_commit("system_status", status(1))
        try:
            with transaction.atomic():
                publish_on_commit("system_status", status(2))
                with transaction.atomic():
                    publish_on_commit("system_status", status(3))
                raise RuntimeError
        except RuntimeError:
            pass
        publish_on_commit("system_status", status(4))
    assert published() == [("system_status", "c1"), ("system_status", "c4")]


def test_a_rolled_back_transaction_publishes_nothing_and_leaves_nothing_behind():
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_on_commit("system_status", status(1))
        raise RuntimeError
    with transaction.atomic():
        publish_on_commit("system_status", status(2))
    assert published() == [("system_status", "c2")]


def test_outside_a_transaction_an_event_is_published_at_once():
    publish_on_commit("system_status", status(1))
    assert published() == [("system_status", "c1")]


def test_events_with_one_merge_key_become_one_with_the_latest_data_and_every_recipient():
    with transaction.atomic():
        publish_on_commit(
            "permission_changed", {"n": 1}, recipients=Recipients.user(1), merge_key="u"
        )
        publish_on_commit("system_status", status(9))
        publish_on_commit(
            "permission_changed", {"n": 2}, recipients=Recipients.user(2), merge_key="u"
        )
        publish_on_commit("permission_changed", {"n": 3}, recipients=Recipients.user(3))
    events = list(Event.objects.order_by("id"))
    assert [(e.event_type, e.data.get("n")) for e in events] == [
        ("permission_changed", 2),  # where the first one was
        ("system_status", None),
        ("permission_changed", 3),  # no merge key: never merged
    ]
    assert events[0].recipient_users == [1, 2]


def test_a_bad_event_fails_where_it_is_published_not_after_the_commit():
    with transaction.atomic():
        with pytest.raises(PublishError):
            publish_on_commit("no_such_event", {})
        with pytest.raises(PublishError):
            publish_on_commit("permission_changed", {})  # a USER event needs recipients
    assert published() == []


class Built(CommittedChange):
    """A change built after the commit; records what it was asked to build."""

    calls = []

    def __init__(self, pk, tag):
        self.pk, self.tag = pk, tag

    @property
    def key(self):
        return self.pk

    def merge(self, later):
        return Built(self.pk, f"{self.tag}+{later.tag}")

    @classmethod
    def build(cls, changes):
        cls.calls.append([change.tag for change in changes])
        return {c.pk: [("system_status", status(c.pk, tag=c.tag))] for c in changes if c.pk}

    @classmethod
    def after_publish(cls, changes):
        cls.calls.append(("after", Event.objects.count()))


def test_committed_changes_are_merged_per_key_and_built_once_after_the_commit():
    Built.calls = []
    with transaction.atomic():
        build_on_commit(Built(1, "a"))
        publish_on_commit("system_status", status(5))
        build_on_commit(Built(2, "b"))
        build_on_commit(Built(1, "c"))
        build_on_commit(Built(0, "gone"))  # its row is gone: builds nothing
        assert Built.calls == []
    assert Built.calls == [["a+c", "b", "gone"], ("after", 3)]
    assert [(e.data["component"], e.data.get("tag")) for e in Event.objects.order_by("id")] == [
        ("c1", "a+c"),
        ("c5", None),
        ("c2", "b"),
    ]


class Broken(Built):
    @classmethod
    def build(cls, changes):
        raise RuntimeError("the database went away")


def test_a_broken_build_is_logged_and_the_rest_of_the_commit_still_published(caplog):
    with transaction.atomic():
        build_on_commit(Broken(1, "x"))
        publish_on_commit("system_status", status(1))
    assert published() == [("system_status", "c1")]
    assert "building Broken events failed" in caplog.text


def test_no_code_reads_djangos_private_on_commit_state():
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("realtime", "incidents", "dns", "threatlens")
        for path in (root / folder).rglob("*.py")
        if "run_on_commit" in path.read_text() or "savepoint_ids" in path.read_text()
    ]
    assert offenders == []

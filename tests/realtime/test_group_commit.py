"""Concurrent `publish` calls share one INSERT and one commit (realtime.group_commit)."""

import threading

import pytest
from django.db import DataError, OperationalError, connections, transaction

from realtime import publishing
from realtime.group_commit import GroupCommit
from realtime.models import Event
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class GatedStore:
    """The real storing, recording each group's size; the first group waits at the gate
    so that the next publishers queue up behind it. `refuse` names data that no INSERT
    takes (a group holding it fails, and so does it alone)."""

    def __init__(self, refuse=None, error=DataError):
        self.gate = threading.Event()
        self.groups = []
        self.alone = 0  # store_one calls
        self.refuse = refuse
        self.error = error

    def many(self, events):
        self.groups.append(len(events))
        if len(self.groups) == 1:
            assert self.gate.wait(10)
        if any(event.data == self.refuse for event in events):
            raise self.error("refused by the test")
        Event.objects.bulk_create(events)

    def one(self, event):
        self.alone += 1
        if event.data == self.refuse:
            raise self.error("refused by the test")
        event.save(force_insert=True)


@pytest.fixture
def gated(monkeypatch):
    def install(**options):
        store = GatedStore(**options)
        committer = GroupCommit(store_many=store.many, store_one=store.one)
        monkeypatch.setattr(publishing, "_stored_together", committer)
        return store, committer

    return install


def publish_in_threads(datas, store):
    """Publish each data from a thread of its own, the first alone, the others once it is
    storing; returns {n: Event or exception}."""
    outcomes = {}

    def run(n, data):
        try:
            outcomes[n] = publishing.publish("security_event", data)
        except Exception as exc:
            outcomes[n] = exc
        finally:
            connections.close_all()  # this thread's own; it ends here

    threads = [threading.Thread(target=run, args=(n, data)) for n, data in enumerate(datas)]
    threads[0].start()
    wait_until(lambda: store.groups, "the first publisher stores its event")
    for thread in threads[1:]:
        thread.start()
    return threads, outcomes


def test_publishes_waiting_behind_a_commit_are_stored_together_in_one_insert(gated):
    store, committer = gated()
    threads, outcomes = publish_in_threads([{"n": n} for n in range(4)], store)
    wait_until(lambda: committer.queued == 3, "three publishers wait")
    store.gate.set()
    for thread in threads:
        thread.join(10)
    assert store.groups == [1, 3]
    ids = [outcomes[n].pk for n in range(4)]
    assert all(ids) and len(set(ids)) == 4
    assert {e.pk: e.data["n"] for e in Event.objects.filter(pk__in=ids)} == dict(
        zip(ids, range(4), strict=True)
    )


def test_a_group_that_fails_fails_only_the_publisher_whose_event_cannot_be_stored(gated):
    store, committer = gated(refuse={"n": "bad"})
    datas = [{"n": 0}, {"n": 1}, {"n": "bad"}, {"n": 3}]
    threads, outcomes = publish_in_threads(datas, store)
    wait_until(lambda: committer.queued == 3, "three publishers wait")
    store.gate.set()
    for thread in threads:
        thread.join(10)
    assert store.groups == [1, 3]
    assert isinstance(outcomes[2], DataError)
    stored = [outcomes[n] for n in (0, 1, 3)]
    assert all(isinstance(event, Event) and event.pk for event in stored)
    assert sorted(Event.objects.values_list("data__n", flat=True)) == [0, 1, 3]


def test_a_group_that_times_out_fails_at_once_without_trying_each_event_alone(gated):
    """A lock or pool timeout is no one event's fault: each event tried alone would wait
    as long again (N times 20 s on SQLite)."""
    store, committer = gated(refuse={"n": "slow"}, error=OperationalError)
    datas = [{"n": 0}, {"n": 1}, {"n": "slow"}, {"n": 3}]
    threads, outcomes = publish_in_threads(datas, store)
    wait_until(lambda: committer.queued == 3, "three publishers wait")
    store.gate.set()
    for thread in threads:
        thread.join(10)
    assert store.groups == [1, 3] and store.alone == 0
    errors = [outcomes[n] for n in (1, 2, 3)]
    assert all(isinstance(error, OperationalError) for error in errors)
    assert len({id(error) for error in errors}) == 3  # each publisher its own
    assert list(Event.objects.values_list("data__n", flat=True)) == [0]


def test_a_publisher_waiting_in_line_leads_the_next_group(gated):
    """The first publisher stores only its own group; one of those queued behind it
    stores theirs, so nobody waits for more than the commit before its own."""
    store, committer = gated()
    threads, outcomes = publish_in_threads([{"n": 0}, {"n": 1}], store)
    wait_until(lambda: committer.queued == 1, "one publisher waits")
    store.gate.set()
    for thread in threads:
        thread.join(10)
    assert store.groups == [1, 1]
    assert committer.groups_stored == 2 and committer.queued == 0
    assert outcomes[0].pk < outcomes[1].pk


def test_inside_a_transaction_the_event_is_part_of_it_and_rolls_back_with_it(gated):
    store, _committer = gated()
    with pytest.raises(RuntimeError), transaction.atomic():
        publishing.publish("security_event", {"n": 1})
        raise RuntimeError("the caller's transaction fails")
    assert store.groups == []  # saved in the transaction, not grouped
    assert not Event.objects.filter(event_type="security_event").exists()


def test_one_thread_publishing_in_turn_keeps_its_order():
    events = [publishing.publish("security_event", {"n": n}) for n in range(5)]
    assert [event.pk for event in events] == sorted(event.pk for event in events)
    assert len({event.pk for event in events}) == 5

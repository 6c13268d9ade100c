"""Publishing while another connection holds SQLite's write lock (realtime.write_lock):
the event is stored as soon as the lock is free, the connection keeps its configured
busy timeout, and a lock held past that timeout fails as SQLite would."""

import sqlite3
import threading

import pytest
from django.db import OperationalError, connection

from realtime import write_lock
from realtime.models import Event
from realtime.publishing import publish

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's database-wide write lock")


class OtherWriter:
    """Another process's connection to the same database file, holding the write lock."""

    def __init__(self):
        self.db = sqlite3.connect(
            connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False
        )
        self.db.execute("BEGIN IMMEDIATE")

    def release_after(self, seconds):
        threading.Timer(seconds, self.release).start()

    def release(self):
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


def busy_timeout():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def configured_timeout_ms():
    return round(float(connection.settings_dict["OPTIONS"]["timeout"]) * 1000)


def test_an_event_is_stored_once_the_other_writer_lets_go():
    connection.ensure_connection()
    other = OtherWriter()
    other.release_after(0.15)

    event = publish("config_change", {"note": "waited"})

    assert Event.objects.get(pk=event.pk).data == {"note": "waited"}
    assert busy_timeout() == configured_timeout_ms()


def test_a_lock_held_past_the_timeout_fails_as_sqlite_would(monkeypatch):
    connection.ensure_connection()
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    other = OtherWriter()
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            publish("config_change", {"note": "never"})
    finally:
        other.release()
    assert not Event.objects.exists()
    assert busy_timeout() == 200


def test_another_database_error_is_not_tried_again():
    calls = []

    def broken():
        calls.append(1)
        raise OperationalError("no such table: nowhere")

    with pytest.raises(OperationalError, match="no such table"):
        write_lock.when_unlocked(broken)
    assert calls == [1]
    assert busy_timeout() == configured_timeout_ms()

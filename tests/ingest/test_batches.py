"""The batched pipeline: a batch's events in one INSERT, its alerts upserted together, its
events published together, and the same results as line-by-line processing."""

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from bench.ingest_mix import generate
from incidents.events import security_event_data
from incidents.ingest import receive_raw_log
from incidents.models import Alert, SecurityEvent
from incidents.pipeline.samples import iter_sample_lines
from incidents.processing import process_raw_log
from incidents.security_events import security_event_payload
from realtime.models import Event
from tests.ingest.test_detection_state import detected, forget_everything, process

pytestmark = pytest.mark.django_db


def sample_lines():
    return [(s.source_hint, s.line) for s in iter_sample_lines()]


def published_counts():
    return {
        event_type: Event.objects.filter(event_type=event_type).count()
        for event_type in ("security_event", "security_alert", "threat_detected")
    }


def test_batches_give_the_same_events_and_alerts_as_line_by_line(settings):
    lines = sample_lines()
    settings.LOG_PROCESSING_CHUNK_LINES = 1
    one_by_one = process(lines, lines_per_log=1)
    published_one_by_one = published_counts()

    Event.objects.all().delete()
    forget_everything()
    settings.LOG_PROCESSING_CHUNK_LINES = 1000
    batched = process(lines, lines_per_log=100_000)

    assert batched == one_by_one
    assert published_counts() == published_one_by_one
    events, alerts = batched
    assert len(events) > 10 and len(alerts) > 5


def test_a_batch_costs_the_same_queries_whatever_its_events_and_alerts(settings):
    settings.LOG_PROCESSING_CHUNK_LINES = 10_000

    def queries_for(count):
        forget_everything()
        lines = [m.text for m in generate("attack-heavy", count, seed=count)]
        raw_log = receive_raw_log(source="auth.log", content="\n".join(lines), actor=None)
        with (
            CaptureQueriesContext(connection) as queries,
            TestCase.captureOnCommitCallbacks(execute=False),
        ):
            process_raw_log(raw_log.pk)
        # Not counted: the Sigma rules' version check, made at most once a second by
        # each process (whichever batch comes first), not per batch.
        statements = [
            query["sql"]
            for query in queries.captured_queries
            if '"incidents_sigmarule"' not in query["sql"]
        ]
        # bulk_create cuts an INSERT into as many as the database's parameter limit needs
        # (SQLite); everything else is a fixed number of statements per batch.
        inserts = [sql for sql in statements if sql.startswith('INSERT INTO "incidents_')]
        others = len(statements) - len(inserts)
        return others, len(inserts), SecurityEvent.objects.count(), Alert.objects.count()

    small, _, _, small_alerts = queries_for(300)
    large, inserts, events, large_alerts = queries_for(1500)
    assert large_alerts > 4 * small_alerts > 0
    assert large == small
    assert (events + large_alerts) / inserts > 25


def test_the_published_event_data_is_what_the_rest_api_serializer_gives():
    with TestCase.captureOnCommitCallbacks(execute=True):
        lines = [m.text for m in generate("attack-heavy", 400, seed=3)]
        raw_log = receive_raw_log(source="auth.log", content="\n".join(lines), actor=None)
        process_raw_log(raw_log.pk)

    stored = list(SecurityEvent.objects.order_by("id"))
    assert len(stored) > 20 and any(event.alert_id for event in stored)
    for event in stored:
        assert security_event_data(event) == security_event_payload(event)
    published = Event.objects.filter(event_type="security_event").order_by("id")
    assert [event.data for event in published] == [
        security_event_payload(event) for event in stored
    ]
    assert detected()[0]

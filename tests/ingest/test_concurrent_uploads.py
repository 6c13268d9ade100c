"""Concurrent `POST /api/logs/` through the real ASGI application (each request in a
thread of its own, processed inline): every upload reaches the detection state whole and
in order, so the server stores exactly what the analyzer alone finds over the uploads'
lines one upload after the other, in the order they were processed (`finished_at`)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator

from bench.ingest_mix import generate
from incidents.models import RawLog, RawLogStatus, SecurityEvent
from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line, parser_for_hint
from incidents.pipeline.state import BoundedState
from incidents.processing import shipped_rules
from incidents.raw_log_lines import raw_log_lines
from threatlens.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

UPLOADS = 6


async def post_log(token, source, content):
    body = json.dumps({"source": source, "content": content}).encode()
    headers = [
        (b"host", b"localhost"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    communicator = HttpCommunicator(application, "POST", "/api/logs/", body=body, headers=headers)
    return await communicator.get_response(timeout=120)


def stored_events():
    return sorted(SecurityEvent.objects.values_list("rule_id", "correlation_key", "raw_line"))


def analyzer_alone_in_processing_order():
    """The events the analyzer alone finds over the stored raw logs, one after the other
    in the order they were processed, as `ChunkDetector` parses them."""
    analyzer = Analyzer(shipped_rules(), BoundedState())
    found = []
    for raw_log in RawLog.objects.order_by("finished_at", "id"):
        hint = raw_log.source if parser_for_hint(raw_log.source) else raw_log.file_name or None
        for line, _progress in raw_log_lines(raw_log):
            drafts = analyzer.analyze(parse_line(line, source_hint=hint), source=raw_log.source)
            found += [(d.rule_id, d.correlation_key, d.raw_line) for d in drafts]
    return sorted(found)


async def test_concurrent_uploads_store_what_the_analyzer_finds_over_them_one_after_the_other(
    settings, alice, token_for
):
    # Many chunks per upload, so that two uploads processed at the same time would
    # interleave their lines in the windows and claims, out of event-time order.
    settings.LOG_PROCESSING_CHUNK_LINES = 10
    lines = [m.text for m in generate("attack-heavy", 120 * UPLOADS, seed=5)]
    uploads = ["\n".join(lines[n::UPLOADS]) for n in range(UPLOADS)]
    token = await sync_to_async(token_for)(alice)

    responses = await asyncio.gather(*(post_log(token, "auth.log", text) for text in uploads))

    assert [response["status"] for response in responses] == [202] * UPLOADS
    logs = await sync_to_async(list)(RawLog.objects.values_list("status", "lines_total"))
    assert logs == [(RawLogStatus.COMPLETED, 120)] * UPLOADS
    stored = await sync_to_async(stored_events)()
    assert len(stored) > 20
    assert stored == await sync_to_async(analyzer_alone_in_processing_order)()

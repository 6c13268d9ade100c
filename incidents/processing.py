"""Processing one raw log: its stages, its security events, the alerts they raise.

    process_raw_log(raw_log.pk)      # from a request, a worker thread or a command

A raw log goes received -> parsing -> analysis -> completed, or to failed with the
reason. Each step publishes `processing_update` (see `security_events.processing_update_data`):

    stage       status        progress
    received    completed     0.0        when it is stored (by `incidents.ingest`)
    parsing     started       0.0        its lines are being opened and read
    analysis    in_progress   0..1       after each chunk of LOG_PROCESSING_CHUNK_LINES lines
    completed   completed     1.0        done
    <stage>     failed        ...        it failed in <stage>; `error` says why

Lines are parsed (`incidents.pipeline.parse_line`) and analysed by the shipped rules
(`Analyzer` over the shared cache) chunk by chunk, so a large file never sits in memory
as parsed lines and clients see progress. Each chunk's writes are one transaction: its
security events, the alerts they raise through `incidents.services.ingest_alert`, and the
raw log's counters; every event of the chunk is published after that commit. A malformed
line is counted, never fatal. Parsing and analysis run outside the transaction, so the
database write lock (SQLite) is held only for the writes.

Events published per chunk: `security_event` for each stored event (priority =
severity); for each event at or above ALERT_SEVERITY_THRESHOLD the alert's own
`new_alert` / `alert_updated` (by `incidents.broadcast`) and `security_alert` (unified
envelope); `threat_detected` for a DNS query of a listed domain.

Every `processing_update` of a log goes out at the same priority (the catalogue's): the
hub delivers a burst highest priority first, and a client must see a log's stages in
their order.
"""

import gzip
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from incidents import sigma
from incidents.conf import pipeline_setting
from incidents.exceptions import IncidentsError, NotFound
from incidents.models import (
    CLOSED_ALERT_STATUSES,
    Alert,
    RawLog,
    RawLogStatus,
    SecurityEvent,
)
from incidents.pipeline import payloads
from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line, parser_for_hint
from incidents.pipeline.state import CacheState
from incidents.security_events import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    STARTED,
    processing_update_data,
    security_event_payload,
)
from incidents.services import ingest_alert
from incidents.threat_intel import domain_lookup
from realtime.publishing import publish_on_commit
from threatlens.audit.context import audit_context

logger = logging.getLogger(__name__)

# `source` of the alerts the pipeline raises (Alert.source).
ALERT_SOURCE = "pipeline"
# Reading a file given to `ingest_logs`: bytes per read, and the longest line kept whole
# (the parsers flag longer ones as malformed).
READ_LINE_LIMIT = 1024 * 1024


@lru_cache(maxsize=1)
def shipped_rules():
    """The compiled shipped rules (compiled once per process)."""
    from incidents.pipeline.rules import load_rules

    return tuple(load_rules())


def build_analyzer():
    """The analyzer for one raw log: shipped rules, detection state in the shared cache
    (so every process counts the same bursts), and a fresh lookup of listed domains."""
    return Analyzer(shipped_rules(), CacheState(), domain_lookup=domain_lookup())


def process_raw_log(raw_log_id, *, analyzer=None):
    """Process a received raw log through its stages; returns it, completed or failed.

    Only a raw log still in `received` is processed (the claim is one conditional
    UPDATE, so two workers never process the same log); for any other the raw log is
    returned as it is. Raises `NotFound` for an unknown id.
    """
    now = timezone.now()
    claimed = RawLog.objects.filter(pk=raw_log_id, status=RawLogStatus.RECEIVED).update(
        status=RawLogStatus.PARSING, stage=RawLogStatus.PARSING, started_at=now, updated_at=now
    )
    raw_log = RawLog.objects.filter(pk=raw_log_id).first()
    if raw_log is None:
        raise NotFound(f"Raw log {raw_log_id} not found.")
    if not claimed:
        return raw_log
    # Alerts raised here are the system's, not those of whoever's request runs this.
    with audit_context(request=None, actor=None, source="pipeline"):
        _Run(raw_log, analyzer or build_analyzer()).run()
    return raw_log


@dataclass
class _Chunk:
    lines: list
    progress: float


class _Run:
    """The processing of one claimed raw log."""

    def __init__(self, raw_log, analyzer):
        self.raw_log = raw_log
        self.analyzer = analyzer
        self.threshold = pipeline_setting("ALERT_SEVERITY_THRESHOLD")
        self.chunk_lines = max(1, int(pipeline_setting("LOG_PROCESSING_CHUNK_LINES")))
        # The parser tried first: the source name if it names a format, else the file name.
        self.hint = raw_log.source if parser_for_hint(raw_log.source) else raw_log.file_name or None
        self.started = time.monotonic()

    def run(self):
        raw_log = self.raw_log
        publish_on_commit("processing_update", processing_update_data(raw_log, status=STARTED))
        try:
            lines = self._lines()
            for chunk in self._chunks(lines):
                self._process_chunk(chunk)
        except Exception as exc:
            logger.exception("processing raw log %s failed", raw_log.pk)
            self._fail(exc)
            return
        self._complete()

    # -- reading ------------------------------------------------------------------------------

    def _lines(self):
        """Yields (line, progress) for every line, from `content` or `file_path`."""
        raw_log = self.raw_log
        if raw_log.file_path:
            return _file_lines(raw_log.file_path)
        return _content_lines(raw_log.content)

    def _chunks(self, lines):
        batch, progress = [], 0.0
        for line, progress in lines:
            batch.append(line)
            if len(batch) >= self.chunk_lines:
                yield _Chunk(batch, progress)
                batch = []
        if batch or self.raw_log.lines_total == 0:
            yield _Chunk(batch, 1.0)

    # -- one chunk --------------------------------------------------------------------------

    def _process_chunk(self, chunk):
        raw_log = self.raw_log
        malformed = unknown = 0
        drafts = []
        for line in chunk.lines:
            parsed = parse_line(line, source_hint=self.hint)
            if parsed.malformed:
                malformed += 1
            elif parsed.category == "unknown":
                unknown += 1
            drafts.extend(self.analyzer.analyze(parsed, source=raw_log.source))
            drafts.extend(sigma.analyze(parsed, source=raw_log.source))

        with transaction.atomic():
            events, alerts_created = [], 0
            published = []
            for draft in drafts:
                draft.src_ip = _clean_ip(draft.src_ip)
                alert = None
                if draft.severity >= self.threshold:
                    alert, created = self._raise_alert(draft)
                    alerts_created += int(created)
                    if alert is not None:
                        published.append(
                            ("security_alert", self._alert_data(draft, alert, created), draft)
                        )
                threat = payloads.threat_detected_data(draft)
                if threat is not None:
                    published.append(("threat_detected", threat, draft))
                events.append(_security_event(draft, raw_log, alert))
            SecurityEvent.objects.bulk_create(events)

            raw_log.status = raw_log.stage = RawLogStatus.ANALYSIS
            raw_log.lines_total += len(chunk.lines)
            raw_log.lines_malformed += malformed
            raw_log.lines_unknown += unknown
            raw_log.events_created += len(events)
            raw_log.alerts_raised += alerts_created
            raw_log.progress = chunk.progress
            raw_log.processing_time = time.monotonic() - self.started
            raw_log.save(
                update_fields=[
                    "status",
                    "stage",
                    "lines_total",
                    "lines_malformed",
                    "lines_unknown",
                    "events_created",
                    "alerts_raised",
                    "progress",
                    "processing_time",
                    "updated_at",
                ]
            )

            for event in events:
                publish_on_commit(
                    "security_event", security_event_payload(event), priority=event.severity
                )
            for event_type, data, draft in published:
                publish_on_commit(event_type, data, priority=draft.severity)
            publish_on_commit(
                "processing_update", processing_update_data(raw_log, status=IN_PROGRESS)
            )

    def _raise_alert(self, draft):
        """Raise the alert of `draft`, or repeat the open alert of its correlation key.

        Repeats are joined through `ingest_alert`'s (source, external_id) identity: the
        external id is that of the key's open alert when there is one, so the repeat
        updates it (occurrence_count, last_seen_at) instead of queueing another alert.
        Returns `(alert, created)`, or `(None, False)` when the alert was refused.
        """
        key = draft.correlation_key
        external_id = (
            Alert.objects.filter(source=ALERT_SOURCE, correlation_key=key)
            .exclude(status__in=CLOSED_ALERT_STATUSES)
            .exclude(external_id="")
            .order_by("-id")
            .values_list("external_id", flat=True)
            .first()
        ) or _fresh_external_id(key, draft)
        body = payloads.alert_input(draft, source=ALERT_SOURCE, external_id=external_id)
        try:
            return ingest_alert(body, actor=None)
        except IncidentsError as exc:
            # The event is still stored and published; only its alert is missing.
            logger.warning("alert for %s refused: %s %s", key, exc.message, exc.details)
            return None, False

    @staticmethod
    def _alert_data(draft, alert, created):
        data = payloads.security_alert_data(draft, alert_id=alert.pk)
        data["details"]["occurrence_count"] = alert.occurrence_count
        data["details"]["repeat"] = not created
        if alert.incident_id:
            data["details"]["incident_id"] = alert.incident_id
        return data

    # -- the end ----------------------------------------------------------------------------

    def _complete(self):
        raw_log = self.raw_log
        raw_log.status = raw_log.stage = RawLogStatus.COMPLETED
        raw_log.progress = 1.0
        raw_log.finished_at = timezone.now()
        raw_log.processing_time = time.monotonic() - self.started
        with transaction.atomic():
            raw_log.save(
                update_fields=[
                    "status",
                    "stage",
                    "progress",
                    "finished_at",
                    "processing_time",
                    "updated_at",
                ]
            )
            publish_on_commit(
                "processing_update", processing_update_data(raw_log, status=COMPLETED)
            )

    def _fail(self, exc):
        raw_log = self.raw_log
        try:
            # The counters as committed: a chunk that failed half-way rolled its own back.
            raw_log.refresh_from_db(fields=_COUNTERS)
        except Exception:
            logger.exception("could not re-read raw log %s", raw_log.pk)
        raw_log.status = RawLogStatus.FAILED
        raw_log.error = _describe(exc)
        raw_log.finished_at = timezone.now()
        raw_log.processing_time = time.monotonic() - self.started
        try:
            with transaction.atomic():
                raw_log.save(
                    update_fields=[
                        "status",
                        "error",
                        "finished_at",
                        "processing_time",
                        "updated_at",
                    ]
                )
                publish_on_commit(
                    "processing_update", processing_update_data(raw_log, status=FAILED)
                )
        except Exception:
            logger.exception("could not mark raw log %s as failed", raw_log.pk)


_COUNTERS = [
    "lines_total",
    "lines_malformed",
    "lines_unknown",
    "events_created",
    "alerts_raised",
    "progress",
]


# -- helpers ----------------------------------------------------------------------------------


def _content_lines(content):
    """(line, progress) for every non-blank line of `content`, progress by lines."""
    lines = content.split("\n")
    total = len(lines)
    for index, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield _clean_text(line), index / total


def _file_lines(path):
    """(line, progress) for every non-blank line of a file (gzip when it ends in .gz),
    progress by bytes read. Raises OSError when it cannot be read: the log fails."""
    raw = open(path, "rb")  # noqa: SIM115  (closed in the finally below)
    try:
        size = max(1, _size(raw))
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        while True:
            data = stream.readline(READ_LINE_LIMIT)
            if not data:
                break
            text = data.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.strip():
                yield _clean_text(text), min(1.0, raw.tell() / size)
    finally:
        raw.close()


def _size(handle):
    import os

    return os.fstat(handle.fileno()).st_size


def _clean_text(text):
    # PostgreSQL stores no NUL character in text or JSON columns.
    return text.replace("\x00", "\ufffd")


def _clean_ip(value):
    """An address the database's IP column takes (no IPv6 zone), or None."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).split("%", 1)[0]))
    except ValueError:
        return None


def _fresh_external_id(key, draft):
    """The external id of a new alert for `key`: the key itself the first time, else the
    key and the event time (a recurrence after the previous alert was closed)."""
    if not Alert.objects.filter(source=ALERT_SOURCE, external_id=key).exists():
        return key
    candidate = f"{key}@{draft.timestamp.isoformat()}"
    if len(candidate) <= 255:
        return candidate
    digest = hashlib.sha1(candidate.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key[:238]}~{digest}"


def _security_event(draft, raw_log, alert):
    fields = {
        "severity": draft.severity,
        "category": draft.category[:64],
        "source": draft.source[:128],
        "message": draft.message,
        "timestamp": draft.timestamp,
        "analysis": dict(draft.analysis),
        "recommendations": list(draft.recommendations),
        "rule_id": draft.rule_id[:64],
        "correlation_key": draft.correlation_key[:255],
        "src_ip": draft.src_ip,
        "user": (draft.user or "")[:255],
        "raw_line": draft.raw_line,
        "details": dict(draft.details),
        "raw_log": raw_log,
        "alert": alert,
    }
    if draft.event_id:
        fields["event_id"] = draft.event_id
    return SecurityEvent(**fields)


def _describe(exc):
    if isinstance(exc, OSError):
        return f"cannot read the log: {exc.strerror or exc}" + (
            f" ({exc.filename})" if exc.filename else ""
        )
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:500]}" if text else type(exc).__name__

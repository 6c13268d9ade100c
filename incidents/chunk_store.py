"""Storing one processed chunk of a raw log: its security events, the alerts they raise,
the raw log's counters, and what it publishes after the commit.

    store = ChunkStore(raw_log, threshold=ALERT_SEVERITY_THRESHOLD, started=time.monotonic())
    store.store(chunk, drafts, malformed=2, unknown=5)     # one transaction

A chunk is a fixed number of statements whatever its events and alerts
(`tests/ingest/test_batches.py` locks it): one bulk INSERT of its events, one
`ingest_alerts` call for its alerts, one UPDATE of the raw log, one `publish_many`.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from incidents import block_hits
from incidents.events import (
    processing_update_data,
    security_alert_data,
    security_event_data,
    threat_detected_data,
)
from incidents.exceptions import IncidentsError
from incidents.ingest_metrics import PROCESSING
from incidents.models import CLOSED_ALERT_STATUSES, Alert, RawLogStatus, SecurityEvent
from incidents.pipeline.alert_input import alert_input
from incidents.security_events import COMPLETED, IN_PROGRESS
from incidents.services import MAX_BULK_ALERTS, check_alerts, ingest_alert, ingest_alerts
from realtime.publishing import publish_many_on_commit

logger = logging.getLogger(__name__)

# `source` of the alerts the pipeline raises (Alert.source).
ALERT_SOURCE = "pipeline"

# A raw log's counters: saved with each chunk's transaction, read back when one fails.
COUNTERS = [
    "lines_total",
    "lines_malformed",
    "lines_unknown",
    "events_created",
    "alerts_raised",
    "progress",
]


class ChunkStore:
    """Stores the chunks of one raw log, each in one transaction: the events of its
    drafts, the alerts of those at or above `threshold` (`AlertRaiser`), the raw log's
    counters and progress (its `processing_time` counted from `started`, a
    `time.monotonic()`), and, after the commit, everything the chunk publishes in one
    `publish_many`: `security_event` per event, `security_alert` per alerting event,
    `threat_detected` per listed domain, then `processing_update`."""

    def __init__(self, raw_log, *, threshold, started):
        self.raw_log = raw_log
        self.alerts = AlertRaiser(threshold)
        self.started = started

    def store(self, chunk, drafts, *, malformed, unknown, before=()):
        """Store `chunk` in one transaction; `before`: items published ahead of the
        chunk's own (the raw log's `started`). The last chunk (`chunk.last`) completes
        the raw log in the same transaction."""
        raw_log = self.raw_log
        alerts = self.alerts.prepare(drafts)
        with transaction.atomic():
            # First in the commit's one INSERT, ahead of the alerts' events.
            publish_many_on_commit(before)
            # Before the events are built: it names the incident on their listing.
            block_hits.link_and_record(drafts)
            raised = self.alerts.raise_alerts(alerts)
            events, published = [], []
            for index, draft in enumerate(drafts):
                alert = raised.get(index)
                if alert is not None:
                    published.append(("security_alert", alert_data(draft, alert), draft))
                threat = threat_detected_data(draft)
                if threat is not None:
                    published.append(("threat_detected", threat, draft))
                events.append(_security_event(draft, raw_log, alert.alert_id if alert else None))
            # One INSERT for the batch's events.
            SecurityEvent.objects.bulk_create(events)

            raw_log.status = raw_log.stage = RawLogStatus.ANALYSIS
            raw_log.lines_total += len(chunk.lines)
            raw_log.lines_malformed += malformed
            raw_log.lines_unknown += unknown
            new_alerts = len({a.alert_id for a in raised.values() if a.created})
            raw_log.events_created += len(events)
            raw_log.alerts_raised += new_alerts
            raw_log.progress = chunk.progress
            raw_log.processing_time = time.monotonic() - self.started
            progress = processing_update_data(raw_log, status=IN_PROGRESS)
            fields = ["status", "stage", *COUNTERS, "processing_time", "updated_at"]
            if chunk.last:
                # One transaction less per raw log: its completion commits with its last
                # chunk (a second writer, the syslog child, holds SQLite's lock less often).
                mark_completed(raw_log, self.started)
                fields = [*fields, "finished_at"]
            raw_log.save(update_fields=fields)

            # Everything the batch publishes, in one INSERT into the event table after
            # the commit: its events, then its alerts and threats, then the progress.
            items = [
                ("security_event", security_event_data(event), {"priority": event.severity})
                for event in events
            ]
            items += [
                (event_type, data, {"priority": draft.severity})
                for event_type, data, draft in published
            ]
            items.append(("processing_update", progress))
            if chunk.last:
                completed = processing_update_data(raw_log, status=COMPLETED)
                items.append(("processing_update", completed))
            publish_many_on_commit(items)
        PROCESSING.add(
            lines=len(chunk.lines),
            unparsed=malformed + unknown,
            events=len(events),
            alerts=new_alerts,
        )


def mark_completed(raw_log, started):
    """Set `raw_log` completed (not saved); `started` is its processing's `time.monotonic()`."""
    raw_log.status = raw_log.stage = RawLogStatus.COMPLETED
    raw_log.progress = 1.0
    raw_log.finished_at = timezone.now()
    raw_log.processing_time = time.monotonic() - started


@dataclass(frozen=True, slots=True)
class PreparedAlerts:
    """A chunk's drafts at or above the threshold (`(index, draft)`), their alert bodies
    without external ids, and those bodies checked, per slice of MAX_BULK_ALERTS (None
    for a slice with an invalid one)."""

    severe: list
    bodies: list
    checked: list


@dataclass(frozen=True, slots=True)
class RaisedAlert:
    """A draft's alert after the batch: its id, whether this draft created it, its
    occurrence count as of this draft, its incident."""

    alert_id: int
    created: bool
    occurrence_count: int
    incident_id: int | None


class AlertRaiser:
    """Raises or repeats the alerts of a chunk's drafts at or above `threshold`."""

    def __init__(self, threshold):
        self.threshold = threshold

    def prepare(self, drafts):
        """Before the transaction: the drafts at or above the threshold, with their alert
        bodies built and checked (`check_alerts`), so that the write lock is held only
        for the writes. Pass the result to `raise_alerts`."""
        severe = [(i, d) for i, d in enumerate(drafts) if d.severity >= self.threshold]
        bodies = [alert_input(draft, source=ALERT_SOURCE) for _, draft in severe]
        checked = []
        for start in range(0, len(bodies), MAX_BULK_ALERTS):
            try:
                checked.append(check_alerts(bodies[start : start + MAX_BULK_ALERTS]))
            except IncidentsError:
                checked.append(None)  # one is invalid: that slice goes one by one
        return PreparedAlerts(severe, bodies, checked)

    def raise_alerts(self, prepared):
        """Raise or repeat the alerts of a batch's `prepare`d drafts, in one
        `ingest_alerts` call. Returns {draft index: RaisedAlert}.

        A draft repeats the open alert of its correlation key when there is one: its
        external id is that alert's, so `ingest_alerts`' (source, external_id) identity
        updates it (occurrence_count, last_seen_at) instead of queueing another. Drafts of
        one key within the batch join the same alert, as they would one by one.
        """
        severe = prepared.severe
        if not severe:
            return {}
        firsts = {}
        for _, draft in severe:
            firsts.setdefault(draft.correlation_key, draft)
        external_ids = _external_ids(firsts)
        ids = [external_ids[draft.correlation_key] for _, draft in severe]
        bodies = [
            {**body, "external_id": id_} for body, id_ in zip(prepared.bodies, ids, strict=True)
        ]
        results = []
        for slice_, start in enumerate(range(0, len(bodies), MAX_BULK_ALERTS)):
            end = start + MAX_BULK_ALERTS
            results += _ingest_alerts(bodies[start:end], prepared.checked[slice_], ids[start:end])
        found = {
            pk: (count, incident_id)
            for pk, count, incident_id in Alert.objects.filter(
                pk__in={pk for pk, _ in results if pk is not None}
            ).values_list("pk", "occurrence_count", "incident_id")
        }
        # Each draft's own occurrence number, as one-by-one processing would have seen it.
        in_batch = {}
        for pk, _created in results:
            in_batch[pk] = in_batch.get(pk, 0) + 1
        seen, raised = {}, {}
        for (index, _draft), (pk, created) in zip(severe, results, strict=True):
            if pk is None:
                continue
            count, incident_id = found[pk]
            seen[pk] = seen.get(pk, 0) + 1
            raised[index] = RaisedAlert(
                alert_id=pk,
                created=created and seen[pk] == 1,
                occurrence_count=count - in_batch[pk] + seen[pk],
                incident_id=incident_id,
            )
        return raised


def alert_data(draft, alert):
    """The `security_alert` data of a draft that raised or repeated `alert`."""
    data = security_alert_data(draft, alert_id=alert.alert_id)
    data["details"]["occurrence_count"] = alert.occurrence_count
    data["details"]["repeat"] = not alert.created
    if alert.incident_id:
        data["details"]["incident_id"] = alert.incident_id
    return data


def _external_ids(first_drafts):
    """{correlation key: external id} for the keys of `first_drafts` ({key: the batch's
    first draft of it}), in two queries: the external id of the key's open alert (the
    newest), else a fresh one (`_fresh_external_id`)."""
    keys = set(first_drafts)
    found = {}
    open_alerts = (
        Alert.objects.filter(source=ALERT_SOURCE, correlation_key__in=keys)
        .exclude(status__in=CLOSED_ALERT_STATUSES)
        .exclude(external_id="")
        .order_by("id")
        .values_list("correlation_key", "external_id")
    )
    for key, external_id in open_alerts:
        found[key] = external_id  # the newest wins
    fresh = keys - set(found)
    if fresh:
        taken = set(
            Alert.objects.filter(source=ALERT_SOURCE, external_id__in=fresh).values_list(
                "external_id", flat=True
            )
        )
        for key in fresh:
            found[key] = _fresh_external_id(key, first_drafts[key], taken=key in taken)
    return found


def _ingest_alerts(bodies, checked, external_ids):
    """[(alert id, created)] for `bodies` (`checked`: the same alerts checked, without
    their `external_ids`, or None), in one transaction; if one is refused, they go one by
    one, and a refused alert is (None, False): its event is still stored and published."""
    try:
        items = bodies if checked is None else checked.with_external_ids(external_ids)
        return ingest_alerts(items, actor=None).results
    except IncidentsError:
        pass
    results = []
    for body in bodies:
        try:
            alert, created = ingest_alert(body, actor=None)
        except IncidentsError as exc:
            key = body.get("correlation_key")
            logger.warning("alert for %s refused: %s %s", key, exc.message, exc.details)
            results.append((None, False))
        else:
            results.append((alert.pk, created))
    return results


def _fresh_external_id(key, draft, *, taken):
    """The external id of a new alert for `key`: the key itself the first time, else the
    key and the event time (a recurrence after the previous alert was closed)."""
    if not taken:
        return key
    candidate = f"{key}@{draft.timestamp.isoformat()}"
    if len(candidate) <= 255:
        return candidate
    digest = hashlib.sha1(candidate.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key[:238]}~{digest}"


def _security_event(draft, raw_log, alert_id):
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
        "alert_id": alert_id,
    }
    if draft.event_id:
        fields["event_id"] = draft.event_id
    return SecurityEvent(**fields)

"""Writing a bulk job's records in short transactions, and undoing them.

A job of thousands of records written in one transaction holds the database's write
lock for seconds, and on SQLite (the embedded default) that stops every other writer:
alert posts, publishes and logins waited and then failed with "database is locked".
So a job writes `CHUNK_RECORDS` records per transaction, and between two chunks other
writers get their turn.

All or nothing is kept by three things:
- while a job writes, its zone is marked (`BulkOperation.writing_heartbeat_at`, renewed
  by every chunk) and `services.lock_zone` refuses other writers of that zone with
  `ZoneBusy` (HTTP 409 ZONE_BUSY, Retry-After), so nothing changes the zone under the job;
- each chunk's transaction also writes the job's journal (`result`: the ids written so
  far, and `undo`: the rows as they were before), so the journal never disagrees with
  the records;
- if the job fails half-way, `undo` puts the records back as they were in one
  transaction. A job whose process died (its marker not renewed for `STALE_AFTER`
  seconds) is undone by the next writer of its zone.

Readers may see the records of a running job appear chunk by chunk; the zone's serial,
the events and the BIND sync come once, at the end.
"""

import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from dns.models import BulkOperation, Record

CHUNK_RECORDS = 500
# After each chunk, on SQLite: a writer that waits for the lock polls it (SQLite's busy
# handler) every 100 ms once it has waited a while, so a job that took the lock again at
# once would starve it; this pause lets every waiting writer in.
SQLITE_PAUSE_BETWEEN_CHUNKS = 0.12
# A writing job renews its marker at every chunk: one silent this long died.
STALE_AFTER = timedelta(seconds=120)
# Rows per DELETE ... WHERE id IN (...): within SQLite's limit of bound parameters.
IDS_PER_QUERY = 500


class ZoneBusy(Exception):
    """A bulk job is writing the zone: try again in `retry_after` seconds."""

    retry_after = 1

    def __init__(self, job):
        self.job_id = job.pk
        super().__init__(
            f"A bulk job ({job.pk}) is writing this zone's records; try again in a moment."
        )


def ensure_not_being_written(zone, *, writer_job_id=None):
    """Inside the caller's transaction, with the zone row locked: raise `ZoneBusy` when
    another job is writing this zone; undo a job that died while writing it."""
    writing = BulkOperation.objects.filter(zone_id=zone.pk, writing_heartbeat_at__isnull=False)
    if writer_job_id is not None:
        writing = writing.exclude(pk=writer_job_id)
    for job in writing.defer("items").select_for_update():
        if job.writing_heartbeat_at > timezone.now() - STALE_AFTER:
            raise ZoneBusy(job)
        _undo_in_transaction(job, reason="its process stopped while writing")


def mark_writing(job):
    """In the claiming transaction: the zone is this job's until `finish` or `undo`."""
    job.writing_heartbeat_at = timezone.now()
    job.result = {"created": [], "updated": [], "deleted": []}
    job.undo = {"updated": [], "deleted": []}
    job.save(update_fields=["writing_heartbeat_at", "result", "undo"])


def chunks(items, size=CHUNK_RECORDS):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_chunk(job, zone, operation, chunk, actor, now):
    """Write one chunk of a planned job in its own transaction, with its journal.

    `chunk` holds field dicts (create), `(record, fields)` pairs (update) or records
    (delete). Returns the ids written. Raises `ZoneBusy` if the job lost its mark (it
    was taken for dead and undone)."""
    from dns import services

    with transaction.atomic():
        # Without `items`: the request, up to DNS_BULK_MAX_ITEMS records, read once.
        job = BulkOperation.objects.defer("items").select_for_update().get(pk=job.pk)
        if job.writing_heartbeat_at is None:
            raise ZoneBusy(job)
        with services.writing():
            if operation == BulkOperation.Operation.CREATE:
                created = Record.objects.bulk_create(
                    [
                        Record(zone=zone, created_by=actor, updated_by=actor, **fields)
                        for fields in chunk
                    ]
                )
                ids = [record.pk for record in created]
                job.result["created"].extend(ids)
            elif operation == BulkOperation.Operation.UPDATE:
                records = []
                for record, fields in chunk:
                    job.undo["updated"].append(_row(record))
                    for key, value in fields.items():
                        setattr(record, key, value)
                    record.version += 1
                    record.updated_by = actor
                    record.updated_at = now
                    records.append(record)
                Record.objects.bulk_update(
                    records, [*Record.EDITABLE_FIELDS, "version", "updated_by", "updated_at"]
                )
                ids = [record.pk for record in records]
                job.result["updated"].extend(ids)
            else:
                ids = [record.pk for record in chunk]
                job.undo["deleted"].extend(_row(record) for record in chunk)
                for part in chunks(ids, IDS_PER_QUERY):
                    Record.objects.filter(pk__in=part).delete()
                job.result["deleted"].extend(ids)
        job.writing_heartbeat_at = timezone.now()
        job.save(update_fields=["writing_heartbeat_at", "result", "undo"])
    return ids


def pause_between_chunks():
    """Give other writers their turn (SQLite has one write lock for the whole database;
    PostgreSQL locks rows, and other writers never waited for the job)."""
    if connection.vendor == "sqlite":
        time.sleep(SQLITE_PAUSE_BETWEEN_CHUNKS)


def finish(job):
    """In the job's last transaction: the zone is free again, the journal is dropped."""
    job.writing_heartbeat_at = None
    job.undo = None


def undo(job_id, *, reason):
    """Put back what a failed job wrote (one transaction); returns True if it wrote any."""
    with transaction.atomic():
        job = BulkOperation.objects.defer("items").select_for_update().filter(pk=job_id).first()
        if job is None or job.writing_heartbeat_at is None:
            return False
        return _undo_in_transaction(job, reason=reason)


def _undo_in_transaction(job, *, reason):
    from dns import services

    result = job.result or {}
    undo_rows = job.undo or {}
    with services.writing():
        for part in chunks(result.get("created", []), IDS_PER_QUERY):
            Record.objects.filter(pk__in=part).delete()
        for row in undo_rows.get("updated", []):
            Record.objects.filter(pk=row["id"]).update(
                **{key: value for key, value in row.items() if key != "id"}
            )
        if undo_rows.get("deleted"):
            Record.objects.bulk_create([Record(**row) for row in undo_rows["deleted"]])
            # bulk_create stamps auto_now(_add) fields with the time of the undo.
            for row in undo_rows["deleted"]:
                Record.objects.filter(pk=row["id"]).update(
                    created_at=row["created_at"], updated_at=row["updated_at"]
                )
    wrote = any(result.get(key) for key in ("created", "updated", "deleted"))
    job.writing_heartbeat_at = None
    job.undo = None
    job.result = {"created": [], "updated": [], "deleted": []}
    fields = ["writing_heartbeat_at", "undo", "result"]
    if job.status == BulkOperation.Status.RUNNING:
        job.status = BulkOperation.Status.FAILED
        job.errors = [{"index": None, "errors": {"non_field_errors": [f"Undone: {reason}."]}}]
        job.finished_at = timezone.now()
        fields += ["status", "errors", "finished_at"]
    job.save(update_fields=fields)
    return wrote


def _row(record):
    """Every column of a record, as JSON can hold it, to put it back as it was."""
    row = {}
    for field in Record._meta.concrete_fields:
        value = getattr(record, field.attname)
        row[field.attname] = value.isoformat() if hasattr(value, "isoformat") else value
    return row


def wait_until_free(claim, *, timeout=60):
    """Call `claim()` until it does not raise `ZoneBusy` (another job writing the zone
    finishes within seconds), for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return claim()
        except ZoneBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(ZoneBusy.retry_after)

"""Bulk create, update or delete of a zone's records, run as a job. All or nothing.

`start_bulk_operation` stores the request as a `BulkOperation`; `run_in_background` runs
it in a thread once the request's transaction commits, or `run_bulk_operation` runs it
here and now. The job has two stages:

1. validating (progress 0 to 0.5): every item is checked, alone and against the zone's
   records as they are, outside any write transaction, so progress events and the job
   row's progress are visible while it runs. Checking N records at one name costs O(N)
   (`validation.RecordSets`);
2. applying (0.5 to 1): a short transaction claims the zone if its serial is still the
   one the records were read at (else they are read and checked again); the records are
   then written `chunked.CHUNK_RECORDS` per transaction, so other writers of the
   database wait a moment at most, while other writers of this zone are held off; a last
   transaction raises the serial once, audits and announces. Any error undoes what was
   written (`dns.chunked`: all or nothing).

`bulk_operation_progress` events go out during stage 1 and at the end;
`bulk_operation_complete` says how it ended, with the ids of the records concerned.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from dns import announce, chunked, events, services, validation
from dns.conf import dns_setting
from dns.models import BulkOperation, Record, Zone
from realtime.publishing import publish, publish_on_commit
from threatlens.audit.services import record as audit

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 100
MAX_AUDITED_ITEMS = 1000
PROGRESS_STEPS = 20
VALIDATION_SHARE = 0.5
# Times the records are read and checked again when the zone changed meanwhile.
CLAIM_ATTEMPTS = 3


class BulkFailed(Exception):
    def __init__(self, errors):
        self.errors = errors
        super().__init__(f"{len(errors)} item(s) failed")


# --- Starting -----------------------------------------------------------------------------


def start_bulk_operation(actor, zone_id, operation, items, *, request=None):
    """Check the request's shape and the actor's right to change the zone, and store the
    job (status `pending`). Raises ValidationError / PermissionDenied / Zone.DoesNotExist."""
    if operation not in BulkOperation.Operation.values:
        raise ValidationError({"operation": [f"{operation!r} is not create, update or delete."]})
    if not isinstance(items, list) or not items:
        raise ValidationError({"records": ["Give a non-empty list of records."]})
    limit = dns_setting("BULK_MAX_ITEMS")
    if len(items) > limit:
        raise ValidationError({"records": [f"At most {limit} records in one job."]})
    with transaction.atomic():
        zone = services.lock_zone(actor, zone_id)
        services.require_master(zone)
        job = BulkOperation.objects.create(
            zone=zone, operation=operation, items=items, total=len(items), created_by=actor
        )
        audit(
            f"dns.bulk.{operation}.start",
            actor=actor,
            request=request,
            details={"operation_id": str(job.pk), "zone": zone.name, "total": len(items)},
            target_type="dns.zone",
            target_id=str(zone.pk),
            target_repr=zone.name,
        )
    return job


def run_in_background(job_id):
    """Run the job in a daemon thread once the current transaction commits."""

    def start():
        thread = threading.Thread(
            target=_thread_main, args=(job_id,), name=f"dns-bulk-{job_id}", daemon=True
        )
        thread.start()

    transaction.on_commit(start)


def _thread_main(job_id):
    close_old_connections()
    try:
        run_bulk_operation(job_id)
    except Exception:
        logger.exception("bulk operation %s crashed", job_id)
    finally:
        connection.close()


# --- Running --------------------------------------------------------------------------------


@dataclass
class Plan:
    creates: list = field(default_factory=list)  # normalised field dicts
    updates: list = field(default_factory=list)  # (record, normalised fields)
    deletes: list = field(default_factory=list)  # records


class Progress:
    """Publishes `bulk_operation_progress` about PROGRESS_STEPS times per stage and keeps
    the job row's counters current."""

    def __init__(self, job, zone, recipients):
        self.job, self.zone, self.recipients = job, zone, recipients
        self.step = max(1, job.total // PROGRESS_STEPS)

    def validated(self, processed, *, force=False):
        if not force and processed % self.step and processed != self.job.total:
            return
        self.report("validating", processed, VALIDATION_SHARE * processed / self.job.total)

    def report(self, stage, processed, progress):
        BulkOperation.objects.filter(pk=self.job.pk).update(processed=processed, progress=progress)
        publish(
            "bulk_operation_progress",
            dict(
                events.bulk_progress_data(
                    self.job, self.zone, stage=stage, processed=processed, progress=progress
                )
            ),
            recipients=self.recipients,
        )


def run_bulk_operation(job_id):
    """Run a pending job to its end in this thread; returns the job. A job that is not
    pending (already run, or running elsewhere) is left alone."""
    claimed = BulkOperation.objects.filter(pk=job_id, status=BulkOperation.Status.PENDING).update(
        status=BulkOperation.Status.RUNNING, started_at=timezone.now()
    )
    job = BulkOperation.objects.select_related("zone", "created_by").get(pk=job_id)
    if not claimed:
        return job
    actor, zone = job.created_by, job.zone
    recipients = announce.zone_readers(zone.pk)
    progress = Progress(job, zone, recipients)
    claimed_zone = False
    try:
        progress.report("validating", 0, 0.0)
        plan_ = _plan_and_claim(job, zone, actor, progress)
        claimed_zone = True
        progress.report("applying", job.total, VALIDATION_SHARE)
        zone, job = _write(job, zone, plan_, actor, progress)
        _announce_done(job, zone, actor, recipients)
    except BulkFailed as exc:
        _fail(job, zone, actor, recipients, exc.errors, undo=claimed_zone)
    except (PermissionDenied, Zone.DoesNotExist) as exc:
        errors = [{"index": None, "errors": {"zone": [str(exc)]}}]
        _fail(job, zone, actor, recipients, errors, undo=claimed_zone)
    except chunked.ZoneBusy as exc:
        errors = [{"index": None, "errors": {"zone": [str(exc)]}}]
        _fail(job, zone, actor, recipients, errors, undo=claimed_zone)
    except Exception:
        logger.exception("bulk operation %s failed", job_id)
        errors = [
            {"index": None, "errors": {"non_field_errors": ["Internal error; nothing changed."]}}
        ]
        _fail(job, zone, actor, recipients, errors, undo=claimed_zone)
    job.refresh_from_db()
    return job


def _plan_and_claim(job, zone, actor, progress):
    """Check every item against the zone's records, outside any write transaction, then
    claim the zone for writing if nothing changed it meanwhile (its serial rises with
    every record change); otherwise check again. Returns the plan."""
    on_item = progress.validated
    for _attempt in range(CLAIM_ATTEMPTS):
        serial = Zone.objects.filter(pk=zone.pk).values_list("serial", flat=True).first()
        if serial is None:
            raise Zone.DoesNotExist(f"No zone {zone.pk}.")
        plan_ = plan(job, zone, list(zone.records.all()), on_item=on_item)
        on_item = None  # progress events for the first pass only
        if chunked.wait_until_free(lambda serial=serial: _claim(job, actor, zone.pk, serial)):
            return plan_
    raise BulkFailed(
        [
            {
                "index": None,
                "errors": {"zone": ["The zone kept changing while the job was checked."]},
            }
        ]
    )


def _claim(job, actor, zone_id, serial):
    with transaction.atomic():
        zone = services.lock_zone(actor, zone_id)
        services.require_master(zone)
        if zone.serial != serial:
            return False
        chunked.mark_writing(job)
        return True


def _write(job, zone, plan_, actor, progress):
    """Write the plan in chunks, then raise the serial, audit and finish the job in one
    last short transaction. Returns the zone and the job, as they are now."""
    now = timezone.now()
    if plan_.creates:
        items = plan_.creates
    elif plan_.updates:
        items = plan_.updates
    else:
        items = plan_.deletes
    old = [_audit_values(record) for record, _fields in plan_.updates]
    old += [_audit_values(record) for record in plan_.deletes]
    written = 0
    for number, chunk in enumerate(chunked.chunks(items)):
        if number:
            chunked.pause_between_chunks()
        chunked.write_chunk(job, zone, job.operation, chunk, actor, now)
        written += len(chunk)
        progress.report(
            "applying", job.total, VALIDATION_SHARE + (1 - VALIDATION_SHARE) * written / job.total
        )
    with transaction.atomic():
        zone = services.lock_zone(actor, zone.pk, writer_job_id=job.pk)
        job = BulkOperation.objects.defer("items").select_for_update().get(pk=job.pk)
        if plan_.creates:
            audited = job.result["created"][:MAX_AUDITED_ITEMS]
            records = Record.objects.filter(pk__in=audited).order_by("pk")
            new = [_audit_values(record) for record in records]
        else:
            new = [{**_audit_values(record), **fields} for record, fields in plan_.updates]
        services.bump_serial(zone)
        _audit_job(job, zone, actor, old, new)
        chunked.finish(job)
        job.status = BulkOperation.Status.SUCCEEDED
        job.errors = None
        job.processed, job.progress, job.finished_at = job.total, 1.0, timezone.now()
        job.save(
            update_fields=[
                "status",
                "result",
                "errors",
                "processed",
                "progress",
                "finished_at",
                "writing_heartbeat_at",
                "undo",
            ]
        )
    return zone, job


def _error_dict(exc):
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"non_field_errors": exc.messages}


def plan(job, zone, existing, *, on_item=None):
    """Check every item of `job` against `existing` (the zone's records) and return the
    `Plan`; raises `BulkFailed` with every item's errors (up to MAX_REPORTED_ERRORS)."""
    errors, result = [], Plan()
    by_id = {record.pk: record for record in existing}
    touched = []  # (index, candidate) to check against the final state
    seen_ids = set()
    for index, item in enumerate(job.items):
        try:
            candidate = _plan_item(job.operation, zone, item, by_id, seen_ids, result, index)
            if candidate is not None:
                touched.append((index, candidate))
        except ValidationError as exc:
            errors.append({"index": index, "errors": _error_dict(exc)})
        if on_item is not None:
            on_item(index + 1)
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if not errors:
        # The zone as it will be, indexed by name: each candidate is checked against the
        # others at its name in constant time (`validation.RecordSets`).
        changed = {record.pk for record in result.deletes}
        changed.update(record.pk for record, _fields in result.updates)
        state = validation.RecordSets(
            zone.name,
            (
                {"id": r.pk, "name": r.name, "record_type": r.record_type, "value": r.value}
                for r in existing
                if r.pk not in changed
            ),
        )
        for _index, candidate in touched:
            state.add(candidate)
        for index, candidate in touched:
            try:
                state.check(candidate)
            except ValidationError as exc:
                errors.append({"index": index, "errors": _error_dict(exc)})
                if len(errors) >= MAX_REPORTED_ERRORS:
                    break
    if errors:
        raise BulkFailed(errors)
    return result


def _plan_item(operation, zone, item, by_id, seen_ids, result, index):
    if operation == BulkOperation.Operation.DELETE and isinstance(item, int):
        item = {"id": item}
    if not isinstance(item, dict):
        raise ValidationError("Each item must be an object.")
    if operation == BulkOperation.Operation.CREATE:
        fields = {key: item.get(key) for key in Record.EDITABLE_FIELDS}
        normalised = validation.validate_record(zone.name, **fields)
        result.creates.append(normalised)
        return {**normalised, "id": f"new{index}"}
    record_id = item.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, int):
        raise ValidationError({"id": ["The id of a record of this zone is required."]})
    record = by_id.get(record_id)
    if record is None:
        raise ValidationError({"id": [f"This zone has no record {record_id}."]})
    if record_id in seen_ids:
        raise ValidationError({"id": [f"Record {record_id} appears twice in this job."]})
    seen_ids.add(record_id)
    version = item.get("version")
    if version is not None and version != record.version:
        raise ValidationError(
            {"version": [f"Record {record_id} is at version {record.version} now, not {version}."]}
        )
    if operation == BulkOperation.Operation.DELETE:
        result.deletes.append(record)
        return None
    current = {key: getattr(record, key) for key in Record.EDITABLE_FIELDS}
    changes = {key: value for key, value in item.items() if key in Record.EDITABLE_FIELDS}
    normalised = validation.validate_record(zone.name, **{**current, **changes})
    result.updates.append((record, normalised))
    return {**normalised, "id": record.pk}


def _audit_job(job, zone, actor, old, new):
    truncated = max(len(old), len(new), job.total) > MAX_AUDITED_ITEMS
    audit(
        f"dns.bulk.{job.operation}",
        actor=actor,
        old={"records": old[:MAX_AUDITED_ITEMS]} if old else None,
        new={"records": new[:MAX_AUDITED_ITEMS]} if new else None,
        details={
            "operation_id": str(job.pk),
            "zone": zone.name,
            "total": job.total,
            "serial": zone.serial,
            "truncated": truncated,
        },
        target_type="dns.zone",
        target_id=str(zone.pk),
        target_repr=zone.name,
    )


def _audit_values(record):
    return {"id": record.pk, **{key: getattr(record, key) for key in Record.EDITABLE_FIELDS}}


def _announce_done(job, zone, actor, recipients):
    publish_on_commit(
        "bulk_operation_progress",
        dict(events.bulk_progress_data(job, zone, stage="done", processed=job.total, progress=1.0)),
        recipients=recipients,
    )
    publish_on_commit(
        "bulk_operation_complete",
        dict(events.bulk_complete_data(job, zone, actor)),
        recipients=recipients,
    )
    announce.config_changed("records", f"bulk_{job.operation}", actor, zone=zone)


def _fail(job, zone, actor, recipients, errors, *, undo=False):
    if undo:
        # What was written goes; the job's own errors below replace the undo's note.
        chunked.undo(job.pk, reason="the job failed")
    job.status = BulkOperation.Status.FAILED
    job.errors = errors
    job.result = {"created": [], "updated": [], "deleted": []}
    job.finished_at = timezone.now()
    BulkOperation.objects.filter(pk=job.pk).update(
        status=job.status,
        errors=errors,
        result=job.result,
        finished_at=job.finished_at,
        writing_heartbeat_at=None,
        undo=None,
    )
    try:
        zone.refresh_from_db(fields=["serial"])
    except Zone.DoesNotExist:
        return  # the zone (and this job with it) was deleted meanwhile
    publish_on_commit(
        "bulk_operation_complete",
        dict(events.bulk_complete_data(job, zone, actor)),
        recipients=recipients,
    )


INTERRUPTED = "Interrupted: the server stopped before the job finished; nothing it wrote was kept."


def fail_interrupted_jobs(*, stale_after=None):
    """Fail the jobs a stopped server left pending or running: no sign of life (heartbeat,
    start, creation) for `stale_after` (default `chunked.STALE_AFTER`). What such a job
    wrote is undone from its journal. Returns the ids of the jobs failed."""
    stale_after = chunked.STALE_AFTER if stale_after is None else stale_after
    cutoff = timezone.now() - stale_after
    active = (BulkOperation.Status.PENDING, BulkOperation.Status.RUNNING)
    failed = []
    jobs = BulkOperation.objects.filter(status__in=active).only(
        "id", "created_at", "started_at", "writing_heartbeat_at"
    )
    for job in jobs:
        seen = max(t for t in (job.created_at, job.started_at, job.writing_heartbeat_at) if t)
        if seen > cutoff:
            continue  # may still run in another process
        if job.writing_heartbeat_at is not None:
            chunked.undo(job.pk, reason="the server stopped during the job")
        with transaction.atomic():
            ended = BulkOperation.objects.filter(pk=job.pk, status__in=active).update(
                status=BulkOperation.Status.FAILED,
                errors=[{"index": None, "errors": {"non_field_errors": [INTERRUPTED]}}],
                finished_at=timezone.now(),
            )
        if ended or job.writing_heartbeat_at is not None:
            failed.append(job.pk)
    if failed:
        logger.warning("failed %d DNS bulk jobs a stopped server left unfinished", len(failed))
    return failed


def fail_interrupted_in_background():
    """`fail_interrupted_jobs` in a daemon thread, now and once more when the jobs of the
    stopped process have gone stale (for server start-up)."""

    def work():
        from django.db import connections

        try:
            for attempt in range(2):
                if attempt:
                    time.sleep(chunked.STALE_AFTER.total_seconds())
                try:
                    fail_interrupted_jobs()
                except Exception:
                    logger.exception("failing interrupted DNS bulk jobs failed")
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="dns-bulk-recovery", daemon=True)
    thread.start()
    return thread

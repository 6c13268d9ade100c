"""Receiving raw logs and starting their processing.

    raw_log = receive_raw_log(source="auth.log", content=text, actor=user, request=request)
    raw_log = start_processing(raw_log)

`receive_raw_log` validates and stores a raw log (one transaction: the row, an audit row
for a user's upload, `processing_update` "received" after commit); bad input raises an
`incidents.exceptions` error and stores nothing. `start_processing` runs
`processing.process_raw_log` inline (in the request, once its turn comes) or hands it to
this process's processing worker (`incidents.processing_worker`) and returns at once
(`LOG_PROCESSING`: inline, thread, or auto = inline up to LOG_PROCESSING_INLINE_MAX_BYTES).
Either way a process processes its raw logs one at a time, in the order they came.
"""

import atexit
import logging
import os
import threading
from pathlib import Path

from django.db import close_old_connections, connections, transaction

from incidents.conf import PROCESSING_MODES, pipeline_setting
from incidents.events import processing_update_data
from incidents.exceptions import PermissionDenied, ValidationError
from incidents.models import RawLog
from incidents.processing import process_raw_log
from incidents.processing_worker import processing_worker
from incidents.security_events import COMPLETED
from realtime.publishing import publish_on_commit
from threatlens.audit.services import record

logger = logging.getLogger(__name__)

ADD_RAW_LOG = "incidents.add_rawlog"
MAX_SOURCE_LENGTH = RawLog._meta.get_field("source").max_length
MAX_FILE_NAME_LENGTH = RawLog._meta.get_field("file_name").max_length


class PayloadTooLarge(ValidationError):
    """The log is larger than LOG_UPLOAD_MAX_BYTES."""

    http_status = 413


def receive_raw_log(
    *, source, content=None, file=None, file_name="", actor, request=None, audit=True
):
    """Store a raw log from `content` (text) or `file` (an uploaded file); returns it in
    status `received`. Needs `incidents.add_rawlog`; `actor=None` is the system (a
    command, a watcher), trusted, and `audit=False` skips the audit row (a watcher's
    batches). Refuses a missing source, empty or oversized content, and both or neither
    of content and file. `file_name` names where `content` was read (an upload's file
    name is taken from the upload)."""
    if actor is not None and not (
        actor.is_authenticated and actor.is_active and actor.has_perm(ADD_RAW_LOG)
    ):
        raise PermissionDenied("You may not upload logs.", details={"permission": ADD_RAW_LOG})
    source = _valid_source(source)
    limit = pipeline_setting("LOG_UPLOAD_MAX_BYTES")
    if (content is None) == (file is None):
        raise ValidationError(
            "Send the log as `content` (text) or as a `file` upload, one of the two.",
            details={"errors": {"content": ["Give content or file."]}},
        )
    file_name = str(file_name or "")[-MAX_FILE_NAME_LENGTH:]
    if file is not None:
        if file.size is not None and file.size > limit:
            raise too_large(file.size, limit)
        file_name = Path(str(getattr(file, "name", "") or "")).name[:MAX_FILE_NAME_LENGTH]
        data = file.read(limit + 1)
        if len(data) > limit:
            raise too_large(len(data), limit)
        text = data.decode("utf-8", errors="replace")
        size = len(data)
    else:
        if not isinstance(content, str):
            raise ValidationError(
                "content must be text.", details={"errors": {"content": ["Must be a string."]}}
            )
        size = len(content.encode("utf-8", errors="replace"))
        if size > limit:
            raise too_large(size, limit)
        text = content
    if not text.strip():
        raise ValidationError(
            "The log is empty.", details={"errors": {"content": ["No log lines were sent."]}}
        )
    return _store(
        source=source,
        file_name=file_name,
        content=text.replace("\x00", "\ufffd"),
        size=size,
        actor=actor,
        request=request,
        audit=audit,
    )


def receive_log_file(path, *, source=None, actor=None):
    """Store a raw log that reads the server file `path` when processed (for
    `manage.py ingest_logs`: no size limit, nothing copied). Raises ValidationError when
    the file cannot be read."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValidationError(f"{path} is not a file.")
    if not os.access(path, os.R_OK):
        raise ValidationError(f"{path} cannot be read (permission denied).")
    return _store(
        source=_valid_source(source or path.name),
        file_name=str(path)[-MAX_FILE_NAME_LENGTH:],
        file_path=str(path),
        size=path.stat().st_size,
        actor=actor,
        audit=True,
    )


@transaction.atomic
def _store(*, source, file_name="", content="", file_path="", size, actor, request=None, audit):
    raw_log = RawLog.objects.create(
        source=source,
        file_name=file_name,
        file_path=file_path,
        content=content,
        size=size,
        created_by=actor if actor is not None and actor.pk else None,
    )
    if audit:
        record(
            "raw_log.receive",
            actor=actor,
            target=raw_log,
            request=request,
            new={"source": source, "file_name": file_name, "size": size},
        )
    publish_on_commit("processing_update", processing_update_data(raw_log, status=COMPLETED))
    return raw_log


def _valid_source(source):
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(
            "source is required: name where the lines come from (auth.log, nginx, ...).",
            details={"errors": {"source": ["Required."]}},
        )
    source = source.strip()
    if len(source) > MAX_SOURCE_LENGTH or not source.isprintable():
        raise ValidationError(
            f"source must be printable text of at most {MAX_SOURCE_LENGTH} characters.",
            details={"errors": {"source": ["Invalid."]}},
        )
    return source


def too_large(size, limit):
    return PayloadTooLarge(
        f"The upload is {size} bytes; logs of at most {limit} bytes are accepted.",
        details={"max_bytes": limit},
    )


# -- processing ----------------------------------------------------------------------------------

_pending = set()  # futures of the raw logs handed to the worker and not processed yet
_pending_lock = threading.Lock()
_drain_at_exit = False


def processing_mode(raw_log):
    """ "inline" or "thread" for this raw log under LOG_PROCESSING."""
    mode = pipeline_setting("LOG_PROCESSING")
    if mode not in PROCESSING_MODES:
        raise ValueError(f"LOG_PROCESSING={mode!r}: expected one of {', '.join(PROCESSING_MODES)}")
    if mode == "auto":
        inline = raw_log.size <= pipeline_setting("LOG_PROCESSING_INLINE_MAX_BYTES")
        return "inline" if inline else "thread"
    return mode


def start_processing(raw_log):
    """Process `raw_log` now (inline: in the caller's thread, after the raw logs handed
    over before it) or by this process's processing worker once the current transaction
    commits (thread). Returns the raw log (re-read when processed inline)."""
    if processing_mode(raw_log) == "inline":
        return process_raw_log(raw_log.pk)
    transaction.on_commit(lambda: _submit(raw_log.pk))
    return raw_log


def _submit(raw_log_id):
    global _drain_at_exit
    future = processing_worker().submit(_process_in_worker, raw_log_id)
    with _pending_lock:
        _pending.add(future)
        if not _drain_at_exit:
            # The worker thread is a daemon: at exit, finish what was handed to it first
            # (what an exit still cuts short is resumed at the next start).
            atexit.register(wait_for_background_processing)
            _drain_at_exit = True
    future.add_done_callback(_forget)


def _forget(future):
    with _pending_lock:
        _pending.discard(future)


def _process_in_worker(raw_log_id):
    close_old_connections()
    try:
        process_raw_log(raw_log_id)
    except Exception:
        logger.exception("background processing of raw log %s failed", raw_log_id)
    finally:
        # Uploads are occasional: a worker holds no connection between them.
        connections.close_all()


def wait_for_background_processing(timeout=None):
    """Wait until the raw logs handed to the processing worker so far are processed (tests,
    shutdown). Returns True when all finished within `timeout` seconds."""
    from concurrent.futures import wait

    with _pending_lock:
        futures = set(_pending)
    if not futures:
        return True
    _done, not_done = wait(futures, timeout=timeout)
    return not not_done

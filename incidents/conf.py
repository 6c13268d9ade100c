"""Settings of log ingest and processing, with their defaults.

Each can be set in `threatlens/settings.py` (from the environment); absent ones take the
default here, so the pipeline runs on a settings file that knows nothing about it.
"""

from django.conf import settings

DEFAULTS = {
    # Raw logs at or above this severity raise an alert (DESIGN.md: 7).
    "ALERT_SEVERITY_THRESHOLD": 7,
    # Largest upload accepted by POST /api/logs/ (bytes).
    "LOG_UPLOAD_MAX_BYTES": 10 * 1024 * 1024,
    # Lines per chunk: one transaction and one processing_update per chunk.
    "LOG_PROCESSING_CHUNK_LINES": 500,
    # "inline": an upload is processed inside the request; "thread": by the process's
    # processing worker after the commit; "auto": inline up to
    # LOG_PROCESSING_INLINE_MAX_BYTES. Either way one raw log at a time per process, in
    # the order they came (incidents.processing_worker).
    "LOG_PROCESSING": "auto",
    "LOG_PROCESSING_INLINE_MAX_BYTES": 256 * 1024,
    # Keys of detection state per rule and kind (counters, claims, remembered scopes);
    # when full, the stalest is evicted and counted.
    "DETECTION_STATE_MAX_KEYS": 10_000,
    # A raw log left in parsing or analysis this long (seconds without a committed chunk)
    # is taken over and resumed (incidents.processing.resume_interrupted).
    "RAW_LOG_RESUME_AFTER": 60,
    # Lines of the raw logs completed before a crash analysed again (without storing) to
    # rebuild the detection state before resuming.
    "RAW_LOG_RESUME_REPLAY_LINES": 100_000,
    # Resume interrupted raw logs when the server (in-process services) or run_syslog
    # starts.
    "RESUME_RAW_LOGS": True,
    # Log files followed inside the server process: ["path", "source=path", ...].
    "WATCH_LOGS": [],
    # Seconds between two reads of the watched files; lines read in one interval become
    # one raw log per file.
    "WATCH_LOGS_INTERVAL": 2.0,
}

PROCESSING_MODES = ("auto", "inline", "thread")


def pipeline_setting(name):
    """The setting `name`, or its default above."""
    return getattr(settings, name, DEFAULTS[name])

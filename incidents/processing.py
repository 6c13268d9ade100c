"""Processing one raw log: its stages, its security events, the alerts they raise.

    process_raw_log(raw_log.pk)      # from a request, a worker thread or a command

A raw log goes received -> parsing -> analysis -> completed, or to failed with the
reason. Each step publishes `processing_update` (see `events.processing_update_data`):

    stage       status        progress
    received    completed     0.0        when it is stored (by `incidents.ingest`)
    parsing     started       0.0        its lines are being opened and read
    analysis    in_progress   0..1       after each chunk of LOG_PROCESSING_CHUNK_LINES lines
    completed   completed     1.0        done
    <stage>     failed        ...        it failed in <stage>; `error` says why

Lines are parsed (`incidents.pipeline.parse_line`) and analysed by the built-in rules
(`Analyzer` over this process's bounded detection state; `current_rules`: a loaded Sigma
correlation may replace one) and the Sigma rules (`incidents.sigma.analyze_many`, on the
same state) chunk by chunk, each asking the state once per chunk, so a large file never sits
in memory as parsed lines and clients see progress. Each chunk's writes are one transaction:
its security events, the alerts they raise through `incidents.services.ingest_alert`, and
the raw log's counters; every event of the chunk is published after that commit
(`incidents.chunk_store`). The `started` update goes out with the first chunk's events and
the last chunk's transaction completes the log: two write transactions per raw log (on
SQLite, each one a moment other writers wait). A malformed line is counted, never fatal.
Parsing and analysis run outside the transaction, so the database write lock (SQLite) is
held only for the writes. A process processes one raw log at a time (from its first line to
its completion), in the order they were handed over, through its one processing worker
(`incidents.processing_worker`), so concurrent uploads never interleave their lines in the
detection state.

Events published per chunk: `security_event` for each stored event (priority =
severity); for each event at or above ALERT_SEVERITY_THRESHOLD the alert's own
`new_alert` / `alert_updated` (by `incidents.broadcast`) and `security_alert` (unified
envelope); `threat_detected` for a DNS query of a listed domain (and, when an incident's
block listed it, `incident_updated` with a timeline entry: `incidents.block_hits`).

Every `processing_update` of a log goes out at the same priority (the catalogue's): the
hub delivers a burst highest priority first, and a client must see a log's stages in
their order.
"""

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.db import connection, transaction
from django.utils import timezone

from incidents import sigma
from incidents.chunk_store import COUNTERS, ChunkStore, mark_completed
from incidents.conf import pipeline_setting
from incidents.events import processing_update_data
from incidents.exceptions import NotFound
from incidents.models import RawLog, RawLogStatus
from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line, parser_for_hint
from incidents.pipeline.state import BoundedState
from incidents.processing_worker import processing_worker
from incidents.raw_log_lines import RawLogChunks, raw_log_lines
from incidents.security_events import COMPLETED, FAILED, STARTED
from incidents.threat_intel import domain_lookup
from realtime.publishing import publish_many_on_commit
from threatlens.audit.context import audit_context

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def shipped_rules():
    """The compiled shipped rules (compiled once per process)."""
    from incidents.pipeline.rules import load_rules

    return tuple(load_rules())


def current_rules():
    """The built-in rules the analyzer runs now: the shipped ones, each one an enabled Sigma
    correlation replaces swapped for it (`incidents.sigma.replacing`). Asked again for
    every chunk, so a change of the Sigma rules reaches the analyzer in every process as
    it reaches the Sigma engine: the replaced rule and its replacement never both run."""
    return sigma.builtin_rules(shipped_rules())


_state = None
_state_lock = threading.Lock()


def detection_state():
    """This process's detection state, shared by every raw log it processes whatever
    their batch boundaries: in Redis when DETECTION_STATE_STORE says so (`auto`: when
    REDIS_URL is set), shared with every other worker (`SharedState`); else in this
    process (`BoundedState`). Either holds DETECTION_STATE_MAX_KEYS keys per rule."""
    global _state
    with _state_lock:
        if _state is None:
            _state = _new_state()
        return _state


def _new_state():
    from django.conf import settings

    max_keys = pipeline_setting("DETECTION_STATE_MAX_KEYS")
    if not uses_shared_state():
        return BoundedState(max_keys=max_keys)
    import redis

    from incidents.pipeline.shared_state import SharedState

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
    )
    return SharedState(client, prefix=settings.REDIS_KEY_PREFIX, max_keys=max_keys)


def uses_shared_state():
    """Whether detection state lives in Redis (DETECTION_STATE_STORE, REDIS_URL)."""
    from django.conf import settings

    store = getattr(settings, "DETECTION_STATE_STORE", "auto")
    return store == "redis" or (store == "auto" and bool(settings.REDIS_URL))


def current_detection_state():
    """This process's detection state if it was created (for metrics), else None."""
    return _state


def reset_detection_state():
    """Forget all detection state (tests; a changed DETECTION_STATE_MAX_KEYS). In Redis
    that is every worker's state."""
    global _state
    with _state_lock:
        state, _state = _state, None
    if state is None and uses_shared_state():
        state = _new_state()
    if state is not None and state.shared:
        state.clear()


def build_analyzer():
    """The analyzer for one raw log: the built-in rules (`current_rules`), this process's
    bounded detection state, and a fresh lookup of listed domains."""
    return Analyzer(current_rules(), detection_state(), domain_lookup=domain_lookup())


def process_raw_log(raw_log_id, *, analyzer=None):
    """Process a received raw log through its stages; returns it, completed or failed.

    Only a raw log still in `received` is processed (the claim is one conditional
    UPDATE, so two workers never process the same log); for any other the raw log is
    returned as it is. Raises `NotFound` for an unknown id. Processes in the caller's
    thread once its turn comes: the raw logs handed to this process's processing worker
    before it are processed first (`incidents.processing_worker`).
    """
    # Claimed in its turn, not before it: a log claimed and then left waiting behind
    # others would look stale to another process's resume pass, which would take it over.
    with processing_worker().turn():
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


def process_raw_logs(raw_log_ids):
    """Process received raw logs in the order given, in one turn of this process's
    processing worker; returns the ids it processed.

    Those still `received` are claimed together, in one transaction (a conditional
    UPDATE after locking the rows, so another worker's claim is never taken over); each
    is then processed as `process_raw_log` would. A claimed log waiting behind the
    others for more than half of RAW_LOG_RESUME_AFTER is claimed again before it is
    processed (another process's resume pass may take a log untouched for that long:
    then it is left to it). A log that fails is marked failed and logged, and the next
    one goes on.
    """
    with processing_worker().turn():
        claimed, at = _claim(raw_log_ids), time.monotonic()
        processed = []
        for raw_log in claimed:
            waited = time.monotonic() - at
            if waited > pipeline_setting("RAW_LOG_RESUME_AFTER") / 2 and not _claim_again(raw_log):
                continue
            try:
                with audit_context(request=None, actor=None, source="pipeline"):
                    _Run(raw_log, build_analyzer()).run()
            except Exception:
                logger.exception("processing raw log %s failed", raw_log.pk)
            processed.append(raw_log.pk)
        return processed


def _claim(raw_log_ids):
    now = timezone.now()
    received = RawLog.objects.filter(pk__in=raw_log_ids, status=RawLogStatus.RECEIVED)
    with transaction.atomic():
        if connection.features.has_select_for_update:
            received = received.select_for_update()
        ids = list(received.values_list("pk", flat=True))
        RawLog.objects.filter(pk__in=ids, status=RawLogStatus.RECEIVED).update(
            status=RawLogStatus.PARSING, stage=RawLogStatus.PARSING, started_at=now, updated_at=now
        )
    order = {pk: index for index, pk in enumerate(raw_log_ids)}
    return sorted(RawLog.objects.filter(pk__in=ids), key=lambda raw_log: order[raw_log.pk])


def _claim_again(raw_log):
    """Touch a log claimed a while ago, if it is still as this process claimed it (no
    resume pass took it over meanwhile); returns whether it was."""
    now = timezone.now()
    touched = RawLog.objects.filter(
        pk=raw_log.pk, status=RawLogStatus.PARSING, updated_at=raw_log.updated_at
    ).update(updated_at=now)
    if not touched:
        logger.warning("raw log %s was taken over before its turn came", raw_log.pk)
        return False
    raw_log.updated_at = now
    return True


def process_next_raw_log(*, analyzer=None):
    """Claim the oldest raw log still `received` that no other worker is claiming, and
    process it; returns its id, or None when there is none.

    On PostgreSQL the candidate is picked with `SELECT ... FOR UPDATE SKIP LOCKED`, so
    several workers polling at once each take a different log instead of queueing on
    the same row; the conditional UPDATE of `process_raw_log` is what makes the claim
    exclusive (on SQLite, which has no SKIP LOCKED, it is all there is).
    """
    with processing_worker().turn():  # claimed in its turn (see process_raw_log)
        return _process_next(analyzer)


def _process_next(analyzer):
    queryset = RawLog.objects.filter(status=RawLogStatus.RECEIVED).order_by("id")
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            queryset = queryset.select_for_update(skip_locked=True)
        raw_log_id = queryset.values_list("pk", flat=True).first()
        if raw_log_id is None:
            return None
        now = timezone.now()
        claimed = RawLog.objects.filter(pk=raw_log_id, status=RawLogStatus.RECEIVED).update(
            status=RawLogStatus.PARSING, stage=RawLogStatus.PARSING, started_at=now, updated_at=now
        )
    if claimed:
        raw_log = RawLog.objects.get(pk=raw_log_id)
        with audit_context(request=None, actor=None, source="pipeline"):
            _Run(raw_log, analyzer or build_analyzer()).run()
    return raw_log_id


def resume_interrupted(*, stale_after=None, replay_lines=None):
    """Finish the raw logs a crash (or a stop) left behind, in the order they were
    stored; returns their ids.

    Raw logs still `received`, and raw logs in `parsing` or `analysis`, that no process
    has touched for `stale_after` seconds (RAW_LOG_RESUME_AFTER) are processed, taken over
    with a conditional UPDATE (so two processes never resume the same log) and processed
    from the first line no committed chunk counted: a chunk's events, alerts and its
    `lines_total` are one transaction, so no event is stored twice or lost.

    The detection state died with the crashed process. Before anything is resumed, the
    lines of the raw logs completed just before the first one (at most `replay_lines`,
    RAW_LOG_RESUME_REPLAY_LINES), then the already counted lines of each resumed log, are
    analysed again without storing: windows and claims continue as if nothing had
    happened, unless they reach further back than that (docs/ingest.md).
    """
    stale_after = pipeline_setting("RAW_LOG_RESUME_AFTER") if stale_after is None else stale_after
    replay_lines = (
        pipeline_setting("RAW_LOG_RESUME_REPLAY_LINES") if replay_lines is None else replay_lines
    )
    # One turn for the choice of logs, the replay and the resumed logs: nothing received
    # since (newer lines) is analysed between them or before them.
    with processing_worker().turn():
        return _resume_stale(stale_after, replay_lines)


def _resume_stale(stale_after, replay_lines):
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    # A raw log stored less than `stale_after` ago may be in the hands of a live sink
    # about to process it (this process's, after the start): taking it would process
    # its lines out of order. The crashed process's last ones come at the next pass.
    pending = list(
        RawLog.objects.filter(
            status__in=[RawLogStatus.RECEIVED, RawLogStatus.PARSING, RawLogStatus.ANALYSIS],
            updated_at__lte=cutoff,
        )
        .order_by("id")
        .only("pk", "status", "updated_at", "lines_total")
    )
    if not pending:
        return []
    state = detection_state()
    # The shared state (every worker's, in Redis) answers the replayed lines as it did
    # before, counting nothing twice; it learns from them only if Redis lost them.
    if not state.shared and state.stats():
        # This process has been processing (the second pass after start-up): replaying
        # into its live state would count lines twice. The resumed logs get their own.
        state = BoundedState(max_keys=pipeline_setting("DETECTION_STATE_MAX_KEYS"))
    analyzer = Analyzer(current_rules(), state, domain_lookup=domain_lookup())
    _replay_before(pending[0].pk, analyzer, replay_lines)
    return _resume(pending, analyzer)


def _resume(pending, analyzer):
    resumed = []
    for raw_log in pending:
        if raw_log.status == RawLogStatus.RECEIVED:
            process_raw_log(raw_log.pk, analyzer=analyzer)
            resumed.append(raw_log.pk)
            continue
        now = timezone.now()
        claimed = RawLog.objects.filter(
            pk=raw_log.pk, status=raw_log.status, updated_at=raw_log.updated_at
        ).update(updated_at=now)
        if not claimed:
            continue  # another process took it, or it moved on
        raw_log = RawLog.objects.get(pk=raw_log.pk)
        logger.warning(
            "resuming raw log %s after %d processed lines (interrupted in %s)",
            raw_log.pk,
            raw_log.lines_total,
            raw_log.status,
        )
        with audit_context(request=None, actor=None, source="pipeline"):
            _Run(raw_log, analyzer, done_lines=raw_log.lines_total).run()
        resumed.append(raw_log.pk)
    return resumed


def _replay_before(first_pk, analyzer, limit):
    """Analyse, without storing, the lines of the completed raw logs just before
    `first_pk` (the newest ones, at most `limit` lines, oldest first)."""
    if limit <= 0:
        return
    chosen, total = [], 0
    completed = (
        RawLog.objects.filter(pk__lt=first_pk, status=RawLogStatus.COMPLETED)
        .order_by("-id")
        .only("pk", "lines_total")
    )
    for raw_log in completed.iterator(chunk_size=100):
        if total + raw_log.lines_total > limit:
            break
        chosen.append(raw_log.pk)
        total += raw_log.lines_total
    chunk_lines = max(1, int(pipeline_setting("LOG_PROCESSING_CHUNK_LINES")))
    for pk in reversed(chosen):
        raw_log = RawLog.objects.get(pk=pk)
        # Chunk by chunk, as they were processed (`ChunkDetector.replay`).
        replay, numbered = ChunkDetector(raw_log, analyzer).replay, []
        try:
            for index, (line, _progress) in enumerate(raw_log_lines(raw_log)):
                numbered.append((index, line))
                if len(numbered) >= chunk_lines:
                    replay(numbered)
                    numbered = []
        except OSError:
            pass  # a file that is gone: the windows of its lines not read are lost
        if numbered:
            replay(numbered)


def resume_in_background():
    """`resume_interrupted` in a daemon thread: once now (logs still `received`, and those
    stale already), once more RAW_LOG_RESUME_AFTER seconds later (logs a crash left just
    before this start become stale then). For server start-up and `run_syslog`."""

    def work():
        from django.db import connections

        try:
            for attempt in range(2):
                if attempt:
                    time.sleep(pipeline_setting("RAW_LOG_RESUME_AFTER"))
                try:
                    resumed = resume_interrupted()
                except Exception:
                    logger.exception("resuming interrupted raw logs failed")
                    continue
                if resumed:
                    logger.warning("resumed %d interrupted raw logs", len(resumed))
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="raw-log-resume", daemon=True)
    thread.start()
    return thread


def line_id(raw_log, index):
    """The stable id of a raw log's line (`Check.line`): the same when processed again.
    Its raw log's id and the moment it was received, so that a database emptied and
    started again (ids from 1) never meets the verdicts Redis remembers for the old one."""
    return f"{line_id_prefix(raw_log)}{index}"


def line_id_prefix(raw_log):
    """What the ids of a raw log's lines start with (`line_id`), worked out once per log."""
    return f"{raw_log.pk}.{int(raw_log.received_at.timestamp() * 1_000_000)}:"


class _Run:
    """The processing of one claimed raw log: its stages, chunk after chunk.

    Its parts: `RawLogChunks` reads the lines and cuts the chunks, `ChunkDetector` parses
    and analyses a chunk, `ChunkStore` stores it in one transaction and publishes it.
    """

    def __init__(self, raw_log, analyzer, *, done_lines=0):
        self.raw_log = raw_log
        self.started = time.monotonic()
        # Published with the first chunk's events, in its INSERT (one transaction less).
        self.announce = [("processing_update", processing_update_data(raw_log, status=STARTED))]
        self.detector = ChunkDetector(raw_log, analyzer)
        # Lines whose chunks were committed before a crash (`resume_interrupted`) are
        # only replayed into the detection state.
        self.chunks = RawLogChunks(
            raw_log,
            chunk_lines=max(1, int(pipeline_setting("LOG_PROCESSING_CHUNK_LINES"))),
            done_lines=done_lines,
            replay=self.detector.replay,
        )
        self.store = ChunkStore(
            raw_log,
            threshold=pipeline_setting("ALERT_SEVERITY_THRESHOLD"),
            started=self.started,
        )

    def run(self):
        # One raw log at a time per process, in the order they were handed over (the
        # module docstring of `incidents.processing_worker` says why). Deadlock-free: a
        # thread waiting for its turn holds no transaction (process_raw_log is never
        # called inside one), so the holder's writes never wait for a waiter (SQLite).
        with processing_worker().turn():
            self._run()

    def _run(self):
        raw_log = self.raw_log
        completed = False
        try:
            for chunk in self.chunks:
                self._process_chunk(chunk)
                completed = chunk.last
        except Exception as exc:
            if _is_shared_state_outage(exc):
                # Redis gone mid-way: the lines are fine and the committed chunks are
                # counted, so the log stays mid-stage and is resumed (by any worker) once
                # RAW_LOG_RESUME_AFTER has passed, rather than failing for good.
                logger.warning(
                    "raw log %s left for resuming after %d lines: detection state unreachable (%s)",
                    raw_log.pk,
                    raw_log.lines_total,
                    type(exc).__name__,
                )
                return
            logger.exception("processing raw log %s failed", raw_log.pk)
            self._fail(exc)
            return
        if not completed:  # every line was committed before a crash: no chunk was left
            self._complete()

    def _process_chunk(self, chunk):
        detected = self.detector.detect(chunk)
        self.store.store(
            chunk,
            detected.drafts,
            malformed=detected.malformed,
            unknown=detected.unknown,
            before=self.announce,
        )
        self.announce = []

    def _complete(self):
        raw_log = self.raw_log
        mark_completed(raw_log, self.started)
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
            publish_many_on_commit(
                [
                    *self.announce,
                    ("processing_update", processing_update_data(raw_log, status=COMPLETED)),
                ]
            )

    def _fail(self, exc):
        raw_log = self.raw_log
        try:
            # The counters (and stage) as committed: a chunk that failed half-way rolled
            # its own back (the last one had already marked the log completed in memory).
            raw_log.refresh_from_db(fields=[*COUNTERS, "stage"])
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
                publish_many_on_commit(
                    [
                        *self.announce,
                        ("processing_update", processing_update_data(raw_log, status=FAILED)),
                    ]
                )
        except Exception:
            logger.exception("could not mark raw log %s as failed", raw_log.pk)


@dataclass(slots=True)
class DetectedChunk:
    """What a chunk's lines gave: drafts in line order, and how many lines were
    malformed or of an unknown kind."""

    drafts: list
    malformed: int
    unknown: int


class ChunkDetector:
    """Parses and analyses the chunks of one raw log: the built-in rules
    (`Analyzer.analyze_many`, with `current_rules`) and the Sigma rules
    (`sigma.analyze_many`) each ask the detection state once per chunk. The parser tried
    first is named by the raw log's source if it names a format, else by its file name."""

    def __init__(self, raw_log, analyzer):
        self.raw_log = raw_log
        self.analyzer = analyzer
        self.hint = raw_log.source if parser_for_hint(raw_log.source) else raw_log.file_name or None
        self.line_ids = line_id_prefix(raw_log)

    def detect(self, chunk):
        """The `DetectedChunk` of `chunk` (a `raw_log_lines.Chunk`)."""
        raw_log = self.raw_log
        malformed = unknown = 0
        parsed_lines = [parse_line(line, source_hint=self.hint) for line in chunk.lines]
        # The built-in rules ask the detection state once for the whole chunk, and so do
        # the Sigma rules.
        self.analyzer.rules = current_rules()
        prefix = self.line_ids
        ids = [f"{prefix}{chunk.start + n}" for n in range(len(chunk.lines))]
        by_line = self.analyzer.analyze_many(parsed_lines, source=raw_log.source, lines=ids)
        # On the analyzer's state: a resumed raw log's own, when it has one.
        by_line_sigma = sigma.analyze_many(
            parsed_lines, source=raw_log.source, lines=ids, state=self.analyzer.state
        )
        drafts, builtin = [], []
        for parsed, line_drafts, sigma_drafts in zip(
            parsed_lines, by_line, by_line_sigma, strict=True
        ):
            if parsed.malformed:
                malformed += 1
            elif parsed.category == "unknown":
                unknown += 1
            builtin.extend(line_drafts)
            drafts.extend(line_drafts)
            drafts.extend(sigma_drafts)
        sigma.count_replacement_firings(builtin)

        for draft in drafts:
            draft.src_ip = _clean_ip(draft.src_ip)
        return DetectedChunk(drafts, malformed, unknown)

    def replay(self, numbered):
        """Analyse [(line number, line), ...] again without storing anything: the
        detection state learns from lines committed before a crash, for the built-in
        rules and the Sigma rules (their cooldowns and correlations) alike."""
        self.analyzer.rules = current_rules()
        parsed_lines = [parse_line(line, source_hint=self.hint) for _index, line in numbered]
        ids = [f"{self.line_ids}{index}" for index, _line in numbered]
        source = self.raw_log.source
        self.analyzer.analyze_many(parsed_lines, source=source, lines=ids)
        sigma.analyze_many(
            parsed_lines, source=source, lines=ids, state=self.analyzer.state, replay=True
        )


# -- helpers ----------------------------------------------------------------------------------


def _clean_ip(value):
    """An address the database's IP column takes (no IPv6 zone), or None."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).split("%", 1)[0]))
    except ValueError:
        return None


def _is_shared_state_outage(exc):
    """Whether `exc` says the shared detection state (Redis) could not be reached."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def _describe(exc):
    if isinstance(exc, OSError):
        return f"cannot read the log: {exc.strerror or exc}" + (
            f" ({exc.filename})" if exc.filename else ""
        )
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:500]}" if text else type(exc).__name__

"""A raw log's lines, read from its content or its file and cut into chunks.

    for chunk in RawLogChunks(raw_log, chunk_lines=500, done_lines=0, replay=replay):
        ...  # chunk.lines, chunk.progress (0..1), chunk.start (its first line's number),
             # chunk.last (no chunk after it)

Blank lines are skipped, NUL characters replaced (PostgreSQL stores none in text), a
gzip file (`.gz`) read through gzip. A file that cannot be read raises OSError.
"""

import gzip
import os
from dataclasses import dataclass

# Reading a file given to `ingest_logs`: bytes per read, and the longest line kept whole
# (the parsers flag longer ones as malformed).
READ_LINE_LIMIT = 1024 * 1024


@dataclass
class Chunk:
    """Consecutive lines of a raw log, processed (and committed) together."""

    lines: list
    progress: float
    start: int  # the number of the chunk's first line in its raw log (from 0)
    last: bool = False  # no chunk comes after it: its commit completes the raw log


class RawLogChunks:
    """The chunks of a raw log's lines still to be processed, in order, at most
    `chunk_lines` lines each.

    The first `done_lines` lines were committed before a crash (`resume_interrupted`):
    they are not in any chunk but handed, in order and in batches of at most
    `chunk_lines`, to `replay([(line number, line), ...])`, so that the detection state
    learns from them again before the next chunk. A log without lines gives one empty
    chunk (its stages still run). Iterate once.
    """

    def __init__(self, raw_log, *, chunk_lines, done_lines=0, replay=None):
        self.raw_log = raw_log
        self.chunk_lines = chunk_lines
        self.done_lines = done_lines
        self.replay = replay

    def __iter__(self):
        # One chunk ahead, so that the last one is known as such (`Chunk.last`).
        ahead = None
        for chunk in self._chunks():
            if ahead is not None:
                yield ahead
            ahead = chunk
        if ahead is not None:
            ahead.last = True
            yield ahead

    def _chunks(self):
        batch, progress, start, replay = [], 0.0, self.done_lines, []
        for index, (line, progress) in enumerate(raw_log_lines(self.raw_log)):
            if index < self.done_lines:
                # Stored before the crash: only the detection state learns from it again,
                # so windows and claims continue as if nothing had happened (a shared
                # state knows these lines already and answers as it did).
                replay.append((index, line))
                if len(replay) >= self.chunk_lines:
                    self.replay(replay)
                    replay = []
                continue
            if replay:
                self.replay(replay)
                replay = []
            batch.append(line)
            if len(batch) >= self.chunk_lines:
                yield Chunk(batch, progress, start)
                start += len(batch)
                batch = []
        if replay:
            self.replay(replay)
        # A log without lines (none stored before a crash, none in a chunk) still gets
        # one chunk, so that its stages run.
        if batch or start == 0:
            yield Chunk(batch, 1.0, start)


def raw_log_lines(raw_log):
    """(line, progress) for every line of `raw_log`, from its `file_path` or `content`."""
    if raw_log.file_path:
        return file_lines(raw_log.file_path)
    return content_lines(raw_log.content)


def content_lines(content):
    """(line, progress) for every non-blank line of `content`, progress by lines."""
    lines = content.split("\n")
    total = len(lines)
    for index, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield _clean_text(line), index / total


def file_lines(path):
    """(line, progress) for every non-blank line of a file (gzip when it ends in .gz),
    progress by bytes read. Raises OSError when it cannot be read: the log fails."""
    raw = open(path, "rb")  # noqa: SIM115  (closed in the finally below)
    try:
        size = max(1, os.fstat(raw.fileno()).st_size)
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


def _clean_text(text):
    # PostgreSQL stores no NUL character in text or JSON columns.
    return text.replace("\x00", "\ufffd")

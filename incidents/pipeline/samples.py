"""The sample logs shipped in `samples/`, read in timestamp order across files.

One hour (2025-03-10 14:00-15:00 UTC) at Northwind, a fictional company running the
ThreatLens portal on web01 with BIND on ns1:

- auth.log (web01, rsyslog RFC 3339 timestamps): CI deploys by key, admins at work with
  sudo, cron, one sudo typo, a console su; internet noise below any threshold; from 14:31 a
  brute force on SSH from 203.0.113.45 (root, then invalid users, then `backup`), which
  succeeds for `backup` at 14:39:12, followed by a `sudo` the account may not use and a
  failed `su` to root.
- access.log (nginx combined): browsers, a health probe every minute, Googlebot, one TLS
  handshake sent to the plain-HTTP port; from 14:43:58 a scan from 198.51.100.77: Nmap,
  then gobuster (a 404 burst with .env, .git and WordPress probes), then sqlmap (SQL
  injection, XSS) and path traversal attempts.
- queries.log (BIND 9.16+ query log): everyday lookups, plus queries for the domains in
  `SAMPLE_THREAT_DOMAINS` (meant to be on a demo threat feed) and two generated-looking
  names under one of them.
- portal.jsonl (the portal's JSON log): logins, API calls, and at 14:53 credential stuffing
  from 192.0.2.200 against twelve accounts.

`iter_sample_lines(rebase_to=now)` moves the whole hour so that it starts at `now`,
rewriting each line's own timestamp text, so a replay looks like live logs to the parsers
and to the dashboard.
"""

import heapq
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from incidents.pipeline.parsers import parse_line
from incidents.pipeline.parsers.base import MONTHS
from incidents.pipeline.parsers.jsonlines import KEYS

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

# file name -> source hint given to the parser (also a sensible `source` name).
SAMPLE_FILES = {
    "auth.log": "auth.log",
    "access.log": "nginx",
    "queries.log": "bind",
    "portal.jsonl": "json",
}

# Domains the sample queries that a demo threat feed should list (with the feed entry that
# lists them), so that a replay also shows `threat_detected`.
SAMPLE_THREAT_DOMAINS = {
    "secure-login.account-verify.example": "phishing",
    "dl.fastupdate-cdn.example": "malware",
    "nightowl-relay.example": "malware",  # a parent: c2.* and the generated names under it
}

_MONTH_NAMES = {number: name for name, number in MONTHS.items()}


@dataclass(frozen=True)
class SampleLine:
    """One sample line: its (possibly rebased) time, seconds since the first sample line,
    the file it comes from, the parser hint for it, and the text."""

    timestamp: datetime
    offset: float
    source: str
    source_hint: str
    line: str


def iter_sample_lines(directory=None, *, rebase_to=None) -> Iterator[SampleLine]:
    """Every line of the sample files, merged in timestamp order (ties keep file order).

    With `rebase_to` (an aware datetime), times move so the first line falls at that
    moment, and each line's text carries its new time. A line without a timestamp takes the
    previous line's time in its file.
    """
    directory = Path(directory) if directory else SAMPLES_DIR
    streams = []
    for order, (name, hint) in enumerate(SAMPLE_FILES.items()):
        path = directory / name
        if path.exists():
            streams.append(_read(path, name, hint, order))
    merged = list(heapq.merge(*streams))
    if not merged:
        return
    start = merged[0][0]
    shift = (rebase_to - start) if rebase_to is not None else None
    for moment, _order, _number, name, hint, text, parsed in merged:
        if shift is not None:
            new_moment = moment + shift
            text = retime(text, parsed, new_moment)
            moment = new_moment
        yield SampleLine(
            timestamp=moment,
            offset=(moment - (start + shift if shift is not None else start)).total_seconds(),
            source=name,
            source_hint=hint,
            line=text,
        )


def _read(path, name, hint, order):
    rows = []
    previous = None
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle):
            text = text.rstrip("\n")
            if not text.strip():
                continue
            parsed = parse_line(text, source_hint=hint)
            moment = parsed.timestamp or previous or datetime(1970, 1, 1, tzinfo=UTC)
            previous = moment
            rows.append((moment, order, number, name, hint, text, parsed))
    rows.sort(key=lambda row: (row[0], row[2]))
    return rows


# -- rewriting a line's timestamp --------------------------------------------------------------

_RFC3339_START = re.compile(
    r"^(<\d{1,3}>(?:1 )?)?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
    r"(?:[Zz]|[+-]\d{2}:?\d{2})?"
)
_BSD_START = re.compile(r"^(<\d{1,3}>)?[A-Za-z]{3}\s+\d{1,2}\s+(?:\d{4}\s+)?\d{2}:\d{2}:\d{2}")
_CLF = re.compile(r"\[\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]")
_BIND_START = re.compile(r"^\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?")


def retime(text, parsed, moment):
    """`text` with its timestamp replaced by `moment` (UTC), in the line's own format; the
    text unchanged when it has no timestamp this knows how to write."""
    moment = moment.astimezone(UTC)
    if parsed.format in ("syslog", "syslog5424"):
        if match := _RFC3339_START.match(text):
            pri = match.group(1) or ""
            return pri + moment.isoformat(timespec="microseconds") + text[match.end() :]
        if match := _BSD_START.match(text):
            stamp = f"{_MONTH_NAMES[moment.month]} {moment.day:>2} {moment:%H:%M:%S}"
            return (match.group(1) or "") + stamp + text[match.end() :]
    elif parsed.format == "access":
        stamp = (
            f"[{moment.day:02d}/{_MONTH_NAMES[moment.month]}/{moment.year}:{moment:%H:%M:%S} +0000]"
        )
        return _CLF.sub(stamp, text, count=1)
    elif parsed.format == "bind":
        if match := _BIND_START.match(text):
            stamp = (
                f"{moment.day:02d}-{_MONTH_NAMES[moment.month]}-{moment.year} "
                f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"
            )
            return stamp + text[match.end() :]
    elif parsed.format == "json" and not parsed.malformed:
        document = json.loads(text)
        for key in KEYS["timestamp"]:
            if key in document and not isinstance(document[key], dict):
                document[key] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return text

"""Downloading threat feeds that have a URL, each on its `update_interval`.

`download_feed(feed)` fetches the URL over HTTP or HTTPS (only: redirects elsewhere are
refused), sending the `ETag` and `Last-Modified` of the previous download back
(`If-None-Match`, `If-Modified-Since`), with a limit on the body size and on the time of
the whole transfer. A new body goes through `feeds.import_feed` (the formats and the one
transaction of `import_threat_feed`, then `threat_feed_updated` with the counts and a BIND
sync); `304 Not Modified` changes nothing. A failure (HTTP status, network, timeout, size,
a body with no valid domain) leaves the rules as they were, keeps the reason in the feed's
`last_error`, and publishes `threat_feed_updated` with action `fetch_failed`.

`download_due_feeds()` downloads every active feed whose interval has passed since its
last attempt; `dns.monitors.FeedMonitor` runs that for the monitor runner.
"""

import logging
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from dns import announce, feeds
from dns.conf import dns_setting
from dns.models import ThreatFeed

logger = logging.getLogger(__name__)

USER_AGENT = "ThreatLens feed downloader"
CHUNK = 64 * 1024


class FeedDownloadError(Exception):
    """A download that did not produce a feed body; the message is kept on the feed."""


@dataclass
class DownloadOutcome:
    feed: str
    status: str  # updated | not_modified | failed
    message: str = ""
    entries: int = 0
    added: int = 0
    removed: int = 0


def _opener():
    """HTTP and HTTPS only: no file:, ftp: or data: URL, not even through a redirect."""
    context = ssl.create_default_context(cafile=dns_setting("FEED_CA_FILE"))
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=context),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPDefaultErrorHandler(),
    ):
        opener.add_handler(handler)
    return opener


def fetch(url, *, etag="", last_modified="", timeout=None, max_bytes=None):
    """GET `url`; returns (text, etag, last_modified), or None for 304 Not Modified.
    Raises FeedDownloadError with a reason fit for `last_error`."""
    timeout = timeout or dns_setting("FEED_TIMEOUT")
    max_bytes = max_bytes or dns_setting("FEED_MAX_BYTES")
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        # The scheme only: a URL may carry credentials, and the reason is logged and stored.
        raise FeedDownloadError(f"not an HTTP or HTTPS URL (scheme {scheme or 'none'!r})")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    deadline = time.monotonic() + timeout
    try:
        with _opener().open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FeedDownloadError(f"larger than {max_bytes} bytes ({length} announced)")
            body = bytearray()
            while chunk := response.read(CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise FeedDownloadError(f"larger than {max_bytes} bytes")
                # The socket timeout bounds each read; this bounds the whole transfer.
                if time.monotonic() > deadline:
                    raise FeedDownloadError(f"download took longer than {timeout:g} s")
            charset = response.headers.get_content_charset() or "utf-8"
            text = body.decode(charset, errors="replace")
            return (
                text,
                response.headers.get("ETag", ""),
                response.headers.get("Last-Modified", ""),
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return None
        raise FeedDownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise FeedDownloadError(f"no answer within {timeout:g} s") from None
        raise FeedDownloadError(f"cannot download: {reason}") from None
    except TimeoutError:
        raise FeedDownloadError(f"no answer within {timeout:g} s") from None
    except (OSError, LookupError, ValueError) as exc:
        raise FeedDownloadError(f"cannot download: {exc}") from None


def download_feed(feed):
    """Download one feed now and apply it; returns a DownloadOutcome (never raises for a
    download or content problem: that is the outcome)."""
    attempted = timezone.now()
    try:
        fetched = fetch(feed.url, etag=feed.etag, last_modified=feed.http_last_modified)
        if fetched is None:
            # Bookkeeping, not a configuration change: a queryset update (no signals).
            ThreatFeed.objects.filter(pk=feed.pk).update(last_fetch=attempted, last_error="")
            return DownloadOutcome(feed.name, "not_modified", "not modified since last time")
        text, etag, last_modified = fetched
        with transaction.atomic():
            # In the import's transaction and before it, so that the threat_feed_updated
            # it publishes carries this download's time (the console shows it); a refused
            # body rolls this back with the import.
            ThreatFeed.objects.filter(pk=feed.pk).update(
                last_fetch=attempted, etag=etag[:255], http_last_modified=last_modified[:64]
            )
            summary = feeds.import_feed(None, feed.name, text)
    except (FeedDownloadError, ValidationError) as exc:
        reason = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
        _failed(feed, attempted, reason)
        return DownloadOutcome(feed.name, "failed", reason)
    return DownloadOutcome(
        feed.name,
        "updated",
        f"{summary['entries']} domains",
        entries=summary["entries"],
        added=summary["added"],
        removed=summary["removed"],
    )


def _failed(feed, attempted, reason):
    logger.warning("threat feed %s: download failed: %s", feed.name, reason)
    with transaction.atomic():
        ThreatFeed.objects.filter(pk=feed.pk).update(last_fetch=attempted, last_error=reason)
        feed.refresh_from_db()
        announce.feed_fetch_failed(feed, reason)


def due_feeds(now=None):
    """Active feeds with a URL whose interval has passed since their last attempt."""
    now = now or timezone.now()
    due = []
    for feed in ThreatFeed.objects.filter(is_active=True).exclude(url=""):
        if (
            feed.last_fetch is None
            or feed.last_fetch + timedelta(seconds=feed.update_interval) <= now
        ):
            due.append(feed)
    return due


def download_due_feeds(now=None):
    """Download every due feed, one after the other; returns their DownloadOutcomes."""
    return [download_feed(feed) for feed in due_feeds(now)]

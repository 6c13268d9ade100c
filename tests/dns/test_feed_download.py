"""Threat feeds downloaded from a loopback HTTP(S) server."""

import contextlib
import http.server
import io
import shutil
import ssl
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from dns import feed_download
from dns.models import RpzRule, ThreatFeed
from tests.dns.helpers import events
from threatlens.writeguard import service_writes

FEED = "evil.example\nphish.example\n# comment\nnot a domain\n"


class FeedServer:
    """A loopback HTTP server: `routes[path] = (status, headers, body)`, `delay` before
    answering; `requests` keeps (path, headers) of what it received."""

    def __init__(self, tls_context=None):
        self.routes = {}
        self.delay = 0.0
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                time.sleep(server.delay)
                status, headers, body = server.routes.get(self.path, (404, {}, b"missing"))
                if callable(body):
                    status, headers, body = body(self.headers)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a client that gave up
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    feed_server = FeedServer()
    yield feed_server
    feed_server.close()


@pytest.fixture
def quick_limits(settings):
    settings.DNS = {"FEED_TIMEOUT": 1.0, "FEED_MAX_BYTES": 2048}


def make_feed(url, **fields):
    with service_writes():
        return ThreatFeed.objects.create(name="remote", url=url, **fields)


def conditional(etag, body):
    """A route answering 304 when the client sends back `etag`."""

    def answer(headers):
        if headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Last-Modified": "Mon, 07 Dec 2026 00:00:00 GMT"}, body

    return answer


def test_a_feed_is_downloaded_into_rpz_rules_with_counts_published(
    server, quick_limits, db, django_capture_on_commit_callbacks
):
    server.routes["/malware.txt"] = (200, {}, conditional('"v1"', FEED.encode()))
    feed = make_feed(server.url("/malware.txt"), action="nodata")
    with django_capture_on_commit_callbacks(execute=True):
        outcome = feed_download.download_feed(feed)
    assert (outcome.status, outcome.entries, outcome.added) == ("updated", 2, 2)
    assert sorted(RpzRule.objects.values_list("domain", "action")) == [
        ("evil.example", "nodata"),
        ("phish.example", "nodata"),
    ]
    (event,) = events("threat_feed_updated")
    assert (event.data["added"], event.data["removed"], event.data["entries_count"]) == (2, 0, 2)
    feed.refresh_from_db()
    assert feed.etag == '"v1"' and feed.http_last_modified.startswith("Mon, 07 Dec 2026")
    assert feed.last_fetch is not None and feed.last_error == ""
    # The event tells the console when this download happened (its "last download").
    assert event.data["feed"]["last_fetch"] is not None
    assert server.requests[0][1]["User-Agent"] == feed_download.USER_AGENT


def test_an_unchanged_feed_is_not_downloaded_again(server, quick_limits, db):
    server.routes["/f"] = (200, {}, conditional('"v1"', FEED.encode()))
    feed = make_feed(server.url("/f"))
    feed_download.download_feed(feed)
    before = len(events())
    feed.refresh_from_db()
    outcome = feed_download.download_feed(feed)
    assert outcome.status == "not_modified"
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Mon, 07 Dec 2026 00:00:00 GMT"
    assert len(events()) == before  # nothing published, nothing changed
    assert RpzRule.objects.count() == 2


def test_a_changed_feed_replaces_its_rules_in_one_go(server, quick_limits, db):
    server.routes["/f"] = (200, {"ETag": '"1"'}, FEED.encode())
    feed = make_feed(server.url("/f"))
    feed_download.download_feed(feed)
    server.routes["/f"] = (200, {"ETag": '"2"'}, b"evil.example\nnew.example\n")
    feed.refresh_from_db()
    outcome = feed_download.download_feed(feed)
    assert (outcome.added, outcome.removed) == (1, 1)
    assert sorted(RpzRule.objects.values_list("domain", flat=True)) == [
        "evil.example",
        "new.example",
    ]


def test_a_hosts_file_feed_is_read_as_hosts(server, quick_limits, db):
    server.routes["/hosts"] = (200, {}, b"127.0.0.1 localhost\n0.0.0.0 ads.example\n")
    feed_download.download_feed(make_feed(server.url("/hosts"), format="hosts"))
    assert list(RpzRule.objects.values_list("domain", flat=True)) == ["ads.example"]


@pytest.mark.parametrize(
    "route, delay, reason",
    [
        ((500, {}, b"oops"), 0, "HTTP 500"),
        ((200, {}, b"x.example\n" * 400), 0, "larger than 2048 bytes"),
        ((200, {}, b"nothing useful here\n"), 0, "no valid domain"),
        ((200, {}, FEED.encode()), 1.5, "no answer within 1 s"),
    ],
    ids=["server-error", "too-large", "no-domains", "too-slow"],
)
def test_a_failed_download_keeps_the_rules_and_the_reason(
    server, quick_limits, db, django_capture_on_commit_callbacks, route, delay, reason
):
    server.routes["/f"] = (200, {}, b"kept.example\n")
    feed = make_feed(server.url("/f"))
    feed_download.download_feed(feed)
    server.routes["/f"], server.delay = route, delay
    feed.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        outcome = feed_download.download_feed(feed)
    assert outcome.status == "failed" and reason in outcome.message
    assert list(RpzRule.objects.values_list("domain", flat=True)) == ["kept.example"]
    feed.refresh_from_db()
    assert reason in feed.last_error and feed.entries_count == 1
    failed = events("threat_feed_updated")[-1]
    assert failed.data["action"] == "fetch_failed"
    assert reason in failed.data["feed"]["last_error"]


def test_only_http_and_https_urls_are_fetched(db, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("evil.example\n")
    with service_writes():
        feed = ThreatFeed.objects.create(name="local", url="http://x", file_path="x")
    ThreatFeed.objects.filter(pk=feed.pk).update(url=f"file://{secret}")
    feed.refresh_from_db()
    outcome = feed_download.download_feed(feed)
    assert outcome.status == "failed" and "not an HTTP or HTTPS URL" in outcome.message
    assert not RpzRule.objects.exists()


def test_feeds_are_due_on_their_interval(server, quick_limits, db):
    server.routes["/f"] = (200, {}, FEED.encode())
    feed = make_feed(server.url("/f"), update_interval=3600)
    with service_writes():
        make_feed_without_url = ThreatFeed.objects.create(name="file-only", file_path="/x")
    assert feed_download.due_feeds() == [feed]  # never fetched
    assert make_feed_without_url not in feed_download.due_feeds()
    feed_download.download_due_feeds()
    assert feed_download.due_feeds() == []
    later = timezone.now() + timedelta(seconds=3601)
    assert feed_download.due_feeds(later) == [feed]


def test_the_fetch_command_downloads_due_feeds(server, quick_limits, db):
    server.routes["/f"] = (200, {}, FEED.encode())
    make_feed(server.url("/f"))
    out = io.StringIO()
    call_command("fetch_threat_feeds", stdout=out)
    assert "remote: updated, 2 domains (+2 -0)" in out.getvalue()
    server.routes["/f"] = (503, {}, b"")
    with pytest.raises(CommandError, match="1 feed"):
        call_command("fetch_threat_feeds", "--all", stdout=io.StringIO())


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_a_feed_is_downloaded_over_https(tmp_path, settings, db):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    tls_server = FeedServer(context)
    try:
        tls_server.routes["/f"] = (200, {}, FEED.encode())
        feed = make_feed(tls_server.url("/f"))
        settings.DNS = {"FEED_TIMEOUT": 2.0}
        untrusted = feed_download.download_feed(feed)
        assert untrusted.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in untrusted.message
        settings.DNS = {"FEED_TIMEOUT": 2.0, "FEED_CA_FILE": str(cert)}
        assert feed_download.download_feed(feed).status == "updated"
    finally:
        tls_server.close()

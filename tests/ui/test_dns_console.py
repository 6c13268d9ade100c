"""The DNS console in headless Chromium against a live server: zones created and deleted,
records searched and kept in natural order, zone files imported and exported, a zone grant
appearing live with the right edit label and usernames in the change history, RPZ rules
added and removed, and threat feeds and forwarders showing their health live.

The server of this module runs the monitors in its process every second, so the feed
downloads and forwarder probes are the real ones, against a local HTTP server and a local
DNS responder.
"""

import http.server
import os
import re
import threading

import pytest

from tests.dns.test_forwarders import Responder
from tests.e2e.live_server import LiveServer, free_port
from tests.ui.helpers import PHONE, browser_problem, screenshot
from tests.ui.test_browser import LIVE, WIDER_THAN_THE_PAGE, expect, wait_live

pytestmark = pytest.mark.e2e

if browser_problem() and os.environ.get("CI") != "true":
    pytest.skip(f"UI browser tests: {browser_problem()}", allow_module_level=True)

FAST_MONITORS = {
    "MONITORS_IN_PROCESS": "1",
    "MONITORS_CHECK_INTERVAL": "1",
    "DNS_FORWARDER_CHECK_INTERVAL": "1",
    "DNS_FEED_CHECK_INTERVAL": "1",
    "DNS_FORWARDER_TIMEOUT": "0.3",
    "DNS_FEED_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def ui_server(django_db_setup):
    server = LiveServer("daphne", extra_env=FAST_MONITORS).start()
    yield server
    server.stop()


def make_zone(ui, name, records=(), *, grant=None):
    status, zone = ui.api("POST", "/api/dns/zones/", {"name": name, "email": f"hostmaster@{name}"})
    assert status == 201, zone
    for record in records:
        status, body = ui.api("POST", f"/api/dns/zones/{zone['id']}/records/", record)
        assert status == 201, body
    if grant:
        username, can_change = grant
        status, body = ui.api(
            "POST",
            f"/api/dns/zones/{zone['id']}/access/",
            {"username": username, "can_change": can_change},
        )
        assert status == 201, body
    return zone


def record_names(page):
    return page.locator("#records tr td:first-child").all_inner_texts()


def test_an_admin_creates_and_deletes_a_zone_and_an_analyst_may_not(ui):
    alice = ui.open("alice", "/dns/")
    carol = ui.open("carol", "/dns/")
    wait_live(alice, carol)
    expect(alice.get_by_role("button", name="New zone")).to_have_count(0)

    carol.get_by_role("button", name="New zone").click()
    carol.get_by_label("Name", exact=True).first.fill("not a zone!")
    carol.get_by_label("Hostmaster e-mail").fill("hostmaster@example.org")
    carol.get_by_role("button", name="Create zone").click()
    expect(carol.locator("#z-name-error")).not_to_be_empty()
    expect(carol.locator("#z-name")).to_have_attribute("aria-invalid", "true")

    carol.locator("#z-name").fill("made-in-console.example")
    carol.get_by_role("button", name="Create zone").click()
    expect(carol.locator("#zone-title")).to_have_text("made-in-console.example")
    expect(carol.locator("#zones li", has_text="made-in-console.example")).to_be_visible()
    expect(carol.locator("#zone-access")).to_have_text("you may edit")
    expect(carol).to_have_url(re.compile(r"\?zone=\d+"))
    zone_id = int(carol.url.rsplit("=", 1)[1])
    status, _ = ui.api(
        "POST",
        f"/api/dns/zones/{zone_id}/records/",
        {"name": "www", "record_type": "A", "value": "192.0.2.7"},
    )
    assert status == 201
    expect(carol.locator("#records tr", has_text="192.0.2.7")).to_be_visible(**LIVE)

    # Delete asks first; saying no keeps the zone.
    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    carol.once("dialog", lambda dialog: answer(dialog, False))
    carol.get_by_role("button", name="Delete zone").click()
    expect(carol.locator("#zones li", has_text="made-in-console.example")).to_be_visible()
    assert questions and "made-in-console.example" in questions[0] and "1 record" in questions[0]
    carol.once("dialog", lambda dialog: answer(dialog, True))
    carol.get_by_role("button", name="Delete zone").click()
    expect(carol.locator("#zones li", has_text="made-in-console.example")).to_have_count(0)
    assert ui.api("GET", f"/api/dns/zones/{zone_id}/")[0] == 404
    assert ui.js_errors() == {}


def test_records_are_searched_and_kept_in_natural_order(ui):
    zone = make_zone(
        ui,
        "natural.example",
        [
            {"name": "host10", "record_type": "A", "value": "192.0.2.10"},
            {"name": "host2", "record_type": "A", "value": "192.0.2.2"},
            {"name": "host1", "record_type": "A", "value": "192.0.2.1"},
            {"name": "mail", "record_type": "A", "value": "198.51.100.25"},
            {"name": "www", "record_type": "CNAME", "value": "host1"},
        ],
    )
    carol = ui.open("carol", f"/dns/?zone={zone['id']}")
    wait_live(carol)
    expect(carol.locator("#records tr")).to_have_count(5)
    assert record_names(carol) == ["host1", "host2", "host10", "mail", "www"]

    carol.get_by_label("Search name or value").fill("198.51")
    expect(carol.locator("#records tr")).to_have_count(1)
    expect(carol.locator("#records tr")).to_contain_text("mail")
    carol.get_by_label("Search name or value").fill("HOST")
    expect(carol.locator("#records tr")).to_have_count(4)  # www's value is host1
    expect(carol.locator("#record-count")).to_have_text("4 matching records")
    carol.locator("#record-type-filter").select_option("CNAME")
    expect(carol.locator("#records tr")).to_have_count(1)
    expect(carol.locator("#records tr")).to_contain_text("www")
    carol.locator("#record-type-filter").select_option("")
    carol.get_by_label("Search name or value").fill("")
    expect(carol.locator("#records tr")).to_have_count(5)

    # A record made elsewhere lands in natural order, live.
    ui.api(
        "POST",
        f"/api/dns/zones/{zone['id']}/records/",
        {"name": "host3", "record_type": "A", "value": "192.0.2.3"},
    )
    expect(carol.locator("#records tr")).to_have_count(6, **LIVE)
    assert record_names(carol) == ["host1", "host2", "host3", "host10", "mail", "www"]
    assert ui.js_errors() == {}


def test_a_zone_file_is_imported_and_exported_from_the_zone_page(ui, tmp_path):
    zone = make_zone(
        ui,
        "files.example",
        [{"name": "www", "record_type": "A", "value": "192.0.2.80"}],
        grant=("alice", False),
    )
    alice = ui.open("alice", f"/dns/?zone={zone['id']}")
    carol = ui.open("carol", f"/dns/?zone={zone['id']}")
    wait_live(alice, carol)
    expect(alice.get_by_role("link", name="Export zone file")).to_be_visible()
    expect(alice.get_by_role("button", name="Import zone file")).to_be_hidden()

    zone_file = tmp_path / "db.files.example"
    zone_file.write_text(
        "$ORIGIN files.example.\n$TTL 3600\n"
        "api IN A 192.0.2.90\nmail IN A 192.0.2.25\n@ IN MX 10 mail\n"
    )
    carol.get_by_role("button", name="Import zone file").click()
    carol.locator("#import-file").set_input_files(str(zone_file))
    expect(carol.locator("#import-text")).to_have_value(re.compile(r"api IN A 192\.0\.2\.90"))
    carol.get_by_role("button", name="Import file").click()
    expect(carol.locator("#records tr", has_text="192.0.2.90")).to_be_visible()
    expect(carol.locator("#records tr", has_text="192.0.2.80")).to_be_visible()  # added to
    expect(alice.locator("#records tr", has_text="192.0.2.90")).to_be_visible(**LIVE)

    # A broken file is refused with the parser's message, nothing changes.
    carol.get_by_role("button", name="Import zone file").click()
    carol.locator("#import-text").fill("www IN A not-an-address\n")
    carol.get_by_role("button", name="Import file").click()
    expect(carol.locator("#import-error")).not_to_be_empty()

    with alice.expect_download() as download:
        alice.get_by_role("link", name="Export zone file").click()
    text = download.value.path().read_text()
    assert "192.0.2.90" in text and "192.0.2.80" in text and "MX" in text
    assert download.value.suggested_filename == "db.files.example"
    assert ui.js_errors() == {}


def test_a_zone_granted_to_an_analyst_appears_live_with_the_right_label(ui):
    zone = make_zone(
        ui, "granted.example", [{"name": "www", "record_type": "A", "value": "192.0.2.1"}]
    )
    alice = ui.open("alice", "/dns/")
    wait_live(alice)
    expect(alice.locator("#zones-empty")).to_be_visible()

    status, access = ui.api(
        "POST", f"/api/dns/zones/{zone['id']}/access/", {"username": "alice", "can_change": False}
    )
    assert status == 201, access
    expect(alice.locator("#zones li", has_text="granted.example")).to_be_visible(**LIVE)
    expect(alice.locator("#zone-title")).to_have_text("granted.example")
    expect(alice.locator("#zone-access")).to_have_text("read only")
    expect(alice.get_by_role("button", name="Add record")).to_be_hidden()
    expect(alice.get_by_role("button", name="Edit www A")).to_have_count(0)

    # Change access granted: the label and the buttons follow, still without a reload.
    ui.api(
        "POST", f"/api/dns/zones/{zone['id']}/access/", {"username": "alice", "can_change": True}
    )
    expect(alice.locator("#zone-access")).to_have_text("you may edit", **LIVE)
    expect(alice.get_by_role("button", name="Add record")).to_be_visible()
    # A zone change (whose event carries no can_change) does not take the label away.
    status, current = ui.api("GET", f"/api/dns/zones/{zone['id']}/")
    ui.api(
        "PATCH",
        f"/api/dns/zones/{zone['id']}/",
        {"description": "shared", "version": current["version"]},
    )
    ui.api(
        "POST",
        f"/api/dns/zones/{zone['id']}/records/",
        {"name": "api", "record_type": "A", "value": "192.0.2.2"},
    )
    expect(alice.locator("#changes li", has_text="api.granted.example")).to_be_visible(**LIVE)
    expect(alice.locator("#changes li", has_text="api.granted.example")).to_contain_text("carol")
    expect(alice.locator("#changes")).not_to_contain_text("user #")
    expect(alice.locator("#zone-access")).to_have_text("you may edit")

    # Revoked: the zone goes.
    status, _ = ui.api("DELETE", f"/api/dns/zones/{zone['id']}/access/{access['id']}/")
    assert status == 204
    expect(alice.locator("#zones li", has_text="granted.example")).to_have_count(0, **LIVE)
    assert ui.js_errors() == {}


def test_rpz_rules_are_added_and_removed_in_the_console(ui):
    alice = ui.open("alice", "/dns/rpz/")
    carol = ui.open("carol", "/dns/rpz/")
    wait_live(alice, carol)
    expect(alice.locator("#rule-form")).to_have_count(0)
    expect(alice.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)

    carol.get_by_label("Domain", exact=True).fill("not a domain")
    carol.get_by_role("button", name="Add rule").click()
    expect(carol.locator("#rpz-domain-error")).not_to_be_empty()

    carol.get_by_label("Domain", exact=True).fill("phish.example")
    carol.get_by_label("Action").select_option("nxdomain")
    carol.get_by_label("Category").select_option("phishing")
    carol.get_by_label("Reason", exact=True).fill("Seen in a phishing mail")
    carol.get_by_role("button", name="Add rule").click()
    expect(carol.locator("#rpz-rules tr", has_text="phish.example")).to_be_visible()
    expect(alice.locator("#rpz-rules tr", has_text="phish.example")).to_be_visible(**LIVE)
    export = carol.request.get("/api/dns/rpz/export/")
    assert export.ok and "phish.example" in export.text()

    carol.once("dialog", lambda dialog: dialog.accept())
    carol.get_by_role("button", name="Remove the rule for phish.example").click()
    expect(carol.locator("#rpz-rules tr", has_text="phish.example")).to_have_count(0)
    expect(alice.locator("#rpz-rules tr", has_text="phish.example")).to_have_count(0, **LIVE)
    assert ui.js_errors() == {}


class FeedServer:
    """A local HTTP server: /good.txt is a domain list, anything else a 500."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/good.txt":
                    body = b"bad-one.example\nbad-two.example\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(500, "Broken")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_threat_feeds_and_forwarders_show_their_health_live(ui):
    feeds, responder = FeedServer(), Responder()
    try:
        feed_page = ui.open("alice", "/dns/feeds/")
        forwarder_page = ui.open("alice", "/dns/forwarders/")
        wait_live(feed_page, forwarder_page)
        for name, path in (("good-list", "/good.txt"), ("broken-list", "/broken.txt")):
            status, body = ui.api(
                "POST",
                "/api/dns/feeds/",
                {"name": name, "url": feeds.url + path, "update_interval": 60},
            )
            assert status == 201, body
        for name, port in (("up", responder.port), ("down", free_port())):
            status, body = ui.api(
                "POST", "/api/dns/forwarders/", {"name": name, "address": "127.0.0.1", "port": port}
            )
            assert status == 201, body
        # The monitors download and probe within seconds; the pages follow without reload.
        good = feed_page.locator("#feeds tr", has_text="good-list")
        broken = feed_page.locator("#feeds tr", has_text="broken-list")
        expect(good).to_contain_text("ok", timeout=20000)
        expect(good.locator("td").nth(2)).to_have_text("2")
        expect(broken).to_contain_text("failed: HTTP 500", timeout=20000)
        expect(feed_page.locator("#feed-summary")).to_have_text("2 feeds, 1 failing")

        up = forwarder_page.locator("#forwarders tr", has_text="up")
        down = forwarder_page.locator("#forwarders tr", has_text="down")
        expect(up).to_contain_text("healthy", timeout=20000)
        expect(up).to_contain_text(" ms")
        expect(down).to_contain_text("critical", timeout=20000)
        responder.mode = "silent"
        expect(up).to_contain_text("critical", timeout=20000)
        expect(up).to_contain_text("no answer")
        feed_page.set_viewport_size(PHONE)
        assert not feed_page.evaluate(WIDER_THAN_THE_PAGE)
        screenshot(feed_page, "dns-feeds-live")
        screenshot(forwarder_page, "dns-forwarders-live")
    finally:
        feeds.close()
        responder.close()
    assert ui.js_errors() == {}

"""The UI's pages over Django's test client: login, logout, permissions, page configuration,
and that every template and script the pages load exists (no browser needed)."""

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from incidents.models import ALERT_TRANSITIONS
from tests.incidents.helpers import new_incident
from tests.personas import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/events/", "/alerts/", "/incidents/", "/dns/", "/rules/", "/rules/coverage/"]


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def page_config(response):
    match = re.search(
        r'<script id="page-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the page carries its configuration"
    return json.loads(match.group(1))


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for path in [*PAGES, "/audit/", "/incidents/1/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={path}"


@pytest.mark.django_db
def test_login_page_logs_in_and_returns_to_the_page_asked_for(client, alice):
    page = client.get("/login/?next=/alerts/")
    assert page.status_code == 200
    assert b'autocomplete="current-password"' in page.content
    response = client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": "/alerts/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/alerts/"
    assert client.get("/alerts/").status_code == 200


@pytest.mark.django_db
def test_wrong_password_is_refused_with_a_message_at_the_form(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.django_db
def test_throttled_login_says_so_even_with_the_right_password(client, alice, settings):
    for _ in range(settings.LOGIN_THROTTLE_FAILURES):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert b"Too many failed login attempts" in response.content
    assert not response.wsgi_request.user.is_authenticated  # no session login


@pytest.mark.django_db
def test_logout_is_a_post_that_ends_the_session_and_returns_to_login(alice):
    client = logged_in(alice)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert b"You are logged out." in client.get("/login/").content
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_an_analyst_opens_every_page_and_sees_name_role_and_indicator(make_user):
    dave = make_user("dave", role="analyst", first_name="Dave", last_name="Lister")
    client = logged_in(dave)
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "Dave Lister" in html
        assert '<span class="role-badge">analyst</span>' in html
        assert 'id="conn"' in html
        assert 'href="/api/docs/"' in html
        config = page_config(response)
        assert config["user"] == {
            "id": dave.pk,
            "username": "dave",
            "display_name": "Dave Lister",
            "role": "analyst",
        }
        assert response.cookies.get("csrftoken"), "the scripts need the CSRF cookie"


@pytest.mark.django_db
def test_audit_log_is_for_admins_only(alice, carol):
    refused = logged_in(alice).get("/audit/")
    assert refused.status_code == 403
    assert b"Not permitted" in refused.content
    page = logged_in(carol).get("/audit/")
    assert page.status_code == 200
    assert b'href="/api/audit/export.csv"' in page.content


@pytest.mark.django_db
def test_a_viewer_may_not_open_the_security_event_feed(bob):
    client = logged_in(bob)
    assert client.get("/events/").status_code == 403
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_navigation_shows_the_pages_each_role_may_open(alice, bob, carol):
    def links(user):
        html = logged_in(user).get("/").content.decode()
        nav = html[html.index('id="site-nav"') : html.index("</nav>")]
        return re.findall(r'href="([^"]+)"', nav)

    assert links(alice) == [
        "/",
        "/events/",
        "/alerts/",
        "/incidents/",
        "/dns/",
        "/rules/",
        "/api/docs/",
    ]
    assert links(bob) == ["/", "/alerts/", "/incidents/", "/dns/", "/rules/", "/api/docs/"]
    assert links(carol) == [
        "/",
        "/events/",
        "/alerts/",
        "/incidents/",
        "/dns/",
        "/rules/",
        "/audit/",
        "/admin/",
        "/api/docs/",
    ]


@pytest.mark.django_db
def test_alert_queue_gets_its_permissions_and_the_allowed_status_moves(alice, bob):
    config = page_config(logged_in(alice).get("/alerts/"))
    assert config["perms"]["take_alerts"] is True
    assert config["perms"]["reassign_alerts"] is False
    assert config["alert_transitions"]["new"] == sorted(
        str(status) for status in ALERT_TRANSITIONS["new"]
    )
    assert page_config(logged_in(bob).get("/alerts/"))["perms"]["take_alerts"] is False


@pytest.mark.django_db
def test_dns_pages_offer_what_each_role_may_do(alice, carol):
    # Per-zone change access is the zone API's can_change (it follows grants made while
    # the page is open); the page config says only what the role may do at all.
    analyst = page_config(logged_in(alice).get("/dns/"))
    assert analyst["perms"]["add_zones"] is False and analyst["perms"]["delete_zones"] is False
    assert "changeable_zone_ids" not in analyst
    admin = logged_in(carol)
    config = page_config(admin.get("/dns/"))
    assert config["perms"]["add_zones"] is True and "A" in config["record_types"]
    assert 'id="new-zone"' in admin.get("/dns/").content.decode()
    assert 'id="new-zone"' not in logged_in(alice).get("/dns/").content.decode()
    for path in ("/dns/rpz/", "/dns/feeds/", "/dns/forwarders/"):
        assert logged_in(alice).get(path).status_code == 200
        page = admin.get(path).content.decode()
        for tab in ("/dns/rpz/", "/dns/feeds/", "/dns/forwarders/"):
            assert f'href="{tab}"' in page
    assert 'id="rule-form"' in admin.get("/dns/rpz/").content.decode()
    assert 'id="rule-form"' not in logged_in(alice).get("/dns/rpz/").content.decode()


@pytest.mark.django_db
def test_incident_page_says_whether_the_user_is_watching(alice):
    incident = new_incident(title="Brute force", owner=alice)
    config = page_config(logged_in(alice).get(f"/incidents/{incident.pk}/"))
    assert config["incident_id"] == incident.pk
    assert config["watching"] is False


@pytest.mark.django_db
def test_an_incident_the_user_may_not_see_is_not_found_with_no_alerts_or_watch_button(alice, bob):
    incident = new_incident(title="Brute force", owner=alice)
    for path in (f"/incidents/{incident.pk}/", "/incidents/999999/"):
        page = logged_in(bob).get(path)
        assert page.status_code == 404
        html = page.content.decode()
        assert "Incident not found" in html
        assert 'id="incident-alerts"' not in html
        assert 'id="watch"' not in html
    assert logged_in(alice).get(f"/incidents/{incident.pk}/").status_code == 200


@pytest.mark.django_db
def test_incidents_open_on_mine_only_for_someone_who_owns_an_open_incident(alice, carol):
    assert page_config(logged_in(carol).get("/incidents/"))["default_view"] == "all"
    assert page_config(logged_in(alice).get("/incidents/"))["default_view"] == "all"
    new_incident(title="Brute force", owner=alice)
    assert page_config(logged_in(alice).get("/incidents/"))["default_view"] == "mine"


@pytest.mark.django_db
def test_a_viewer_gets_no_mine_toggles_they_could_not_use(alice, bob):
    for path in ("/alerts/", "/incidents/"):
        assert b'data-view="mine"' not in logged_in(bob).get(path).content
        assert b'data-view="mine"' in logged_in(alice).get(path).content


def test_every_static_file_the_templates_load_exists():
    for template in (ROOT / "templates" / "ui").glob("*.html"):
        for path in re.findall(r"{% static '([^']+)' %}", template.read_text()):
            assert finders.find(path), f"{template.name} loads missing {path}"


def test_every_module_the_scripts_import_exists():
    scripts = Path(finders.find("ui/js/socket.js")).parent
    for script in scripts.rglob("*.js"):
        for target in re.findall(r'^import .*? from "([^"]+)";', script.read_text(), re.M):
            assert (script.parent / target).resolve().is_file(), f"{script.name} imports {target}"


@pytest.mark.django_db
def test_a_viewer_is_told_the_queue_is_not_live_for_their_role(bob):
    page = logged_in(bob).get("/alerts/")
    assert page.status_code == 200
    assert b"without live updates" in page.content
    assert page_config(page)["perms"]["receive_security"] is False


@pytest.mark.django_db
def test_the_rules_page_offers_upload_to_analysts_and_not_to_viewers(alice, bob):
    analyst = logged_in(alice).get("/rules/")
    assert page_config(analyst)["perms"]["change_sigma_rules"] is True
    assert b'id="upload"' in analyst.content
    assert b'href="/api/sigma/rules/coverage/"' in analyst.content
    viewer = logged_in(bob).get("/rules/")
    assert viewer.status_code == 200
    assert page_config(viewer)["perms"]["change_sigma_rules"] is False
    assert b'id="upload"' not in viewer.content


@pytest.mark.django_db
def test_the_coverage_page_opens_for_who_may_read_rules_and_offers_the_layer(bob, make_user):
    page = logged_in(bob).get("/rules/coverage/")
    assert page.status_code == 200
    assert b'href="/api/sigma/rules/coverage/"' in page.content
    assert logged_in(make_user("nobody", role=None)).get("/rules/coverage/").status_code == 403


@pytest.mark.django_db
def test_every_page_has_the_search_box_and_search_and_pivot_pages_open(alice):
    client = logged_in(alice)
    for path in [*PAGES, "/search/?q=x", "/pivot/?type=ip&value=192.0.2.1"]:
        html = client.get(path).content.decode()
        assert 'role="search"' in html and 'id="header-search"' in html, path
    assert page_config(client.get("/pivot/?type=ip&value=192.0.2.1"))["pivot"] == {
        "type": "ip",
        "value": "192.0.2.1",
    }
    assert 'value="needle"' in client.get("/search/?q=needle").content.decode()

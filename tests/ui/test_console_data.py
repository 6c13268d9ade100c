"""/api/saved-views/ and /api/preferences/: each user's console data, over REST."""

import pytest

from threatlens.ui.models import SavedView

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(api_client, token_for):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return api_client

    return login


def test_an_analyst_saves_a_view_and_gets_its_url(as_user, alice):
    body = {"page": "alerts", "name": "Critical first", "query": "?view=open&severity=critical"}
    response = as_user(alice).post("/api/saved-views/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["url"] == "/alerts/?view=open&severity=critical"
    listed = as_user(alice).get("/api/saved-views/", {"page": "alerts"}).data
    assert [view["name"] for view in listed] == ["Critical first"]


def test_views_are_private_to_their_owner(as_user, alice, dave_user):
    view = SavedView.objects.create(user=alice, page="alerts", name="Mine", query="view=mine")
    assert as_user(dave_user).get("/api/saved-views/").data == []
    assert as_user(dave_user).delete(f"/api/saved-views/{view.pk}/").status_code == 404
    assert as_user(alice).delete(f"/api/saved-views/{view.pk}/").status_code == 204


@pytest.mark.parametrize(
    "body, field",
    [
        ({"page": "alerts", "name": "  ", "query": ""}, "name"),
        ({"page": "nowhere", "name": "x", "query": ""}, "page"),
        ({"page": "alerts", "name": "x" * 81, "query": ""}, "name"),
        # 900 characters that encoding makes 2,700 (the field keeps 1,000)
        ({"page": "alerts", "name": "x", "query": "q=" + "/" * 898}, "query"),
    ],
)
def test_bad_views_are_refused_with_an_error_code(as_user, alice, body, field):
    response = as_user(alice).post("/api/saved-views/", body, format="json")
    assert response.status_code == 400
    assert response.data["error_code"] == "INVALID"
    assert field in response.data


def test_a_user_keeps_at_most_a_hundred_views(as_user, alice):
    SavedView.objects.bulk_create(
        SavedView(user=alice, page="alerts", name=f"v{n}", query="") for n in range(100)
    )
    body = {"page": "alerts", "name": "one more", "query": ""}
    response = as_user(alice).post("/api/saved-views/", body, format="json")
    assert response.status_code == 400 and response.data["error_code"] == "INVALID"
    assert SavedView.objects.filter(user=alice).count() == 100


def test_a_name_is_used_once_per_page(as_user, alice):
    body = {"page": "alerts", "name": "Triage", "query": "view=open"}
    assert as_user(alice).post("/api/saved-views/", body, format="json").status_code == 201
    again = as_user(alice).post("/api/saved-views/", body, format="json")
    assert again.status_code == 400 and "name" in again.data
    other_page = {**body, "page": "incidents"}
    assert as_user(alice).post("/api/saved-views/", other_page, format="json").status_code == 201


def test_anonymous_users_are_refused(api_client):
    assert api_client.get("/api/saved-views/").status_code == 401


@pytest.fixture
def dave_user(make_user):
    return make_user("dave", role="analyst")


def test_preferences_default_off_and_are_kept_per_user(as_user, alice, dave_user):
    assert as_user(alice).get("/api/preferences/").data == {
        "notify_critical": False,
        "sound_critical": False,
    }
    changed = as_user(alice).patch("/api/preferences/", {"notify_critical": True}, format="json")
    assert changed.status_code == 200 and changed.data["notify_critical"] is True
    assert as_user(alice).get("/api/preferences/").data["notify_critical"] is True
    assert as_user(dave_user).get("/api/preferences/").data["notify_critical"] is False


def test_a_bad_preference_is_refused_with_an_error_code(as_user, alice):
    response = as_user(alice).patch("/api/preferences/", {"sound_critical": "loud"}, format="json")
    assert response.status_code == 400
    assert response.data["error_code"] == "INVALID"


def test_chart_history_counts_security_events_by_arrival_and_gives_metrics(as_user, alice, bob):
    from realtime.publishing import publish

    publish("security_event", {"message": "a", "timestamp": "2020-01-01T00:00:00Z"}, priority=9)
    publish("security_event", {"message": "b"}, priority=3)
    publish("system_metrics", {"metrics": {"cpu": {"usage_percent": 12.5}}})
    body = as_user(alice).get("/api/console/charts/").json()
    totals = {band: sum(b[band] for b in body["security_events"]) for band in ("critical", "low")}
    # The 2020 event counts now, when it arrived.
    assert totals == {"critical": 1, "low": 1}
    assert body["system"][-1]["cpu"] == 12.5
    viewer = as_user(bob).get("/api/console/charts/").json()
    assert "security_events" not in viewer and "system" in viewer

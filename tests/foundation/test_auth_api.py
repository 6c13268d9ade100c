"""REST auth: token obtain, refresh, logout, me; audit rows and user events for each."""

import pytest

from realtime.models import Event
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db


def bearer(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_token_obtain_answers_an_access_and_a_refresh_token(obtain, alice, api_client):
    response = obtain("alice")

    assert response.status_code == 200
    body = response.json()
    bearer(api_client, body["access"])
    assert api_client.get("/api/auth/me/").json()["username"] == "alice"


def test_a_successful_token_login_is_audited_and_published_to_the_user(
    obtain, alice, audit_rows, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert obtain("alice", ip="192.0.2.7").status_code == 200

    (row,) = audit_rows("auth.login")
    assert (row.actor, row.target_id, row.ip_address) == (alice, str(alice.pk), "192.0.2.7")
    assert row.details == {"method": "token"}
    event = Event.objects.get(event_type="user_login")
    assert event.recipient_users == [alice.pk]
    assert event.data["username"] == "alice"
    assert event.data["method"] == "token"
    assert event.data["ip_address"] == "192.0.2.7"
    assert {"user_id", "timestamp"} <= set(event.data)


def test_a_failed_login_is_audited_without_the_password(obtain, alice, audit_rows):
    response = obtain("alice", "wrong-password", ip="192.0.2.8")

    assert response.status_code == 401
    assert response.json()["error_code"] == "NO_ACTIVE_ACCOUNT"
    (row,) = audit_rows("auth.login_failed")
    assert row.actor is None
    assert row.target_id == str(alice.pk)
    assert row.ip_address == "192.0.2.8"
    assert row.details == {"username": "alice", "method": "token"}
    assert "wrong-password" not in str(
        AuditLog.objects.values_list("old_values", "new_values", "details", "target_repr")
    )


def test_a_failed_login_for_an_unknown_user_names_the_attempted_username(obtain, audit_rows):
    assert obtain("mallory", "guess").status_code == 401
    (row,) = audit_rows("auth.login_failed")
    assert (row.target_type, row.target_id, row.target_repr) == ("auth.user", "", "mallory")


def test_an_inactive_user_cannot_obtain_a_token(obtain, make_user):
    make_user("gone", role="viewer", is_active=False)
    assert obtain("gone").status_code == 401


def test_token_obtain_needs_both_fields(api_client):
    response = api_client.post("/api/auth/token/", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()


def test_refresh_gives_a_new_access_token_and_rotates_the_refresh_token(obtain, alice, api_client):
    tokens = obtain("alice").json()

    response = api_client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["access"] and body["refresh"] != tokens["refresh"]
    # The rotated-out refresh token is revoked.
    again = api_client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert again.status_code == 401


def test_refresh_of_a_deleted_user_is_refused_not_an_error(obtain, make_user, api_client):
    dave = make_user("dave", role="viewer")
    tokens = obtain("dave").json()
    dave.delete()
    response = api_client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 401


def test_refresh_rejects_garbage(api_client):
    response = api_client.post("/api/auth/token/refresh/", {"refresh": "nope"}, format="json")
    assert response.status_code == 401


def test_logout_revokes_the_refresh_token_and_is_audited(
    obtain, alice, api_client, audit_rows, django_capture_on_commit_callbacks
):
    tokens = obtain("alice").json()
    bearer(api_client, tokens["access"])

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json"
        )

    assert response.status_code == 200
    refresh = api_client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refresh.status_code == 401
    (row,) = audit_rows("auth.logout")
    assert row.actor == alice
    assert row.details == {"method": "token"}
    event = Event.objects.get(event_type="user_logout")
    assert event.recipient_users == [alice.pk]
    assert event.data["method"] == "token"


def test_logout_twice_is_refused(obtain, alice, api_client):
    refresh = obtain("alice").json()["refresh"]
    assert (
        api_client.post("/api/auth/logout/", {"refresh": refresh}, format="json").status_code == 200
    )
    second = api_client.post("/api/auth/logout/", {"refresh": refresh}, format="json")
    assert second.status_code == 400
    assert second.json()["error_code"] == "INVALID"


@pytest.mark.parametrize("body", [{}, {"refresh": ""}, {"refresh": "not-a-token"}])
def test_logout_without_a_valid_refresh_token_is_a_bad_request(api_client, body):
    response = api_client.post("/api/auth/logout/", body, format="json")
    assert response.status_code == 400
    assert "refresh" in response.json()


def test_logout_works_with_an_expired_access_token(obtain, alice, api_client):
    refresh = obtain("alice").json()["refresh"]
    bearer(api_client, "expired.or.garbage")
    response = api_client.post("/api/auth/logout/", {"refresh": refresh}, format="json")
    assert response.status_code == 200


def test_access_token_lifetime_is_a_setting(settings, obtain, alice):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    access = AccessToken(obtain("alice").json()["access"])
    lifetime = access["exp"] - access["iat"]
    assert lifetime == settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] // timedelta(seconds=1)


@pytest.mark.parametrize(
    "persona,role,roles,staff",
    [("alice", "analyst", ["analyst"], False), ("bob", "viewer", ["viewer"], False),
     ("carol", "admin", ["admin"], True)],
)  # fmt: skip
def test_me_answers_the_user_roles_and_permissions(
    request, api_client, token_for, persona, role, roles, staff
):
    user = request.getfixturevalue(persona)
    bearer(api_client, token_for(user))

    body = api_client.get("/api/auth/me/").json()

    assert body["id"] == user.pk
    assert body["username"] == persona
    assert body["email"] == f"{persona}@example.com"
    assert (body["role"], body["roles"], body["is_staff"]) == (role, roles, staff)
    assert body["permissions"] == sorted(user.get_all_permissions())
    has_audit = "audit.view_auditlog" in body["permissions"]
    assert has_audit is (persona == "carol")
    assert ("realtime.receive_security" in body["permissions"]) is (persona != "bob")


def test_me_needs_a_login(api_client):
    response = api_client.get("/api/auth/me/")
    assert response.status_code == 401
    assert response.json()["error_code"] == "NOT_AUTHENTICATED"


def test_me_works_with_the_session_too(client, bob):
    client.force_login(bob)
    assert client.get("/api/auth/me/").json()["role"] == "viewer"

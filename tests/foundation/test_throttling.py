"""Failed logins are throttled per username and per client address (HTTP 429, Retry-After)."""

import pytest

from threatlens.accounts import throttling

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.LOGIN_THROTTLE_FAILURES = 3
    settings.LOGIN_THROTTLE_WINDOW = 120


def fail(obtain, username, ip, times):
    for _ in range(times):
        assert obtain(username, "wrong-password", ip=ip).status_code == 401


def test_a_username_is_throttled_after_repeated_failures_from_any_address(obtain, alice):
    fail(obtain, "alice", "10.0.0.1", 1)
    fail(obtain, "alice", "10.0.0.2", 1)
    fail(obtain, "alice", "10.0.0.3", 1)

    response = obtain("alice", ip="10.0.0.4")  # right password, new address

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 120
    body = response.json()
    assert body["error_code"] == "LOGIN_THROTTLED"
    assert "Too many failed login attempts" in body["detail"]


def test_an_address_is_throttled_after_failures_against_several_usernames(obtain, alice, bob):
    fail(obtain, "mallory", "10.9.9.9", 1)
    fail(obtain, "trent", "10.9.9.9", 1)
    fail(obtain, "bob", "10.9.9.9", 1)

    assert obtain("alice", ip="10.9.9.9").status_code == 429
    # Elsewhere alice and bob still log in: bob had one failure only.
    assert obtain("alice", ip="10.0.0.1").status_code == 200
    assert obtain("bob", ip="10.0.0.1").status_code == 200


def test_successful_logins_do_not_count_or_reset_others(obtain, alice, bob):
    fail(obtain, "mallory", "10.1.1.1", 2)
    for _ in range(5):
        assert obtain("alice", ip="10.1.1.1").status_code == 200
    # alice's successes neither counted nor cleared the address counter.
    fail(obtain, "mallory", "10.1.1.1", 1)
    assert obtain("bob", ip="10.1.1.1").status_code == 429


def test_a_success_clears_the_usernames_own_counter(obtain, alice):
    fail(obtain, "alice", "10.0.0.1", 2)
    assert obtain("alice", ip="10.0.0.2").status_code == 200
    fail(obtain, "alice", "10.0.0.3", 2)
    assert obtain("alice", ip="10.0.0.4").status_code == 200


def test_throttled_attempts_are_audited_and_do_not_extend_the_window(obtain, alice, audit_rows):
    fail(obtain, "alice", "10.0.0.1", 3)
    assert obtain("alice", "wrong-password", ip="10.0.0.1").status_code == 429

    assert len(audit_rows("auth.login_failed")) == 3
    (row,) = audit_rows("auth.login_throttled")
    assert row.details["throttled_by"] == ["username", "address"]
    assert row.details["retry_after"] >= 1


def test_the_window_closes_after_its_duration(obtain, alice, monkeypatch):
    fail(obtain, "alice", "10.0.0.1", 3)
    assert obtain("alice", ip="10.0.0.1").status_code == 429

    now = throttling.time.time()
    monkeypatch.setattr(throttling.time, "time", lambda: now + 121)
    assert throttling.check("alice", "10.0.0.1") is None


def test_usernames_are_counted_without_regard_to_case(obtain, alice):
    fail(obtain, "Alice", "10.0.0.1", 1)
    fail(obtain, "ALICE", "10.0.0.2", 1)
    fail(obtain, "alice", "10.0.0.3", 1)
    assert obtain("alice", ip="10.0.0.5").status_code == 429


def test_the_session_login_form_is_throttled_too(foundation_settings, client, alice, password):
    for _ in range(3):
        assert not client.login(username="alice", password="wrong-password")
    assert not client.login(username="alice", password=password)

    # The admin form refuses the right password while the window is open.
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "alice", "password": password}
    )
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated  # no session login


def test_failed_session_logins_count_toward_the_token_throttle(
    foundation_settings, client, obtain, alice
):
    for _ in range(3):
        client.post(
            "/admin/login/", {"username": "alice", "password": "nope"}, REMOTE_ADDR="10.2.2.2"
        )
    assert obtain("alice", ip="10.3.3.3").status_code == 429


@pytest.fixture
def cache_down(settings, monkeypatch):
    """The Redis cache, pointed at a port where nothing listens: every call raises."""
    from tests.e2e.live_server import free_port

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    monkeypatch.setattr(throttling, "_last_warning", 0.0, raising=False)


def test_with_the_cache_down_login_works_and_a_warning_says_the_throttle_is_degraded(
    obtain, alice, cache_down, caplog
):
    assert obtain("alice", "wrong-password").status_code == 401
    response = obtain("alice")

    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["access"]
    warnings = [r for r in caplog.records if r.name == "threatlens.accounts.throttling"]
    assert len(warnings) == 1  # once a minute at most, not once per call
    assert "login throttle degraded" in warnings[0].getMessage()
    assert "alice" not in warnings[0].getMessage()


def test_hammering_a_closed_throttle_is_audited_once(obtain, alice, audit_rows):
    fail(obtain, "alice", "10.0.0.1", 3)
    for _ in range(20):
        assert obtain("alice", "wrong-password", ip="10.0.0.1").status_code == 429
    (row,) = audit_rows("auth.login_throttled")
    assert "further_attempts" in row.details
    assert obtain("alice", "wrong-password", ip="10.0.0.7").status_code == 429  # another source
    assert len(audit_rows("auth.login_throttled")) == 2

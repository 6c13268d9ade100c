"""X-Forwarded-For: the client address is the one the trusted proxies added (the
NUM_PROXIES-th entry from the right), never an entry the client wrote itself."""

import pytest

from tests.personas import PASSWORD
from threatlens.audit.models import AuditLog
from threatlens.clientinfo import scope_address

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"  # the address the server sees: the nearest proxy


@pytest.fixture(autouse=True)
def behind_proxies(settings):
    settings.USE_X_FORWARDED_FOR = True
    settings.NUM_PROXIES = 1
    settings.LOGIN_THROTTLE_FAILURES = 3
    settings.LOGIN_THROTTLE_WINDOW = 120


def login(api_client, forwarded, password="wrong-password", username="alice"):
    headers = {"REMOTE_ADDR": PROXY}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return api_client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", **headers
    )


@pytest.mark.parametrize(
    ("num_proxies", "forwarded", "expected"),
    [
        (1, "198.51.100.7", "198.51.100.7"),  # what the proxy added
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # a client-supplied entry on the left
        (1, "6.6.6.6,7.7.7.7,198.51.100.7", "198.51.100.7"),
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.9", "198.51.100.7"),  # two proxies
        (2, "198.51.100.7", "198.51.100.7"),  # fewer entries than proxies: as DRF
        (0, "6.6.6.6", PROXY),  # no proxy trusted: the connection's address
        (1, None, PROXY),  # no header
        (1, "6.6.6.6, not-an-address", PROXY),  # the proxy's entry is no address
        (1, "6.6.6.6, 2001:db8::7", "2001:db8::7"),
    ],
)
def test_the_audited_address_is_the_one_the_trusted_proxies_added(
    api_client, alice, settings, num_proxies, forwarded, expected
):
    settings.NUM_PROXIES = num_proxies
    assert login(api_client, forwarded).status_code == 401
    assert AuditLog.objects.get(action="auth.login_failed").ip_address == expected


def test_rotating_the_client_supplied_entry_does_not_escape_the_address_throttle(
    api_client, alice, bob
):
    for n, username in enumerate(["mallory", "trent", "eve"]):
        login(api_client, f"203.0.113.{n}, 198.51.100.7", username=username)
    response = login(api_client, "203.0.113.99, 198.51.100.7", password=PASSWORD, username="bob")
    assert response.status_code == 429
    assert response.json()["error_code"] == "LOGIN_THROTTLED"


def test_nobody_can_lock_out_an_address_they_name(api_client, alice):
    for username in ["mallory", "trent", "eve"]:
        login(api_client, "192.0.2.50, 198.51.100.7", username=username)
    # The victim at 192.0.2.50 comes through the proxy and logs in.
    assert login(api_client, "192.0.2.50", password=PASSWORD).status_code == 200


def test_a_socket_scope_takes_the_right_most_of_repeated_headers():
    scope = {
        "client": (PROXY, 5000),
        "headers": [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.7")],
    }
    assert scope_address(scope) == "198.51.100.7"

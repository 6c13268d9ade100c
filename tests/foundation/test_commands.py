"""manage.py create_user and ensure_admin."""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import ManagementUtility, call_command
from django.db import connections

from threatlens.accounts.roles import role_of
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-long-passphrase-7"


@pytest.fixture
def manage(monkeypatch, capsys):
    """manage("create_user", ...) -> (exit code, stdout, stderr), run as from the shell."""
    # run_from_argv closes every connection when done: that would end the test's transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    def run(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            ManagementUtility(["manage.py", *argv]).execute()
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_create_user_round_trip_lets_the_user_log_in(manage, api_client):
    code, out, _ = manage("create_user", "dave", "--role", "analyst", "--password", NEW_PASSWORD)

    assert code == 0
    assert "Created user 'dave' with role analyst" in out
    dave = get_user_model().objects.get(username="dave")
    assert role_of(dave) == "analyst"
    assert not dave.is_staff
    response = api_client.post(
        "/api/auth/token/", {"username": "dave", "password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert {"access", "refresh"} <= set(response.json())
    row = AuditLog.objects.get(action="user.created")
    assert row.details == {"source": "manage.py create_user"}
    assert row.actor is None


def test_create_user_reads_the_password_from_stdin(manage):
    code, _, _ = manage(
        "create_user", "dave", "--role", "viewer", "--password-stdin", stdin=NEW_PASSWORD + "\n"
    )
    assert code == 0
    assert get_user_model().objects.get(username="dave").check_password(NEW_PASSWORD)


def test_create_user_updates_an_existing_user(manage, bob):
    code, out, _ = manage("create_user", "bob", "--role", "admin", "--password", NEW_PASSWORD)

    assert code == 0
    assert "Updated user 'bob'" in out
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)
    assert bob.is_staff
    assert list(bob.groups.values_list("name", flat=True)) == ["admin"]


@pytest.mark.parametrize(
    "argv,stdin,message",
    [
        (["--role", "boss", "--password", NEW_PASSWORD], None, "Unknown role 'boss'"),
        (["--password", NEW_PASSWORD], None, "--role is required"),
        (["--role", "viewer"], None, "A password is required"),
        (["--role", "viewer", "--password-stdin"], "\n", "A password is required"),
        (["--role", "viewer", "--password", "x", "--password-stdin"], "y\n", "not both"),
        (["--role", "viewer", "--password", "12345678"], None, "entirely numeric"),
        (["--role", "viewer", "--password", "short"], None, "too short"),
        (["--role", "viewer", "--password", "davidson1"], None, "too similar"),
    ],
)
def test_create_user_errors_exit_non_zero_and_change_nothing(manage, argv, stdin, message):
    code, out, err = manage("create_user", "davidson", *argv, stdin=stdin)

    assert code == 1
    assert message in err
    assert out == ""
    assert not get_user_model().objects.filter(username="davidson").exists()
    assert not AuditLog.objects.exists()


def test_create_user_refuses_a_bad_password_for_an_existing_user(manage, bob, password):
    code, _, err = manage("create_user", "bob", "--role", "admin", "--password", "short")

    assert code == 1
    assert "too short" in err
    bob.refresh_from_db()
    assert bob.check_password(password)
    assert role_of(bob) == "viewer"


def test_ensure_admin_creates_a_first_admin_and_prints_its_password_once(api_client):
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)

    text = out.getvalue()
    password = re.search(r"password: (\S+)", text)[1]
    assert "http://127.0.0.1:8000/" in text
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and role_of(admin) == "admin"
    assert api_client.login(username="admin", password=password)

    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert "An admin exists (admin)" in again.getvalue()
    assert password not in again.getvalue()
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_ensure_admin_does_nothing_when_an_active_admin_exists(carol):
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert "An admin exists (carol)" in out.getvalue()
    assert not get_user_model().objects.filter(username="admin").exists()


def test_ensure_admin_ignores_inactive_admins(make_user):
    make_user("carol", role="admin", is_active=False)
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    assert "Created the admin account 'admin'" in out.getvalue()

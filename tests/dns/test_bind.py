"""BIND integration: write, check, and reload only when every check passes."""

import io
import shutil
import sys

import pytest
from django.core.management import CommandError, call_command

from dns import bind, services
from dns.models import RpzRule
from tests.dns.helpers import events
from threatlens.writeguard import service_writes

HAVE_BIND_TOOLS = bool(shutil.which("named-checkzone") and shutil.which("named-checkconf"))
needs_bind_tools = pytest.mark.skipif(
    not HAVE_BIND_TOOLS,
    reason="named-checkzone/named-checkconf are not installed (Debian bind9-utils; CI has it)",
)


def touch_command(path):
    """A command that records that it ran (stands in for `rndc reload`)."""
    return [sys.executable, "-c", f"open({str(path)!r}, 'a').write('reload\\n')"]


def failing_command(message):
    return [sys.executable, "-c", f"import sys; print({message!r}); sys.exit(1)"]


@pytest.fixture
def bind_dir(tmp_path, settings):
    directory = tmp_path / "bind"
    settings.DNS = {
        "BIND_ENABLED": True,
        "BIND_DIR": str(directory),
        "BIND_RELOAD_COMMAND": touch_command(tmp_path / "reloaded"),
    }
    return directory


def healthy_zone(make_zone, make_record, name="good.example"):
    zone = make_zone(name=name, primary_ns=f"ns1.{name}")
    make_record(zone, name="ns1", record_type="A", value="192.0.2.1")
    make_record(zone, name="www", record_type="A", value="192.0.2.80")
    return zone


@needs_bind_tools
def test_a_good_configuration_is_written_checked_and_reloaded(
    bind_dir, make_zone, make_record, tmp_path
):
    zone = healthy_zone(make_zone, make_record)
    make_zone(name="replica.example", zone_type="slave", masters=["192.0.2.53"])
    make_zone(name="corp.internal", zone_type="forward", forwarders=["192.0.2.54"])
    with service_writes():
        RpzRule.objects.create(domain="evil.example", action="nxdomain")
    outcome = bind.sync_bind(reason="test")
    assert outcome.success, outcome.errors
    assert outcome.reloaded and (tmp_path / "reloaded").read_text() == "reload\n"
    conf = (bind_dir / "named.conf.threatlens").read_text()
    assert f'zone "{zone.name}" {{ type master; file "{bind_dir}/zones/db.{zone.name}"; }};' in conf
    assert "type slave; masters { 192.0.2.53; };" in conf
    assert "type forward; forward only; forwarders { 192.0.2.54; };" in conf
    assert 'zone "rpz" { type master;' in conf
    assert (bind_dir / "zones" / f"db.{zone.name}").read_text().startswith("; Zone good.example")
    assert (bind_dir / "zones" / "db.rpz").exists()
    (event,) = events("bind_reload")
    assert event.data["success"] is True and event.data["stage"] == "done"
    assert event.data["reason"] == "test"
    health = events("health_update")[-1]
    assert (health.data["component"], health.data["status"]) == ("bind9", "healthy")


@needs_bind_tools
def test_a_failed_check_never_reloads_and_says_why(bind_dir, make_zone, make_record, tmp_path):
    healthy_zone(make_zone, make_record)
    assert bind.sync_bind().success
    installed = (bind_dir / "named.conf.threatlens").read_text()
    (tmp_path / "reloaded").unlink()
    # An in-zone name server without an address: BIND refuses to load such a zone.
    make_zone(name="broken.example", primary_ns="ns1.broken.example")
    outcome = bind.sync_bind(reason="broken zone")
    assert not outcome.success and outcome.stage == "check"
    assert not (tmp_path / "reloaded").exists()
    assert outcome.errors[0]["zone"] == "broken.example"
    assert "has no address records" in outcome.errors[0]["output"]
    assert (bind_dir / "named.conf.threatlens").read_text() == installed  # left as it was
    assert not (bind_dir / "zones" / "db.broken.example").exists()
    event = events("bind_reload")[-1]
    assert event.data["success"] is False and "broken.example" in event.data["message"]
    assert event.priority == 8
    assert events("health_update")[-1].data["status"] == "warning"


def test_a_failing_configured_check_blocks_the_reload(bind_dir, settings, make_zone, tmp_path):
    make_zone(name="any.example", primary_ns="ns.provider.net")
    settings.DNS = {
        **settings.DNS,
        "BIND_CHECKCONF_COMMAND": failing_command("syntax error"),
        "BIND_CHECKZONE_COMMAND": [],
    }
    outcome = bind.sync_bind()
    assert not outcome.success
    assert outcome.errors == [{"check": "named.conf", "output": "syntax error"}]
    assert not (tmp_path / "reloaded").exists()


def test_a_failed_reload_is_reported(bind_dir, settings, make_zone):
    make_zone(name="any.example", primary_ns="ns.provider.net")
    settings.DNS = {
        **settings.DNS,
        "BIND_CHECKCONF_COMMAND": [],
        "BIND_CHECKZONE_COMMAND": [],
        "BIND_RELOAD_COMMAND": failing_command("rndc: connect failed"),
    }
    outcome = bind.sync_bind()
    assert (outcome.success, outcome.stage) == (False, "reload")
    assert "rndc: connect failed" in outcome.message
    assert events("health_update")[-1].data["status"] == "critical"


def test_a_missing_command_is_a_clear_failure(bind_dir, settings, make_zone):
    make_zone(name="any.example", primary_ns="ns.provider.net")
    settings.DNS = {**settings.DNS, "BIND_CHECKCONF_COMMAND": ["no-such-checkconf", "{conf}"]}
    outcome = bind.sync_bind()
    assert not outcome.success
    assert "command not found: no-such-checkconf" in outcome.errors[0]["output"]


def test_deleted_zones_leave_bind_folder(bind_dir, settings, make_zone, carol):
    settings.DNS = {**settings.DNS, "BIND_CHECKCONF_COMMAND": [], "BIND_CHECKZONE_COMMAND": []}
    zone = make_zone(name="gone.example", primary_ns="ns.provider.net")
    bind.sync_bind()
    assert (bind_dir / "zones" / "db.gone.example").exists()
    services.delete_zone(carol, zone.pk)
    bind.sync_bind()
    assert not (bind_dir / "zones" / "db.gone.example").exists()


def test_changes_request_a_sync_after_commit(
    bind_dir, make_zone, carol, monkeypatch, django_capture_on_commit_callbacks
):
    woken = []
    monkeypatch.setattr(bind, "_wake", woken.append)
    zone = make_zone(name="sync.example")
    with django_capture_on_commit_callbacks(execute=True):
        services.create_record(
            carol, zone.pk, {"name": "a", "record_type": "A", "value": "192.0.2.1"}
        )
    assert woken == ["record_created in sync.example"]


def test_nothing_is_synced_when_the_integration_is_off(
    settings, make_zone, monkeypatch, django_capture_on_commit_callbacks
):
    settings.DNS = {}
    woken = []
    monkeypatch.setattr(bind, "_wake", woken.append)
    with django_capture_on_commit_callbacks(execute=True):
        make_zone()
    assert woken == [] and bind.sync_bind() is None
    with pytest.raises(CommandError, match="off"):
        call_command("bind_sync")


def test_the_bind_sync_command_and_endpoint(
    bind_dir, settings, make_zone, api_client, carol, alice
):
    settings.DNS = {**settings.DNS, "BIND_CHECKCONF_COMMAND": [], "BIND_CHECKZONE_COMMAND": []}
    make_zone(name="cmd.example", primary_ns="ns.provider.net")
    out = io.StringIO()
    call_command("bind_sync", stdout=out)
    assert "1 zones" in out.getvalue()
    api_client.force_authenticate(alice)
    assert api_client.post("/api/dns/bind/sync/").status_code == 403
    api_client.force_authenticate(carol)
    reply = api_client.post("/api/dns/bind/sync/")
    assert reply.status_code == 200 and reply.json()["success"] is True

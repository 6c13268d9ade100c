"""manage.py import_threat_feed: domain lists and hosts files into RPZ rules."""

import io

import pytest
from django.core.management import CommandError, call_command

from dns import feeds, services
from dns.models import RpzRule, ThreatFeed
from tests.dns.helpers import events
from threatlens.audit.models import AuditLog

DOMAINS = """\
# Example malware list
evil.example
Bad.Example.   # trailing comment
*.phish.example
not a domain
bad..example
evil.example
"""

HOSTS = """\
127.0.0.1 localhost
::1 ip6-localhost
0.0.0.0 ads.example tracker.example
0.0.0.0 0.0.0.0
0.0.0.0
nonsense line
"""


def run(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_threat_feed", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_domain_list_becomes_rpz_rules_and_bad_lines_are_reported(
    tmp_path, db, django_capture_on_commit_callbacks
):
    path = tmp_path / "malware.txt"
    path.write_text(DOMAINS)
    with django_capture_on_commit_callbacks(execute=True):
        out, err = run(path, "--name", "malware-list", "--action", "nxdomain")
    assert "Created feed malware-list: 3 domains (3 added, 0 removed, 2 bad lines skipped)" in out
    assert "line 5:" in err and "line 6:" in err
    feed = ThreatFeed.objects.get(name="malware-list")
    assert feed.entries_count == 3 and feed.last_update is not None
    assert feed.file_path == str(path.resolve())
    assert sorted(RpzRule.objects.values_list("domain", "action", "source")) == [
        ("bad.example", "nxdomain", "malware-list"),
        ("evil.example", "nxdomain", "malware-list"),
        ("phish.example", "nxdomain", "malware-list"),
    ]
    (updated,) = events("threat_feed_updated")
    assert updated.data["added"] == 3 and updated.data["entries_count"] == 3
    assert updated.data["source"] == "dns" and updated.data["category"] == "malware"
    (rpz,) = events("rpz_updated")
    assert rpz.data["added"] == 3 and rpz.data["feed_name"] == "malware-list"
    assert AuditLog.objects.filter(action="dns.feed.create").exists()


def test_a_hosts_file_is_read_without_the_machines_own_names(tmp_path, db):
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    out, err = run(
        path,
        "--name",
        "ads",
        "--format",
        "hosts",
        "--action",
        "drop",
        "--category",
        "policy_violation",
    )
    assert sorted(RpzRule.objects.values_list("domain", flat=True)) == [
        "ads.example",
        "tracker.example",
    ]
    assert set(RpzRule.objects.values_list("action", "category")) == {("drop", "policy_violation")}
    assert "line 5: an address without a name" in err
    assert "line 6:" in err


def test_a_second_import_adds_and_removes_only_the_difference(
    tmp_path, db, django_capture_on_commit_callbacks
):
    path = tmp_path / "list.txt"
    path.write_text("one.example\ntwo.example\n")
    run(path, "--name", "list")
    kept = RpzRule.objects.get(domain="one.example").pk
    path.write_text("one.example\nthree.example\n")
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run(path, "--name", "list")
    assert "(1 added, 1 removed" in out
    assert sorted(RpzRule.objects.values_list("domain", flat=True)) == [
        "one.example",
        "three.example",
    ]
    assert RpzRule.objects.get(domain="one.example").pk == kept
    (rpz,) = events("rpz_updated")
    assert (rpz.data["added"], rpz.data["removed"]) == (1, 1)


def test_feed_rules_sit_beside_a_manual_rule_for_the_same_domain(tmp_path, db):
    services.create_rpz_rule(None, {"domain": "evil.example", "action": "passthru"})
    path = tmp_path / "list.txt"
    path.write_text("evil.example\n")
    run(path, "--name", "list")
    assert RpzRule.objects.filter(domain="evil.example").count() == 2


def test_strict_mode_refuses_a_file_with_bad_lines(tmp_path, db):
    path = tmp_path / "list.txt"
    path.write_text(DOMAINS)
    with pytest.raises(CommandError, match="line 5"):
        run(path, "--name", "strict", "--strict")
    assert not ThreatFeed.objects.exists() and not RpzRule.objects.exists()


def test_a_missing_file_or_an_empty_feed_is_a_clear_error(tmp_path, db):
    with pytest.raises(CommandError, match="Cannot read"):
        run(tmp_path / "missing.txt", "--name", "x")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(CommandError, match="no valid domain"):
        run(empty, "--name", "x")
    assert not ThreatFeed.objects.exists()


def test_deleting_a_feed_removes_its_rules_with_one_rpz_event(
    tmp_path, carol, django_capture_on_commit_callbacks
):
    path = tmp_path / "list.txt"
    path.write_text("one.example\ntwo.example\n")
    run(path, "--name", "list")
    feed = ThreatFeed.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_feed(carol, feed.pk)
    assert not RpzRule.objects.exists()
    (rpz,) = events("rpz_updated")
    assert rpz.data["removed"] == 2


def test_only_feed_managers_may_import(alice):
    with pytest.raises(feeds.PermissionDenied):
        feeds.import_feed(alice, "x", "evil.example\n")

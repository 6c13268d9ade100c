"""Rules are data: the shipped set loads, bad definitions are refused with a clear error,
and a rule written as JSON works without any code."""

import copy
import json
import warnings

import pytest

from incidents.pipeline.rules import RuleError, load_rules, load_rules_file, render
from incidents.pipeline.rules_data import RULES
from tests.pipeline.helpers import Feed, at, ssh_success, syslog


def valid_rule(**overrides):
    rule = {
        "id": "root_login",
        "name": "Direct root login",
        "match": {
            "category": "authentication",
            "action": "login_success",
            "fields": {"user": {"equals": "root"}},
        },  # fmt: skip
        "severity": 7,
        "category": "authentication",
        "threat_level": "high",
        "confidence": 0.9,
        "message": "root logged in from {src_ip}",
        "explanation": "Direct root logins bypass per-user accountability.",
        "recommendations": ["Set PermitRootLogin no", "Ask who used root from {src_ip}"],
        "correlation_key": "root_login:{src_ip}",
    }
    rule.update(overrides)
    return rule


def test_the_shipped_rules_load():
    rules = load_rules()
    assert len(rules) == len(RULES) >= 15
    assert {rule.id for rule in rules} >= {
        "ssh_bruteforce_ip", "ssh_bruteforce_user", "ssh_invalid_users", "login_new_address",
        "login_after_bruteforce", "sudo_auth_failure", "sudo_not_permitted", "su_failure",
        "web_404_burst", "web_scanner_user_agent", "web_path_traversal", "web_sql_injection",
        "web_xss_probe", "web_sensitive_file_probe", "dns_random_long_name",
        "dns_threat_feed_match",
    }  # fmt: skip
    assert all(1 <= rule.severity <= 10 for rule in rules)


def test_a_rule_from_a_json_file_fires_without_code(tmp_path, state):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps([valid_rule()]))
    feed = Feed(state, rules=load_rules_file(path))
    assert feed(ssh_success(at(0), user="alice")) == []
    assert feed(ssh_success(at(1), user="root", ip="192.0.2.4")) == ["root_login"]
    draft = feed.fired("root_login")[0]
    assert draft.message == "root logged in from 192.0.2.4"
    assert draft.recommendations[1] == "Ask who used root from 192.0.2.4"


def test_match_combinators_any_all_not(state):
    rule = valid_rule(
        match={
            "category": "authorization",
            "any": [{"action": "su_failure"}, {"action": "sudo_auth_failure"}],
            "not": {"fields": {"user": {"in": ["deploy"]}}},
        }
    )
    feed = Feed(state, rules=load_rules([rule]))
    assert feed(syslog(at(0), "su", "FAILED su for root by bob")) == ["root_login"]
    assert feed(syslog(at(1), "su", "FAILED su for root by deploy")) == []
    assert feed(syslog(at(2), "su", "Successful su for root by carol")) == []


def test_disabled_rules_are_checked_but_left_out():
    assert load_rules([valid_rule(enabled=False)]) == []
    with pytest.raises(RuleError):
        load_rules([valid_rule(enabled=False, severity=11)])


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"severity": 0}, "severity"),
        ({"severity": 11}, "severity"),
        ({"severity": True}, "severity"),
        ({"confidence": 1.5}, "confidence"),
        ({"threat_level": "scary"}, "threat_level"),
        ({"alert_category": "nope"}, "alert_category"),
        ({"id": "Bad Id"}, "id"),
        ({"colour": "red"}, "unknown keys"),
        ({"message": "{src_ip.__class__}"}, "plain {names}"),
        ({"explanation": "{0}"}, "plain {names}"),
        ({"correlation_key": "{src_ip!r}"}, "plain {names}"),
        ({"recommendations": "block it"}, "recommendations"),
        ({"recommendations": ["{unclosed"]}, "template"),
        ({"match": {}}, "at least one condition"),
        ({"match": {"fields": {"path": {"regex": "("}}}}, "does not compile"),
        ({"match": {"fields": {"path": {"sounds_like": "x"}}}}, "unknown operator"),
        ({"match": {"fields": {"status": {"gte": "400"}}}}, "must be a number"),
        ({"match": {"colour": "red"}}, "unknown keys"),
        ({"threshold": {"count": 0, "window": 60, "group_by": "src_ip"}}, "threshold.count"),
        ({"threshold": {"count": 5, "window": 60}}, "group_by"),
        ({"preceded_by": [{"rule": "nope", "within": 60}]}, "unknown rule"),
        ({"first_seen": {"value": "src_ip"}}, "first_seen.per"),
        ({"listed": {"column": "domain"}}, "listed"),
        ({"cooldown": -1}, "cooldown"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(overrides, problem):
    spec = valid_rule(**overrides)
    with pytest.raises(RuleError) as error:
        load_rules([spec])
    assert problem in str(error.value)
    if "id" not in overrides:
        assert "'root_login'" in str(error.value)


def test_missing_key_and_duplicate_ids_are_refused():
    spec = valid_rule()
    del spec["severity"]
    with pytest.raises(RuleError, match="severity is required"):
        load_rules([spec])
    with pytest.raises(RuleError, match="used twice"):
        load_rules([valid_rule(), valid_rule()])


def test_unreadable_or_invalid_rules_files_are_refused(tmp_path):
    with pytest.raises(RuleError, match="cannot read"):
        load_rules_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(RuleError, match="not valid JSON"):
        load_rules_file(bad)
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text("{}")
    with pytest.raises(RuleError, match="list"):
        load_rules_file(not_a_list)


def test_loading_does_not_change_the_shipped_data():
    before = copy.deepcopy(RULES)
    load_rules()
    assert before == RULES


def test_render_fills_missing_values_with_a_dash_and_shortens_long_ones():
    assert render("{user} from {src_ip}", {"user": "bob"}) == "bob from -"
    long = render("{path}", {"path": "/" + "a" * 500})
    assert len(long) == 200 and long.endswith("…")


def test_state_keys_are_cache_safe_whatever_the_log_says(state):
    feed = Feed(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Django's CacheKeyWarning would fail the test
        feed(ssh_success(at(0), user="we ird\tuser", ip="10.0.0.1"))
        feed(ssh_success(at(1), user="we ird\tuser", ip="10.0.0.2"))
    assert len(feed.fired("login_new_address")) == 1

"""Sigma correlations (event_count, value_count, temporal, temporal_ordered) and
sync_sigma_rules. The shipped rules: test_shipped.py."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.pipeline.parsers import parse_line
from incidents.sigma.loading import Refused, read_rule
from incidents.sigma.models import SigmaRule
from tests.pipeline.helpers import access, at, ssh_failure, ssh_success
from tests.sigma.helpers import correlation_yaml, engine_of, rule_yaml

SHIPPED = Path(__file__).resolve().parents[2] / "incidents" / "sigma" / "rules"
FAILURE = rule_yaml(
    "sel: {action: login_failure}\ncondition: sel", name="failure", level="low", title="Failure"
)
SUCCESS = rule_yaml(
    "sel: {action: login_success}\ncondition: sel", name="success", level="low", title="Success"
)


def fired(engine, lines):
    """Titles of what fired for each line, in order."""
    out = []
    for line in lines:
        out.extend(draft.details["rule_name"] for draft in engine.analyze(parse_line(line)))
    return out


def test_event_count_fires_once_at_the_threshold_and_its_rule_stays_quiet():
    engine = engine_of(
        FAILURE,
        correlation_yaml(
            "type: event_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 5m\n"
            "condition: {gte: 5}",
            title="Burst",
        ),
    )
    lines = [ssh_failure(at(index), ip="203.0.113.9") for index in range(12)]
    results = [fired(engine, [line]) for line in lines]

    assert [index for index, hits in enumerate(results) if hits] == [4]
    assert results[4] == ["Burst"]
    # Another address has its own count.
    assert fired(engine, [ssh_failure(at(20), ip="203.0.113.10")]) == []


def test_event_count_does_not_fire_for_failures_spread_wider_than_the_timespan():
    engine = engine_of(
        FAILURE,
        correlation_yaml(
            "type: event_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 1m\n"
            "condition: {gte: 3}"
        ),
    )
    assert fired(engine, [ssh_failure(at(index * 40)) for index in range(6)]) == []


def test_a_generating_correlation_lets_its_rule_fire_too():
    engine = engine_of(
        FAILURE,
        correlation_yaml(
            "type: event_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 5m\n"
            "generate: true\ncondition: {gte: 2}",
            title="Burst",
        ),
        cooldown=0,
    )
    assert fired(engine, [ssh_failure(at(0)), ssh_failure(at(1))]) == [
        "Failure",
        "Failure",
        "Burst",
    ]


def test_value_count_counts_distinct_values():
    engine = engine_of(
        FAILURE,
        correlation_yaml(
            "type: value_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 10m\n"
            "condition: {gte: 3, field: user}",
            title="Spray",
        ),
    )
    same_user = [ssh_failure(at(index), user="root") for index in range(5)]
    assert fired(engine, same_user) == []
    users = [ssh_failure(at(10 + index), user=name) for index, name in enumerate("abc")]
    assert fired(engine, users) == ["Spray"]


def test_temporal_needs_every_rule_within_the_timespan_in_any_order():
    correlation = correlation_yaml(
        "type: temporal\nrules: [failure, success]\ngroup-by: [src_ip]\ntimespan: 2m",
        title="Both",
    )
    engine = engine_of(FAILURE, SUCCESS, correlation)
    ip = "203.0.113.7"
    assert fired(engine, [ssh_success(at(0), ip=ip), ssh_failure(at(30), ip=ip)]) == ["Both"]

    late = engine_of(FAILURE, SUCCESS, correlation)
    assert fired(late, [ssh_success(at(0), ip=ip), ssh_failure(at(300), ip=ip)]) == []


def test_temporal_ordered_needs_the_listed_order():
    correlation = correlation_yaml(
        "type: temporal_ordered\nrules: [failure, success]\ngroup-by: [src_ip]\ntimespan: 2m",
        title="Ordered",
    )
    ip = "203.0.113.8"
    in_order = engine_of(FAILURE, SUCCESS, correlation)
    assert fired(in_order, [ssh_failure(at(0), ip=ip), ssh_success(at(30), ip=ip)]) == ["Ordered"]
    reversed_order = engine_of(FAILURE, SUCCESS, correlation)
    assert fired(reversed_order, [ssh_success(at(0), ip=ip), ssh_failure(at(30), ip=ip)]) == []


def test_aliases_group_two_rules_by_fields_of_different_names():
    web_failure = rule_yaml(
        "sel: {sc-status: 401}\ncondition: sel",
        logsource="{category: webserver}",
        name="web_failure",
        level="low",
    )
    correlation = correlation_yaml(
        "type: temporal\nrules: [failure, web_failure]\ngroup-by: [attacker]\n"
        "timespan: 5m\naliases:\n  attacker:\n    failure: src_ip\n    web_failure: c-ip",
        title="Same attacker on SSH and the web",
    )
    engine = engine_of(FAILURE, web_failure, correlation)
    lines = [
        ssh_failure(at(0), ip="198.51.100.77"),
        access(at(10), ip="198.51.100.77", status=401),
    ]
    assert fired(engine, lines) == ["Same attacker on SSH and the web"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            "type: event_count\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 5m\n"
            "condition: {lt: 5}",
            "unsupported_correlation",
        ),  # fmt: skip
        (
            "type: value_sum\nrules: [failure]\ngroup-by: [src_ip]\ntimespan: 5m\n"
            "condition: {gte: 5, field: port}",
            "unsupported_correlation",
        ),  # fmt: skip
        (
            "type: event_count\nrules: [failure]\ntimespan: 5x\ncondition: {gte: 5}",
            "invalid_rule",
        ),  # fmt: skip
    ],
)
def test_correlations_we_cannot_run_are_refused(body, code):
    with pytest.raises(Refused) as refused:
        read_rule(correlation_yaml(body))
    assert refused.value.code == code


@pytest.mark.django_db
def test_sync_sigma_rules_loads_a_directory_and_lists_refused_rules_with_the_reason(
    tmp_path, settings
):
    for path in SHIPPED.glob("*.yml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "windows.yml").write_text(
        rule_yaml("sel: {Image: x}\ncondition: sel", logsource="{product: windows}")
    )
    settings.SIGMA_RULES_DIR = str(tmp_path)
    out = StringIO()

    call_command("sync_sigma_rules", "--show-refused", stdout=out)

    assert "added 8" in out.getvalue() and "refused 1" in out.getvalue()
    assert "windows.yml: unsupported_logsource" in out.getvalue()
    assert SigmaRule.objects.filter(refusal_code="").count() == 7
    # Two shipped rules say `threatlens-default: disabled`: a sync stores them so.
    assert SigmaRule.objects.filter(refusal_code="", enabled=True).count() == 5
    assert SigmaRule.objects.get(path="windows.yml").state == "refused"

    (tmp_path / "windows.yml").unlink()
    out = StringIO()
    call_command("sync_sigma_rules", stdout=out)
    assert "unchanged 7" in out.getvalue() and "removed 1" in out.getvalue()


@pytest.mark.django_db
def test_a_correlation_whose_rules_are_missing_is_refused_until_they_arrive(tmp_path):
    (tmp_path / "burst.yml").write_text((SHIPPED / "ssh_bruteforce_ip.yml").read_text())
    call_command("sync_sigma_rules", str(tmp_path), stdout=StringIO())
    rule = SigmaRule.objects.get()
    assert rule.refusal_code == "unknown_rule_reference"

    (tmp_path / "failed.yml").write_text((SHIPPED / "ssh_failed_login.yml").read_text())
    call_command("sync_sigma_rules", str(tmp_path), stdout=StringIO())
    rule.refresh_from_db()
    assert rule.state == "loaded"

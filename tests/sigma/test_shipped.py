"""The Sigma rules ThreatLens ships (incidents/sigma/rules/): the correlations that replace
a built-in rule raise exactly the built-in's events and alerts, the built-in does not run
beside them, and `migrate` stores them (SIGMA_SHIPPED_RULES)."""

from pathlib import Path

import pytest
from django.test import TestCase

from bench.ingest_mix import generate
from incidents import processing
from incidents.ingest import receive_raw_log
from incidents.models import Alert, SecurityEvent
from incidents.pipeline.analyzer import Analyzer
from incidents.pipeline.parsers import parse_line
from incidents.pipeline.rules import load_rules
from incidents.pipeline.samples import iter_sample_lines
from incidents.pipeline.state import BoundedState, MemoryState
from incidents.processing import process_raw_log
from incidents.sigma import runtime, services
from incidents.sigma.engine import SigmaEngine
from incidents.sigma.loading import Refused, read_rule
from incidents.sigma.models import SigmaRule
from incidents.syslog.routing import source_for
from tests.sigma.helpers import correlation_yaml
from threatlens.audit.models import AuditLog

SHIPPED = Path(__file__).resolve().parents[2] / "incidents" / "sigma" / "rules"
REPLACED = {"ssh_bruteforce_ip", "ssh_bruteforce_user", "web_404_burst"}


def shipped_rules(*, default_only=True):
    rules = [read_rule(path.read_text()) for path in sorted(SHIPPED.glob("*.yml"))]
    return [rule for rule in rules if rule.enabled_by_default or not default_only]


def without_attribution(draft):
    """A draft's content but the Sigma attribution (what differs when a Sigma rule runs)."""
    content = dict(vars(draft))
    content["analysis"] = {k: v for k, v in draft.analysis.items() if k != "sigma"}
    content["details"] = {k: v for k, v in draft.details.items() if k != "sigma"}
    return content


def test_three_shipped_correlations_replace_a_built_in_rule_and_two_rules_start_disabled():
    rules = shipped_rules(default_only=False)
    assert {rule.replaces for rule in rules} - {""} == REPLACED
    assert sorted(rule.name for rule in rules if not rule.enabled_by_default) == [
        "threatlens_ssh_login_after_failures",
        "threatlens_ssh_login_success",
    ]
    # The built-ins carry the ATT&CK tags of the correlations that replace them.
    builtin = {rule.id: rule for rule in load_rules()}
    for rule in rules:
        if rule.replaces:
            assert builtin[rule.replaces].attack == rule.attack


def lines_of_the_samples():
    return [
        parse_line(sample.line, source_hint=sample.source_hint) for sample in iter_sample_lines()
    ]


def lines_of_the_bench_mix(mix, count):
    return [
        parse_line(line.message, source_hint=source_for(line.message))
        for line in generate(mix, count, seed=3)
    ]


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(lines_of_the_samples, id="sample logs"),
        pytest.param(lambda: lines_of_the_bench_mix("attack-heavy", 3000), id="attack-heavy"),
        pytest.param(lambda: lines_of_the_bench_mix("realistic", 3000), id="realistic"),
    ],
)
def test_the_shipped_rules_give_exactly_the_built_in_events(lines):
    parsed = lines()
    builtin = tuple(load_rules())
    engine = SigmaEngine(shipped_rules(), BoundedState())
    replaced = engine.builtin_rules(builtin)
    assert [rule.id for rule in replaced] == [rule.id for rule in builtin]
    assert {rule.id for rule in replaced if rule.sigma} == REPLACED

    def run(rules):
        # In chunks as ingest runs them, on the bounded state ingest uses.
        analyzer = Analyzer(rules, BoundedState())
        drafts = []
        for start in range(0, len(parsed), 500):
            for line_drafts in analyzer.analyze_many(parsed[start : start + 500]):
                drafts.extend(line_drafts)
        return drafts

    expected, got = run(builtin), run(replaced)
    assert {draft.rule_id for draft in expected} & REPLACED  # the lines hold such attacks
    # Types, titles, severities, keys, counts, ATT&CK: all the same; `login_after_bruteforce`
    # too, which looks back at the brute forces.
    assert [without_attribution(draft) for draft in got] == [
        without_attribution(draft) for draft in expected
    ]
    by_id = {rule.sigma_id: rule for rule in shipped_rules()}
    for draft in got:
        if draft.rule_id in REPLACED:
            sigma = draft.details["sigma"]
            assert by_id[sigma["id"]].replaces == draft.rule_id
            assert draft.analysis["sigma"] == sigma and sigma["author"] == "ThreatLens project"
        else:
            assert "sigma" not in draft.details
    # The Sigma engine itself raises nothing more: the counted rules stay quiet.
    assert [engine.analyze(line) for line in parsed] == [[] for _ in parsed]


def test_without_a_replacing_correlation_the_built_in_rules_run_unchanged():
    builtin = tuple(load_rules())
    others = [rule for rule in shipped_rules() if rule.replaces != "ssh_bruteforce_ip"]
    replaced = SigmaEngine(others, MemoryState()).builtin_rules(builtin)
    by_id = {rule.id: rule for rule in replaced}
    assert by_id["ssh_bruteforce_ip"] is next(r for r in builtin if r.id == "ssh_bruteforce_ip")
    assert by_id["ssh_bruteforce_user"].sigma is not None
    assert SigmaEngine([], MemoryState()).builtin_rules(builtin) is builtin


def test_a_replacement_follows_its_sigma_rule_count_timespan_and_group():
    text = (SHIPPED / "ssh_bruteforce_ip.yml").read_text()
    text = text.replace("gte: 10", "gt: 3").replace("timespan: 5m", "timespan: 2m")
    failed = read_rule((SHIPPED / "ssh_failed_login.yml").read_text())
    rules = SigmaEngine([failed, read_rule(text)], MemoryState()).builtin_rules(tuple(load_rules()))
    rule = next(rule for rule in rules if rule.id == "ssh_bruteforce_ip")
    assert (rule.threshold.count, rule.threshold.window) == (4, 120)
    assert rule.threshold.group_by == ("src_ip",)
    assert rule.correlation_key == "ssh_bruteforce_ip:{src_ip}"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("type: event_count\nrules: [a]\ngroup-by: [src_ip]\ntimespan: 5m\n"
         "condition: {gte: 5}", "nonexistent_rule"),
        ("type: event_count\nrules: [a]\ngroup-by: [src_ip]\ntimespan: 5m\n"
         "condition: {gte: 5}", "login_new_address"),  # not a threshold rule
        ("type: value_count\nrules: [a]\ngroup-by: [src_ip]\ntimespan: 5m\n"
         "condition: {gte: 5, field: user}", "ssh_bruteforce_ip"),
        ("type: event_count\nrules: [a]\ngroup-by: [src_ip]\ntimespan: 5m\n"
         "condition: {eq: 5}", "ssh_bruteforce_ip"),
        ("type: event_count\nrules: [a, b]\ngroup-by: [src_ip]\ntimespan: 5m\n"
         "condition: {gte: 5}", "ssh_bruteforce_ip"),
        ("type: event_count\nrules: [a]\ngroup-by: [client.ip]\ntimespan: 5m\n"
         "condition: {gte: 5}", "ssh_bruteforce_ip"),
        ("type: event_count\nrules: [a]\ngroup-by: [cs-uri-query]\ntimespan: 5m\n"
         "condition: {gte: 5}", "web_404_burst"),
    ],
)  # fmt: skip
def test_a_correlation_that_cannot_replace_the_rule_it_names_is_refused(body, problem):
    text = correlation_yaml(body) + f"threatlens-replaces: {problem}\n"
    with pytest.raises(Refused) as refused:
        read_rule(text)
    assert refused.value.code == "invalid_replacement"


def test_threatlens_default_is_enabled_or_disabled():
    body = "type: event_count\nrules: [a]\ngroup-by: [src_ip]\ntimespan: 5m\ncondition: {gte: 5}"
    assert not read_rule(
        correlation_yaml(body) + "threatlens-default: disabled\n"
    ).enabled_by_default
    with pytest.raises(Refused) as refused:
        read_rule(correlation_yaml(body) + "threatlens-default: maybe\n")
    assert refused.value.code == "invalid_rule"


# -- stored: migrate, REST, ingest ----------------------------------------------------------------


@pytest.mark.django_db
def test_sync_shipped_stores_them_once_and_keeps_an_operator_s_choice():
    counts = services.sync_shipped()
    assert counts["added"] == 7 and counts["refused"] == 0
    rules = {rule.name: rule for rule in SigmaRule.objects.all()}
    assert {rule.origin for rule in rules.values()} == {"shipped"}
    assert not rules["threatlens_ssh_login_after_failures"].enabled
    assert sum(rule.state == "loaded" for rule in rules.values()) == 5

    services.set_rule_enabled(rules["threatlens_web_404_burst"].pk, False, actor=None)
    audited = AuditLog.objects.filter(action="sigma_rule.sync").count()
    assert services.sync_shipped()["unchanged"] == 7
    # Nothing changed: no audit row for this `migrate`, and the disable stays.
    assert AuditLog.objects.filter(action="sigma_rule.sync").count() == audited
    assert not SigmaRule.objects.get(name="threatlens_web_404_burst").enabled

    assert services.remove_shipped() == 7
    assert not SigmaRule.objects.exists()


@pytest.mark.django_db
def test_migrate_stores_the_shipped_rules_unless_told_not_to(settings):
    from django.core.management import call_command

    settings.SIGMA_SHIPPED_RULES = True
    call_command("migrate", "incidents", verbosity=0)
    assert SigmaRule.objects.filter(origin="shipped").count() == 7
    settings.SIGMA_SHIPPED_RULES = False
    call_command("migrate", "incidents", verbosity=0)
    assert not SigmaRule.objects.exists()


@pytest.mark.django_db
def test_rest_shows_what_a_rule_replaces_and_refuses_to_delete_or_change_a_shipped_rule(
    api_client, alice, carol
):
    services.sync_shipped()
    api_client.force_authenticate(alice)
    listed = api_client.get("/api/sigma/rules/").json()["results"]
    replaces = {rule["name"]: rule["replaces"] for rule in listed}
    assert replaces["threatlens_ssh_bruteforce_ip"] == "ssh_bruteforce_ip"
    assert replaces["threatlens_web_404_burst"] == "web_404_burst"
    assert replaces["threatlens_ssh_failed_login"] == ""

    pk = next(rule["id"] for rule in listed if rule["name"] == "threatlens_web_404_burst")
    text = api_client.get(f"/api/sigma/rules/{pk}/").json()["text"]
    changed = api_client.patch(
        f"/api/sigma/rules/{pk}/", {"text": text.replace("gte: 20", "gte: 5")}, format="json"
    )
    assert changed.status_code == 409
    api_client.force_authenticate(carol)
    assert api_client.delete(f"/api/sigma/rules/{pk}/").status_code == 409
    disabled = api_client.patch(f"/api/sigma/rules/{pk}/", {"enabled": False}, format="json")
    assert disabled.status_code == 200 and disabled.json()["state"] == "disabled"


def ingest_samples():
    """Each sample file as one raw log, processed as the system would."""
    files = {}
    for sample in iter_sample_lines():
        files.setdefault(sample.source, []).append(sample.line)
    with TestCase.captureOnCommitCallbacks(execute=True):
        for source, lines in files.items():
            raw_log = receive_raw_log(source=source, content="\n".join(lines), actor=None)
            process_raw_log(raw_log.pk)


def stored():
    events = sorted(
        (e.rule_id, e.category, e.severity, e.message, e.correlation_key, e.timestamp,
         {k: v for k, v in e.details.items() if k != "sigma"})
        for e in SecurityEvent.objects.all()
    )  # fmt: skip
    alerts = sorted(
        (a.rule_id, a.title, a.severity, a.correlation_key, a.occurrence_count,
         a.details.get("attack"))
        for a in Alert.objects.all()
    )  # fmt: skip
    return events, alerts


def reset():
    from threatlens.writeguard import service_writes

    SecurityEvent.objects.all().delete()
    with service_writes():
        Alert.objects.all().delete()
    processing.reset_detection_state()


@pytest.mark.django_db
def test_ingest_stores_the_same_events_and_alerts_with_the_shipped_rules_loaded(settings):
    settings.LOG_PROCESSING = "inline"
    settings.LOG_PROCESSING_CHUNK_LINES = 50
    reset()
    ingest_samples()
    before = stored()
    assert {item[0] for item in before[0]} >= REPLACED

    services.sync_shipped()
    runtime.forget_engine()
    reset()
    ingest_samples()
    after = stored()

    assert after == before
    replacing = {rule.sigma_id for rule in shipped_rules() if rule.replaces}
    raised_by = {
        e.details["sigma"]["id"] for e in SecurityEvent.objects.filter(rule_id__in=REPLACED)
    }
    assert raised_by == replacing
    # The counted rules raise nothing of their own.
    assert not SecurityEvent.objects.filter(rule_id__startswith="sigma:").exists()


@pytest.mark.django_db
def test_disabling_a_replacing_rule_brings_its_built_in_rule_back(settings):
    settings.LOG_PROCESSING = "inline"
    reset()
    services.sync_shipped()
    rule = SigmaRule.objects.get(name="threatlens_ssh_bruteforce_ip")
    services.set_rule_enabled(rule.pk, False, actor=None)
    runtime.forget_engine()
    assert {r.id for r in processing.current_rules() if r.sigma} == REPLACED - {"ssh_bruteforce_ip"}

    ingest_samples()

    by_ip = SecurityEvent.objects.get(rule_id="ssh_bruteforce_ip")
    assert "sigma" not in by_ip.details  # the built-in rule raised it
    assert by_ip.details["attack"]["techniques"] == ["T1110.001"]
    by_user = SecurityEvent.objects.get(rule_id="ssh_bruteforce_user")
    assert by_user.details["sigma"]["title"] == "SSH brute force against one account"

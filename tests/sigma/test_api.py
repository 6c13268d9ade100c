"""Sigma rules through REST and the pipeline: upload, refuse, list, toggle, fire, cover."""

import pytest
from django.test import TestCase

from incidents.models import Alert, SecurityEvent
from incidents.sigma.models import SigmaRule
from incidents.sigma.services import sync_shipped
from tests.pipeline.helpers import T0, ssh_failure, syslog
from tests.prometheus_samples import samples
from tests.sigma.helpers import correlation_yaml, rule_yaml

pytestmark = pytest.mark.django_db

RULE_ID = "0e95725d-7320-415d-80f7-004da920fc11"
ROOT_FAILURE = rule_yaml(
    "sel: {user: root}\nkw: ['Failed password']\ncondition: sel and kw",
    title="Failed root login over SSH",
    rule_id=RULE_ID,
    tags=("attack.t1110.001", "attack.credential-access", "attack.stealth"),
)


@pytest.fixture(autouse=True)
def _inline(settings):
    settings.LOG_PROCESSING = "inline"


def post_rule(api_client, user, text, **extra):
    api_client.force_authenticate(user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        return api_client.post("/api/sigma/rules/", {"text": text, **extra}, format="json")


def ingest(api_client, user, *lines, source="auth.log"):
    api_client.force_authenticate(user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post(
            "/api/logs/", {"source": source, "content": "\n".join(lines)}, format="json"
        )
    assert response.status_code == 202, response.json()
    return response.json()


def test_an_analyst_uploads_a_rule_and_it_is_listed_as_loaded(api_client, alice):
    response = post_rule(api_client, alice, ROOT_FAILURE)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sigma_id"] == RULE_ID
    assert body["state"] == "loaded"
    assert body["techniques"] == ["T1110.001"]
    assert {"name": "stealth", "id": None} in body["tactics"]
    listed = api_client.get("/api/sigma/rules/").json()["results"]
    assert [rule["title"] for rule in listed] == ["Failed root login over SSH"]


def test_an_uploaded_rule_fires_on_the_next_ingested_line(api_client, alice):
    post_rule(api_client, alice, ROOT_FAILURE)

    ingest(api_client, alice, ssh_failure(T0, user="root"))

    event = SecurityEvent.objects.get(rule_id=f"sigma:{RULE_ID}")
    assert event.severity == 8  # level high
    assert event.analysis["attack"]["techniques"] == ["T1110.001"]
    alert = Alert.objects.get(rule_id=f"sigma:{RULE_ID}")
    assert alert.severity == "high"
    assert alert.title.startswith("Failed root login over SSH")
    sigma = alert.details["sigma"]
    assert sigma["id"] == RULE_ID
    assert sigma["author"] == "ThreatLens tests"
    assert sigma["link"] == "https://example.org/rules/test"
    assert alert.details["attack"]["techniques"] == ["T1110.001"]
    # REST shows the same.
    shown = api_client.get(f"/api/alerts/{alert.pk}/").json()
    assert shown["details"]["attack"]["techniques"] == ["T1110.001"]


def test_a_disabled_rule_no_longer_fires(api_client, alice):
    rule = post_rule(api_client, alice, ROOT_FAILURE).json()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.patch(
            f"/api/sigma/rules/{rule['id']}/", {"enabled": False}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["state"] == "disabled"

    ingest(api_client, alice, ssh_failure(T0, user="root"))

    assert not SecurityEvent.objects.filter(rule_id__startswith="sigma:").exists()


def test_a_refused_rule_gets_json_with_error_code_and_nothing_is_stored(api_client, alice):
    text = rule_yaml("sel: {CommandLine|contains: whoami}\ncondition: sel")

    response = post_rule(api_client, alice, text)

    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_SIGMA_RULE"
    assert body["reason_code"] == "unmapped_field"
    assert "CommandLine" in body["reason"]
    assert not SigmaRule.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": 5}, {"text": "title: x", "enabled": "yes"}],
)
def test_malformed_uploads_are_refused(api_client, alice, body):
    api_client.force_authenticate(alice)
    response = api_client.post("/api/sigma/rules/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error_code"] in ("INVALID_MESSAGE", "INVALID_SIGMA_RULE")
    assert not SigmaRule.objects.exists()


def test_the_same_rule_id_twice_is_a_conflict(api_client, alice):
    post_rule(api_client, alice, ROOT_FAILURE)
    response = post_rule(api_client, alice, ROOT_FAILURE)
    assert response.status_code == 409
    assert response.json()["error_code"] == "CONFLICT"


def test_a_viewer_reads_rules_but_cannot_upload_or_toggle(api_client, alice, bob):
    rule = post_rule(api_client, alice, ROOT_FAILURE).json()

    response = post_rule(api_client, bob, rule_yaml("sel: {user: x}\ncondition: sel"))
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    patch = api_client.patch(f"/api/sigma/rules/{rule['id']}/", {"enabled": False}, format="json")
    assert patch.status_code == 403
    assert api_client.get(f"/api/sigma/rules/{rule['id']}/").json()["text"] == ROOT_FAILURE
    assert SigmaRule.objects.get().enabled


def test_only_admins_delete_rules(api_client, alice, carol):
    rule = post_rule(api_client, alice, ROOT_FAILURE).json()
    assert api_client.delete(f"/api/sigma/rules/{rule['id']}/").status_code == 403
    api_client.force_authenticate(carol)
    assert api_client.delete(f"/api/sigma/rules/{rule['id']}/").status_code == 204
    assert not SigmaRule.objects.exists()


def test_the_coverage_is_an_attack_navigator_layer(api_client, alice):
    post_rule(api_client, alice, ROOT_FAILURE)
    post_rule(
        api_client,
        alice,
        rule_yaml("sel: {user: nobody}\ncondition: sel", title="Off", tags=("attack.t1078",)),
        enabled=False,
    )

    layer = api_client.get("/api/sigma/rules/coverage/").json()

    assert layer["domain"] == "enterprise-attack"
    assert [item["techniqueID"] for item in layer["techniques"]] == ["T1110.001"]
    assert layer["techniques"][0]["comment"] == "Failed root login over SSH"


def test_rules_are_filtered_by_technique_and_state(api_client, alice):
    post_rule(api_client, alice, ROOT_FAILURE)
    post_rule(
        api_client, alice, rule_yaml("sel: {user: x}\ncondition: sel", tags=("attack.t1078",))
    )

    by_technique = api_client.get("/api/sigma/rules/?technique=t1078").json()["results"]
    assert [rule["techniques"] for rule in by_technique] == [["T1078"]]
    assert api_client.get("/api/sigma/rules/?state=refused").json()["results"] == []


def test_a_sudo_rule_fires_on_a_sudo_line(api_client, alice):
    text = rule_yaml(
        "sel: {USER: root, COMMAND|endswith: /bin/bash}\ncondition: sel",
        logsource="{product: linux, service: sudo}",
        level="critical",
        title="Root shell through sudo",
    )
    post_rule(api_client, alice, text)

    line = syslog(T0, "sudo", "bob : TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash")
    ingest(api_client, alice, line)

    alert = Alert.objects.get()
    assert alert.severity == "critical"
    assert alert.title.startswith("Root shell through sudo")


def test_alerts_and_events_are_filtered_by_attack_technique(api_client, alice):
    post_rule(api_client, alice, ROOT_FAILURE)
    ingest(api_client, alice, ssh_failure(T0, user="root"))

    for url in ("/api/alerts/", "/api/events/"):
        assert len(api_client.get(url, {"technique": "T1110"}).json()["results"]) == 1
        assert len(api_client.get(url, {"technique": "t1110.001"}).json()["results"]) == 1
        assert api_client.get(url, {"technique": "T1078"}).json()["results"] == []
        refused = api_client.get(url, {"technique": "T11"})
        assert refused.status_code == 400
        assert "error_code" in refused.json()


def test_metrics_show_each_rules_hits_and_cost(api_client, alice, carol):
    post_rule(api_client, alice, ROOT_FAILURE)
    ingest(api_client, alice, *[ssh_failure(T0, user="root", port=40000 + n) for n in range(70)])

    api_client.force_authenticate(carol)
    text = api_client.get("/metrics").content.decode()

    figures = samples(text)
    assert figures["threatlens_sigma_rules_loaded"] == 1
    labels = f'rule_id="{RULE_ID}",title="Failed root login over SSH"'
    assert figures[f"threatlens_sigma_rule_hits_total{{{labels}}}"] == 70
    assert figures[f"threatlens_sigma_rule_evaluations_total{{{labels}}}"] == 64


def test_the_coverage_by_tactic_counts_the_enabled_rules_of_each_technique(api_client, alice):
    for title, tags in [
        ("Brute force A", ("attack.credential-access", "attack.t1110.001")),
        ("Brute force B", ("attack.credential-access", "attack.t1110.001", "attack.t1110")),
        ("Valid account", ("attack.initial-access", "attack.persistence", "attack.t1078.003")),
        ("Untagged tactic", ("attack.t1021",)),
        ("Disabled", ("attack.impact", "attack.t1499")),
    ]:
        text = rule_yaml("sel: {user: oracle}\ncondition: sel", title=title, tags=tags)
        assert post_rule(api_client, alice, text).status_code == 201
    SigmaRule.objects.filter(title="Disabled").update(enabled=False)
    client = api_client

    body = client.get("/api/sigma/rules/coverage/tactics/").json()
    assert (body["rules"], body["rules_with_techniques"], body["techniques"]) == (4, 4, 4)
    shape = [
        (t["name"], t["id"], [(i["id"], [r["title"] for r in i["rules"]]) for i in t["techniques"]])
        for t in body["tactics"]
    ]
    assert shape == [
        ("initial-access", "TA0001", [("T1078.003", ["Valid account"])]),
        ("persistence", "TA0003", [("T1078.003", ["Valid account"])]),
        ("credential-access", "TA0006",
         [("T1110", ["Brute force B"]), ("T1110.001", ["Brute force A", "Brute force B"])]),
        (None, None, [("T1021", ["Untagged tactic"])]),
    ]  # fmt: skip
    # The Navigator layer scores the same techniques by their number of rules.
    layer = client.get("/api/sigma/rules/coverage/").json()
    scores = {t["techniqueID"]: t["score"] for t in layer["techniques"]}
    assert scores == {"T1021": 1, "T1078.003": 1, "T1110": 1, "T1110.001": 2}


def test_a_viewer_reads_the_coverage_and_an_anonymous_client_does_not(api_client, bob):
    assert api_client.get("/api/sigma/rules/coverage/tactics/").status_code in (401, 403)
    api_client.force_authenticate(bob)
    assert api_client.get("/api/sigma/rules/coverage/tactics/").status_code == 200


def rule_stats(api_client, user, **query):
    api_client.force_authenticate(user)
    results = api_client.get("/api/sigma/rules/", query).json()["results"]
    return {rule["title"]: rule["stats"]["hits"] for rule in results}


def test_the_rules_list_counts_a_correlation_s_firings_as_its_hits(api_client, alice):
    post_rule(
        api_client,
        alice,
        rule_yaml("sel: {action: login_failure}\ncondition: sel", title="Failed", name="failed"),
    )
    burst = "type: event_count\nrules: [failed]\ngroup-by: [src_ip]\ntimespan: 10m\n"
    post_rule(api_client, alice, correlation_yaml(burst + "condition: {gte: 5}", title="Burst"))

    lines = [ssh_failure(T0, ip="203.0.113.7", port=40000 + n) for n in range(12)]
    lines += [ssh_failure(T0, ip="198.51.100.9", port=41000 + n) for n in range(5)]
    lines += [ssh_failure(T0, ip="192.0.2.1", port=42000 + n) for n in range(4)]
    ingest(api_client, alice, *lines)

    fired = SecurityEvent.objects.filter(message__startswith="Burst").count()
    assert fired == 2  # once per address per timespan, at the fifth failure
    assert rule_stats(api_client, alice) == {"Failed": 21, "Burst": 2}


def test_a_correlation_that_replaces_a_built_in_rule_counts_its_firings_too(api_client, alice):
    with TestCase.captureOnCommitCallbacks(execute=True):
        sync_shipped()
    ingest(
        api_client, alice, *[ssh_failure(T0, ip="203.0.113.7", port=40000 + n) for n in range(30)]
    )

    by_ip = SecurityEvent.objects.filter(rule_id="ssh_bruteforce_ip")
    assert by_ip.count() >= 1
    assert {event.details["sigma"]["kind"] for event in by_ip} == {"correlation"}
    hits = rule_stats(api_client, alice, kind="correlation")
    title = by_ip.first().details["sigma"]["title"]
    assert hits[title] == by_ip.count()

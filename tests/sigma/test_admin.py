"""Sigma rules in the Django admin: added, refused, toggled and deleted through the
services (so audited, and every process reloads)."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import TestCase

from incidents.sigma.models import SigmaRule
from tests.sigma.helpers import rule_yaml
from threatlens.audit.models import AuditLog

pytestmark = pytest.mark.django_db

RULE = rule_yaml("sel: {user: root}\ncondition: sel", title="Admin rule")


@pytest.fixture
def admin_client(client, carol):
    client.force_login(carol)
    return client


def test_an_admin_adds_a_rule_by_pasting_its_yaml(admin_client):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(
            "/admin/incidents/sigmarule/add/", {"text": RULE, "enabled": "on"}
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = SigmaRule.objects.get()
    assert rule.title == "Admin rule" and rule.state == "loaded"
    assert AuditLog.objects.filter(action="sigma_rule.upload").exists()
    assert admin_client.get("/admin/incidents/sigmarule/").status_code == 200
    assert admin_client.get(f"/admin/incidents/sigmarule/{rule.pk}/change/").status_code == 200


def test_the_admin_shows_why_a_rule_is_refused_and_stores_nothing(admin_client):
    text = rule_yaml("sel: {CommandLine: x}\ncondition: sel")
    response = admin_client.post("/admin/incidents/sigmarule/add/", {"text": text})
    assert response.status_code == 200
    assert "unmapped_field" in response.content.decode()
    assert not SigmaRule.objects.exists()


def test_admin_actions_disable_and_enable_rules(admin_client):
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post("/admin/incidents/sigmarule/add/", {"text": RULE, "enabled": "on"})
    rule = SigmaRule.objects.get()
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post(
            "/admin/incidents/sigmarule/",
            {"action": "disable_rules", ACTION_CHECKBOX_NAME: [rule.pk]},
        )
    rule.refresh_from_db()
    assert rule.state == "disabled"
    assert AuditLog.objects.filter(action="sigma_rule.disable").exists()


def test_the_admin_refuses_a_second_rule_with_the_same_id(admin_client):
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post("/admin/incidents/sigmarule/add/", {"text": RULE, "enabled": "on"})
    response = admin_client.post("/admin/incidents/sigmarule/add/", {"text": RULE})
    assert response.status_code == 200
    assert "exists" in response.content.decode()
    assert SigmaRule.objects.count() == 1

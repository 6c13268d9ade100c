"""A zone file with 10,000 records at one name imports in time linear in its records."""

import time

import pytest

from dns.models import Record, Zone

pytestmark = pytest.mark.django_db

RECORDS = 10_000
# Comparing each record with every other at its name took minutes for this file.
BOUND_SECONDS = 20


def test_a_zone_file_of_10000_records_at_one_name_imports_within_a_bound(api_client, carol):
    lines = ["$TTL 3600", "$ORIGIN big.example."]
    lines += [f"www IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(RECORDS)]
    body = {"name": "big.example", "email": "h@example.com", "zone_file": "\n".join(lines)}
    api_client.force_authenticate(carol)

    started = time.perf_counter()
    response = api_client.post("/api/dns/zones/import/", body, format="json")
    elapsed = time.perf_counter() - started

    assert response.status_code == 201, response.content[:300]
    assert response.json()["import"]["added"] == RECORDS
    assert Record.objects.filter(zone=Zone.objects.get(name="big.example")).count() == RECORDS
    assert elapsed < BOUND_SECONDS


def test_a_clash_at_one_name_is_still_found(api_client, carol):
    zone_file = "$ORIGIN c.example.\nwww IN A 192.0.2.1\nwww IN CNAME web\nwww IN A 192.0.2.1\n"
    body = {"name": "c.example", "email": "h@example.com", "zone_file": zone_file}
    api_client.force_authenticate(carol)
    response = api_client.post("/api/dns/zones/import/", body, format="json")
    assert response.status_code == 400
    assert "CNAME" in str(response.json())
    assert not Zone.objects.filter(name="c.example").exists()

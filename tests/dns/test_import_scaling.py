"""A zone file with many records at one name imports in work linear in its records.

Checked by counting, not by timing (speed targets are met in a benchmark, not in timed
tests): the lines of project code run and the SQL queries for an import of N and of 4N
records at one name. Comparing each record with every other at its name (which took
minutes for 10,000 records) makes the lines grow 16-fold.
"""

import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dns.models import Record, Zone

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tuple(str(ROOT / app) + "/" for app in ("dns", "threatlens", "realtime", "accounts"))
SMALL, LARGE = 250, 1000


class LineCounter:
    """Counts the lines of project code run while active (sys.settrace)."""

    def __init__(self):
        self.lines = 0

    def __enter__(self):
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)

    def _call(self, frame, event, arg):
        return self._line if frame.f_code.co_filename.startswith(PROJECT) else None

    def _line(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._line


def import_zone(api_client, name, records):
    lines = ["$TTL 3600", f"$ORIGIN {name}."]
    lines += [f"www IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(records)]
    body = {"name": name, "email": "h@example.com", "zone_file": "\n".join(lines)}
    with CaptureQueriesContext(connection) as queries, LineCounter() as counter:
        response = api_client.post("/api/dns/zones/import/", body, format="json")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["import"]["added"] == records
    assert Record.objects.filter(zone=Zone.objects.get(name=name)).count() == records
    return counter.lines, len(queries)


def test_importing_records_at_one_name_costs_work_linear_in_their_number(api_client, carol):
    api_client.force_authenticate(carol)
    small_lines, small_queries = import_zone(api_client, "small.example", SMALL)
    large_lines, large_queries = import_zone(api_client, "large.example", LARGE)
    growth = LARGE / SMALL
    # Linear: the lines grow about 4-fold (a constant part makes it less); quadratic: 16.
    assert large_lines < small_lines * growth * 1.25, (small_lines, large_lines)
    # Records are inserted in batches: queries do not grow with the records one by one.
    assert large_queries - small_queries < LARGE - SMALL, (small_queries, large_queries)


def test_a_clash_at_one_name_is_still_found(api_client, carol):
    zone_file = "$ORIGIN c.example.\nwww IN A 192.0.2.1\nwww IN CNAME web\nwww IN A 192.0.2.1\n"
    body = {"name": "c.example", "email": "h@example.com", "zone_file": zone_file}
    api_client.force_authenticate(carol)
    response = api_client.post("/api/dns/zones/import/", body, format="json")
    assert response.status_code == 400
    assert "CNAME" in str(response.json())
    assert not Zone.objects.filter(name="c.example").exists()

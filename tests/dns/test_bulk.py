"""Bulk record jobs: all or nothing, progress and completion events, REST."""

import time

import pytest

from dns import bulk
from dns.models import BulkOperation, Record, Zone
from tests.dns.helpers import events, grant, refreshed


def hosts(count, start=0):
    return [
        {"name": f"host{n}", "record_type": "A", "value": f"10.0.{n // 250}.{n % 250 + 1}"}
        for n in range(start, start + count)
    ]


def run(actor, zone, operation, items):
    job = bulk.start_bulk_operation(actor, zone.pk, operation, items)
    return bulk.run_bulk_operation(job.pk)


def test_a_bulk_create_of_thousands_applies_all_and_reports_progress(
    make_zone, carol, alice, django_capture_on_commit_callbacks
):
    zone = make_zone()
    grant(zone, alice)
    serial = zone.serial
    with django_capture_on_commit_callbacks(execute=True):
        job = run(carol, zone, "create", hosts(3000))
    assert job.status == "succeeded", job.errors
    assert (job.processed, job.progress) == (3000, 1.0)
    assert Record.objects.filter(zone=zone).count() == 3000
    assert refreshed(zone).serial == serial + 1  # one change, one step
    progress = events("bulk_operation_progress")
    values = [e.data["progress"] for e in progress]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0
    assert 10 <= len(progress) <= 50
    assert {e.data["stage"] for e in progress} == {"validating", "applying", "done"}
    assert all(e.data["total"] == 3000 and e.data["operation_id"] == str(job.pk) for e in progress)
    assert all(e.recipient_users == [alice.pk] for e in progress)
    (complete,) = events("bulk_operation_complete")
    assert complete.data["status"] == "succeeded"
    assert len(complete.data["created"]) == 3000
    assert complete.recipient_users == [alice.pk]
    assert events("record_created") == []  # one job, not 3000 record events
    (config,) = events("config_change")
    assert config.data["action"] == "bulk_create"


def test_one_bad_item_fails_the_whole_job_and_changes_nothing(
    make_zone, carol, django_capture_on_commit_callbacks
):
    zone = make_zone()
    items = hosts(1000)
    items[500]["value"] = "not-an-address"
    items[700]["ttl"] = -5
    with django_capture_on_commit_callbacks(execute=True):
        job = run(carol, zone, "create", items)
    assert job.status == "failed"
    assert [error["index"] for error in job.errors] == [500, 700]
    assert "value" in job.errors[0]["errors"]
    assert not Record.objects.filter(zone=zone).exists()
    assert refreshed(zone).serial == zone.serial
    (complete,) = events("bulk_operation_complete")
    assert complete.data["status"] == "failed" and complete.data["created"] == []
    assert complete.data["errors"][0]["index"] == 500


def test_items_that_clash_with_each_other_fail_the_job(make_zone, carol):
    zone = make_zone()
    items = [
        {"name": "www", "record_type": "A", "value": "192.0.2.1"},
        {"name": "www", "record_type": "CNAME", "value": "web"},
    ]
    job = run(carol, zone, "create", items)
    assert job.status == "failed"
    assert {error["index"] for error in job.errors} == {0, 1}
    assert not Record.objects.exists()


def test_items_that_clash_with_existing_records_fail_the_job(make_zone, make_record, carol):
    zone = make_zone()
    make_record(zone, name="www", record_type="CNAME", value="web")
    job = run(
        carol,
        zone,
        "create",
        hosts(10) + [{"name": "www", "record_type": "A", "value": "192.0.2.1"}],
    )
    assert job.status == "failed" and job.errors[0]["index"] == 10
    assert Record.objects.count() == 1


def test_bulk_update_and_delete(make_zone, carol, django_capture_on_commit_callbacks):
    zone = make_zone()
    created = run(carol, zone, "create", hosts(300)).result["created"]
    updated = run(carol, zone, "update", [{"id": pk, "ttl": 60, "version": 1} for pk in created])
    assert updated.status == "succeeded", updated.errors
    assert set(Record.objects.values_list("ttl", "version").distinct()) == {(60, 2)}
    stale = run(carol, zone, "update", [{"id": created[0], "ttl": 1, "version": 1}])
    assert stale.status == "failed" and "version" in stale.errors[0]["errors"]
    with django_capture_on_commit_callbacks(execute=True):
        deleted = run(carol, zone, "delete", created[:100])
    assert deleted.status == "succeeded"
    assert Record.objects.count() == 200
    assert events("record_deleted") == []
    assert len(events("bulk_operation_complete")[0].data["deleted"]) == 100


def test_bulk_jobs_refer_only_to_records_of_their_zone(make_zone, make_record, carol):
    zone, other = make_zone(), make_zone()
    foreign = make_record(other)
    job = run(carol, zone, "delete", [foreign.pk])
    assert job.status == "failed" and Record.objects.filter(pk=foreign.pk).exists()


def test_a_job_runs_only_once(make_zone, carol):
    zone = make_zone()
    job = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(5))
    bulk.run_bulk_operation(job.pk)
    again = bulk.run_bulk_operation(job.pk)
    assert again.status == "succeeded" and Record.objects.count() == 5


def test_starting_a_job_needs_change_access(make_zone, alice):
    from django.core.exceptions import PermissionDenied

    zone = make_zone()
    grant(zone, alice)
    with pytest.raises(PermissionDenied):
        bulk.start_bulk_operation(alice, zone.pk, "create", hosts(1))
    assert not BulkOperation.objects.exists()


# --- REST ------------------------------------------------------------------------------------


def test_bulk_endpoint_answers_202_and_the_job_can_be_followed(
    api_client, carol, alice, make_zone, monkeypatch, django_capture_on_commit_callbacks
):
    # Run the job in this thread once the request commits (the thread is tested below).
    monkeypatch.setattr(
        bulk,
        "run_in_background",
        lambda job_id: bulk.transaction.on_commit(lambda: bulk.run_bulk_operation(job_id)),
    )
    zone = make_zone()
    grant(zone, alice, can_change=True)
    api_client.force_authenticate(alice)
    with django_capture_on_commit_callbacks(execute=True):
        reply = api_client.post(
            f"/api/dns/zones/{zone.pk}/records/bulk/",
            {"operation": "create", "records": hosts(50)},
            format="json",
        )
    assert reply.status_code == 202, reply.json()
    job_id = reply.json()["operation_id"]
    status = api_client.get(f"/api/dns/bulk-operations/{job_id}/").json()
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    assert len(status["result"]["created"]) == 50
    api_client.force_authenticate(carol)
    assert api_client.get(f"/api/dns/bulk-operations/{job_id}/").status_code == 200


def test_bulk_jobs_are_invisible_without_zone_access(api_client, bob, make_zone, carol):
    zone = make_zone()
    job = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(1))
    api_client.force_authenticate(bob)
    assert api_client.get(f"/api/dns/bulk-operations/{job.pk}/").status_code == 404


def test_bulk_endpoint_refuses_bad_requests(api_client, carol, make_zone):
    zone = make_zone()
    api_client.force_authenticate(carol)
    url = f"/api/dns/zones/{zone.pk}/records/bulk/"
    assert (
        api_client.post(url, {"operation": "merge", "records": hosts(1)}, format="json").status_code
        == 400
    )
    assert (
        api_client.post(url, {"operation": "create", "records": []}, format="json").status_code
        == 400
    )
    assert not BulkOperation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_bulk_endpoint_runs_the_job_in_a_background_thread(api_client, make_user):
    from django.contrib.auth.models import Group

    from dns import services

    carol = make_user("carol2", role="admin")
    if not carol.has_perm("dns.add_zone"):
        pytest.skip("the admin role has no DNS permissions in this database")
    Group.objects.get(name="admin")
    zone = services.create_zone(carol, {"name": "thread.example", "email": "h@example.com"})
    api_client.force_authenticate(carol)
    reply = api_client.post(
        f"/api/dns/zones/{zone.pk}/records/bulk/",
        {"operation": "create", "records": hosts(200)},
        format="json",
    )
    assert reply.status_code == 202
    url = f"/api/dns/bulk-operations/{reply.json()['operation_id']}/"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = api_client.get(url).json()
        if status["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert status["status"] == "succeeded", status
    assert Zone.objects.get(pk=zone.pk).records.count() == 200


# --- chunked writes (dns/chunked.py) -------------------------------------------------------


def test_a_job_that_fails_half_way_through_its_chunks_is_undone(
    make_zone, make_record, carol, monkeypatch
):
    from dns import chunked

    zone = make_zone()
    kept = make_record(zone, name="kept", value="192.0.2.9")
    serial = refreshed(zone).serial
    real_write, calls = chunked.write_chunk, []

    def failing_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(chunked, "write_chunk", failing_on_the_third_chunk)
    job = run(carol, zone, "create", hosts(chunked.CHUNK_RECORDS * 4))

    assert job.status == "failed"
    assert list(Record.objects.filter(zone=zone)) == [kept]
    assert refreshed(zone).serial == serial
    assert job.writing_heartbeat_at is None and job.undo is None


def test_a_failed_update_or_delete_job_puts_the_records_back(make_zone, carol, monkeypatch):
    from dns import chunked

    zone = make_zone()
    created = run(carol, zone, "create", hosts(1200)).result["created"]
    before = list(Record.objects.filter(zone=zone).order_by("pk").values())
    real_write = chunked.write_chunk

    for operation, items in [
        ("update", [{"id": pk, "ttl": 60} for pk in created]),
        ("delete", created),
    ]:
        calls = []

        def failing_on_the_second_chunk(*args, calls=calls, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            return real_write(*args, **kwargs)

        monkeypatch.setattr(chunked, "write_chunk", failing_on_the_second_chunk)
        assert run(carol, zone, operation, items).status == "failed"
        assert list(Record.objects.filter(zone=zone).order_by("pk").values()) == before


def test_other_writers_of_the_zone_wait_while_a_job_writes(
    make_zone, carol, api_client, make_record
):
    from dns.models import BulkOperation

    zone = make_zone()
    job = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(5))
    from dns import chunked

    chunked.mark_writing(job)
    api_client.force_authenticate(carol)
    body = {"name": "x", "record_type": "A", "value": "192.0.2.1"}
    response = api_client.post(f"/api/dns/zones/{zone.pk}/records/", body, format="json")
    assert response.status_code == 409
    assert response.json()["error_code"] == "ZONE_BUSY"
    assert response["Retry-After"] == "1"
    assert not Record.objects.filter(zone=zone).exists()
    assert BulkOperation.objects.get(pk=job.pk).writing_heartbeat_at is not None


def test_a_job_whose_process_died_while_writing_is_undone_by_the_next_writer(
    make_zone, carol, api_client
):
    from datetime import timedelta

    from django.utils import timezone

    from dns import chunked

    zone = make_zone()
    job = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(600))
    BulkOperation.objects.filter(pk=job.pk).update(status=BulkOperation.Status.RUNNING)
    job.refresh_from_db()
    chunked.mark_writing(job)
    chunked.write_chunk(job, zone, "create", hosts(500), carol, timezone.now())
    assert Record.objects.filter(zone=zone).count() == 500
    # The process died: the mark is no longer renewed.
    BulkOperation.objects.filter(pk=job.pk).update(
        writing_heartbeat_at=timezone.now() - chunked.STALE_AFTER - timedelta(seconds=1)
    )

    api_client.force_authenticate(carol)
    body = {"name": "x", "record_type": "A", "value": "192.0.2.1"}
    response = api_client.post(f"/api/dns/zones/{zone.pk}/records/", body, format="json")

    assert response.status_code == 201, response.json()
    assert list(Record.objects.filter(zone=zone).values_list("name", flat=True)) == ["x"]
    job.refresh_from_db()
    assert job.status == "failed" and "Undone" in str(job.errors)


def test_jobs_a_stopped_server_left_unfinished_are_failed_at_start_up(make_zone, carol):
    from datetime import timedelta

    from django.utils import timezone

    from dns import chunked

    zone = make_zone()
    long_ago = timezone.now() - chunked.STALE_AFTER - timedelta(seconds=1)
    fresh = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(2, start=900))
    pending = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(3))
    writing = bulk.start_bulk_operation(carol, zone.pk, "create", hosts(600, start=10))
    BulkOperation.objects.filter(pk=writing.pk).update(status=BulkOperation.Status.RUNNING)
    writing.refresh_from_db()
    chunked.mark_writing(writing)
    chunked.write_chunk(writing, zone, "create", hosts(500, start=10), carol, timezone.now())
    BulkOperation.objects.filter(pk__in=[pending.pk, writing.pk]).update(
        created_at=long_ago, writing_heartbeat_at=None
    )
    BulkOperation.objects.filter(pk=writing.pk).update(writing_heartbeat_at=long_ago)

    assert set(bulk.fail_interrupted_jobs()) == {pending.pk, writing.pk}

    statuses = dict(BulkOperation.objects.values_list("pk", "status"))
    assert statuses == {pending.pk: "failed", writing.pk: "failed", fresh.pk: "pending"}
    assert "Interrupted" in str(BulkOperation.objects.get(pk=pending.pk).errors)
    assert not Record.objects.filter(zone=zone).exists()  # the 500 written were undone
    assert bulk.fail_interrupted_jobs() == []  # once

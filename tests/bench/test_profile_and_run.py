"""The benchmark's own plumbing: py-spy summaries (bench/profile.py) and a run whose
start fails (bench/run.py)."""

import types

import pytest

from bench import profile, run

SOURCE = """\
def work():
    for attempt in range(2):
        if attempt:
            time.sleep(60)
        recover()
"""


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "recovery.py"
    path.write_text(SOURCE)
    return path


def test_threads_sleeping_in_time_sleep_are_idle_not_busy(tmp_path, source):
    # Collapsed stacks as py-spy writes them: a sleeping recovery thread, a pool thread
    # waiting for work, the same recovery thread at work, and a busy request.
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"_bootstrap (threading.py:995);work ({source}:4) 85\n"
        "_bootstrap (threading.py:995);_worker (concurrent/futures/thread.py:81) 40\n"
        f"_bootstrap (threading.py:995);work ({source}:5);recover (x.py:1) 3\n"
        "run (asyncio/runners.py:118);publish (realtime/publishing.py:45) 7\n"
    )
    summary = profile.summarise(str(raw))
    assert (summary["samples"], summary["idle"]) == (3 + 7, 85 + 40)


def test_only_a_line_that_calls_sleep_is_a_sleep(source):
    assert profile.sleeping(f"work ({source}:4)")
    assert not profile.sleeping(f"work ({source}:5)")
    assert not profile.sleeping("publish (realtime/publishing.py)")  # no line number


def test_a_run_whose_server_fails_to_start_reports_that_failure(monkeypatch, tmp_path):
    class ServerThatFails:
        process = None

        def __init__(self, *args):
            pass

        def start(self):
            raise RuntimeError("the server did not start")

        def stop(self):
            pass

    monkeypatch.setattr(run, "ServerProcess", ServerThatFails)
    args = types.SimpleNamespace(
        server="uvicorn",
        tracemalloc=False,
        quiet_wait=0,
        processes=1,
        uvicorn_ws="auto",
        nice=None,
        uvicorn_deflate=False,
    )
    with pytest.raises(RuntimeError, match="did not start"):
        run.run_target("ours", args, {}, tmp_path)

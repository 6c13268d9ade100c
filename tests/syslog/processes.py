"""`manage.py` commands run as real processes by the syslog tests."""

import subprocess
import sys
import threading

from tests.e2e.live_server import ROOT


def start_manage(command, *args, env, greeting):
    """Start `manage.py <command> <args>` and wait for its first line, which must start
    with `greeting`; the rest of its output is read as it comes (a full pipe would stall
    it) into `process.output`."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", command, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = process.stdout.readline()
    if not first.startswith(greeting):
        process.kill()
        raise AssertionError(first + process.stdout.read())
    process.output = [first]
    threading.Thread(target=lambda: process.output.extend(process.stdout), daemon=True).start()
    return process


def stop_all(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()

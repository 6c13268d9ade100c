"""manage.py run_monitors [--once] [--force]"""

import asyncio
import contextlib
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from threatlens.monitoring.startup import MonitorPublisher, monitors_in_process


class Command(BaseCommand):
    help = (
        "Run the monitors (host metrics, database, cache and channel layer checks) and "
        "publish system_metrics, health_update, health_alert, system_status and "
        "health_check. Run one next to several server processes; only the holder of the "
        "leader lease in the shared cache publishes, the others stand by."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Run every monitor once, publish, and exit."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even though the server runs the monitors itself (MONITORS_IN_PROCESS "
            "without REDIS_URL): they will then be published twice.",
        )

    def handle(self, *args, once, force, **options):
        if not settings.REDIS_URL and monitors_in_process() and not force:
            raise CommandError(
                "The server already runs the monitors in its own process (no REDIS_URL, "
                "MONITORS_IN_PROCESS on), and without a shared cache this command could not "
                "coordinate with it. Set MONITORS_IN_PROCESS=false to run them here, or "
                "pass --force."
            )
        from threatlens.monitoring.runner import build_default_runner

        publisher = MonitorPublisher()
        runner = build_default_runner(publisher.publish)
        if once:
            published = asyncio.run(self._once(runner, publisher))
            if not published and not runner.is_leader:
                self.stdout.write(
                    "Another monitor runner holds the leader lease: nothing published."
                )
                return
            counts = {}
            for event_type, _data, _priority in published:
                counts[event_type] = counts.get(event_type, 0) + 1
            self.stdout.write(
                "Published "
                + ", ".join(f"{count} {event_type}" for event_type, count in counts.items())
                + "."
            )
            return
        self.stdout.write(
            f"Running {len(runner.jobs)} monitors"
            + (" (leader election through the shared cache)." if settings.REDIS_URL else ".")
            + " Ctrl-C stops."
        )
        asyncio.run(self._forever(runner, publisher))
        self.stdout.write("Stopped.")

    async def _once(self, runner, publisher):
        try:
            return await runner.run_once()
        finally:
            if runner.leader_lock is not None and runner.is_leader:
                with contextlib.suppress(Exception):
                    await runner.leader_lock.arelease()
            await publisher.aclose()

    async def _forever(self, runner, publisher):
        task = runner.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await runner.stop()
        await publisher.aclose()

"""manage.py run_syslog [--bind ADDRESS] [--udp-port N] [--tcp-port N] [--tls-port N]
[--relp-port N] [--store-only] [--supervised [--wake-fd N]]"""

import asyncio
import contextlib
import signal

from django.core.management.base import BaseCommand, CommandError

from incidents.conf import pipeline_setting
from incidents.processing import resume_in_background
from incidents.syslog.server import ReceiverConfig, SyslogReceiver
from incidents.syslog.service import describe
from incidents.syslog.sink import get_sink
from incidents.syslog.supervised import report_stats, stop_when_parent_exits
from realtime.wakeup import adopt_wake_fd


class Command(BaseCommand):
    help = (
        "Receive syslog over UDP, TCP, TLS and RELP (the SYSLOG_* settings, or the options "
        "here) and feed the lines to the detection pipeline. Run it next to several server "
        "processes; in the embedded default the server runs the receiver itself "
        "(SYSLOG_IN_PROCESS). Ctrl-C or SIGTERM stops it after storing what it received."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", help="Address to listen on (default: SYSLOG_BIND).")
        for name in ("udp", "tcp", "tls", "relp"):
            parser.add_argument(
                f"--{name}-port",
                type=int,
                metavar="N",
                help=f"{name.upper()} port (default: SYSLOG_{name.upper()}_PORT; 0 = off).",
            )
        parser.add_argument(
            "--store-only",
            action="store_true",
            help="Store what is received and leave its processing to `manage.py "
            "process_logs` workers.",
        )
        parser.add_argument(
            "--supervised",
            action="store_true",
            help="Run as a server's syslog child process (SYSLOG_PROCESS=child): exit when "
            "standard input closes (the server is gone), report figures as JSON lines on "
            "standard output.",
        )
        parser.add_argument(
            "--wake-fd",
            type=int,
            metavar="N",
            help="With --supervised: a datagram socket inherited from the server; a byte is "
            "sent on it after each commit of events, so the server's hub polls at once.",
        )

    def handle(
        self,
        *args,
        bind,
        udp_port,
        tcp_port,
        tls_port,
        relp_port,
        store_only,
        supervised=False,
        wake_fd=None,
        **options,
    ):
        overrides = {"bind": bind} if bind else {}
        for name, port in (
            ("udp_port", udp_port),
            ("tcp_port", tcp_port),
            ("tls_port", tls_port),
            ("relp_port", relp_port),
        ):
            if port is not None:
                if not 0 <= port <= 65535:
                    raise CommandError(f"--{name.replace('_', '-')} must be 0-65535.")
                overrides[name] = port or None
        config = ReceiverConfig.from_settings(**overrides)
        if not config.enabled:
            raise CommandError(
                "No syslog port is set: set SYSLOG_UDP_PORT, SYSLOG_TCP_PORT, SYSLOG_TLS_PORT "
                "or SYSLOG_RELP_PORT, or pass --udp-port, --tcp-port, --tls-port or --relp-port."
            )
        if wake_fd is not None:
            adopt_wake_fd(wake_fd)
        asyncio.run(self._run(config, process=not store_only, supervised=supervised))
        with contextlib.suppress(BrokenPipeError):  # a supervised child's server is gone
            self.stdout.write("Stopped.")

    async def _run(self, config, *, process, supervised=False):
        # Signals first: a SIGTERM while the receiver starts stops it in order too.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        sink = get_sink(process=process)
        receiver = SyslogReceiver(sink, config)
        try:
            await receiver.start()
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"{exc}. (Another process may hold the port: a server running the receiver "
                "itself with SYSLOG_IN_PROCESS, or another run_syslog.)"
            ) from exc
        self.stdout.write(f"Receiving syslog on {describe(receiver.addresses)}. Ctrl-C stops.")
        self.stdout.flush()
        if process and pipeline_setting("RESUME_RAW_LOGS"):
            # What a crash stored but did not process (or left mid-stage) is finished now.
            resume_in_background()
        reporter = None
        if supervised:
            stop_when_parent_exits(stop)
            reporter = loop.create_task(report_stats(receiver, self._write_line))
        await stop.wait()
        if reporter is not None:
            reporter.cancel()
        await receiver.stop()
        await asyncio.to_thread(getattr(sink, "close", lambda: None))

    def _write_line(self, line):
        self.stdout.write(line)
        self.stdout.flush()

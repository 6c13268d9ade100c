"""Generated log traffic for the ingest benchmark and tests: realistic and attack-heavy.

    lines = generate("realistic", 50_000, seed=1)   # [MixLine(source, text, message)]

Each `MixLine` has the line as a log file holds it (`text`, parsed with `source` as
the hint) and as a syslog sender sends it (`message`, RFC 5424 with the app-name that
picks the parser). The same seed gives the same lines. Event times start at `START` and
advance `step` seconds per line, so windows and bursts behave as in a live log.

- `realistic`: auth.log (30%: deploys by key, cron, sudo, internet noise, SSH brute force
  from 60 of 500 addresses), nginx access (40%: browsers from hundreds of addresses,
  gobuster, sqlmap and path traversal from a few scanners), BIND queries (25%:
  everyday names, a few random-looking ones), and the portal's JSON lines (5%).
- `attack-heavy`: auth.log only, with thousands of source addresses each guessing a few
  passwords: about 15% of lines become security events and 10% alerts.
"""

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

START = datetime(2025, 3, 10, 14, 0, 0, tzinfo=UTC)
MIXES = ("realistic", "attack-heavy")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0"
USERS = ("root", "admin", "oracle", "postgres", "ubuntu", "test", "git", "pi")
PAGES = (
    "/",
    "/products",
    "/products?id=12",
    "/about",
    "/static/app.js",
    "/static/site.css",
    "/api/v1/status",
    "/login",
    "/cart",
    "/images/logo.png",
)
PROBES = (
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/admin",
    "/backup.zip",
    "/phpmyadmin/",
    "/server-status",
    "/config.php",
    "/old/",
    "/test/",
)
DOMAINS = (
    "portal.northwind.example",
    "mail.northwind.example",
    "www.google.com",
    "github.com",
    "api.github.com",
    "updates.ubuntu.com",
    "slack.com",
    "zoom.us",
)


@dataclass(frozen=True, slots=True)
class MixLine:
    source: str  # source hint: auth.log, nginx, bind, json
    text: str  # the line as a log file holds it
    message: str  # the line as a syslog message (RFC 5424)


def generate(mix, count, *, seed=1, step=None):
    """`count` lines of `mix` ("realistic" or "attack-heavy")."""
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}, not {mix!r}")
    return list(iterate(mix, count, seed=seed, step=step))


def iterate(mix, count, *, seed=1, step=None):
    """The lines of `generate`, one at a time (a long run does not hold them all)."""
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}, not {mix!r}")
    rng = random.Random(seed)
    step = default_step(mix) if step is None else step
    maker = _Realistic(rng) if mix == "realistic" else _AttackHeavy(rng)
    for index in range(count):
        yield maker.line(START + timedelta(seconds=index * step))


def default_step(mix):
    """Seconds of event time between two lines of `mix`."""
    return 0.072 if mix == "realistic" else 0.05


def _auth(moment, app, body, *, host="web01", pid=811):
    text = f"{moment.isoformat(timespec='microseconds')} {host} {app}[{pid}]: {body}"
    message = f"<38>1 {_iso(moment)} {host} {app} {pid} - - {body}"
    return MixLine("auth.log", text, message)


def _access(moment, ip, method, path, status, ua, *, size=512):
    stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    text = f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "-" "{ua}"'
    return MixLine("nginx", text, f"<190>1 {_iso(moment)} web01 nginx - - - {text}")


def _query(moment, ip, name, qtype="A"):
    body = (
        f"client @0x7f3a2c1e4b60 {ip}#53211 ({name}): query: {name} IN {qtype} +E(0)K (10.20.0.53)"
    )
    stamp = moment.strftime("%d-%b-%Y %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return MixLine(
        "bind", f"{stamp} queries: info: {body}", f"<30>1 {_iso(moment)} ns1 named - - - {body}"
    )


def _json(moment, record):
    text = json.dumps({"timestamp": _iso(moment), "service": "portal", **record})
    return MixLine("json", text, f"<134>1 {_iso(moment)} web01 portal - - - {text}")


def _port(rng):
    return rng.randint(30000, 60000)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Realistic:
    def __init__(self, rng):
        self.rng = rng
        self.addresses = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(500)]
        self.attackers = rng.sample(self.addresses, 60)
        self.internal = [f"10.20.{i // 200}.{i % 200 + 1}" for i in range(400)]
        self.scanners = [f"203.0.113.{i}" for i in range(1, 6)]

    def line(self, moment):
        roll = self.rng.random()
        if roll < 0.30:
            return self.auth(moment)
        if roll < 0.70:
            return self.web(moment)
        if roll < 0.95:
            return self.dns(moment)
        return self.portal(moment)

    def auth(self, moment):
        rng, roll = self.rng, self.rng.random()
        if roll < 0.25:  # brute force: the attackers keep guessing
            ip = rng.choice(self.attackers)
            return _auth(
                moment,
                "sshd",
                f"Failed password for {rng.choice(USERS)} from {ip} port {_port(rng)} ssh2",
            )
        if roll < 0.35:  # internet noise: one try from anywhere
            ip = rng.choice(self.addresses)
            return _auth(
                moment,
                "sshd",
                f"Invalid user {rng.choice(USERS)}x from {ip} port {rng.randint(30000, 60000)}",
            )
        if roll < 0.60:
            ip = rng.choice(self.internal[:40])
            return _auth(
                moment,
                "sshd",
                f"Accepted publickey for deploy from {ip} port {_port(rng)} ssh2: "
                "ED25519 SHA256:Zm9vYmFy",
            )
        if roll < 0.85:
            return _auth(
                moment,
                "CRON",
                "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            )
        return _auth(
            moment,
            "sudo",
            "   alice : TTY=pts/2 ; PWD=/home/alice ; USER=root ; "
            "COMMAND=/usr/bin/systemctl status nginx",
        )

    def web(self, moment):
        rng, roll = self.rng, self.rng.random()
        if roll < 0.04:
            ip = rng.choice(self.scanners)
            return _access(moment, ip, "GET", rng.choice(PROBES), 404, "gobuster/3.6")
        if roll < 0.05:
            ip = rng.choice(self.scanners)
            path = f"/products?id=1%27%20OR%20%271%27=%271&q={rng.randint(1, 999)}"
            return _access(moment, ip, "GET", path, 500, "sqlmap/1.7.2#stable (https://sqlmap.org)")
        if roll < 0.055:
            ip = rng.choice(self.scanners)
            return _access(moment, ip, "GET", "/download?file=../../../../etc/passwd", 400, FIREFOX)
        ip = rng.choice(self.addresses)
        status = 404 if roll > 0.98 else 200
        return _access(
            moment, ip, "GET", rng.choice(PAGES), status, FIREFOX, size=rng.randint(200, 90000)
        )

    def dns(self, moment):
        rng = self.rng
        ip = rng.choice(self.internal)
        if rng.random() < 0.01:
            label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(40))
            return _query(moment, ip, f"{label}.nightowl-relay.example", "TXT")
        return _query(moment, ip, rng.choice(DOMAINS), rng.choice(("A", "AAAA", "A", "HTTPS")))

    def portal(self, moment):
        rng = self.rng
        user = rng.choice(("alice", "bob", "carol", "dave"))
        ip = rng.choice(self.internal[:20])
        if rng.random() < 0.3:
            return _json(
                moment,
                {
                    "level": "info",
                    "event": "login_success",
                    "user": user,
                    "client_ip": ip,
                    "message": "User logged in",
                },
            )
        return _json(
            moment,
            {
                "level": "info",
                "event": "api_request",
                "user": user,
                "client_ip": ip,
                "method": "GET",
                "path": "/api/v1/alerts",
                "status": 200,
                "duration_ms": rng.randint(5, 300),
            },
        )


class _AttackHeavy:
    """Thousands of addresses, each a short burst: 3 invalid users, then 10 failed
    passwords (the brute-force threshold), among 10% cron lines."""

    def __init__(self, rng):
        self.rng = rng
        self.sessions = []  # [ip, lines left]
        self.next_ip = 0

    def line(self, moment):
        rng = self.rng
        if rng.random() < 0.10:
            return _auth(
                moment,
                "CRON",
                "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            )
        if len(self.sessions) < 40 or rng.random() < 0.05:
            index = self.next_ip
            self.next_ip += 1
            self.sessions.append(
                [f"100.{64 + index // 62500 % 64}.{index // 250 % 250}.{index % 250 + 1}", 0]
            )
        session = rng.choice(self.sessions)
        ip, sent = session
        session[1] += 1
        if session[1] >= 13:
            self.sessions.remove(session)
        port = rng.randint(30000, 60000)
        if sent < 3:
            return _auth(moment, "sshd", f"Invalid user {rng.choice(USERS)} from {ip} port {port}")
        return _auth(
            moment, "sshd", f"Failed password for {rng.choice(USERS)} from {ip} port {port} ssh2"
        )

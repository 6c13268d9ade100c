"""DNS settings: `settings.DNS` (a dict, filled from the environment in
`threatlens/settings.py`), with defaults that let a fresh clone run and test."""

from django.conf import settings

DEFAULTS = {
    # Origin of the exported response policy zone.
    "RPZ_ZONE": "rpz",
    # Largest bulk job (records in one request).
    "BULK_MAX_ITEMS": 50_000,
    # BIND integration: off unless BIND_ENABLED. Zone files and the named.conf include
    # are written to BIND_DIR; the commands are argument lists, run without a shell;
    # an empty list skips that step. {zone}/{file}/{conf} are filled in.
    "BIND_ENABLED": False,
    "BIND_DIR": None,
    "BIND_CHECKCONF_COMMAND": ["named-checkconf", "{conf}"],
    "BIND_CHECKZONE_COMMAND": ["named-checkzone", "{zone}", "{file}"],
    # None: `rndc reload` (with the generated key and BIND_CONTROL_PORT when
    # BIND_NAMED_CONF). Commands may also use {dir}, {rndc_key}, {control_port}.
    "BIND_RELOAD_COMMAND": None,
    # BIND_NAMED_CONF: also write BIND_DIR/named.conf, complete, for a named that serves
    # only ThreatLens: `named -c BIND_DIR/named.conf` (docs/bind.md).
    "BIND_NAMED_CONF": False,
    "BIND_LISTEN": "127.0.0.1",
    "BIND_PORT": 53,
    "BIND_CONTROL_PORT": 953,
    # named's statistics channel (JSON), read for system_metrics.dns; 0 turns it off.
    "BIND_STATS_PORT": 8053,
    # Seconds between the bind9 health checks (a SOA query to named).
    "BIND_CHECK_INTERVAL": 30,
    "BIND_COMMAND_TIMEOUT": 30,
    # Forwarder health monitor: name resolved through each forwarder, UDP timeout,
    # seconds between rounds, and the response time above which a forwarder is "warning".
    "FORWARDER_PROBE_NAME": "example.com",
    "FORWARDER_TIMEOUT": 2.0,
    "FORWARDER_CHECK_INTERVAL": 60,
    "FORWARDER_SLOW_MS": 500.0,
    # Threat feed downloads: how often due feeds are looked for, and the limits of one
    # download (seconds for the whole transfer, bytes of the body).
    "FEED_CHECK_INTERVAL": 60,
    "FEED_TIMEOUT": 30.0,
    "FEED_MAX_BYTES": 50 * 1024 * 1024,
    # CA bundle for HTTPS feeds (None: the system's).
    "FEED_CA_FILE": None,
}


def dns_setting(name):
    return getattr(settings, "DNS", {}).get(name, DEFAULTS[name])

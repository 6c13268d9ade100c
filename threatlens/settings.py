"""ThreatLens settings, read from the environment (see README "Configuration").

Two modes:
- embedded (default): SQLite file, in-memory channel layer, local cache, one process;
  a fresh clone runs and tests with no configuration at all.
DEBUG is off in both unless DEBUG=true.
- production (`THREATLENS_MODE=production`): SECRET_KEY and ALLOWED_HOSTS are required,
  cookies are secure; `DATABASE_URL` and `REDIS_URL` name PostgreSQL and Redis.
"""

import fnmatch
import os
import re
import shlex
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

from threatlens.env import (
    env_bool,
    env_duration,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)
from threatlens.serving import embedded_allowed_hosts

BASE_DIR = Path(__file__).resolve().parent.parent

MODE = env_str("THREATLENS_MODE", "embedded")
if MODE not in ("embedded", "production"):
    raise ImproperlyConfigured(
        f"THREATLENS_MODE={MODE!r} is not valid: expected embedded or production."
    )
PRODUCTION = MODE == "production"

# Off unless asked for: a debug page shows settings and code to whoever reaches the port.
DEBUG = env_bool("DEBUG", False)


def _secret_key():
    key = env_str("SECRET_KEY")
    if key:
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5):
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 varied characters.")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when THREATLENS_MODE=production.")
    # Embedded default: generate once and keep it in an ignored file, so sessions and
    # tokens survive restarts without a key ever being committed.
    key_file = Path(env_str("SECRET_KEY_FILE", str(BASE_DIR / ".secret_key")))
    if not key_file.exists():
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

# Where `make run` listens (its HOST): the embedded default answers there too.
SERVE_HOST = env_str("SERVE_HOST", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else embedded_allowed_hosts(SERVE_HOST))
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when THREATLENS_MODE=production.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "threatlens.accounts",
    "threatlens.audit",
    "threatlens.monitoring",
    "threatlens.ui",
    "realtime",
    "incidents",
    "dns",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The actor and address of the request, for audit rows that signals write.
    "threatlens.audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "threatlens.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "threatlens.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
    schemes=("sqlite", "postgres", "postgresql", "pgsql"),
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Connections belong to threads, and an ASGI server runs code in many: request
    # threads (threatlens.handlers keeps some), the hub's, the consumers'. Persistent
    # connections (CONN_MAX_AGE) would leave an idle PostgreSQL backend behind in each.
    # Django's answer under ASGI is psycopg's pool: a connection is taken from it and
    # given back at request end, and the pool bounds how many a process opens.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env_int("DATABASE_POOL_SIZE", 20, minimum=2, maximum=1000),
        "timeout": 10,
    }
if env_str("DATABASE_TEST_NAME"):
    # Lets several test runs share one PostgreSQL server without clashing.
    DATABASES["default"]["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the server read while a manage.py command writes; IMMEDIATE transactions
    # take the write lock up front instead of failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests get a file of their own, not SQLite's shared in-memory database: that one
    # locks whole tables and fails at once, instead of waiting, when the hub's threads
    # read while a request writes.
    DATABASES["default"].setdefault("TEST", {})
    DATABASES["default"]["TEST"].setdefault(
        "NAME", str(Path(tempfile.gettempdir()) / f"threatlens-test-{os.getpid()}.sqlite3")
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Threads of finished HTTP requests kept, with their database connections, for the next
# requests (threatlens.handlers); more run while more requests are in progress at once.
REQUEST_THREADS_KEPT = env_int("REQUEST_THREADS_KEPT", 8, minimum=1, maximum=1000)
# The server's garbage collector (threatlens/collector.py): its youngest generation is
# collected every this many allocations (Python's default: 700), after the loaded
# application is frozen out of every collection; 0 leaves the collector as Python sets it.
SERVER_GC_YOUNG_THRESHOLD = env_int("SERVER_GC_YOUNG_THRESHOLD", 20_000, minimum=0)

# --- Redis: channel layer and cache ---------------------------------------------------

REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))
# Prefix of every Redis key (layer and cache), so several deployments or test runs can
# share one Redis.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "threatlens")

# The hub's per-process channel receives every event once for all of its connections,
# so it gets a deep queue; Channels' default capacity of 100 drops bursts silently.
HUB_CHANNEL_CAPACITY = env_int("REALTIME_HUB_CHANNEL_CAPACITY", 100_000, minimum=100)
HUB_CHANNEL_GLOB = "rthub.*"
if REDIS_URL:
    # channels-redis' pub/sub layer: the only members of its groups are the hubs, one per
    # process, and a hub reads what arrives in bulk from its subscription. The core layer
    # costs several Redis round trips per message received (BZPOPMIN and its backup
    # set), so under a burst a hub fell seconds behind. What pub/sub does not keep (a hub
    # away while Redis restarts) the hub reads from the event table.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}.layer"},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}.cache",
            "TIMEOUT": 300,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {
                "expiry": 60,
                "capacity": 1000,
                # InMemoryChannelLayer does not compile its channel_capacity globs (the
                # Redis layer does), so it gets the compiled (pattern, capacity) pairs.
                "channel_capacity": [
                    (re.compile(fnmatch.translate(HUB_CHANNEL_GLOB)), HUB_CHANNEL_CAPACITY)
                ],
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "threatlens",
            "TIMEOUT": 300,
        }
    }

# --- Auth ------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's ModelBackend behind the failed-login throttle (admin and UI logins too).
AUTHENTICATION_BACKENDS = ["threatlens.accounts.backends.ThrottledModelBackend"]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=env_duration("JWT_ACCESS_TOKEN_LIFETIME", 15 * 60, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_duration("JWT_REFRESH_TOKEN_LIFETIME", 24 * 3600, minimum=60)
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}

# Failed logins per username and per client address before HTTP 429.
LOGIN_THROTTLE_FAILURES = env_int("LOGIN_THROTTLE_FAILURES", 5, minimum=1)
LOGIN_THROTTLE_WINDOW = env_duration("LOGIN_THROTTLE_WINDOW", 300, minimum=1)
# Trust X-Forwarded-For for the client address (only behind a proxy that sets it), taking
# the entry the NUM_PROXIES trusted proxies added: the NUM_PROXIES-th from the right
# (realtime/client_address.py). Entries left of it are the client's own and never trusted.
USE_X_FORWARDED_FOR = env_bool("USE_X_FORWARDED_FOR", False)
NUM_PROXIES = env_int("NUM_PROXIES", 1, minimum=0, maximum=100)

# --- REST ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50, minimum=1, maximum=1000),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "threatlens.api.exception_handler",
    # DRF's defaults, with JSON nested too deep a 400 rather than a 500.
    "DEFAULT_PARSER_CLASSES": [
        "realtime.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ThreatLens API",
    "DESCRIPTION": "Alerts, incidents, security events, DNS and audit for ThreatLens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the app's own static files (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status`: name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "AlertStatusEnum": "incidents.models.AlertStatus",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "RawLogStatusEnum": "incidents.models.RawLogStatus",
        "BulkOperationStatusEnum": "dns.models.BulkOperation.Status",
    },
}

# --- Realtime (DESIGN.md "Settings") -------------------------------------------------------

REALTIME = {
    "MAX_CONNECTIONS": env_int("REALTIME_MAX_CONNECTIONS", 100, minimum=1),
    "MAX_CONNECTIONS_PER_USER": env_int("REALTIME_MAX_CONNECTIONS_PER_USER", 10, minimum=1),
    "MAX_FRAME_BYTES": env_int("REALTIME_MAX_FRAME_BYTES", 65536, minimum=256),
    "QUEUE_SIZE": env_int("REALTIME_QUEUE_SIZE", 1000, minimum=10),
    "REPLAY_WINDOW": env_duration("REALTIME_REPLAY_WINDOW", 3600, minimum=1),
    "REPLAY_MAX_EVENTS": env_int("REALTIME_REPLAY_MAX_EVENTS", 1000, minimum=1),
    "PING_INTERVAL": env_duration("REALTIME_PING_INTERVAL", 30, minimum=0.05),
    "AUTH_TIMEOUT": env_duration("REALTIME_AUTH_TIMEOUT", 10, minimum=0.05),
    # How often every process compares its sockets' users and sessions with the database
    # (roles, deactivation, logout, password change, session expiry reach every socket).
    "ACCESS_CHECK_INTERVAL": env_duration("REALTIME_ACCESS_CHECK_INTERVAL", 5, minimum=0.05),
    # Failed socket authentications: audited once per source and window (then one row
    # with the count), and a credential that failed AUTH_FAILURE_LIMIT times from one
    # source is refused without accepting the socket until the window ends.
    "AUTH_FAILURE_WINDOW": env_duration("REALTIME_AUTH_FAILURE_WINDOW", 60, minimum=1),
    "AUTH_FAILURE_LIMIT": env_int("REALTIME_AUTH_FAILURE_LIMIT", 3, minimum=1),
    # A socket whose client reads nothing while its send buffer is full is closed after.
    "SEND_TIMEOUT": env_duration("REALTIME_SEND_TIMEOUT", 30, minimum=0.1),
    "BATCH_WINDOW": env_duration("REALTIME_BATCH_WINDOW", 0.1, minimum=0),
    "ALLOWED_ORIGINS": env_list("REALTIME_ALLOWED_ORIGINS", []),
    "MESSAGE_RATE": env_int("REALTIME_MESSAGE_RATE", 100, minimum=1),
    "SUBSCRIPTION_RATE": env_int("REALTIME_SUBSCRIPTION_RATE", 10, minimum=1),
    "ADMIN_COMMAND_RATE": env_int("REALTIME_ADMIN_COMMAND_RATE", 5, minimum=1),
    "RATE_WINDOW": env_duration("REALTIME_RATE_WINDOW", 60, minimum=1),
    # How often the hub looks in the event table for events published by another
    # process when there is no shared channel layer (embedded default).
    "EVENT_POLL_INTERVAL": env_duration("REALTIME_EVENT_POLL_INTERVAL", 0.5, minimum=0.05),
    # On SIGTERM: close sockets with 1012 (reconnect) within this bound, then stop.
    "HANDLE_SIGTERM": env_bool("REALTIME_HANDLE_SIGTERM", True),
    "SHUTDOWN_TIMEOUT": env_duration("REALTIME_SHUTDOWN_TIMEOUT", 5, minimum=0.1),
    "EVENT_RETENTION": env_duration("REALTIME_EVENT_RETENTION", 7 * 86400, minimum=60),
}

# The server fast paths (realtime/servers/, docs/servers.md): `all`, `none`, or a list of
# their names. Each is also off when a library it reaches into is not at its pinned version.
REALTIME_FAST_PATHS = env_list("REALTIME_FAST_PATHS", ["all"])
# `POST /api/realtime/publish/` of one event with a token known valid, served before
# Django's request cycle (realtime/fast_publish.py, docs/development.md section 8); false:
# all through DRF.
PUBLISH_FAST_PATH = env_bool("PUBLISH_FAST_PATH", True)
# Groups of that path's events stored at once, each in its own transaction and thread.
# 1: more let PostgreSQL share a log flush between overlapping commits, but their groups'
# ids interleave and reach the hubs out of id order (a client resuming from the highest id
# it saw could miss some), and 4 measured slower than 1 here (bench/RESULTS.md). SQLite
# writes one transaction at a time.
PUBLISH_COMMITS_IN_FLIGHT = env_int("PUBLISH_COMMITS_IN_FLIGHT", 1, minimum=1, maximum=64)

# Roles are groups, strongest first; a user's role is the first group they belong to.
ROLES = ("admin", "analyst", "viewer")

# Event types a new connection is subscribed to, per role (DESIGN.md "Roles and events").
# Items: an event type, `family:<name>`, `*` (everything the role may receive) and
# `-<event type>` to take one out. Each list can be replaced by an environment variable.
REALTIME_DEFAULT_SUBSCRIPTIONS = {
    "admin": env_list("REALTIME_DEFAULT_SUBSCRIPTIONS_ADMIN", ["*", "-system_metrics"]),
    "analyst": env_list(
        "REALTIME_DEFAULT_SUBSCRIPTIONS_ANALYST",
        [
            "security_event",
            "security_alert",
            "threat_detected",
            "new_alert",
            "alert_updated",
            "incident_created",
            "incident_updated",
            "health_alert",
            "health_update",
            "system_metrics",
            "family:user",
            "family:dns",
        ],
    ),
    "viewer": env_list(
        "REALTIME_DEFAULT_SUBSCRIPTIONS_VIEWER",
        ["health_update", "system_metrics", "system_status", "family:user"],
    ),
    None: ["family:user"],
}

# Serve /metrics without login (only for a scraper on a private network).
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# The health report /realtime/status shows beside the hub's figures (realtime imports no
# project app: it is named here).
REALTIME_HEALTH_REPORT = "threatlens.health.health_report"

ALERT_SEVERITY_THRESHOLD = env_int("ALERT_SEVERITY_THRESHOLD", 7, minimum=1, maximum=10)

# --- Detection pipeline and monitors ----------------------------------------------------

LOG_UPLOAD_MAX_BYTES = env_int("LOG_UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
LOG_PROCESSING = env_str("LOG_PROCESSING", "auto")
if LOG_PROCESSING not in ("auto", "inline", "thread"):
    raise ImproperlyConfigured(
        f"LOG_PROCESSING={LOG_PROCESSING!r} is not valid: expected auto, inline or thread."
    )
LOG_PROCESSING_INLINE_MAX_BYTES = env_int("LOG_PROCESSING_INLINE_MAX_BYTES", 256 * 1024, minimum=0)
LOG_PROCESSING_CHUNK_LINES = env_int("LOG_PROCESSING_CHUNK_LINES", 500, minimum=1)
# Detection state per rule (counted addresses, users, claims): at most this many keys,
# the stalest evicted first and counted (docs/ingest.md).
DETECTION_STATE_MAX_KEYS = env_int("DETECTION_STATE_MAX_KEYS", 10_000, minimum=1)
# Where it lives: "memory" (this process), "redis" (shared by every worker, REDIS_URL) or
# "auto" (redis when REDIS_URL is set).
DETECTION_STATE_STORE = env_str("DETECTION_STATE_STORE", "auto")
if DETECTION_STATE_STORE not in ("auto", "memory", "redis"):
    raise ImproperlyConfigured(
        f"DETECTION_STATE_STORE={DETECTION_STATE_STORE!r} is not valid: expected auto, "
        "memory or redis."
    )
if DETECTION_STATE_STORE == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("DETECTION_STATE_STORE=redis needs REDIS_URL.")
# Seconds without progress after which a raw log stuck mid-stage is resumed (a crash).
RAW_LOG_RESUME_AFTER = env_int("RAW_LOG_RESUME_AFTER", 60, minimum=0)
RAW_LOG_RESUME_REPLAY_LINES = env_int("RAW_LOG_RESUME_REPLAY_LINES", 100_000, minimum=0)
RESUME_RAW_LOGS = env_bool("RESUME_RAW_LOGS", True)
WATCH_LOGS = env_list("WATCH_LOGS", [])  # "path" or "source=path" items
WATCH_LOGS_INTERVAL = env_duration("WATCH_LOGS_INTERVAL", 2, minimum=0.1)

# Sigma rules (docs/sigma.md): the folder `manage.py sync_sigma_rules` loads (empty: none),
# whether `migrate` stores the shipped rules (incidents/sigma/rules/, which replace the
# built-in brute-force rules; off: it removes them), how often each process checks for
# changed rules, and how long one rule stays quiet for the same source address after it
# fired (seconds).
SIGMA_RULES_DIR = env_str("SIGMA_RULES_DIR", "")
SIGMA_SHIPPED_RULES = env_bool("SIGMA_SHIPPED_RULES", True)
SIGMA_RELOAD_SECONDS = env_duration("SIGMA_RELOAD_SECONDS", 1, minimum=0)
SIGMA_COOLDOWN = env_int("SIGMA_COOLDOWN", 60, minimum=0)
MONITORS_IN_PROCESS = env_bool("MONITORS_IN_PROCESS", not REDIS_URL)
MONITORS = {
    "METRICS_INTERVAL": env_duration("MONITORS_METRICS_INTERVAL", 5, minimum=0.5),
    "CHECK_INTERVAL": env_duration("MONITORS_CHECK_INTERVAL", 15, minimum=1),
    "HEALTH_CHECK_INTERVAL": env_duration("MONITORS_HEALTH_CHECK_INTERVAL", 30, minimum=1),
    "CHECK_TIMEOUT": env_duration("MONITORS_CHECK_TIMEOUT", 5, minimum=0.5),
    # Must exceed CHECK_TIMEOUT + 1 s, or a slow round loses the lease.
    "LEADER_TTL": env_int("MONITORS_LEADER_TTL", 20, minimum=10),
    "DISK_PATH": env_str("MONITORS_DISK_PATH", "/"),
}

# --- Syslog receiver (incidents/syslog, docs/syslog.md) ------------------------------------

# A port of 0 turns its listener off (the default: nothing listens until asked).
SYSLOG_BIND = env_str("SYSLOG_BIND", "127.0.0.1")
SYSLOG_UDP_PORT = env_int("SYSLOG_UDP_PORT", 0, minimum=0, maximum=65535)
SYSLOG_TCP_PORT = env_int("SYSLOG_TCP_PORT", 0, minimum=0, maximum=65535)
SYSLOG_TLS_PORT = env_int("SYSLOG_TLS_PORT", 0, minimum=0, maximum=65535)
SYSLOG_RELP_PORT = env_int("SYSLOG_RELP_PORT", 0, minimum=0, maximum=65535)
SYSLOG_RELP_TLS = env_bool("SYSLOG_RELP_TLS", False)
SYSLOG_TLS_CERT = env_str("SYSLOG_TLS_CERT", "")
SYSLOG_TLS_KEY = env_str("SYSLOG_TLS_KEY", "")
# Client certificates signed by this CA are required (mutual TLS) when it is set.
SYSLOG_TLS_CLIENT_CA = env_str("SYSLOG_TLS_CLIENT_CA", "")
if bool(SYSLOG_TLS_CERT) != bool(SYSLOG_TLS_KEY):
    raise ImproperlyConfigured("SYSLOG_TLS_CERT and SYSLOG_TLS_KEY must be set together.")
if (SYSLOG_TLS_PORT or SYSLOG_RELP_TLS) and not SYSLOG_TLS_CERT:
    raise ImproperlyConfigured(
        "SYSLOG_TLS_PORT and SYSLOG_RELP_TLS need SYSLOG_TLS_CERT and SYSLOG_TLS_KEY."
    )
# RFC 5426 asks receivers to take at least 480 bytes (2048 should be, RFC 5425 8192).
SYSLOG_MAX_MESSAGE_BYTES = env_int(
    "SYSLOG_MAX_MESSAGE_BYTES", 65536, minimum=480, maximum=16 * 1024 * 1024
)
SYSLOG_MAX_CONNECTIONS = env_int("SYSLOG_MAX_CONNECTIONS", 1000, minimum=1)
# Long: a TCP sender that finds its idle connection closed loses the next message it
# writes before it notices (plain TCP syslog has no acknowledgements).
SYSLOG_IDLE_TIMEOUT = env_duration("SYSLOG_IDLE_TIMEOUT", 3600, minimum=1)
# The server process runs the receiver (like the monitors); next to several server
# processes, `manage.py run_syslog` does.
SYSLOG_IN_PROCESS = env_bool("SYSLOG_IN_PROCESS", not REDIS_URL)
# Where such a server runs it: `child`, a `run_syslog` child process it supervises (its
# parsing and detection then leave the hub's interpreter lock alone), or `loop`, on the
# server's own event loop (one process, as before).
SYSLOG_PROCESS = env_str("SYSLOG_PROCESS", "child")
if SYSLOG_PROCESS not in ("child", "loop"):
    raise ImproperlyConfigured(f"SYSLOG_PROCESS must be child or loop, not {SYSLOG_PROCESS!r}")

# --- DNS ---------------------------------------------------------------------------------


def _command(name, default):
    """A command line from the environment, split as a shell would; `none` turns it off;
    unset with a `None` default leaves the choice to the DNS app."""
    value = env_str(name, default)
    if value is None:
        return None
    return [] if value.lower() == "none" else shlex.split(value)


DNS = {
    "RPZ_ZONE": env_str("DNS_RPZ_ZONE", "rpz"),
    "BULK_MAX_ITEMS": env_int("DNS_BULK_MAX_ITEMS", 50_000, minimum=1),
    "BIND_ENABLED": env_bool("DNS_BIND_ENABLED", False),
    "BIND_DIR": env_str("DNS_BIND_DIR", str(BASE_DIR / "bind")),
    "BIND_CHECKCONF_COMMAND": _command("DNS_BIND_CHECKCONF_COMMAND", "named-checkconf {conf}"),
    "BIND_CHECKZONE_COMMAND": _command(
        "DNS_BIND_CHECKZONE_COMMAND", "named-checkzone {zone} {file}"
    ),
    "BIND_RELOAD_COMMAND": _command("DNS_BIND_RELOAD_COMMAND", None),
    "BIND_NAMED_CONF": env_bool("DNS_BIND_NAMED_CONF", False),
    "BIND_LISTEN": env_str("DNS_BIND_LISTEN", "127.0.0.1"),
    "BIND_PORT": env_int("DNS_BIND_PORT", 53, minimum=1),
    "BIND_CONTROL_PORT": env_int("DNS_BIND_CONTROL_PORT", 953, minimum=1),
    "BIND_STATS_PORT": env_int("DNS_BIND_STATS_PORT", 8053, minimum=0),
    "BIND_CHECK_INTERVAL": env_duration("DNS_BIND_CHECK_INTERVAL", 30, minimum=1),
    "BIND_COMMAND_TIMEOUT": env_duration("DNS_BIND_COMMAND_TIMEOUT", 30, minimum=1),
    "FORWARDER_PROBE_NAME": env_str("DNS_FORWARDER_PROBE_NAME", "example.com"),
    "FORWARDER_TIMEOUT": env_float("DNS_FORWARDER_TIMEOUT", 2.0, minimum=0.05),
    "FORWARDER_CHECK_INTERVAL": env_duration("DNS_FORWARDER_CHECK_INTERVAL", 60, minimum=1),
    "FORWARDER_SLOW_MS": env_float("DNS_FORWARDER_SLOW_MS", 500.0, minimum=1),
    "FEED_CHECK_INTERVAL": env_duration("DNS_FEED_CHECK_INTERVAL", 60, minimum=1),
    "FEED_TIMEOUT": env_duration("DNS_FEED_TIMEOUT", 30, minimum=0.1),
    "FEED_MAX_BYTES": env_int("DNS_FEED_MAX_BYTES", 50 * 1024 * 1024, minimum=1024),
    "FEED_CA_FILE": env_str("DNS_FEED_CA_FILE", None),
}

# --- Internationalisation, static -----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

# --- Production hardening (`manage.py check --deploy`) ------------------------------------

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # uvicorn's line per WebSocket, left out (threatlens/serverlog.py).
    "filters": {"socket_lines": {"()": "threatlens.serverlog.SocketLines"}},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "uvicorn.error": {"filters": ["socket_lines"]},
    },
}

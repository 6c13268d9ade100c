"""What every parser returns, and the date and address helpers they share."""

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

# Categories of a parsed line (not of a security event: rules choose those).
AUTHENTICATION = "authentication"
AUTHORIZATION = "authorization"
WEB = "web"
DNS = "dns"
SYSTEM = "system"
UNKNOWN = "unknown"
CATEGORIES = (AUTHENTICATION, AUTHORIZATION, WEB, DNS, SYSTEM, UNKNOWN)

MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}


@dataclass
class ParsedLine:
    """One log line, understood as far as its format allows.

    `fields` uses the same names across formats (user, src_ip, port, dst, method, path,
    status, user_agent, domain, qtype, command, service, host, app, pid, ...) so that rules
    can match lines without knowing where they came from. `malformed` means a known format
    clearly started but broke; `error` then says how. A line no parser recognised has
    category and format "unknown" and is never an error.
    """

    raw: str
    format: str = UNKNOWN
    category: str = UNKNOWN
    action: str | None = None
    timestamp: datetime | None = None
    fields: dict = field(default_factory=dict)
    malformed: bool = False
    error: str = ""

    def get(self, name, default=None):
        return self.fields.get(name, default)


def default_timezone():
    """The zone for timestamps written without one: Django's TIME_ZONE, else UTC."""
    try:
        from django.conf import settings
        from django.utils import timezone

        if settings.configured:
            return timezone.get_default_timezone()
    except Exception:  # Django absent or misconfigured: the parsers still work alone.
        pass
    return UTC


def aware(moment, tz=None):
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz or default_timezone())
    return moment


def parse_iso(text, tz=None):
    """An ISO 8601 / RFC 3339 timestamp as an aware datetime, or None."""
    text = text.strip()
    if not text or text == "-":
        return None
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        return aware(datetime.fromisoformat(text), tz)
    except ValueError:
        return None


def parse_epoch(value):
    """Seconds or milliseconds since the epoch (numbers above 10^11 are milliseconds)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number > 1e11:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def month_number(name):
    return MONTHS.get(name[:1].upper() + name[1:3].lower()) if len(name) == 3 else None


def infer_year(month, day, hour, minute, second, *, reference=None, tz: tzinfo | None = None):
    """A datetime for a timestamp without a year (RFC 3164), in the year that puts it in the
    past relative to `reference`: a December line read in January belongs to last year.
    Returns None for an impossible date (Feb 30)."""
    tz = tz or default_timezone()
    reference = reference or datetime.now(tz)
    for year in (reference.year, reference.year - 1):
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            continue  # Feb 29 in a non-leap year: try the previous year.
        # A day of slack for clock skew between the writer and us.
        if moment <= reference + timedelta(days=1):
            return moment
    try:
        return datetime(reference.year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None


def normalise_address(text):
    """An IP address in canonical form (IPv4-mapped IPv6 unwrapped); other text unchanged."""
    if text is None:
        return None
    return _normalised(text)


# Logs repeat the same addresses line after line: ipaddress is slow enough to show.
@lru_cache(maxsize=65536)
def _normalised(text):
    candidate = text.strip("[]")
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return text
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def is_ip(text):
    if isinstance(text, str):
        return _is_ip(text)
    return _is_ip.__wrapped__(text)


@lru_cache(maxsize=65536)
def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except (TypeError, ValueError):
        return False
    return True


def shannon_entropy(text):
    """Bits per character; random-looking labels score high (about 3.5-4.5 for 20+ chars)."""
    if not text:
        return 0.0
    counts = Counter(text)
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in counts.values())

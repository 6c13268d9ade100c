"""DNS validation as BIND would do it: pure functions, no database.

Model `clean()`, the REST serializers, the zone file importer and the bulk jobs all call
these, so a record is judged by the same rules whichever way it arrives. Each function
raises `django.core.exceptions.ValidationError` (keyed by field where it concerns a
field) and returns the normalised value: names lower-case, addresses in canonical form.

Names follow RFC 1035/2181 and BIND's `check-names` for master zones: labels of 1-63
octets, 255 octets in all (253 characters written without the final dot), letters,
digits and hyphens, no hyphen at either end of a label; underscores are allowed except
where a host name is required (owners of A, AAAA and MX records, targets of NS, MX, SRV
and PTR records). A wildcard `*` is allowed only as the whole first label of an owner.
"""

import ipaddress
import re
from datetime import date

from django.core.exceptions import ValidationError

MAX_TTL = 2**31 - 1  # RFC 2181 section 8
MAX_U16 = 65535
MAX_SERIAL = 2**32 - 1  # RFC 1982: serials are 32-bit unsigned
MAX_NAME_CHARS = 253  # 255 octets on the wire, written without the root's final dot
MAX_LABEL = 63
MAX_TXT_STRING = 255  # one <character-string>, RFC 1035 section 3.3
MAX_RDATA = 65535

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS")
# Types whose owner must be a host name (BIND check-names for master zones).
HOST_OWNER_TYPES = frozenset({"A", "AAAA", "MX"})
# Types whose value is a domain name, and whether that name must be a host name.
TARGET_TYPES = {"CNAME": False, "NS": True, "PTR": True, "MX": True, "SRV": True}

_LABEL = re.compile(r"^[a-z0-9_-]+$")
_HOST_LABEL = re.compile(r"^[a-z0-9-]+$")


def _error(message, field=None, code="invalid"):
    if field:
        return ValidationError({field: ValidationError(message, code=code)})
    return ValidationError(message, code=code)


# --- Names ------------------------------------------------------------------------------


def check_label(label, *, host=False, field=None, name=None):
    """One label: 1-63 octets of letters, digits, hyphens (and underscores unless `host`),
    no hyphen first or last."""
    shown = name or label
    if not label:
        raise _error(f"{shown!r}: empty label (two dots in a row, or a leading dot).", field)
    if len(label.encode()) > MAX_LABEL:
        raise _error(f"{shown!r}: the label {label[:20]!r}... is longer than 63 characters.", field)
    pattern = _HOST_LABEL if host else _LABEL
    if not pattern.match(label):
        allowed = "letters, digits and hyphens" + ("" if host else " (and underscores)")
        extra = " Underscores are not allowed in host names." if host and "_" in label else ""
        raise _error(f"{shown!r}: the label {label!r} may only contain {allowed}.{extra}", field)
    if label.startswith("-") or label.endswith("-"):
        raise _error(f"{shown!r}: the label {label!r} may not start or end with a hyphen.", field)


def check_name(name, *, host=False, wildcard=False, field=None):
    """A domain name written without the final dot (already lower-case): labels and length.

    `wildcard` allows `*` as the whole first label.
    """
    if len(name) > MAX_NAME_CHARS:
        raise _error(f"{name[:40]!r}...: a domain name is at most 253 characters.", field)
    labels = name.split(".")
    for index, label in enumerate(labels):
        if label == "*":
            if not wildcard:
                raise _error(f"{name!r}: a wildcard '*' is not allowed here.", field)
            if index != 0:
                raise _error(f"{name!r}: the wildcard '*' may only be the first label.", field)
            continue
        if "*" in label:
            raise _error(
                f"{name!r}: '*' must be a whole label ('*.example'), not {label!r}.", field
            )
        # A wildcard owner is checked as a host name below it ("*.www" for an A record).
        check_label(label, host=host, field=field, name=name)


def normalize_zone_name(value, *, field="name"):
    """A zone name: a domain name without wildcard, stored lower-case without the final dot."""
    name = str(value or "").strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise _error("A zone name is required (the root zone '.' is not managed here).", field)
    check_name(name, field=field)
    return name


def normalize_hostname(value, *, field):
    """An absolute host name (SOA primary NS, forwarder names): lower-case, no final dot."""
    name = str(value or "").strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise _error("A host name is required.", field)
    _refuse_address(name, field)
    check_name(name, host=True, field=field)
    return name


def _refuse_address(name, field):
    try:
        ipaddress.ip_address(name.rstrip("."))
    except ValueError:
        return
    raise _error(f"{name!r} is an address; a host name is expected here.", field)


def is_subdomain(name, zone_name):
    """True when the absolute `name` (no final dot) is `zone_name` or below it."""
    return name == zone_name or name.endswith("." + zone_name)


def relative_name(absolute, zone_name):
    """`www.example.com` in `example.com` -> `www`; the apex -> `@`."""
    if absolute == zone_name:
        return "@"
    return absolute[: -(len(zone_name) + 1)]


def absolute_name(relative, zone_name):
    """The inverse of `relative_name` (accepts absolute names with a final dot too)."""
    if relative == "@":
        return zone_name
    if relative.endswith("."):
        return relative[:-1]
    return f"{relative}.{zone_name}"


def normalize_owner(value, zone_name, *, record_type=None, field="name"):
    """A record's owner name, stored relative to the zone (`@` for the apex).

    Accepts `@`, a relative name, or an absolute name with the final dot that lies inside
    the zone. A relative name ending in the zone's own name (`www.example.com` in
    `example.com`) is refused: BIND would read it as `www.example.com.example.com.`.
    """
    name = str(value if value is not None else "").strip().lower()
    if name in ("", "@"):
        return "@"
    if name.endswith("."):
        absolute = name[:-1]
        if not absolute or not is_subdomain(absolute, zone_name):
            raise _error(f"{value!r} is outside the zone {zone_name}.", field)
    else:
        if is_subdomain(name, zone_name):
            raise _error(
                f"{value!r} would mean {name}.{zone_name}; write {name}. (with the final "
                f"dot) or the name relative to the zone.",
                field,
            )
        absolute = f"{name}.{zone_name}"
    host = record_type in HOST_OWNER_TYPES
    check_name(absolute, host=host, wildcard=True, field=field)
    return relative_name(absolute, zone_name)


def normalize_target(value, zone_name, *, host=True, field="value", allow_root=False):
    """A domain name in record data (CNAME, NS, PTR, MX, SRV targets).

    Relative names are inside the zone; absolute names end with a dot. Returns the name
    lower-case, in the form given (relative stays relative). Addresses are refused: an MX
    or NS must name a host, not an address.
    """
    name = str(value or "").strip().lower()
    if not name:
        raise _error("A target name is required.", field)
    if name == ".":
        if allow_root:
            return "."
        raise _error("The root '.' is not a valid target here.", field)
    if name == "@":
        return "@"
    _refuse_address(name, field)
    if name.endswith("."):
        absolute = name[:-1]
    else:
        if zone_name and is_subdomain(name, zone_name):
            raise _error(
                f"{value!r} would mean {name}.{zone_name}; write {name}. (with the final "
                f"dot) or the name relative to the zone.",
                field,
            )
        absolute = f"{name}.{zone_name}" if zone_name else name
    check_name(absolute, host=host, field=field)
    return name


def email_to_rname(email, *, field="email"):
    """The SOA RNAME of an admin e-mail address: `john.doe@example.com` ->
    `john\\.doe.example.com.` (dots in the local part are escaped, RFC 1035 8)."""
    text = str(email or "").strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise _error(f"{email!r} is not an e-mail address (user@example.com).", field)
    if any(ch.isspace() or ch in '"();\\@' for ch in local) or not local.isascii():
        raise _error(f"{email!r}: the part before @ has characters a zone file cannot hold.", field)
    domain = domain.rstrip(".")
    check_name(domain, field=field)
    rname = local.replace(".", "\\.") + "." + domain + "."
    if len(rname) - 1 > MAX_NAME_CHARS:
        raise _error(f"{email!r} is too long for an SOA RNAME.", field)
    return rname


def rname_to_email(rname):
    """The inverse of `email_to_rname` (first unescaped dot becomes the @)."""
    text = rname.rstrip(".")
    index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == ".":
            return text[:index].replace("\\.", ".") + "@" + text[index + 1 :]
        index += 1
    raise ValidationError(f"{rname!r} is not an SOA RNAME (mailbox.domain.).")


# --- Numbers and addresses ----------------------------------------------------------------


def _integer(value, field, low, high, what):
    if isinstance(value, bool):
        raise _error(f"{what} must be a whole number.", field)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _error(f"{what} must be a whole number, not {value!r}.", field) from None
    if isinstance(value, float) and value != number:
        raise _error(f"{what} must be a whole number, not {value!r}.", field)
    if not low <= number <= high:
        raise _error(f"{what} must be between {low} and {high}, not {number}.", field)
    return number


def validate_ttl(value, *, field="ttl"):
    """TTL: 0..2147483647 seconds (RFC 2181)."""
    return _integer(value, field, 0, MAX_TTL, "TTL")


def validate_u16(value, *, field):
    """MX preference, SRV priority, weight and port: 0..65535."""
    return _integer(value, field, 0, MAX_U16, field.capitalize())


def validate_serial(value, *, field="serial"):
    return _integer(value, field, 0, MAX_SERIAL, "Serial")


def validate_ipv4(value, *, field="value"):
    """A dotted-quad IPv4 address (no leading zeros, no shorthand)."""
    text = str(value or "").strip()
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise _error(f"{value!r} is not an IPv4 address (an A record needs one).", field) from None


def validate_ipv6(value, *, field="value"):
    """An IPv6 address, stored in its compressed form; no zone index (`%eth0`)."""
    text = str(value or "").strip()
    if "%" in text:
        raise _error(f"{value!r}: a zone index ('%...') has no place in DNS.", field)
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise _error(
            f"{value!r} is not an IPv6 address (an AAAA record needs one).", field
        ) from None


def validate_ip(value, *, field):
    """Either family (masters, forwarders, forwarder addresses)."""
    text = str(value or "").strip()
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        raise _error(f"{value!r} is not an IP address.", field) from None


def validate_ip_list(values, *, field):
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        raise _error("Expected a list of IP addresses.", field)
    return [validate_ip(value, field=field) for value in values]


# --- TXT --------------------------------------------------------------------------------


def parse_txt(value, *, field="value"):
    """The <character-string>s of a TXT value, as bytes.

    A value that starts with a double quote is read as zone file text: one or more quoted
    strings (`"v=spf1 ..." "more"`), with `\\"`, `\\\\` and `\\DDD` escapes, each at most
    255 bytes. Any other value is one text of any length, split into 255-byte strings (on
    UTF-8 character boundaries) when written out.
    """
    text = str(value if value is not None else "")
    if not text.strip():
        raise _error("A TXT record needs some text.", field)
    if text.lstrip().startswith('"'):
        chunks = _parse_quoted_strings(text.strip(), field)
    else:
        chunks = split_txt(text.encode())
    if sum(len(chunk) + 1 for chunk in chunks) > MAX_RDATA:
        raise _error("The TXT value is longer than a DNS record can hold (65535 bytes).", field)
    return chunks


def _parse_quoted_strings(text, field):
    chunks, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        if text[index] != '"':
            raise _error(
                f"Quoted TXT strings must be separated by spaces; found {text[index]!r} "
                f"at position {index + 1}.",
                field,
            )
        index += 1
        buffer = bytearray()
        while True:
            if index >= len(text):
                raise _error("A quoted TXT string is not closed.", field)
            char = text[index]
            if char == '"':
                index += 1
                break
            if char == "\\":
                escaped, index = _read_escape(text, index, field)
                buffer += escaped
                continue
            buffer += char.encode()
            index += 1
        if len(buffer) > MAX_TXT_STRING:
            raise _error(
                f"A TXT string is at most 255 bytes; string {len(chunks) + 1} has "
                f"{len(buffer)}. Split it into several quoted strings.",
                field,
            )
        chunks.append(bytes(buffer))
    if not chunks:
        raise _error("A TXT record needs some text.", field)
    return chunks


def _read_escape(text, index, field):
    """`\\X` or `\\DDD` at `text[index]` -> (bytes, next index)."""
    digits = text[index + 1 : index + 4]
    if len(digits) == 3 and digits.isdigit():
        number = int(digits)
        if number > 255:
            raise _error(f"\\{digits} is not a byte value (0-255).", field)
        return bytes([number]), index + 4
    if index + 1 >= len(text):
        raise _error("A backslash at the end of a TXT string escapes nothing.", field)
    return text[index + 1].encode(), index + 2


def split_txt(data):
    """Split bytes into strings of at most 255 bytes without cutting a UTF-8 character."""
    chunks = []
    while len(data) > MAX_TXT_STRING:
        cut = MAX_TXT_STRING
        # Continuation bytes are 0b10xxxxxx; back up to the start of the character.
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        chunks.append(data[:cut])
        data = data[cut:]
    chunks.append(data)
    return chunks


def quote_txt_string(chunk):
    """One <character-string> in zone file syntax: quoted, with `\\"` and `\\\\`, and
    `\\DDD` for every byte outside printable ASCII (so exported files are plain ASCII)."""
    out = []
    for byte in chunk:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def txt_presentation(value):
    """A TXT value as zone file text: quoted strings of at most 255 bytes each."""
    return " ".join(quote_txt_string(chunk) for chunk in parse_txt(value))


# --- Records ------------------------------------------------------------------------------


def validate_record(
    zone_name, *, name, record_type, value, ttl=None, priority=None, weight=None, port=None
):
    """Check one record on its own and return its normalised fields.

    Collects the errors of every field into one `ValidationError` keyed by field.
    Relations between records (CNAME exclusivity, duplicates) are `check_record_set`'s job.
    """
    errors = {}
    result = {"record_type": str(record_type or "").upper()}
    rtype = result["record_type"]
    if rtype not in RECORD_TYPES:
        errors["record_type"] = [f"{record_type!r} is not one of {', '.join(RECORD_TYPES)}."]
        raise ValidationError(errors)

    def attempt(key, func, *args, **kwargs):
        try:
            result[key] = func(*args, **kwargs)
        except ValidationError as exc:
            for field, messages in _as_dict(exc, key).items():
                errors.setdefault(field, []).extend(messages)

    attempt("name", normalize_owner, name, zone_name, record_type=rtype, field="name")
    if result.get("name") == "@" and rtype == "CNAME":
        errors.setdefault("name", []).append(
            "A CNAME cannot be at the zone apex: the apex has SOA and NS records."
        )
    result["ttl"] = None
    if ttl not in (None, ""):
        attempt("ttl", validate_ttl, ttl, field="ttl")

    needs = {"MX": ("priority",), "SRV": ("priority", "weight", "port")}.get(rtype, ())
    for key, given in (("priority", priority), ("weight", weight), ("port", port)):
        if key in needs:
            if given in (None, ""):
                errors.setdefault(key, []).append(f"A {rtype} record needs a {key}.")
            else:
                attempt(key, validate_u16, given, field=key)
        else:
            if given not in (None, ""):
                errors.setdefault(key, []).append(f"A {rtype} record has no {key}.")
            result[key] = None

    if rtype == "A":
        attempt("value", validate_ipv4, value)
    elif rtype == "AAAA":
        attempt("value", validate_ipv6, value)
    elif rtype == "TXT":
        attempt("value", _normalize_txt, value)
    else:
        attempt(
            "value",
            normalize_target,
            value,
            zone_name,
            host=TARGET_TYPES[rtype],
            allow_root=rtype == "SRV",  # "." means "no such service here" (RFC 2782)
        )
    if errors:
        raise ValidationError(errors)
    return result


def _normalize_txt(value, field="value"):
    parse_txt(value, field=field)
    return str(value)


def _as_dict(exc, default_field):
    if hasattr(exc, "error_dict"):
        return {key: [m for e in errs for m in e.messages] for key, errs in exc.error_dict.items()}
    return {default_field: exc.messages}


def record_key(name, record_type, value, zone_name):
    """What makes two records the same RR for BIND: owner, type and data, compared
    case-insensitively with names made absolute."""
    if record_type in TARGET_TYPES and value not in (".",):
        value = absolute_name(value, zone_name) if value != "@" else zone_name
    elif record_type == "TXT":
        value = tuple(parse_txt(value))
    return (name, record_type, value)


def check_record_set(candidate, existing, zone_name):
    """Relations between records of one zone, as BIND enforces them when loading.

    `candidate` and each of `existing` are dicts with `name`, `record_type`, `value`
    (normalised) and optionally `id`; `existing` are the zone's other records (the
    candidate's own previous version is skipped by `id`). Raises `ValidationError`:
    - a CNAME never shares its name with any other record, whichever comes first;
    - no two identical records (same name, type and data).

    To check many candidates, keep one `RecordSets` and check each against it: that
    costs the same per candidate however many records share its name.
    """
    RecordSets(zone_name, existing).check(candidate)


class _NameSet:
    """The records at one owner name, counted by type and by record key."""

    __slots__ = ("count", "types", "keys")

    def __init__(self):
        self.count = 0
        self.types = {}  # record type -> how many (insertion order: the first type seen first)
        self.keys = {}  # record_key -> how many


class RecordSets:
    """A zone's records indexed by owner name, for `check_record_set`'s rules in constant
    time per record: a bulk job or an import of N records at one name costs O(N), where
    comparing each with every other record at the name cost O(N^2).

    Records are the dicts `check_record_set` takes; those with an `id` can be removed
    and are skipped when checking a candidate with the same `id` (its own old version).
    """

    def __init__(self, zone_name, records=()):
        self.zone_name = zone_name
        self._names = {}
        self._by_id = {}  # id -> (name, record type, record key)
        for record in records:
            self.add(record)

    def _key(self, record):
        return record_key(record["name"], record["record_type"], record["value"], self.zone_name)

    def add(self, record):
        name, rtype, key = record["name"], record["record_type"], self._key(record)
        names = self._names.get(name)
        if names is None:
            names = self._names[name] = _NameSet()
        names.count += 1
        names.types[rtype] = names.types.get(rtype, 0) + 1
        names.keys[key] = names.keys.get(key, 0) + 1
        if record.get("id") is not None:
            self._by_id[record["id"]] = (name, rtype, key)

    def remove(self, record_id):
        """Forget the record with this id (deleted, or about to be replaced)."""
        entry = self._by_id.pop(record_id, None)
        if entry is None:
            return
        name, rtype, key = entry
        names = self._names[name]
        names.count -= 1
        _decrement(names.types, rtype)
        _decrement(names.keys, key)

    def check(self, candidate):
        """Raise `ValidationError` when `candidate` breaks a rule against the other records."""
        name, rtype = candidate["name"], candidate["record_type"]
        names = self._names.get(name)
        if names is None:
            return
        own_type = own_key = None  # the candidate's own old version, if it is at this name
        if candidate.get("id") is not None:
            own_name, own_type, own_key = self._by_id.get(candidate["id"], (None, None, None))
            if own_name != name:
                own_type = own_key = None

        def others(counts, item, own_item):
            return counts.get(item, 0) - (1 if item == own_item else 0)

        if names.count - (1 if own_type is not None else 0) <= 0:
            return
        shown = absolute_name(name, self.zone_name)
        cnames = others(names.types, "CNAME", own_type)
        if rtype == "CNAME" and cnames:
            raise _error(f"{shown} already has a CNAME; a name can have only one.", "name")
        if rtype == "CNAME":
            other_type = next(t for t in names.types if others(names.types, t, own_type) > 0)
            raise _error(
                f"{shown} already has a {other_type} record; a CNAME cannot "
                f"exist beside other records of the same name.",
                "name",
            )
        if cnames:
            raise _error(f"{shown} is a CNAME; no other record can exist beside it.", "name")
        if others(names.keys, self._key(candidate), own_key) > 0:
            raise _error(f"The same {rtype} record already exists at {shown}.", "value")


def _decrement(counts, item):
    counts[item] -= 1
    if not counts[item]:
        del counts[item]


# --- Zones --------------------------------------------------------------------------------

ZONE_TYPES = ("master", "slave", "forward")


def validate_zone_fields(fields):
    """Check a zone's fields (a dict with any of the zone's writable fields) and return
    them normalised. Type-dependent rules need `zone_type` and the lists in `fields`."""
    errors, result = {}, {}

    def attempt(key, func, *args, **kwargs):
        try:
            result[key] = func(*args, **kwargs)
        except ValidationError as exc:
            for field, messages in _as_dict(exc, key).items():
                errors.setdefault(field, []).extend(messages)

    if "name" in fields:
        attempt("name", normalize_zone_name, fields["name"])
    if "zone_type" in fields:
        if fields["zone_type"] not in ZONE_TYPES:
            errors["zone_type"] = [
                f"{fields['zone_type']!r} is not one of {', '.join(ZONE_TYPES)}."
            ]
        else:
            result["zone_type"] = fields["zone_type"]
    if fields.get("primary_ns") not in (None, ""):
        attempt("primary_ns", normalize_hostname, fields["primary_ns"], field="primary_ns")
    if "email" in fields:
        attempt("email", _normalize_email, fields["email"])
    for key in ("refresh", "retry", "expire", "minimum", "default_ttl"):
        if key in fields:
            attempt(key, validate_ttl, fields[key], field=key)
    for key in ("masters", "forwarders"):
        if key in fields:
            attempt(key, validate_ip_list, fields[key], field=key)
    zone_type = result.get("zone_type", fields.get("zone_type"))
    if zone_type == "slave" and "masters" in result and not result["masters"]:
        errors.setdefault("masters", []).append("A slave zone needs at least one master server.")
    if zone_type == "forward" and "forwarders" in result and not result["forwarders"]:
        errors.setdefault("forwarders", []).append("A forward zone needs at least one forwarder.")
    if errors:
        raise ValidationError(errors)
    return result


def _normalize_email(value):
    email_to_rname(value)
    return str(value).strip().lower().rstrip(".")


# --- Serial -------------------------------------------------------------------------------


def next_serial(current, today):
    """The serial after `current` on `today`: date-based YYYYMMDDnn.

    The first change of a day starts at YYYYMMDD00; further changes add one. Past 99
    changes in a day the serial simply keeps counting (it then runs ahead of the date,
    and the following days continue from it), so it never repeats and never goes
    backward.
    """
    if not isinstance(today, date):
        raise TypeError("today must be a date")
    base = int(today.strftime("%Y%m%d")) * 100
    serial = max(int(current or 0) + 1, base)
    if serial > MAX_SERIAL:
        # Unreachable with date serials before the year 42949; RFC 1982 wrap-around would
        # look like a step backward to secondaries, so refuse instead.
        raise ValidationError("The zone serial cannot rise any further (32-bit limit).")
    return serial

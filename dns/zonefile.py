"""BIND zone files: writing a zone out, and reading one in (pure functions, no database).

`render_zone` writes a master zone (and `render_rpz` the response policy zone) in the
format `named-checkzone` reads. `parse_zone_file` reads the master file format of
RFC 1035 section 5 as BIND does: `$ORIGIN`, `$TTL`, parentheses across lines, comments,
quoted strings, relative and absolute names, an omitted owner (the previous one), an
optional class `IN` and TTL (with units, `1h30m`) in either order. Every problem is
reported with its line number; nothing is returned when there is any.
"""

import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from dns import validation

SUPPORTED_TYPES = ("SOA",) + validation.RECORD_TYPES
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TTL = re.compile(r"^(\d+)$|^((\d+[smhdw])+)$", re.IGNORECASE)
_CLASSES = ("IN", "CH", "HS", "CS", "ANY", "NONE")
MAX_ERRORS = 50


# --- Writing ------------------------------------------------------------------------------


def _rdata(record):
    rtype = record.record_type
    if rtype == "MX":
        return f"{record.priority} {record.value}"
    if rtype == "SRV":
        return f"{record.priority} {record.weight} {record.port} {record.value}"
    if rtype == "TXT":
        return validation.txt_presentation(record.value)
    return record.value


def render_zone(zone, records, *, generated_at=None):
    """The zone file text of a master zone: `$ORIGIN`, `$TTL`, SOA, the apex NS of the
    primary name server, then the records (apex first, then by name)."""
    origin = zone.name + "."
    lines = [
        f"; Zone {zone.name}, serial {zone.serial}"
        + (
            f", exported by ThreatLens at {generated_at:%Y-%m-%d %H:%M:%S %Z}"
            if generated_at
            else ""
        ),
        f"$ORIGIN {origin}",
        f"$TTL {zone.default_ttl}",
        f"@\tIN\tSOA\t{zone.mname} {zone.rname} (",
        f"\t\t\t{zone.serial}\t; serial",
        f"\t\t\t{zone.refresh}\t; refresh",
        f"\t\t\t{zone.retry}\t; retry",
        f"\t\t\t{zone.expire}\t; expire",
        f"\t\t\t{zone.minimum} )\t; minimum (negative caching TTL)",
    ]
    records = sorted(records, key=_sort_key)
    primary = zone.mname
    has_primary_ns = any(
        r.name == "@"
        and r.record_type == "NS"
        and validation.absolute_name(r.value, zone.name) + "." == primary
        for r in records
    )
    if not has_primary_ns:
        lines.append(f"@\tIN\tNS\t{primary}")
    width = max([len(r.name) for r in records] + [1])
    for record in records:
        ttl = "" if record.ttl is None else str(record.ttl)
        lines.append(
            f"{record.name.ljust(width)}\t{ttl}\tIN\t{record.record_type}\t{_rdata(record)}"
        )
    return "\n".join(lines) + "\n"


_TYPE_ORDER = {
    rtype: index
    for index, rtype in enumerate(("NS", "MX", "A", "AAAA", "TXT", "SRV", "CNAME", "PTR"))
}


def _sort_key(record):
    apex = record.name != "@"
    # Sort names from the top of the tree down (example: "www" before "a.www").
    labels = tuple(reversed(record.name.split("."))) if record.name != "@" else ()
    return (apex, labels, _TYPE_ORDER.get(record.record_type, 99), record.pk or 0)


RPZ_TARGETS = {
    "nxdomain": ".",
    "nodata": "*.",
    "passthru": "rpz-passthru.",
    "drop": "rpz-drop.",
}


def render_rpz(rules, *, origin, serial, ttl=300, generated_at=None):
    """A response policy zone (BIND `response-policy`) of the given rules: per rule
    `domain CNAME .` (nxdomain), `*.` (nodata), `rpz-passthru.`, `rpz-drop.` or the
    redirect target; `include_subdomains` adds the same for `*.domain`. The first rule
    of a domain wins (pass them manual rules first)."""
    origin = origin.rstrip(".") + "."
    lines = [
        f"; Response policy zone {origin}"
        + (
            f", exported by ThreatLens at {generated_at:%Y-%m-%d %H:%M:%S %Z}"
            if generated_at
            else ""
        ),
        f"$ORIGIN {origin}",
        f"$TTL {ttl}",
        f"@\tIN\tSOA\tlocalhost. hostmaster.localhost. ( {serial} 3600 900 1209600 {ttl} )",
        "@\tIN\tNS\tlocalhost.",
    ]
    seen = set()
    for rule in rules:
        if rule.domain in seen:
            continue
        seen.add(rule.domain)
        if rule.action == "redirect":
            target = rule.redirect_target.rstrip(".") + "."
        else:
            target = RPZ_TARGETS[rule.action]
        comment = f"\t; {rule.category}, {rule.source}"[:120]
        lines.append(f"{rule.domain}\tCNAME\t{target}{comment}")
        if rule.include_subdomains:
            lines.append(f"*.{rule.domain}\tCNAME\t{target}")
    return "\n".join(lines) + "\n"


# --- Reading ------------------------------------------------------------------------------


class ZoneFileError(ValidationError):
    """Problems found in a zone file: `problems` is a list of `(line, message)`."""

    def __init__(self, problems):
        self.problems = sorted(problems)
        super().__init__(
            {"zone_file": [f"line {line}: {message}" for line, message in self.problems]}
        )


@dataclass
class Token:
    text: str
    quoted: bool = False


@dataclass
class LogicalLine:
    line: int
    tokens: list = field(default_factory=list)
    owner_omitted: bool = False


@dataclass
class ParsedRecord:
    """One record read from a zone file. Names are absolute, lower-case, without the
    final dot; `ttl` None means the record gave none and no `$TTL` was in force."""

    line: int
    owner: str
    ttl: int | None
    record_type: str
    rdata: list


@dataclass
class ParsedZone:
    origin: str | None
    default_ttl: int | None
    soa: dict | None
    records: list


def parse_ttl(text):
    """`3600`, `1h`, `1h30m`, `2W` -> seconds; None when it is not a TTL."""
    if not _TTL.match(text):
        return None
    if text.isdigit():
        return int(text)
    return sum(int(n) * _TTL_UNITS[u.lower()] for n, u in re.findall(r"(\d+)([smhdw])", text, re.I))


def _tokenize_line(raw, lineno, problems):
    """Tokens of one physical line and its parenthesis balance."""
    tokens, depth, index, current = [], 0, 0, None

    def flush():
        nonlocal current
        if current is not None:
            tokens.append(Token(current))
            current = None

    while index < len(raw):
        char = raw[index]
        if char == ";":
            break
        if char in " \t\r":
            flush()
        elif char == "(":
            flush()
            depth += 1
        elif char == ")":
            flush()
            depth -= 1
        elif char == '"':
            flush()
            end, buffer = index + 1, []
            while end < len(raw) and raw[end] != '"':
                if raw[end] == "\\" and end + 1 < len(raw):
                    buffer.append(raw[end : end + 2])
                    end += 2
                    continue
                buffer.append(raw[end])
                end += 1
            if end >= len(raw):
                problems.append((lineno, "a quoted string is not closed on its line"))
                return tokens, depth
            tokens.append(Token("".join(buffer), quoted=True))
            index = end
        elif char == "\\" and index + 1 < len(raw):
            current = (current or "") + raw[index : index + 2]
            index += 1
        else:
            current = (current or "") + char
        index += 1
    flush()
    return tokens, depth


def logical_lines(text, problems):
    """Physical lines joined across parentheses, comments removed."""
    result, current, depth, opened_at = [], None, 0, 0
    for lineno, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        tokens, change = _tokenize_line(raw, lineno, problems)
        if depth > 0:
            current.tokens.extend(tokens)
        elif tokens:
            current = LogicalLine(lineno, tokens, owner_omitted=raw[:1] in (" ", "\t"))
            result.append(current)
            opened_at = lineno
        elif change:
            problems.append((lineno, "a parenthesis outside any record"))
            continue
        depth += change
        if depth < 0:
            problems.append((lineno, "')' without a matching '('"))
            depth = 0
    if depth > 0:
        problems.append((opened_at, "'(' is never closed"))
    return result


def _absolute(text, origin, lineno):
    """A name token made absolute against `origin` (lower-case, no final dot)."""
    name = text.lower()
    if name == "@":
        if origin is None:
            raise ValueError("'@' used before any $ORIGIN (give the zone name)")
        return origin
    if name.endswith("."):
        return name[:-1]
    if origin is None:
        raise ValueError(f"relative name {text!r} used before any $ORIGIN (give the zone name)")
    return f"{name}.{origin}" if origin else name


def parse_zone_file(text, *, origin=None):
    """Read a zone file. `origin` is the zone name to start from (a `$ORIGIN` in the file
    changes it for the lines below). Returns a `ParsedZone`; raises `ZoneFileError`."""
    problems = []
    lines = logical_lines(text, problems)
    origin = origin.lower().rstrip(".") if origin else None
    first_origin, default_ttl, current_ttl, last_owner, last_ttl = origin, None, None, None, None
    soa, records = None, []
    for logical in lines:
        if len(problems) >= MAX_ERRORS:
            break
        tokens, lineno = logical.tokens, logical.line
        head = tokens[0].text
        try:
            if not logical.owner_omitted and head.startswith("$"):
                directive = head.upper()
                if directive == "$ORIGIN":
                    if len(tokens) != 2:
                        raise ValueError("$ORIGIN takes one name")
                    origin = _absolute(tokens[1].text, origin or "", lineno)
                    first_origin = first_origin or origin
                elif directive == "$TTL":
                    ttl = parse_ttl(tokens[1].text) if len(tokens) == 2 else None
                    if ttl is None or ttl > validation.MAX_TTL:
                        raise ValueError("$TTL takes one TTL (0-2147483647 seconds, or 1h, 2d)")
                    current_ttl = ttl
                    default_ttl = ttl if default_ttl is None else default_ttl
                elif directive in ("$INCLUDE", "$GENERATE"):
                    raise ValueError(
                        f"{directive} is not supported: import one self-contained file"
                    )
                else:
                    raise ValueError(f"unknown directive {head}")
                continue
            position = 0
            if logical.owner_omitted:
                if last_owner is None:
                    raise ValueError("the first record must name its owner")
                owner = last_owner
            else:
                owner = _absolute(head, origin, lineno)
                position = 1
            ttl, rclass = None, None
            # TTL and class are both optional and may come in either order.
            while position < len(tokens) and not tokens[position].quoted:
                word = tokens[position].text
                if ttl is None and parse_ttl(word) is not None:
                    ttl = parse_ttl(word)
                elif rclass is None and word.upper() in _CLASSES:
                    rclass = word.upper()
                else:
                    break
                position += 1
            if rclass not in (None, "IN"):
                raise ValueError(f"class {rclass} is not supported (only IN)")
            if ttl is not None and ttl > validation.MAX_TTL:
                raise ValueError(f"TTL {ttl} is above 2147483647")
            if position >= len(tokens):
                raise ValueError("a record type is missing")
            rtype = tokens[position].text.upper()
            if rtype not in SUPPORTED_TYPES:
                raise ValueError(
                    f"record type {tokens[position].text} is not supported "
                    f"(supported: {', '.join(SUPPORTED_TYPES)})"
                )
            rdata = tokens[position + 1 :]
            if not rdata:
                raise ValueError(f"{rtype} record without data")
            last_owner = owner
            if ttl is not None:
                last_ttl = ttl
            if rtype == "SOA":
                if soa is not None:
                    raise ValueError(f"a second SOA record (the first is on line {soa['line']})")
                soa = _parse_soa(rdata, owner, origin, lineno)
                soa["ttl"] = ttl
                continue
            # No TTL on the record: the $TTL in force, else the last TTL given (RFC 1035).
            if ttl is None:
                ttl = current_ttl if current_ttl is not None else last_ttl
            records.append(
                ParsedRecord(lineno, owner, ttl, rtype, _rdata_tokens(rtype, rdata, origin, lineno))
            )
        except ValueError as exc:
            problems.append((lineno, str(exc)))
    if problems:
        raise ZoneFileError(problems)
    return ParsedZone(origin=first_origin, default_ttl=default_ttl, soa=soa, records=records)


def _plain(tokens, count, rtype):
    if len(tokens) != count or any(token.quoted for token in tokens):
        raise ValueError(
            f"{rtype} takes {count} value{'s' if count > 1 else ''}, not {len(tokens)}"
        )
    return [token.text for token in tokens]


def _number(text, what):
    if not text.isdigit():
        raise ValueError(f"{what} must be a number, not {text!r}")
    return int(text)


def _parse_soa(rdata, owner, origin, lineno):
    values = _plain(rdata, 7, "SOA")
    if origin is not None and owner != origin:
        raise ValueError(f"the SOA must be at the zone apex ({origin}), not at {owner}")
    timers = []
    for label, text in zip(
        ("serial", "refresh", "retry", "expire", "minimum"), values[2:], strict=True
    ):
        number = parse_ttl(text) if label != "serial" else None
        if label == "serial":
            number = _number(text, "the SOA serial")
        if number is None:
            raise ValueError(f"SOA {label} must be a number or a TTL, not {text!r}")
        timers.append(number)
    return {
        "line": lineno,
        "owner": owner,
        "mname": _absolute(values[0], origin, lineno),
        "rname": _absolute(values[1], origin, lineno) + ".",
        "serial": timers[0],
        "refresh": timers[1],
        "retry": timers[2],
        "expire": timers[3],
        "minimum": timers[4],
    }


def _rdata_tokens(rtype, rdata, origin, lineno):
    """Record data in a neutral form: names absolute (with the final dot) or `.`."""
    if rtype in ("A", "AAAA"):
        return _plain(rdata, 1, rtype)
    if rtype in ("CNAME", "NS", "PTR"):
        return [_target(_plain(rdata, 1, rtype)[0], origin, lineno)]
    if rtype == "MX":
        preference, target = _plain(rdata, 2, rtype)
        return [_number(preference, "the MX preference"), _target(target, origin, lineno)]
    if rtype == "SRV":
        priority, weight, port, target = _plain(rdata, 4, rtype)
        return [
            _number(priority, "the SRV priority"),
            _number(weight, "the SRV weight"),
            _number(port, "the SRV port"),
            _target(target, origin, lineno),
        ]
    if rtype == "TXT":
        return [_txt_chunk(token) for token in rdata]
    raise ValueError(f"record type {rtype} is not supported")


def _target(text, origin, lineno):
    if text == ".":
        return "."
    return _absolute(text, origin, lineno) + "."


def _txt_chunk(token):
    """A TXT <character-string> as bytes (escapes resolved)."""
    text, out, index = token.text, bytearray(), 0
    while index < len(text):
        if text[index] == "\\":
            digits = text[index + 1 : index + 4]
            if len(digits) == 3 and digits.isdigit():
                if int(digits) > 255:
                    raise ValueError(f"\\{digits} is not a byte value")
                out.append(int(digits))
                index += 4
                continue
            out += text[index + 1 : index + 2].encode()
            index += 2
            continue
        out += text[index].encode()
        index += 1
    if len(out) > validation.MAX_TXT_STRING:
        raise ValueError(f"a TXT string is at most 255 bytes (this one has {len(out)})")
    return bytes(out)


def stored_txt(chunks):
    """How TXT strings are stored: one printable string as plain text, several (or any
    with quotes, backslashes or control bytes) as quoted zone file text."""
    if len(chunks) == 1:
        try:
            text = chunks[0].decode()
        except UnicodeDecodeError:
            text = None
        if (
            text
            and text.isprintable()
            and '"' not in text
            and "\\" not in text
            and text == text.strip()
        ):
            return text
    return " ".join(validation.quote_txt_string(chunk) for chunk in chunks)


def stored_target(absolute_target, zone_name):
    """A target as stored on a record: relative inside the zone (`@` for the apex),
    otherwise absolute with the final dot."""
    if absolute_target == ".":
        return "."
    name = absolute_target[:-1]
    if validation.is_subdomain(name, zone_name):
        return validation.relative_name(name, zone_name)
    return absolute_target


def record_fields(parsed, zone_name):
    """A `ParsedRecord` as the fields of a `Record` of `zone_name` (not yet validated)."""
    if not validation.is_subdomain(parsed.owner, zone_name):
        raise ValidationError({"name": [f"{parsed.owner} is outside the zone {zone_name}"]})
    fields = {
        "name": validation.relative_name(parsed.owner, zone_name),
        "record_type": parsed.record_type,
        "ttl": parsed.ttl,
        "priority": None,
        "weight": None,
        "port": None,
    }
    rdata = parsed.rdata
    if parsed.record_type in ("A", "AAAA"):
        fields["value"] = rdata[0]
    elif parsed.record_type in ("CNAME", "NS", "PTR"):
        fields["value"] = stored_target(rdata[0], zone_name)
    elif parsed.record_type == "MX":
        fields["priority"], fields["value"] = rdata[0], stored_target(rdata[1], zone_name)
    elif parsed.record_type == "SRV":
        fields["priority"], fields["weight"], fields["port"] = rdata[:3]
        fields["value"] = stored_target(rdata[3], zone_name)
    else:
        fields["value"] = stored_txt(rdata)
    return fields

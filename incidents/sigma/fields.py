"""Which of our parsed records a Sigma log source means, and Sigma's field names in ours.

A parsed line (`incidents.pipeline.parsers.ParsedLine`) is shown to Sigma rules as a
*record*: its fields under our names, a few values derived from them (`uri_query`,
`http_host`), and the raw line for keyword rules. Each record has *facets*: the log
source categories, products and services it belongs to. A rule meets a record only when
every log source attribute the rule names is among the record's facets:

    sshd line      product linux; service sshd, auth
    sudo line      product linux; service sudo, auth
    su, PAM line   product linux; service auth (su also su)
    other syslog   product linux; service syslog
    access line    category webserver; product nginx, apache
    BIND query     category dns; product bind
    JSON line      product json (plus the facets of its category: web -> webserver,
                   dns -> dns, authentication -> linux/auth)

The field mapping is a pySigma processing pipeline (`field_mapping_pipeline`): Sigma's
taxonomy names (`cs-method`, `c-uri-query`, `query`, `USER`) become ours (`method`,
`uri_query`, `domain`, `target_user`). After it, every field a rule names must be one the
record of its log source can have (`KNOWN_FIELDS`), or the rule is refused with
`unmapped_field`: a rule about a field we never fill would silently never fire.
"""

from urllib.parse import unquote_plus

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation

# Log source kinds: the key a rule is routed by, chosen from its logsource.
WEBSERVER = "webserver"
DNS = "dns"
LINUX = "linux"
JSON = "json"

_WEB_MAPPING = {
    "c-ip": "src_ip", "client_ip": "src_ip", "ClientIP": "src_ip",
    "cs-method": "method", "method": "method",
    "cs-uri": "path", "c-uri": "path", "cs-uri-full": "path", "uri": "path",
    "cs-uri-stem": "url_path", "c-uri-stem": "url_path",
    "cs-uri-query": "uri_query", "c-uri-query": "uri_query",
    "c-uri-extension": "uri_extension",
    "sc-status": "status", "status": "status",
    "cs-user-agent": "user_agent", "c-useragent": "user_agent", "useragent": "user_agent",
    "cs-referer": "referer", "cs-referrer": "referer",
    "cs-host": "http_host", "r-dns": "http_host",
    "cs-username": "user", "cs-version": "protocol",
    "sc-bytes": "size", "cs-bytes": "size",
}  # fmt: skip
_DNS_MAPPING = {
    "query": "domain", "QueryName": "domain", "query_name": "domain",
    "qtype_name": "qtype", "record_type": "qtype", "QueryType": "qtype",
    "answers": "answers", "answer": "answers", "QueryResults": "answers",
    "src_ip": "src_ip", "c-ip": "src_ip", "ClientIP": "src_ip",
    "rcode": "rcode", "response_code": "rcode",
}  # fmt: skip
_LINUX_MAPPING = {
    "USER": "target_user", "COMMAND": "command", "TTY": "tty", "PWD": "pwd",
    "pam_user": "user", "pam_rhost": "src_ip", "pam_ruser": "user",
    "User": "user", "TargetUser": "target_user", "SourceIp": "src_ip",
}  # fmt: skip

_COMMON = {"host", "service", "app", "pid", "src_ip", "user", "port", "action", "category"}
KNOWN_FIELDS = {
    WEBSERVER: _COMMON | {
        "method", "path", "url_path", "uri_query", "query", "uri_extension", "status", "size",
        "user_agent", "referer", "http_host", "vhost", "protocol", "request", "url_decoded",
        "ident", "bad_request",
    },
    DNS: _COMMON | {
        "domain", "qtype", "qclass", "answers", "rcode", "view", "flags", "dst", "rpz_policy",
        "rpz_type", "scope", "domain_length", "label_count", "label_entropy",
    },
    LINUX: _COMMON | {
        "target_user", "command", "tty", "pwd", "auth_method", "invalid_user", "preauth",
        "logname", "by_user", "pam_module", "attempts", "note", "key", "dst_port", "count",
    },
    # JSON lines carry whatever their producer wrote: any field name is allowed.
    JSON: None,
}  # fmt: skip
# Fields where a rule's `+` stands for a space (IIS-style logs write user agents so, and
# rules copied from them keep it): both sides are compared with `+` read as a space.
PLUS_AS_SPACE = frozenset({"user_agent"})


_LINUX_SERVICES = (None, "sshd", "auth", "sudo", "su", "syslog")


def logsource_kind(logsource):
    """The kind of record a rule's logsource means (WEBSERVER, DNS, LINUX, JSON), or None
    when it is one we do not read."""
    category, product, service = logsource.category, logsource.product, logsource.service
    if category == "webserver" or product in ("apache", "nginx"):
        if category in (None, "webserver") and product in (None, "apache", "nginx"):
            return WEBSERVER
        return None
    if category == "dns" or product == "bind":
        if category in (None, "dns") and product in (None, "bind", "linux"):
            return DNS
        return None
    if product == "json":
        return JSON
    if product == "linux" and category is None and service in _LINUX_SERVICES:
        return LINUX
    return None


def field_mapping_pipeline():
    """The pySigma processing pipeline that renames Sigma's fields to ours, per log
    source."""
    items = [
        ProcessingItem(
            identifier=f"threatlens_{name}",
            transformation=FieldMappingTransformation(mapping),
            rule_conditions=conditions,
            rule_condition_linking=any,
        )
        for name, mapping, conditions in (
            (
                "webserver",
                _WEB_MAPPING,
                [
                    LogsourceCondition(category="webserver"),
                    LogsourceCondition(product="apache"),
                    LogsourceCondition(product="nginx"),
                ],
            ),
            ("dns", _DNS_MAPPING, [LogsourceCondition(category="dns")]),
            ("linux", _LINUX_MAPPING, [LogsourceCondition(product="linux")]),
        )
    ]
    return ProcessingPipeline(name="ThreatLens parsed records", priority=20, items=items)


def facets(parsed):
    """(categories, products, services) of a parsed line, each a frozenset, for routing."""
    fields = parsed.fields
    if parsed.format == "access":
        return _WEB_FACETS
    if parsed.format == "bind":
        return _DNS_FACETS
    if parsed.format in ("syslog", "syslog5424"):
        return _linux_facets(fields.get("service") or fields.get("app"))
    if parsed.format == "json":
        if parsed.category == "web":
            return _JSON_WEB_FACETS
        if parsed.category == "dns":
            return _JSON_DNS_FACETS
        return _JSON_FACETS
    return _NO_FACETS


def _linux_facets(service):
    return _LINUX_FACETS.get(service, _LINUX_OTHER)


_NO_FACETS = (frozenset(), frozenset(), frozenset())
_WEB_FACETS = (frozenset({"webserver"}), frozenset({"nginx", "apache"}), frozenset())
_DNS_FACETS = (frozenset({"dns"}), frozenset({"bind", "linux"}), frozenset())
_JSON_FACETS = (frozenset(), frozenset({"json"}), frozenset())
_JSON_WEB_FACETS = (frozenset({"webserver"}), frozenset({"json"}), frozenset())
_JSON_DNS_FACETS = (frozenset({"dns"}), frozenset({"json"}), frozenset())
_LINUX_OTHER = (frozenset(), frozenset({"linux"}), frozenset({"syslog"}))
_LINUX_FACETS = {
    "sshd": (frozenset(), frozenset({"linux"}), frozenset({"sshd", "auth"})),
    "sudo": (frozenset(), frozenset({"linux"}), frozenset({"sudo", "auth"})),
    "su": (frozenset(), frozenset({"linux"}), frozenset({"su", "auth"})),
    "login": (frozenset(), frozenset({"linux"}), frozenset({"auth"})),
    "systemd-logind": (frozenset(), frozenset({"linux"}), frozenset({"auth"})),
}


def record_values(parsed):
    """The field values a rule sees for a parsed line: ours plus the derived ones."""
    values = parsed.fields
    derived = {}
    if parsed.format == "access" or "url_path" in values:
        query = values.get("query")
        if query is not None:
            derived["uri_query"] = query
        path = values.get("url_path")
        if path:
            name = path.rsplit("/", 1)[-1]
            if "." in name:
                derived["uri_extension"] = name.rsplit(".", 1)[-1]
        vhost = values.get("vhost")
        if vhost:
            derived["http_host"] = vhost.rsplit(":", 1)[0]
        agent = values.get("user_agent")
        if isinstance(agent, str) and "+" in agent:
            derived["user_agent"] = plus_as_space(agent)
    if parsed.category is not None:
        derived.setdefault("category", parsed.category)
    if parsed.action is not None:
        derived.setdefault("action", parsed.action)
    if not derived:
        return values
    merged = dict(values)
    merged.update(derived)
    return merged


def plus_as_space(text):
    """`Mozilla/5.0+(compatible;+x)` -> `Mozilla/5.0 (compatible; x)`; a `%2B` stays a +."""
    if "%" in text:
        return unquote_plus(text)
    return text.replace("+", " ")


_MAPPINGS = {WEBSERVER: _WEB_MAPPING, DNS: _DNS_MAPPING, LINUX: _LINUX_MAPPING, JSON: {}}
# Every Sigma field name a log source's mapping renames.
MAPPED_FIELDS = frozenset(_WEB_MAPPING) | frozenset(_DNS_MAPPING) | frozenset(_LINUX_MAPPING)


def our_field(kind, name):
    """Our name for the Sigma field `name` of a rule of log source `kind` (for a
    correlation's group-by and value fields)."""
    return _MAPPINGS.get(kind, {}).get(name, name)

"""Every write to the stored Sigma rules: upload, replace, enable/disable, delete, the
sync from SIGMA_RULES_DIR and of the shipped rules. REST, the admin, `manage.py
sync_sigma_rules` and `migrate` (`sync_shipped`, SIGMA_SHIPPED_RULES) call these.

Each is one transaction with an audit row; after the commit the rules version is bumped
(`runtime.bump_version`) so every process reloads its engine.
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from incidents.exceptions import ConflictError, NotFound, ValidationError
from incidents.sigma.loading import ParsedRule, Refused, read_rule
from incidents.sigma.models import SigmaRule, SigmaRuleOrigin
from incidents.sigma.runtime import bump_version
from threatlens.audit.services import record

# The rules ThreatLens ships (docs/sigma.md, "Shipped rules").
SHIPPED_DIR = Path(__file__).resolve().parent / "rules"


class InvalidSigmaRule(ValidationError):
    """The rule YAML was refused; `details` has `reason_code` and `reason`."""

    error_code = "INVALID_SIGMA_RULE"


def _columns(parsed: ParsedRule):
    return {
        "title": parsed.title,
        "name": parsed.name[:300],
        "kind": parsed.kind,
        "level": parsed.level,
        "author": parsed.author,
        "description": parsed.description,
        "references": parsed.references,
        "tags": parsed.tags,
        "techniques": parsed.attack["techniques"],
        "tactics": parsed.attack["tactics"],
        "logsource": parsed.logsource,
        "digest": parsed.digest,
        "refusal_code": "",
        "refusal_reason": "",
    }


def _read_or_raise(text):
    try:
        return read_rule(text)
    except Refused as exc:
        raise InvalidSigmaRule(
            f"The Sigma rule was refused: {exc.reason}",
            details={"reason_code": exc.code, "reason": exc.reason},
        ) from exc


def upload_rule(text, *, actor, enabled=True):
    """Store a new rule from its YAML. Raises InvalidSigmaRule (nothing stored) or
    ConflictError when a rule with its id exists."""
    parsed = _read_or_raise(text)
    with transaction.atomic():
        if SigmaRule.objects.filter(sigma_id=parsed.sigma_id).exists():
            raise ConflictError(
                f"A Sigma rule with id {parsed.sigma_id} exists; replace it instead.",
                details={"sigma_id": parsed.sigma_id},
            )
        rule = SigmaRule.objects.create(
            sigma_id=parsed.sigma_id,
            text=text,
            origin=SigmaRuleOrigin.UPLOAD,
            enabled=bool(enabled),
            created_by=actor if actor is not None and actor.pk else None,
            **_columns(parsed),
        )
        _check_references()
        record("sigma_rule.upload", actor=actor, target=rule, new={"enabled": rule.enabled})
        transaction.on_commit(bump_version)
    rule.refresh_from_db()
    return rule


def replace_rule(rule_pk, text, *, actor):
    """Replace a stored rule's YAML (its id must stay the same). A shipped rule's YAML is
    ThreatLens's (ConflictError): the next `migrate` would put it back."""
    parsed = _read_or_raise(text)
    with transaction.atomic():
        rule = _locked(rule_pk)
        _not_shipped(rule, "changed")
        if parsed.sigma_id != rule.sigma_id:
            raise ValidationError(
                "The new YAML has another id.", details={"errors": {"text": "id differs"}}
            )
        for name, value in _columns(parsed).items():
            setattr(rule, name, value)
        rule.text = text
        rule.save()
        _check_references()
        record("sigma_rule.replace", actor=actor, target=rule)
        transaction.on_commit(bump_version)
    rule.refresh_from_db()
    return rule


def set_rule_enabled(rule_pk, enabled, *, actor):
    """Enable or disable a rule; takes effect in every process."""
    with transaction.atomic():
        rule = _locked(rule_pk)
        if rule.enabled != bool(enabled):
            old = rule.enabled
            rule.enabled = bool(enabled)
            rule.save(update_fields=["enabled", "updated_at"])
            _check_references()
            record(
                "sigma_rule.enable" if enabled else "sigma_rule.disable",
                actor=actor, target=rule, old={"enabled": old}, new={"enabled": rule.enabled},
            )  # fmt: skip
            transaction.on_commit(bump_version)
    rule.refresh_from_db()
    return rule


def delete_rule(rule_pk, *, actor):
    """Delete a rule; a shipped one is disabled instead (ConflictError): the next
    `migrate` would store it again."""
    with transaction.atomic():
        rule = _locked(rule_pk)
        _not_shipped(rule, "deleted")
        record("sigma_rule.delete", actor=actor, target=rule)
        rule.delete()
        _check_references()
        transaction.on_commit(bump_version)


def _not_shipped(rule, what):
    if rule.origin == SigmaRuleOrigin.SHIPPED:
        raise ConflictError(
            f"A rule shipped with ThreatLens is not {what}: disable it (its built-in rule, if "
            "it replaces one, then runs), or upload a copy under another id.",
            details={"sigma_id": rule.sigma_id, "origin": rule.origin},
        )


def _locked(rule_pk):
    rule = SigmaRule.objects.select_for_update().filter(pk=rule_pk).first()
    if rule is None:
        raise NotFound(f"Sigma rule {rule_pk} not found.")
    return rule


def sync_shipped(*, actor=None):
    """Store the rules ThreatLens ships (incidents/sigma/rules/) as `sync_directory` does,
    as origin `shipped`: new ones added (enabled unless `threatlens-default: disabled`),
    changed ones replaced with an enable or disable kept, gone ones removed. Called on
    every `migrate` when SIGMA_SHIPPED_RULES is on (`incidents.sigma.signals`)."""
    return sync_directory(SHIPPED_DIR, actor=actor, origin=SigmaRuleOrigin.SHIPPED)


def sync_directory(directory=None, *, actor=None, origin=SigmaRuleOrigin.DIRECTORY):
    """Load every `.yml`/`.yaml` under `directory` (default SIGMA_RULES_DIR): new rules are
    added (enabled unless they say `threatlens-default: disabled`), changed ones replaced,
    refused ones stored with their reason, and rules from the directory whose file is gone
    are deleted. Rules of another origin (uploads, the shipped ones) are left alone; an
    enable or disable made here survives a sync. Returns counts."""
    directory = Path(directory or getattr(settings, "SIGMA_RULES_DIR", "") or "")
    if not str(directory) or not directory.is_dir():
        raise ValidationError(
            f"SIGMA_RULES_DIR {str(directory)!r} is not a directory.",
            details={"errors": {"directory": "not a directory"}},
        )
    counts = {"added": 0, "updated": 0, "unchanged": 0, "refused": 0, "removed": 0}
    seen = set()
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    with transaction.atomic():
        existing = {rule.sigma_id: rule for rule in SigmaRule.objects.select_for_update()}
        for path in files:
            relative = str(path.relative_to(directory))
            text = path.read_text(encoding="utf-8", errors="replace")
            enabled = True
            try:
                parsed = read_rule(text)
                sigma_id, columns = parsed.sigma_id, _columns(parsed)
                enabled = parsed.enabled_by_default
            except Refused as exc:
                counts["refused"] += 1
                sigma_id = _id_of(text) or f"file:{relative}"[:128]
                columns = {
                    "title": _title_of(text) or relative,
                    "refusal_code": exc.code,
                    "refusal_reason": exc.reason,
                    "digest": "",
                }
            if sigma_id in seen:
                continue
            seen.add(sigma_id)
            rule = existing.get(sigma_id)
            if rule is None:
                SigmaRule.objects.create(
                    sigma_id=sigma_id, text=text, origin=origin, path=relative,
                    enabled=enabled, **columns,
                )  # fmt: skip
                counts["added"] += 1
            elif rule.origin != origin:
                continue
            elif rule.text == text and rule.path == relative:
                counts["unchanged"] += 1
            else:
                for name, value in columns.items():
                    setattr(rule, name, value)
                rule.text, rule.path = text, relative
                rule.save()
                counts["updated"] += 1
        gone = [
            rule.pk
            for sigma_id, rule in existing.items()
            if rule.origin == origin and sigma_id not in seen
        ]
        counts["removed"] = len(gone)
        SigmaRule.objects.filter(pk__in=gone).delete()
        _check_references()
        changed = counts["added"] or counts["updated"] or counts["removed"]
        if changed or origin != SigmaRuleOrigin.SHIPPED:  # not a row per `migrate`
            record(
                "sigma_rule.sync",
                actor=actor, details={"directory": str(directory), "origin": origin, **counts},
            )  # fmt: skip
            transaction.on_commit(bump_version)
    return counts


def remove_shipped(*, actor=None):
    """Delete the stored shipped rules (`migrate` with SIGMA_SHIPPED_RULES off): the
    built-in rules they replace run again. Returns how many went."""
    with transaction.atomic():
        gone = list(SigmaRule.objects.filter(origin=SigmaRuleOrigin.SHIPPED).values_list("pk"))
        if not gone:
            return 0
        SigmaRule.objects.filter(origin=SigmaRuleOrigin.SHIPPED).delete()
        _check_references()
        record("sigma_rule.sync", actor=actor, details={"origin": "shipped", "removed": len(gone)})
        transaction.on_commit(bump_version)
    return len(gone)


def _check_references():
    """Refuse enabled correlations whose rules are not loaded, and let them back in once
    they are (a correlation can arrive before the rules it names). A disabled one is
    checked when it is enabled: it shows as disabled, not refused, meanwhile (a shipped
    correlation that starts disabled with the rule it names)."""
    loaded = SigmaRule.objects.filter(enabled=True, kind="detection").exclude(refusal_code__gt="")
    names = set()
    for sigma_id, name in loaded.values_list("sigma_id", "name"):
        names.add(sigma_id)
        if name:
            names.add(name)
    for rule in SigmaRule.objects.filter(kind="correlation"):
        if rule.refusal_code and rule.refusal_code != "unknown_rule_reference":
            continue
        try:
            parsed = read_rule(rule.text)
        except Refused:
            continue
        missing = [name for name in parsed.correlation.rules if name not in names]
        if not rule.enabled:
            missing = []
        code = "unknown_rule_reference" if missing else ""
        reason = f"references rules that are not loaded: {', '.join(missing)}" if missing else ""
        if (rule.refusal_code, rule.refusal_reason) != (code, reason):
            rule.refusal_code, rule.refusal_reason = code, reason
            rule.save(update_fields=["refusal_code", "refusal_reason", "updated_at"])


def _document(text):
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return document if isinstance(document, dict) else {}


def _id_of(text):
    value = _document(text).get("id")
    return str(value)[:128] if value else None


def _title_of(text):
    value = _document(text).get("title")
    return str(value)[:300] if value else None

"""Response where DNS and SOC meet: block a domain from an incident with an RPZ rule, and
undo it.

The rule is made by `dns.services.create_rpz_rule` (its permission `dns.add_rpzrule`, its
validation, audit row and `rpz_rule_*` event); this module adds the incident's side in the
same transaction: the permission to change the incident, a reason, a `response` timeline
entry and an `incident.block_domain` audit row. The rule's `source` is
`incident:<reference>`, which is how an incident finds the rules it made (and the only
rules it may undo).
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError

from dns import services as dns_services
from dns.models import RpzRule
from incidents.exceptions import ConflictError, NotFound, PermissionDenied, ValidationError
from incidents.inputs import parse_id
from incidents.models import TimelineKind
from incidents.services import CHANGE_INCIDENT, _locked_incident, _require, _timeline
from incidents.writes import save_incident, service
from threatlens.audit.services import record

MAX_REASON_LENGTH = 500


def rule_source(incident):
    return f"incident:{incident.reference}"


def rules_of(incident):
    """The RPZ rules this incident made, newest first."""
    return RpzRule.objects.filter(source=rule_source(incident)).order_by("-created_at", "-id")


def _dns_call(call):
    try:
        return call()
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc) or "You may not change RPZ rules.") from exc
    except DjangoValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"domain": exc.messages}
        raise ValidationError(
            "Invalid rule: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()),
            details={"errors": errors},
        ) from exc
    except IntegrityError as exc:
        raise ConflictError("An RPZ rule for this domain exists already.") from exc


@service
def block_domain(incident_id, data, *, actor, request=None):
    """Block `data["domain"]` with an RPZ rule (`action`, default nxdomain; `reason`
    required), recorded on the incident. Returns the rule."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    if not isinstance(data, dict):
        raise ValidationError("Expected an object with domain, action and reason.")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason is required.", details={"errors": {"reason": ["Required."]}})
    reason = reason.strip()[:MAX_REASON_LENGTH]
    domain = data.get("domain")
    if not isinstance(domain, str) or not domain.strip():
        raise ValidationError("domain is required.", details={"errors": {"domain": ["Required."]}})
    incident = _locked_incident(incident_id, actor)
    rule = _dns_call(
        lambda: dns_services.create_rpz_rule(
            actor,
            {
                "domain": domain.strip().rstrip(".").lower(),
                "action": data.get("action") or RpzRule.Action.NXDOMAIN,
                "category": data.get("category") or RpzRule.Category.MALWARE,
                "description": f"{incident.reference}: {reason}",
            },
            request=request,
            source=rule_source(incident),
        )
    )
    _timeline(
        incident,
        TimelineKind.RESPONSE,
        actor,
        field="rpz_rule",
        new={"rule": rule.pk, "domain": rule.domain, "action": rule.action},
        message=f"Blocked {rule.domain} ({rule.action}) with RPZ rule #{rule.pk}: {reason}",
    )
    save_incident(incident, update_fields=["updated_at"])
    record(
        "incident.block_domain",
        actor=actor,
        target=incident,
        request=request,
        new={"domain": rule.domain, "action": rule.action, "rule": rule.pk},
        details={"reason": reason},
    )
    return rule


@service
def unblock_domain(incident_id, rule_id, *, actor, request=None):
    """Undo a block this incident made: the rule is deleted, the timeline records it."""
    _require(actor, CHANGE_INCIDENT, "change incidents")
    incident = _locked_incident(incident_id, actor)
    rule = rules_of(incident).filter(pk=parse_id(rule_id, "rule_id")).first()
    if rule is None:
        raise NotFound(f"{incident.reference} made no RPZ rule {rule_id}.")
    domain, pk = rule.domain, rule.pk
    _dns_call(lambda: dns_services.delete_rpz_rule(actor, pk, request=request))
    _timeline(
        incident,
        TimelineKind.RESPONSE,
        actor,
        field="rpz_rule",
        old={"rule": pk, "domain": domain},
        message=f"Unblocked {domain} (RPZ rule #{pk} removed)",
    )
    save_incident(incident, update_fields=["updated_at"])
    record(
        "incident.unblock_domain",
        actor=actor,
        target=incident,
        request=request,
        old={"domain": domain, "rule": pk},
    )
    return incident

"""REST for Sigma rules, mounted at /api/sigma/:

    GET    rules/                 list (filters: state, kind, technique, search)
    POST   rules/                 {"text": "<yaml>", "enabled": true} -> 201, or 400 with
                                  error_code INVALID_SIGMA_RULE and reason_code
    GET    rules/<id>/            one rule, with its YAML and this process's cost figures
    PATCH  rules/<id>/            {"enabled": false} and/or {"text": "<yaml>"}
    DELETE rules/<id>/
    GET    rules/coverage/        ATT&CK Navigator layer of the enabled rules
    GET    rules/coverage/tactics/ the same coverage grouped by tactic, for the console

Reading needs incidents.view_sigmarule; writing add/change/delete_sigmarule (analysts
upload and toggle, admins delete). Every write goes through `incidents.sigma.services`.
"""

from django.db import transaction
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from incidents.api import ServiceView
from incidents.exceptions import PermissionDenied, ValidationError
from incidents.sigma import services
from incidents.sigma.attack import coverage_by_tactic, navigator_layer
from incidents.sigma.models import SigmaRule


class SigmaRuleSerializer(serializers.ModelSerializer):
    """A stored rule as REST shows it."""

    state = serializers.CharField(read_only=True)
    stats = serializers.SerializerMethodField()
    replaces = serializers.SerializerMethodField()

    class Meta:
        model = SigmaRule
        fields = [
            "id", "sigma_id", "title", "name", "kind", "level", "author", "description",
            "references", "tags", "techniques", "tactics", "logsource", "origin", "path",
            "enabled", "state", "refusal_code", "refusal_reason", "replaces", "created_at",
            "updated_at", "stats",
        ]  # fmt: skip
        read_only_fields = fields

    def get_replaces(self, rule) -> str:
        """The built-in rule this correlation runs in place of while it is loaded (the
        built-in then does not run), or "" (docs/sigma.md, "Shipped rules")."""
        from incidents.sigma.runtime import parsed_rule

        parsed = parsed_rule(rule) if not rule.refusal_code else None
        return parsed.replaces if parsed is not None else ""

    def get_stats(self, rule) -> dict:
        """Hits and evaluation cost of the rule in this process (since its last reload)."""
        from incidents.sigma.runtime import current_engine

        stats = current_engine().stats.get(rule.sigma_id)
        if stats is None:
            return {"hits": 0, "last_hit": None, "evaluations": 0, "microseconds_per_line": None}
        per_line = stats.seconds / stats.evaluations * 1e6 if stats.evaluations else None
        return {
            "hits": stats.hits,
            "last_hit": stats.last_hit,
            "evaluations": stats.evaluations,
            "microseconds_per_line": round(per_line, 3) if per_line is not None else None,
        }


class SigmaRuleDetailSerializer(SigmaRuleSerializer):
    class Meta(SigmaRuleSerializer.Meta):
        fields = [*SigmaRuleSerializer.Meta.fields, "text"]
        read_only_fields = fields


class SigmaRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceView
):  # fmt: skip
    read_permission = "incidents.view_sigmarule"
    serializer_class = SigmaRuleSerializer
    search_fields = ["title", "sigma_id", "author", "description"]

    def get_queryset(self):
        rules = SigmaRule.objects.all()
        params = self.request.query_params
        state = params.get("state")
        if state == "refused":
            rules = rules.exclude(refusal_code="")
        elif state == "loaded":
            rules = rules.filter(refusal_code="", enabled=True)
        elif state == "disabled":
            rules = rules.filter(refusal_code="", enabled=False)
        if params.get("kind"):
            rules = rules.filter(kind=params["kind"])
        if params.get("technique"):
            technique = params["technique"].upper()
            rules = [rule for rule in rules if technique in rule.techniques]
        return rules

    def get_serializer_class(self):
        if self.action == "retrieve":
            return SigmaRuleDetailSerializer
        return SigmaRuleSerializer

    def _require(self, permission):
        if not self.request.user.has_perm(permission):
            raise PermissionDenied("You may not change Sigma rules.")

    def _text(self):
        text = self.body_field("text")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(
                "text (the rule's YAML) is required.",
                details={"errors": {"text": "required"}},
            )
        return text

    def _enabled(self, default=None):
        enabled = self.body_field("enabled")
        if enabled is None:
            return default
        if not isinstance(enabled, bool):
            raise ValidationError(
                "enabled must be true or false.", details={"errors": {"enabled": "boolean"}}
            )
        return enabled

    def create(self, request):
        self._require("incidents.add_sigmarule")
        rule = services.upload_rule(self._text(), actor=request.user, enabled=self._enabled(True))
        return Response(SigmaRuleDetailSerializer(rule).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        self._require("incidents.change_sigmarule")
        rule = get_object_or_404(SigmaRule, pk=pk)
        text = self.body_field("text")
        enabled = self._enabled()
        if text is None and enabled is None:
            raise ValidationError(
                "Give enabled or text.", details={"errors": {"enabled": "required"}}
            )
        with transaction.atomic():  # both changes or neither
            if text is not None:
                rule = services.replace_rule(rule.pk, self._text(), actor=request.user)
            if enabled is not None:
                rule = services.set_rule_enabled(rule.pk, enabled, actor=request.user)
        return Response(SigmaRuleDetailSerializer(rule).data)

    def destroy(self, request, pk=None):
        self._require("incidents.delete_sigmarule")
        rule = get_object_or_404(SigmaRule, pk=pk)
        services.delete_rule(rule.pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=False, methods=["get"])
    def coverage(self, request):
        """The ATT&CK Navigator layer of the loaded rules."""
        return Response(navigator_layer(_loaded_rules()))

    @action(detail=False, methods=["get"], url_path="coverage/tactics")
    def coverage_tactics(self, request):
        """The techniques the loaded rules cover, grouped by tactic, with the rules of each."""
        rules = list(_loaded_rules().order_by("title", "pk"))
        tactics = coverage_by_tactic(rules)
        techniques = {item["id"] for tactic in tactics for item in tactic["techniques"]}
        return Response(
            {
                "rules": len(rules),
                "rules_with_techniques": sum(1 for rule in rules if rule.techniques),
                "techniques": len(techniques),
                "tactics": tactics,
            }
        )


def _loaded_rules():
    return SigmaRule.objects.filter(enabled=True, refusal_code="")

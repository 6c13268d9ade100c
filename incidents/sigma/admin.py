"""Django admin for Sigma rules: upload (paste the YAML), enable, disable, delete. Every
change goes through `incidents.sigma.services`, so the admin validates, audits and reloads
every process exactly like REST."""

from django import forms
from django.contrib import admin, messages

from incidents.exceptions import IncidentsError
from incidents.sigma import services
from incidents.sigma.loading import Refused, read_rule
from incidents.sigma.models import SigmaRule, SigmaRuleOrigin


class SigmaRuleForm(forms.ModelForm):
    class Meta:
        model = SigmaRule
        fields = ["text", "enabled"]

    def clean_text(self):
        text = self.cleaned_data["text"]
        try:
            parsed = read_rule(text)
        except Refused as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.reason}") from exc
        others = SigmaRule.objects.filter(sigma_id=parsed.sigma_id)
        if self.instance.pk:
            if self.instance.sigma_id != parsed.sigma_id:
                raise forms.ValidationError("The YAML has another id than this rule.")
        elif others.exists():
            raise forms.ValidationError(f"A Sigma rule with id {parsed.sigma_id} exists.")
        return text


@admin.register(SigmaRule)
class SigmaRuleAdmin(admin.ModelAdmin):
    form = SigmaRuleForm
    list_display = ["title", "kind", "level", "state", "origin", "author", "updated_at"]
    list_filter = ["enabled", "kind", "level", "origin", "refusal_code"]
    search_fields = ["title", "sigma_id", "author"]
    readonly_fields = [
        "sigma_id", "title", "kind", "level", "author", "techniques", "tactics", "logsource",
        "origin", "path", "refusal_code", "refusal_reason", "created_at", "updated_at",
    ]  # fmt: skip
    actions = ["enable_rules", "disable_rules"]

    @admin.display(description="state")
    def state(self, rule):
        return rule.state

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                saved = services.upload_rule(obj.text, actor=request.user, enabled=obj.enabled)
            else:
                saved = obj
                if "text" in form.changed_data:
                    saved = services.replace_rule(obj.pk, obj.text, actor=request.user)
                if "enabled" in form.changed_data:
                    saved = services.set_rule_enabled(obj.pk, obj.enabled, actor=request.user)
        except IncidentsError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        # A shipped rule is disabled, not deleted (`services.delete_rule`).
        if obj is not None and obj.origin == SigmaRuleOrigin.SHIPPED:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        services.delete_rule(obj.pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            try:
                services.delete_rule(rule.pk, actor=request.user)
            except IncidentsError as exc:
                self.message_user(request, exc.message, level=messages.ERROR)

    @admin.action(description="Enable the selected rules", permissions=["change"])
    def enable_rules(self, request, queryset):
        for rule in queryset:
            services.set_rule_enabled(rule.pk, True, actor=request.user)

    @admin.action(description="Disable the selected rules", permissions=["change"])
    def disable_rules(self, request, queryset):
        for rule in queryset:
            services.set_rule_enabled(rule.pk, False, actor=request.user)

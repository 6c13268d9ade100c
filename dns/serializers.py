"""REST representations of the DNS models; the event payloads embed the same ones.

Serializers here check shapes and single-field rules (by calling `dns.validation`); the
writes and the rules that need the database under a lock (CNAME exclusivity, duplicate
records, unique names, versions) are in `dns.services`.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dns import validation
from dns.models import (
    BulkOperation,
    Forwarder,
    Record,
    RpzRule,
    ThreatFeed,
    Zone,
    ZoneAccess,
)


def as_drf_error(exc):
    """A Django `ValidationError` as DRF's, keeping the field keys."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError({"non_field_errors": exc.messages})


class ZoneSerializer(serializers.ModelSerializer):
    records_count = serializers.SerializerMethodField()
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = Zone
        fields = [
            "id",
            "name",
            "zone_type",
            "primary_ns",
            "email",
            "refresh",
            "retry",
            "expire",
            "minimum",
            "default_ttl",
            "serial",
            "masters",
            "forwarders",
            "is_active",
            "description",
            "version",
            "records_count",
            "can_change",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "serial",
            "records_count",
            "can_change",
            "created_by",
            "updated_by",
            "created_at",
            "updated_at",
        ]
        # Uniqueness is checked by the service on the normalised name, under a lock.
        extra_kwargs = {"name": {"validators": []}, "version": {"required": False}}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_records_count(self, zone):
        return getattr(zone, "records_count", None)

    @extend_schema_field(serializers.BooleanField(allow_null=True))
    def get_can_change(self, zone):
        """Whether the requesting user may change the zone (REST); null in events, which
        reach every reader of the zone."""
        return getattr(zone, "can_change", None)

    def validate(self, attrs):
        attrs.pop("version", None)
        fields = dict(attrs)
        if self.instance is not None:
            # Type-dependent rules need the zone's current values for fields not sent.
            for key in ("zone_type", "masters", "forwarders"):
                fields.setdefault(key, getattr(self.instance, key))
        try:
            normalised = validation.validate_zone_fields(fields)
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None
        return {key: normalised.get(key, value) for key, value in attrs.items()}


class RecordSerializer(serializers.ModelSerializer):
    zone = serializers.PrimaryKeyRelatedField(queryset=Zone.objects.none())
    zone_name = serializers.CharField(source="zone.name", read_only=True)
    fqdn = serializers.CharField(read_only=True)

    class Meta:
        model = Record
        fields = [
            "id",
            "zone",
            "zone_name",
            "name",
            "fqdn",
            "record_type",
            "value",
            "ttl",
            "priority",
            "weight",
            "port",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {
            "version": {"required": False},
            "name": {"required": False},
            # Range checks come from dns.validation with BIND's limits and wording.
            "ttl": {"min_value": None, "max_value": None},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["zone"].queryset = Zone.objects.for_user(request.user, change=True)
        if self.context.get("zone") is not None or self.instance is not None:
            self.fields["zone"].read_only = True

    def validate(self, attrs):
        attrs.pop("version", None)
        if self.instance is not None:
            attrs.pop("zone", None)  # a record does not move between zones
        zone = self.context.get("zone") or attrs.get("zone") or getattr(self.instance, "zone", None)
        if zone is None:
            raise serializers.ValidationError({"zone": ["This field is required."]})
        fields = dict(attrs)
        fields.pop("zone", None)
        if self.instance is not None:
            fields = {**self.instance.field_values(), **fields}
        try:
            normalised = validation.validate_record(zone.name, **fields)
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None
        result = {key: normalised[key] for key in attrs if key in normalised}
        if self.instance is None:
            result = normalised
        result["zone"] = zone
        return result


class ZoneAccessSerializer(serializers.ModelSerializer):
    """Grant: name a user (`user` id or `username`) or a group (`group` id or `group_name`)."""

    user = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, allow_null=True
    )
    group = serializers.PrimaryKeyRelatedField(
        queryset=Group.objects.all(), required=False, allow_null=True
    )
    username = serializers.SlugRelatedField(
        source="user",
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        allow_null=True,
    )
    group_name = serializers.SlugRelatedField(
        source="group",
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        allow_null=True,
    )

    class Meta:
        model = ZoneAccess
        fields = [
            "id",
            "zone",
            "user",
            "username",
            "group",
            "group_name",
            "can_change",
            "granted_by",
            "created_at",
        ]
        read_only_fields = ["zone", "granted_by", "created_at"]

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError(
                {"non_field_errors": ["Name either a user or a group."]}
            )
        return attrs


class RpzRuleSerializer(serializers.ModelSerializer):
    feed_name = serializers.CharField(source="feed.name", read_only=True, default=None)

    class Meta:
        model = RpzRule
        fields = [
            "id",
            "domain",
            "action",
            "redirect_target",
            "include_subdomains",
            "category",
            "source",
            "feed",
            "feed_name",
            "is_active",
            "description",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["feed", "created_by", "created_at", "updated_at"]
        validators = []  # the service checks uniqueness on the normalised domain


class ThreatFeedSerializer(serializers.ModelSerializer):
    class Meta:
        model = ThreatFeed
        fields = [
            "id",
            "name",
            "url",
            "file_path",
            "format",
            "action",
            "category",
            "is_active",
            "update_interval",
            "last_update",
            "last_fetch",
            "entries_count",
            "last_error",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "last_update",
            "last_fetch",
            "entries_count",
            "last_error",
            "created_at",
            "updated_at",
        ]


class ForwarderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Forwarder
        fields = [
            "id",
            "name",
            "address",
            "port",
            "domains",
            "is_active",
            "health_status",
            "last_check",
            "last_error",
            "response_time_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "health_status",
            "last_check",
            "last_error",
            "response_time_ms",
            "created_at",
            "updated_at",
        ]
        validators = []


class BulkItemsSerializer(serializers.Serializer):
    """`POST /zones/<id>/records/bulk/`: `{"operation": "create", "records": [...]}`.

    create: record bodies; update: `{"id", "version"?, ...fields}`; delete: `{"id"}` or ids.
    """

    operation = serializers.ChoiceField(choices=BulkOperation.Operation.choices)
    records = serializers.ListField(child=serializers.JSONField(), allow_empty=False)


class BulkOperationSerializer(serializers.ModelSerializer):
    zone_name = serializers.CharField(source="zone.name", read_only=True)

    class Meta:
        model = BulkOperation
        fields = [
            "id",
            "zone",
            "zone_name",
            "operation",
            "status",
            "total",
            "processed",
            "progress",
            "result",
            "errors",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ZoneImportSerializer(serializers.Serializer):
    """`POST /zones/import/`: a zone file into a new zone (name and options) or an existing
    one (`zone`, with `replace` to drop its current records first)."""

    zone_file = serializers.CharField(trim_whitespace=False)
    zone = serializers.IntegerField(required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    replace = serializers.BooleanField(default=False)
    email = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)

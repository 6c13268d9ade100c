"""Request bodies of the realtime REST endpoints."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from realtime import catalogue
from realtime.catalogue import Audience
from realtime.publishing import Recipients


class RecipientsSerializer(serializers.Serializer):
    users = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    groups = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)


class PublishSerializer(serializers.Serializer):
    """`POST /api/realtime/publish/`: an event checked against the catalogue."""

    event_type = serializers.CharField(max_length=64)
    data = serializers.DictField()
    priority = serializers.IntegerField(min_value=1, max_value=10, required=False)
    recipients = RecipientsSerializer(required=False)

    def validate_event_type(self, value):
        if not catalogue.exists(value):
            raise serializers.ValidationError(f"Unknown event type {value!r}.")
        return value

    def validate(self, attrs):
        entry = catalogue.get(attrs["event_type"])
        recipients = attrs.get("recipients")
        if entry.audience is Audience.EVERYONE and recipients:
            raise serializers.ValidationError(
                {"recipients": f"{entry.name} goes to everyone permitted; omit recipients."}
            )
        if entry.audience is not Audience.EVERYONE:
            if not recipients or not (recipients.get("users") or recipients.get("groups")):
                raise serializers.ValidationError(
                    {"recipients": f"{entry.name} needs recipients (users and/or groups)."}
                )
            attrs["recipients"] = Recipients(
                users=frozenset(recipients.get("users", ())),
                groups=frozenset(recipients.get("groups", ())),
            )
        return attrs


class DisconnectSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)

    def validate_user_id(self, value):
        if not get_user_model().objects.filter(pk=value).exists():
            raise serializers.ValidationError("No such user.")
        return value

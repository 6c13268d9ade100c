"""REST shapes of the auth endpoints."""

from django.contrib.auth import get_user_model
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.serializers import TokenRefreshSerializer as BaseRefreshSerializer

from threatlens.accounts.roles import role_of, roles_of


class TokenPairSerializer(serializers.Serializer):
    """The answer of `POST /api/auth/token/`."""

    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenRefreshSerializer(BaseRefreshSerializer):
    """simplejwt's refresh, answering 401 (not 500) when the token's user no longer exists."""

    def validate(self, attrs):
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise exceptions.AuthenticationFailed(
                "No active account found for the given token.", "no_active_account"
            ) from None


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField(help_text="The refresh token to revoke.")


class MeSerializer(serializers.Serializer):
    """The user, their roles and their effective permissions (`app_label.codename`)."""

    id = serializers.IntegerField(source="pk")
    username = serializers.CharField(source="get_username")
    email = serializers.EmailField()
    role = serializers.SerializerMethodField(help_text="The strongest role, or null.")
    roles = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    is_staff = serializers.BooleanField()
    is_superuser = serializers.BooleanField()

    def get_role(self, user) -> str | None:
        return role_of(user)

    def get_roles(self, user) -> list[str]:
        return roles_of(user)

    def get_permissions(self, user) -> list[str]:
        return sorted(user.get_all_permissions())

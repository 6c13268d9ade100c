"""REST auth: JWT obtain (throttled and audited), refresh, logout, and who am I."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView
from rest_framework_simplejwt.views import TokenRefreshView as SimpleJWTRefreshView

from threatlens.accounts import services, throttling
from threatlens.accounts.serializers import (
    LogoutSerializer,
    MeSerializer,
    TokenPairSerializer,
    TokenRefreshSerializer,
)
from threatlens.clientinfo import request_address

ERROR_RESPONSE = inline_serializer(
    "ErrorResponse",
    fields={"detail": serializers.CharField(), "error_code": serializers.CharField()},
)

LOGOUT_RESPONSE = inline_serializer("LogoutResponse", fields={"detail": serializers.CharField()})


class LoginThrottled(exceptions.Throttled):
    """HTTP 429 with Retry-After (set by DRF from `wait`)."""

    default_detail = "Too many failed login attempts."
    default_code = "login_throttled"

    def __init__(self, throttled):
        super().__init__(
            wait=throttled.retry_after,
            detail=f"Too many failed login attempts. Try again in {throttled.retry_after} s.",
        )


class TokenObtainView(TokenObtainPairView):
    """Username and password in, an access and a refresh token out.

    Failed attempts are counted per username and per client address; past
    LOGIN_THROTTLE_FAILURES within LOGIN_THROTTLE_WINDOW the answer is 429 with Retry-After,
    even for the right password, until the window closes.
    """

    @extend_schema(
        responses={
            200: TokenPairSerializer,
            401: OpenApiResponse(ERROR_RESPONSE, description="Wrong credentials"),
            429: OpenApiResponse(ERROR_RESPONSE, description="Too many failed logins"),
        }
    )
    def post(self, request, *args, **kwargs):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        username = username if isinstance(username, str) else ""
        throttled = throttling.check(username, request_address(request))
        if throttled:
            # Refused before the password is looked at; audited, not counted again.
            services.record_login_failed(username, method="token", request=request)
            raise LoginThrottled(throttled)
        # A wrong password is counted and audited by the user_login_failed receiver,
        # which Django's authenticate() signals for every login path.
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        services.record_login(serializer.user, method="token", request=request)
        return Response(serializer.validated_data, status=status.HTTP_200_OK)


class TokenRefreshView(SimpleJWTRefreshView):
    """A refresh token in, a new access token (and a new refresh token: the old one is
    revoked) out."""

    serializer_class = TokenRefreshSerializer


class LogoutView(APIView):
    """Revoke a refresh token (blacklist). The access token stays valid until it expires
    (JWT_ACCESS_TOKEN_LIFETIME), so keep that short.

    The refresh token alone identifies the session: no access token is needed (it may
    have expired already), and holding the refresh token is all it takes to use it anyway.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    serializer_class = LogoutSerializer

    @extend_schema(
        request=LogoutSerializer,
        responses={
            200: OpenApiResponse(LOGOUT_RESPONSE, description="Logged out"),
            400: OpenApiResponse(ERROR_RESPONSE, description="Missing or invalid refresh token"),
        },
    )
    def post(self, request):
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
            token.blacklist()
        except TokenError as exc:
            raise exceptions.ValidationError({"refresh": [str(exc)]}) from None
        user_id = token.get(jwt_settings.USER_ID_CLAIM)
        user = (
            get_user_model()
            ._default_manager.filter(**{jwt_settings.USER_ID_FIELD: user_id})
            .first()
        )
        if user is not None:
            services.record_logout(user, method="token", request=request)
        return Response({"detail": "Logged out."})


class MeView(APIView):
    """The current user: id, username, email, role (strongest), roles, permissions."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)

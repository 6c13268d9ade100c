"""The console's own data, per user: `/api/saved-views/` (saved filters: list, create,
delete; a user sees and deletes only their own), `/api/preferences/` (GET, PATCH) and
`/api/console/charts/` (the overview charts' last 10 minutes)."""

from urllib.parse import parse_qsl, urlencode

from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from threatlens.ui.charts import chart_history
from threatlens.ui.models import ConsolePreferences, SavedView

MAX_SAVED_VIEWS_PER_USER = 100


class SavedViewSerializer(serializers.ModelSerializer):
    url = serializers.CharField(read_only=True)

    class Meta:
        model = SavedView
        fields = ["id", "page", "name", "query", "url", "created_at"]
        read_only_fields = ["id", "url", "created_at"]

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("A name is required.")
        return value

    def validate_query(self, value):
        """A query string (a leading `?` is dropped), normalised; `page` is not kept."""
        pairs = parse_qsl(value.lstrip("?"), keep_blank_values=False)
        query = urlencode([(key, item) for key, item in pairs if key != "page"])
        # Checked again once encoded: encoding can make it longer than the field.
        limit = SavedView._meta.get_field("query").max_length
        if len(query) > limit:
            raise serializers.ValidationError(f"At most {limit} characters once encoded.")
        return query

    def validate(self, data):
        user = self.context["request"].user
        if SavedView.objects.filter(user=user).count() >= MAX_SAVED_VIEWS_PER_USER:
            raise serializers.ValidationError(
                f"You have {MAX_SAVED_VIEWS_PER_USER} saved views, the most kept; delete one first."
            )
        if SavedView.objects.filter(user=user, page=data["page"], name=data["name"]).exists():
            raise serializers.ValidationError({"name": ["You already have a view of that name."]})
        return data


class SavedViewViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your saved views; `?page=alerts` lists one page's."""

    serializer_class = SavedViewSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = None

    def get_queryset(self):
        views = SavedView.objects.filter(user=self.request.user)
        page = self.request.query_params.get("page")
        return views.filter(page=page) if page else views

    def perform_create(self, serializer):
        serializer.save(user=self.request.user)


class PreferencesSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsolePreferences
        fields = ["notify_critical", "sound_critical"]


class PreferencesView(APIView):
    """Your console preferences: desktop notification and sound for critical alerts."""

    permission_classes = [IsAuthenticated]
    serializer_class = PreferencesSerializer

    def get(self, request):
        preferences = ConsolePreferences.objects.filter(user=request.user).first()
        return Response(PreferencesSerializer(preferences or ConsolePreferences()).data)

    def patch(self, request):
        preferences, _ = ConsolePreferences.objects.get_or_create(user=request.user)
        serializer = PreferencesSerializer(preferences, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class ChartHistoryView(APIView):
    """The overview charts' last 10 minutes: security events per 30 s by arrival and
    severity band (`security_events`, with `realtime.receive_security`) and CPU and memory
    (`system`, with `realtime.receive_system`). Times of buckets are Unix seconds."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response(chart_history(request.user))

"""Health of the components the server depends on (filled in by the foundation work)."""

from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "unknown"}, status=503)

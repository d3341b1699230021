from django.http import JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from hub import web
from hub.common.docs import RedocView


def health(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("api/v1/health", health),
    path("api/v1/", include("hub.accounts.urls")),
    path("api/v1/", include("hub.registry.urls")),
    path("api/v1/", include("hub.tracking.urls")),
    path("api/v1/", include("hub.jobs.urls")),
    path("api/v1/", include("hub.graphs.urls")),
    path("api/v1/", include("hub.inference.urls")),
    path("api/v1/", include("hub.provenance.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc", RedocView.as_view(url_name="schema"), name="redoc"),
    # The MLflow tracking API (/api/2.0/mlflow/…, /ajax-api/…, artifacts): before the catch-all.
    path("", include("hub.compat.mlflow.urls")),
    # The Hugging Face Hub API (/api/models/…, /{ns}/{name}/resolve/…): before the catch-all.
    path("", include("hub.compat.hf.urls")),
    re_path(r"^(?!api/|static/).*$", web.dashboard),
]

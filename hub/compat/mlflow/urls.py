"""MLflow's routes, at the paths its client builds from the tracking URI: ``/api/2.0/mlflow/``
(the client), ``/ajax-api/2.0/mlflow/`` (MLflow's web UI uses these), the proxied artifact
API and MLflow 3's ``server-info`` probe. Anything else under these prefixes is MLflow's
``ENDPOINT_NOT_FOUND``."""

from django.urls import path, re_path

from hub.compat.mlflow import views

urlpatterns = []
for prefix in ("api", "ajax-api"):
    urlpatterns += [
        re_path(rf"^{prefix}/2\.0/mlflow/(?P<endpoint>.+)$", views.TrackingApi.as_view()),
        path(f"{prefix}/2.0/mlflow-artifacts/artifacts", views.ArtifactsApi.as_view()),
        path(f"{prefix}/2.0/mlflow-artifacts/artifacts/<path:path>", views.ArtifactsApi.as_view()),
        path(f"{prefix}/3.0/mlflow/server-info", views.ServerInfoApi.as_view()),
        re_path(rf"^{prefix}/[234]\.0/mlflow(-artifacts)?/.*$", views.NotFoundApi.as_view()),
    ]

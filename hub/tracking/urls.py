from django.urls import path

from hub.tracking import api

urlpatterns = [
    path("projects", api.ProjectListCreateApi.as_view()),
    path("projects/<str:namespace>/<str:name>", api.ProjectDetailApi.as_view()),
    path("projects/<str:namespace>/<str:name>/runs", api.ProjectRunsApi.as_view()),
    path("runs/compare", api.CompareApi.as_view()),
    path("runs/<str:run_id>", api.RunDetailApi.as_view()),
    path("runs/<str:run_id>/params", api.RunParamsApi.as_view()),
    path("runs/<str:run_id>/alerts", api.RunAlertsApi.as_view()),
    path("runs/<str:run_id>/metrics", api.RunMetricsApi.as_view()),
    path("runs/<str:run_id>/metrics/export", api.ExportApi.as_view()),
    path("metrics/series", api.SeriesApi.as_view()),
]

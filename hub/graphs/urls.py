from django.urls import path

from hub.graphs import api

urlpatterns = [
    path("graphs/diff", api.GraphDiffApi.as_view()),
    path("jobs/<str:job_id>/graph", api.JobGraphApi.as_view()),
    path("repos/<str:namespace>/<str:name>/commits/<str:sha>/graph", api.CommitGraphApi.as_view()),
]

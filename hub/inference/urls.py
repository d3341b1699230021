from django.urls import path

from hub.inference import api, inspect

urlpatterns = [
    path("repos/<str:namespace>/<str:name>/generate", api.GenerateApi.as_view()),
    path("repos/<str:namespace>/<str:name>/attention", inspect.AttentionApi.as_view()),
    path("repos/<str:namespace>/<str:name>/routing-diff", inspect.RoutingDiffApi.as_view()),
]

from django.urls import path

from hub.inference import api

urlpatterns = [
    path("repos/<str:namespace>/<str:name>/generate", api.GenerateApi.as_view()),
]

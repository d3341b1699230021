from django.urls import path

from hub.provenance import api

urlpatterns = [
    path("watermark/verify", api.WatermarkVerifyApi.as_view()),
    path("repos/<str:namespace>/<str:name>/watermark", api.RepoWatermarkApi.as_view()),
]

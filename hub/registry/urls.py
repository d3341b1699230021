from django.urls import path

from hub.registry import api, cards_api

R = "repos/<str:namespace>/<str:name>"
urlpatterns = [
    path("repos", api.RepoListCreateApi.as_view()),
    path(R, api.RepoDetailApi.as_view()),
    path(f"{R}/stats", api.RepoStatsApi.as_view()),
    path(f"{R}/card", cards_api.CardApi.as_view()),
    path(f"{R}/branches", api.BranchListCreateApi.as_view()),
    path(f"{R}/branches/<path:branch>", api.BranchDetailApi.as_view()),
    path(f"{R}/tags", api.TagListCreateApi.as_view()),
    path(f"{R}/tags/<path:tag>", api.TagDetailApi.as_view()),
    path(f"{R}/chunks/missing", api.ChunksMissingApi.as_view()),
    path(f"{R}/chunks/<str:digest>", api.ChunkUploadApi.as_view()),
    path(f"{R}/commits", api.CommitListCreateApi.as_view()),
    path(f"{R}/commits/<str:sha>", api.CommitDetailApi.as_view()),
    path(f"{R}/tree", api.TreeApi.as_view()),
    path(f"{R}/info/<path:path>", api.FileInfoApi.as_view()),
    path(f"{R}/files/<path:path>", api.FileDownloadApi.as_view()),
    path(f"{R}/archive", api.ArchiveApi.as_view()),
    path(f"{R}/diff", api.DiffApi.as_view()),
    path(f"{R}/merge", api.MergeApi.as_view()),
    path("admin/gc", api.GcApi.as_view()),
    path("models/search", cards_api.ModelSearchApi.as_view()),
]

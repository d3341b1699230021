"""Routes of the Hugging Face Hub API (``HF_ENDPOINT=<hub>``). hub/urls.py includes them
before the dashboard's catch-all, so ``/{ns}/{name}/resolve/…`` reaches the file view while
every other page path still serves the dashboard."""

from django.urls import path, re_path

from hub.compat.hf import api

M = "api/models/<str:namespace>/<str:name>"
urlpatterns = [
    path("api/validate-yaml", api.ValidateYamlApi.as_view()),
    path("api/repos/create", api.CreateRepoApi.as_view()),
    path("api/whoami-v2", api.WhoamiApi.as_view()),
    path(M, api.ModelInfoApi.as_view()),
    path(f"{M}/revision/<path:rev>", api.ModelInfoApi.as_view()),
    path(f"{M}/tree/<path:rest>", api.TreeApi.as_view()),
    path(f"{M}/refs", api.RefsApi.as_view()),
    path(f"{M}/commits/<path:rev>", api.CommitsApi.as_view()),
    path(f"{M}/preupload/<path:rev>", api.PreuploadApi.as_view()),
    path(f"{M}/commit/<path:rev>", api.CommitApi.as_view()),
    path(f"{M}/branch/<path:branch>", api.BranchApi.as_view()),
    path(f"{M}/tag/<path:ref>", api.TagApi.as_view()),
    re_path(r"^api/(?:datasets|spaces)/", api.NotAModelRepoApi.as_view()),
    path("<str:namespace>/<str:name>/resolve/<path:rest>", api.ResolveApi.as_view()),
]

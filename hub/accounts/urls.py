from django.urls import path

from hub.accounts import api

urlpatterns = [
    path("auth/login", api.SessionLoginApi.as_view()),
    path("auth/logout", api.SessionLogoutApi.as_view()),
    path("auth/csrf", api.CsrfApi.as_view()),
    path("whoami", api.WhoAmIApi.as_view()),
    path("tokens", api.TokenListCreateApi.as_view()),
    path("tokens/<int:token_id>", api.TokenRevokeApi.as_view()),
    path("orgs", api.OrgCreateApi.as_view()),
    path("namespaces/<str:namespace>", api.NamespaceDetailApi.as_view()),
    path("namespaces/<str:namespace>/members/<str:username>", api.MemberApi.as_view()),
]

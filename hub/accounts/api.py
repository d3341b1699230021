"""Thin views: parse, call one service or selector, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts import selectors, services
from hub.accounts.models import ApiToken, Role
from hub.common.errors import Forbidden, NotAuthenticated
from hub.common.openapi import errors, page_of
from hub.common.pagination import paginate


def _require_user(request):
    if not request.user or not request.user.is_authenticated:
        raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
    return request.user


class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scope = serializers.ChoiceField(choices=ApiToken.Scope.choices)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class TokenCreatedOut(TokenOut):
    token = serializers.CharField(help_text="the secret: shown once, never stored in clear")


class NamespaceRoleOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class NamespaceOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()


class MemberOut(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class NamespaceDetailOut(NamespaceOut):
    created_at = serializers.DateTimeField()
    members = MemberOut(many=True, required=False, help_text="shown to members only")


class MembershipOut(serializers.Serializer):
    namespace = serializers.CharField()
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class CsrfOut(serializers.Serializer):
    csrf_token = serializers.CharField()


class SignedInOut(CsrfOut):
    username = serializers.CharField()


def _token_out(t: ApiToken) -> dict:
    return TokenOut(t).data


class WhoAmIApi(APIView):
    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        is_admin = serializers.BooleanField()
        namespaces = NamespaceRoleOut(many=True)
        token_scope = serializers.ChoiceField(choices=ApiToken.Scope.choices, allow_null=True)

    @extend_schema(operation_id="whoami", responses=OutputSerializer, summary="Who the caller is")
    def get(self, request):
        user = _require_user(request)
        memberships = user.memberships.select_related("namespace").order_by("namespace__name")
        return Response(
            {
                "username": user.username,
                "is_admin": user.is_superuser,
                "namespaces": [
                    {"name": m.namespace.name, "kind": m.namespace.kind, "role": m.role}
                    for m in memberships
                ],
                "token_scope": selectors.token_scope(request),
            }
        )


class TokenListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scope = serializers.ChoiceField(
            choices=ApiToken.Scope.choices, default=ApiToken.Scope.WRITE
        )

    @extend_schema(
        operation_id="tokens_list", responses=page_of(TokenOut), summary="List your tokens"
    )
    def get(self, request):
        user = _require_user(request)
        return paginate(self, selectors.token_list(user=user), _token_out)

    @extend_schema(
        operation_id="tokens_create",
        request=InputSerializer,
        responses={201: TokenCreatedOut},
        summary="Create a token (the secret is shown once)",
    )
    def post(self, request):
        user = _require_user(request)
        if selectors.token_scope(request) == ApiToken.Scope.READ:
            raise Forbidden("A read-only token cannot create tokens.", code="token_read_only")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.token_create(user=user, **data.validated_data)
        return Response({**_token_out(token), "token": secret}, status=201)


class TokenRevokeApi(APIView):
    @extend_schema(
        operation_id="tokens_revoke",
        request=None,
        responses={200: TokenOut},
        summary="Revoke a token",
    )
    def delete(self, request, token_id: int):
        user = _require_user(request)
        return Response(_token_out(services.token_revoke(user=user, token_id=token_id)))


class OrgCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64)

    @extend_schema(
        operation_id="orgs_create",
        request=InputSerializer,
        responses={201: NamespaceOut, **errors(409)},
        summary="Create an organisation namespace",
    )
    def post(self, request):
        user = _require_user(request)
        if selectors.token_scope(request) == ApiToken.Scope.READ:
            raise Forbidden("This token is read-only.", code="token_read_only")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ns = services.org_create(name=data.validated_data["name"], creator=user)
        return Response({"name": ns.name, "kind": ns.kind}, status=201)


class NamespaceDetailApi(APIView):
    @extend_schema(
        operation_id="namespaces_get",
        responses=NamespaceDetailOut,
        summary="A namespace and (for members) its members",
    )
    def get(self, request, namespace: str):
        ns = selectors.namespace_get(name=namespace)
        out = {"name": ns.name, "kind": ns.kind, "created_at": ns.created_at}
        if selectors.role_in(user=request.user, namespace=ns):
            out["members"] = [
                {"username": m.user.username, "role": m.role}
                for m in ns.memberships.select_related("user").order_by("user__username")
            ]
        return Response(out)


class MemberApi(APIView):
    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(
        operation_id="namespaces_members_set",
        request=InputSerializer,
        responses={200: MembershipOut, **errors(409)},
        summary="Add a member or change their role (admins)",
    )
    def put(self, request, namespace: str, username: str):
        ns = selectors.namespace_get(name=namespace)
        selectors.require_role(request, namespace=ns, role=Role.ADMIN)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        m = services.membership_set(
            namespace=ns,
            user=selectors.user_get(username=username),
            role=data.validated_data["role"],
        )
        return Response({"namespace": ns.name, "username": username, "role": m.role})

    @extend_schema(
        operation_id="namespaces_members_remove",
        request=None,
        responses={204: None, **errors(400, 409)},
        summary="Remove a member (admins)",
    )
    def delete(self, request, namespace: str, username: str):
        ns = selectors.namespace_get(name=namespace)
        selectors.require_role(request, namespace=ns, role=Role.ADMIN)
        services.membership_remove(namespace=ns, user=selectors.user_get(username=username))
        return Response(status=204)


def _client_address(request) -> str:
    """The caller's address: REMOTE_ADDR, or, behind ``HUB_TRUSTED_PROXIES`` reverse proxies,
    the X-Forwarded-For entry the outermost trusted proxy appended (never one the client wrote)."""
    from django.conf import settings

    hops = settings.HUB_TRUSTED_PROXIES
    forwarded = [
        a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()
    ]
    if hops > 0 and len(forwarded) >= hops:
        return forwarded[-hops][:100]
    return request.META.get("REMOTE_ADDR", "")[:100]


class SessionLoginApi(APIView):
    """Dashboard sign-in: a Django session (cookie) instead of a bearer token.

    Protected like any session write: the CSRF token (``X-CSRFToken``, from ``/auth/csrf``) and,
    when the browser sends one, an ``Origin`` of this hub — so a form on another site cannot sign
    a victim into the attacker's account. Failed passwords are throttled per account and per
    client address (``HUB_SIGNIN_*``): past the limit, 429 with Retry-After."""

    authentication_classes: list = []

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=1000)

    @extend_schema(
        operation_id="auth_login",
        request=InputSerializer,
        responses={200: SignedInOut, **errors(429)},
        summary="Sign in with a password (sets a session cookie)",
    )
    def post(self, request):
        from django.contrib.auth import authenticate, login
        from django.middleware.csrf import get_token
        from rest_framework.authentication import SessionAuthentication
        from rest_framework.exceptions import Throttled

        # DRF exempts its views from Django's CSRF middleware and checks CSRF only for session
        # users: a sign-in has none yet, so check it here (token and Origin, Django's rules).
        SessionAuthentication().enforce_csrf(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = "user:" + data.validated_data["username"].lower()
        keys = [account, "addr:" + _client_address(request)]
        wait = services.signin_retry_after(keys=keys)
        if wait:
            raise Throttled(wait=wait, detail=f"Too many failed sign-ins; try again in {wait} s.")
        user = authenticate(request, **data.validated_data)
        if user is None:
            services.signin_failed(keys=keys)
            raise NotAuthenticated("Wrong username or password.", code="invalid_credentials")
        services.signin_succeeded(account_key=account)
        login(request._request, user)
        return Response({"username": user.username, "csrf_token": get_token(request._request)})


class SessionLogoutApi(APIView):
    @extend_schema(
        operation_id="auth_logout",
        request=None,
        responses={204: None},
        summary="Sign out (ends the session)",
    )
    def post(self, request):
        from django.contrib.auth import logout

        logout(request._request)
        return Response(status=204)


class CsrfApi(APIView):
    authentication_classes: list = []

    @extend_schema(
        operation_id="auth_csrf",
        responses=CsrfOut,
        summary="A CSRF token for session-authenticated writes (X-CSRFToken header)",
    )
    def get(self, request):
        from django.middleware.csrf import get_token

        return Response({"csrf_token": get_token(request._request)})

"""Bearer-token authentication (``Authorization: Bearer hub_...``)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from hub.accounts.models import ApiToken
from hub.accounts.services import token_digest, token_touch


class TokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            secret = header[1].decode()
        except UnicodeError as e:
            raise exceptions.AuthenticationFailed("Malformed token.") from e
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(secret)).first()
        if token is None or not token.is_active or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="hub"'

"""API tokens on the wire: `Authorization: Bearer <token>`, for the REST API (a DRF authentication
class) and the Connect API (the same function), and one throttle shared by both."""

from __future__ import annotations

import hashlib

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling
from rest_framework.settings import api_settings

from projects.errors import Unauthenticated
from projects.services import api_token_authenticate


def bearer_secret(header: str) -> str | None:
    """The token in an Authorization header value; None when the header is not a Bearer one."""
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip()


def authenticate_bearer(header: str):
    """(user, token key) for a Bearer header, None without one; Unauthenticated for a bad token.

    The token key (a SHA-256 of the secret) names the token for throttling without keeping the
    secret around."""
    secret = bearer_secret(header)
    if secret is None:
        return None
    user = api_token_authenticate(secret)
    return user, hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        try:
            return authenticate_bearer(request.headers.get("Authorization", ""))
        except Unauthenticated as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class ApiTokenThrottle(throttling.SimpleRateThrottle):
    """Per token (per user for a browser session). Connect calls it too, with a stand-in request:
    only `.auth` and `.user` are read."""

    scope = "api"

    def get_rate(self):
        # Read on each request, not once at import, so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, str):
            ident = "token-" + request.auth
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = "anon-" + self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`pbk_...`) from the tokens page or `manage.py create_api_token`.",
        }

"""API tokens on the wire: `Authorization: Bearer <token>`, for the REST API (a DRF authentication
class) and the Connect API (the same function), and one throttle shared by both.

Also the client address that both throttles of guessing use: this module's token-failure counter
and django-axes for logins (AXES_CLIENT_IP_CALLABLE)."""

from __future__ import annotations

import hashlib
import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, throttling
from rest_framework.settings import api_settings

from core.errors import DomainError, Unauthenticated
from projects.services import api_token_authenticate


def client_address(request) -> str | None:
    """The address of the client that sent `request` (a Django or DRF request), as throttles count it.

    REMOTE_ADDR, unless TLS_TERMINATED_BY_PROXY says a reverse proxy sits in front: then the last
    X-Forwarded-For entry, the one that proxy appended for the peer it saw. Entries further left
    came from the client and may be anything, so they are never used (a client could otherwise
    pick a fresh address for each guess). An IPv6 client counts as its /64, the block one
    subscriber gets: one address each would give a single attacker 2**64 budgets. None when the
    request carries no usable address (a login made without a request, a Unix socket): axes
    stores it in an address column, which PostgreSQL types strictly."""
    meta = request.META
    candidates = [meta.get("REMOTE_ADDR") or ""]
    if getattr(settings, "TLS_TERMINATED_BY_PROXY", False):
        candidates.insert(0, meta.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip())
    for address in candidates:
        try:
            ip = ipaddress.ip_address(address)
            break
        except ValueError:
            continue
    else:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


class TokenGuessing(DomainError):
    """Too many failed token authentications from one address: refused until the window ends."""

    code = "resource_exhausted"

    def __init__(self, wait: float):
        self.wait = max(1.0, wait)
        super().__init__(f"too many failed API token authentications from this address; retry in {self.wait:.0f} s")


def _failures_key(address: str | None) -> str:
    # Requests without a usable address share one budget.
    return f"api-token-failures:{address or 'unknown'}"


def _check_not_guessing(address: str | None) -> None:
    # One counter per address in the cache: (failures, end of the window). The window starts at the
    # first failure and the entry expires with it, so the block lifts by itself.
    entry = cache.get(_failures_key(address))
    if entry is None:
        return
    failures, window_ends = entry
    if failures >= settings.API_TOKEN_FAILURE_LIMIT:
        wait = window_ends - time.time()
        if wait > 0:
            raise TokenGuessing(wait)


def _count_failure(address: str | None) -> None:
    key, now = _failures_key(address), time.time()
    entry = cache.get(key)
    if entry is None or entry[1] <= now:
        entry = (0, now + settings.API_TOKEN_FAILURE_WINDOW_SECONDS)
    failures, window_ends = entry
    # Not atomic (two processes may both write n+1): it undercounts a burst by a little, which
    # only delays the block by those few guesses.
    cache.set(key, (failures + 1, window_ends), max(1, round(window_ends - now)))


def bearer_secret(header: str) -> str | None:
    """The token in an Authorization header value; None when the header is not a Bearer one."""
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip()


def authenticate_bearer(header: str, address: str | None):
    """(user, token key) for a Bearer header, None without one; Unauthenticated for a bad token,
    TokenGuessing (before the token is even looked at) while `address` is blocked for guessing.

    The token key (a SHA-256 of the secret) names the token for throttling without keeping the
    secret around."""
    secret = bearer_secret(header)
    if secret is None:
        return None
    _check_not_guessing(address)
    try:
        user = api_token_authenticate(secret)
    except Unauthenticated:
        _count_failure(address)
        raise
    return user, hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        try:
            return authenticate_bearer(request.headers.get("Authorization", ""), client_address(request))
        except TokenGuessing as exc:
            raise TokenGuessingThrottled(exc) from None
        except Unauthenticated as exc:
            raise exceptions.AuthenticationFailed(exc.message) from None

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class TokenGuessingThrottled(exceptions.Throttled):
    """DRF's 429 (with Retry-After) carrying the guessing message rather than the per-token one."""

    def __init__(self, exc: TokenGuessing):
        super().__init__(wait=exc.wait, detail=exc.message)
        self.message = exc.message


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

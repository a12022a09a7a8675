"""Fixtures for both APIs: API tokens for each role and a client that sends them."""

import json

import pytest
from django.core.cache import cache
from django.test import Client

from projects.services import api_token_create

CONNECT = "/gitpod.v1.PrebuildService/"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Throttle counters live in the cache, which outlives a test's database.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tokens(org):
    """A bearer secret per role: admin, member, outsider (admin of another organization)."""
    return {role: api_token_create(user=getattr(org, role), name="test")[1] for role in ("admin", "member", "outsider")}


class Api:
    """Django's test client speaking to the REST API and the Connect API (JSON and binary)."""

    def __init__(self, secret=None):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

    def rest(self, method, path, body=None, **params):
        kwargs = {"headers": self.headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        elif params:
            kwargs["data"] = params
        return getattr(self.client, method)(path, **kwargs)

    def post(self, method, data, content_type, headers):
        # CONTENT_TYPE is also passed in the environ: the test client leaves it out when the body
        # is empty (an all-defaults protobuf message is), and a real client always sends it.
        return self.client.post(
            CONNECT + method, data=data, content_type=content_type, headers=headers, CONTENT_TYPE=content_type
        )

    def connect_json(self, method, body: dict | str | bytes):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.post(method, data, "application/json", self.headers)

    def connect_proto(self, method, message, response_class=None, headers=None):
        data = message if isinstance(message, bytes) else message.SerializeToString()
        response = self.post(method, data, "application/proto", {**self.headers, **(headers or {})})
        if response.status_code == 200 and response_class is not None:
            response.message = response_class.FromString(response.content)
        return response


@pytest.fixture
def api(tokens):
    """api["admin"], api["member"], api["outsider"], api[None] (anonymous)."""
    clients = {role: Api(secret) for role, secret in tokens.items()}
    clients[None] = Api()
    return clients

"""A request body sent with Transfer-Encoding: chunked is read (dashboard.bodies), as gunicorn hands
it to the application: de-chunked, with no CONTENT_LENGTH, wsgi.input_terminated set. Driven here
through the WSGI application gunicorn serves (dashboard.wsgi); tests/processes/api sends real chunked
requests to gunicorn."""

import io
import json
import sys

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from gitpod.v1 import prebuild_pb2 as pb

from dashboard.bodies import ChunkedBodies, read_at_most
from dashboard.wsgi import application
from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild

pytestmark = pytest.mark.django_db

UNKNOWN = "3f1c5b0e-0000-4000-8000-000000000000"


def environ(path, body: bytes, content_type: str, *, chunked=True, terminated=True, headers=None) -> dict:
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **(headers or {}),
    }
    if chunked:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        env["CONTENT_LENGTH"] = str(len(body))
    if terminated:
        env["wsgi.input_terminated"] = True
    return env


def call(env) -> tuple[int, bytes]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])

    # As Django's test client does: a request must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(application(env, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return seen["status"], body


@pytest.fixture
def bearer(tokens):
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens['member']}"}


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_binary_list_filter_is_read_from_a_chunked_body(org, bearer, chunked):
    prebuild_services.prebuild_create(actor=org.member, project=org.project)
    request = pb.ListPrebuildsRequest(filter=pb.ListPrebuildsRequest.Filter(project_ids=[UNKNOWN]))
    env = environ(
        "/gitpod.v1.PrebuildService/ListPrebuilds",
        request.SerializeToString(),
        "application/proto",
        chunked=chunked,
        headers=bearer,
    )
    status, body = call(env)
    assert status == 200, body
    assert list(pb.ListPrebuildsResponse.FromString(body).prebuilds) == []  # not every prebuild


def test_a_chunked_json_request_parses(org, bearer):
    body = json.dumps({"projectId": str(org.project.id), "spec": {"timeout": "600s"}}).encode()
    status, content = call(
        environ("/gitpod.v1.PrebuildService/CreatePrebuild", body, "application/json", headers=bearer)
    )
    assert status == 200, content
    assert json.loads(content)["prebuild"]["spec"]["timeout"] == "600s"


def test_a_chunked_rest_body_is_read(org, bearer):
    body = json.dumps({"projectId": str(org.project.id), "spec": {"timeout": "900s"}}).encode()
    status, content = call(environ("/api/v1/prebuilds/", body, "application/json", headers=bearer))
    assert status == 201, content
    assert Prebuild.objects.get().timeout.total_seconds() == 900


def test_a_chunked_body_over_the_upload_cap_is_too_large(org, bearer):
    request = pb.GetPrebuildRequest(prebuild_id=UNKNOWN).SerializeToString()
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=len(request) - 1):
        status, content = call(
            environ("/gitpod.v1.PrebuildService/GetPrebuild", request, "application/proto", headers=bearer)
        )
    assert (status, json.loads(content)["code"]) == (429, "resource_exhausted")


def test_only_a_terminated_chunked_input_without_a_length_is_read():
    seen = []

    def inner(env, start_response):
        seen.append((env.get("CONTENT_LENGTH"), env["wsgi.input"].read()))
        return [b""]

    middleware = ChunkedBodies(inner)
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100):
        middleware(environ("/", b"abc", "text/plain"), None)
        # A raw socket (no wsgi.input_terminated) is left alone: reading it to its end would hang.
        middleware(environ("/", b"abc", "text/plain", terminated=False), None)
        middleware(environ("/", b"abc", "text/plain", chunked=False), None)
    assert seen == [("3", b"abc"), (None, b"abc"), ("3", b"abc")]


def test_read_at_most_stops_one_byte_past_the_limit():
    stream = io.BytesIO(b"x" * 1000)
    assert read_at_most(stream, 10) == b"x" * 11
    assert stream.read() == b"x" * 989  # the rest is left unread
    assert read_at_most(io.BytesIO(b"x" * 200_000), None) == b"x" * 200_000
    assert read_at_most(io.BytesIO(b"abc"), 3) == b"abc"

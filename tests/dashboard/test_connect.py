"""The Connect API in-process (Django's test client through the same view gunicorn serves): codecs
and compression, malformed input, limits, throttling, unexpected errors, and the conversion of
every field."""

import gzip
import json
import random
import uuid
from datetime import UTC, timedelta
from urllib.parse import urlencode

import pytest
from django.test import override_settings
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.identity_pb2 import Principal

from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.logtokens import logs_token_verify
from prebuilds.models import PrebuildPhase
from warmpools import services as pool_services
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db

METHODS = {
    "CreatePrebuild": pb.CreatePrebuildRequest,
    "ListPrebuilds": pb.ListPrebuildsRequest,
    "GetPrebuild": pb.GetPrebuildRequest,
    "CancelPrebuild": pb.CancelPrebuildRequest,
    "DeletePrebuild": pb.DeletePrebuildRequest,
    "CreatePrebuildLogsToken": pb.CreatePrebuildLogsTokenRequest,
    "CreateWarmPool": pb.CreateWarmPoolRequest,
    "GetWarmPool": pb.GetWarmPoolRequest,
    "ListWarmPools": pb.ListWarmPoolsRequest,
    "UpdateWarmPool": pb.UpdateWarmPoolRequest,
    "DeleteWarmPool": pb.DeleteWarmPoolRequest,
}


def error(response):
    return response.status_code, json.loads(response.content)["code"]


@pytest.fixture
def prebuild(org):
    return prebuild_services.prebuild_create(actor=org.member, project=org.project)


def test_binary_gzip_request_and_gzip_response(org, api, prebuild):
    body = gzip.compress(pb.GetPrebuildRequest(prebuild_id=str(prebuild.id)).SerializeToString())
    response = api["member"].connect_proto(
        "GetPrebuild", body, headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    message = pb.GetPrebuildResponse.FromString(gzip.decompress(response.content))
    assert message.prebuild.id == str(prebuild.id)


def test_connect_get_for_side_effect_free_methods(org, api, prebuild):
    query = urlencode({"encoding": "json", "message": json.dumps({"prebuildId": str(prebuild.id)})})
    response = api["member"].client.get(
        f"/gitpod.v1.PrebuildService/GetPrebuild?{query}", headers=api["member"].headers
    )
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["prebuild"]["id"] == str(prebuild.id)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "body, content_type",
    [
        (b'{"prebuildId": ', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[1, 2]", "application/json"),
        # a wrong type for a field each method has
        (b'{"prebuildId": 7, "warmPoolId": 7, "projectId": 7, "pagination": {"pageSize": "many"}}', "application/json"),
        (b"\x0a\x40abc", "application/proto"),  # a string field announcing 64 bytes, with 3
        (b"\x12\x05\x0a", "application/proto"),  # a truncated sub-message
        (b"\xff\xff\xff\xff\xff", "application/proto"),
        (gzip.compress(b"\x0a\x40abc")[:-4], "application/proto+gzip"),
    ],
)
def test_malformed_and_truncated_bodies_are_invalid_argument(api, method, body, content_type):
    headers = {}
    if content_type.endswith("+gzip"):
        content_type, headers = "application/proto", {"HTTP_CONTENT_ENCODING": "gzip"}
    response = api["member"].client.post(
        "/gitpod.v1.PrebuildService/" + method,
        data=body,
        content_type=content_type,
        headers=api["member"].headers,
        **headers,
    )
    assert error(response) == (400, "invalid_argument"), response.content


@pytest.mark.parametrize("method", METHODS)
def test_truncations_of_valid_requests_never_fail_with_500(org, api, prebuild, method):
    """Every prefix of a valid request and random byte flips: a 4xx or a 200, never a 5xx."""
    request = METHODS[method]()
    for name in ("prebuild_id", "warm_pool_id", "project_id", "environment_class_id"):
        if name in request.DESCRIPTOR.fields_by_name:
            setattr(request, name, str(org.small.id if "class" in name else uuid.uuid4()))
    if method == "CreatePrebuild":
        request.spec.timeout.seconds = 600
    if method == "ListPrebuilds":
        request.filter.project_ids.append(str(org.project.id))
    if method.startswith("List"):
        request.pagination.page_size = 3
    data = request.SerializeToString()
    rng = random.Random(method)
    bodies = [data[:n] for n in range(len(data))]
    for _ in range(30):
        flipped = bytearray(data)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        bodies.append(bytes(flipped))
    for body in bodies:
        response = api["admin"].connect_proto(method, body)
        assert response.status_code < 500, (body, response.content)


def test_unknown_method_and_content_type_are_not_server_errors(api):
    assert api["member"].connect_json("NoSuchMethod", {}).status_code == 404
    response = api["member"].client.post(
        "/gitpod.v1.PrebuildService/GetPrebuild", data="x", content_type="text/plain", headers=api["member"].headers
    )
    assert response.status_code == 415


def test_an_oversized_request_is_resource_exhausted(api):
    body = gzip.compress(pb.GetPrebuildRequest(prebuild_id="a" * (2 * 1024 * 1024)).SerializeToString())
    response = api["member"].connect_proto("GetPrebuild", body, headers={"Content-Encoding": "gzip"})
    assert error(response) == (429, "resource_exhausted")


def test_an_unexpected_error_is_internal_and_reveals_nothing(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("prebuilds.proto.prebuilds_for", broken)
    response = api["member"].connect_json("ListPrebuilds", {})
    assert error(response) == (500, "internal")
    assert b"hunter2" not in response.content


def test_unauthenticated_before_the_body_is_read(api):
    assert error(api[None].connect_json("GetPrebuild", b"not even json")) == (401, "unauthenticated")
    wrong_scheme = api["member"].client.post(
        "/gitpod.v1.PrebuildService/GetPrebuild",
        data="{}",
        content_type="application/json",
        headers={"Authorization": "Basic dXNlcjpwdw=="},
    )
    assert error(wrong_scheme) == (401, "unauthenticated")


def test_throttled_per_token_with_resource_exhausted_and_a_shared_budget(org, api, tokens):
    rates = {"DEFAULT_THROTTLE_RATES": {"api": "4/min"}}
    from django.conf import settings

    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, **rates}):
        for _ in range(2):
            assert api["member"].connect_json("ListPrebuilds", {}).status_code == 200
        for _ in range(2):
            assert api["member"].rest("get", "/api/v1/prebuilds/").status_code == 200
        throttled = api["member"].connect_json("ListPrebuilds", {})
        assert error(throttled) == (429, "resource_exhausted")
        assert int(throttled["Retry-After"]) >= 1
        assert "too many requests" in json.loads(throttled.content)["message"]
        rest = api["member"].rest("get", "/api/v1/prebuilds/")
        assert rest.status_code == 429 and rest.json()["code"] == "resource_exhausted" and rest["Retry-After"]
        # another token has its own budget
        assert api["admin"].connect_json("ListPrebuilds", {}).status_code == 200


def test_a_prebuild_has_every_field_filled_in(org, api, prebuild):
    environment_id = str(uuid.uuid4())  # the environment that built it (a container backend has one)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild = prebuild_status.prebuild_set_status(
        prebuild=prebuild,
        phase=PrebuildPhase.RUNNING,
        log_url=f"http://testserver/logs/{prebuild.id}",
        environment_id=environment_id,
        warning_message="image ignored",
    )
    for phase in (PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild = prebuild_status.prebuild_set_status(
            prebuild=prebuild, phase=phase, snapshot_completion_percentage=40
        )
    prebuild = prebuild_status.prebuild_set_status(
        prebuild=prebuild, phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=5 * 2**32
    )
    response = api["member"].connect_proto(
        "GetPrebuild", pb.GetPrebuildRequest(prebuild_id=str(prebuild.id)), pb.GetPrebuildResponse
    )
    p = response.message.prebuild
    assert p.status.phase == pb.PREBUILD_PHASE_COMPLETED
    assert p.status.log_url == f"http://testserver/logs/{prebuild.id}"
    assert p.status.environment_id == environment_id
    assert p.status.warning_message == "image ignored"
    assert p.status.snapshot_size_bytes == 5 * 2**32
    assert p.status.snapshot_completion_percentage == 0  # only while SNAPSHOTTING
    assert p.status.completion_time.ToDatetime(tzinfo=UTC) == prebuild.completion_time
    assert p.status.status_version == prebuild.status_version
    assert p.metadata.created_at.ToDatetime(tzinfo=UTC) == prebuild.created_at
    assert p.spec.timeout.ToTimedelta() == timedelta(hours=1)
    assert p.metadata.creator.principal == Principal.PRINCIPAL_USER


def test_a_warm_pool_names_its_snapshot_and_the_autoscaler_target(org, api, prebuild):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=4
    )
    WarmPool.objects.filter(pk=pool.pk).update(snapshot=prebuild, status_desired_size=3, running_instances=2)
    response = api["member"].connect_proto(
        "GetWarmPool", pb.GetWarmPoolRequest(warm_pool_id=str(pool.id)), pb.GetWarmPoolResponse
    )
    w = response.message.warm_pool
    assert w.spec.snapshot_id == str(prebuild.id)
    assert (w.status.desired_size, w.status.running_instances) == (3, 2)
    assert w.metadata.runner_id == str(org.runner.id)
    assert (w.spec.min_size, w.spec.max_size) == (1, 4)


def test_the_logs_token_is_for_that_prebuild(org, api, prebuild):
    response = api["member"].connect_json("CreatePrebuildLogsToken", {"prebuildId": str(prebuild.id)})
    token = json.loads(response.content)["accessToken"]
    logs_token_verify(token, prebuild_id=prebuild.id)  # raises when it is not


def test_rest_and_connect_json_are_identical_for_prebuilds_and_pools(org, api, prebuild):
    """The same prebuild or pool reads as the same JSON, byte for byte once parsed, from REST and from
    Connect's JSON codec: fields at their default value are left out by both (a fresh prebuild has
    no failure message, desired phase or log URL yet; a fresh pool no instances)."""
    cancelled = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    prebuild_services.prebuild_cancel(actor=org.member, prebuild=cancelled)
    running = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild_status.prebuild_set_status(
        prebuild=running, phase=PrebuildPhase.RUNNING, log_url=f"http://testserver/logs/{prebuild.id}"
    )
    for prebuild_id in (prebuild.id, cancelled.id):
        connect = json.loads(api["member"].connect_json("GetPrebuild", {"prebuildId": str(prebuild_id)}).content)
        rest = api["member"].rest("get", f"/api/v1/prebuilds/{prebuild_id}/").json()
        assert rest == connect["prebuild"]
    fresh = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    connect = json.loads(api["member"].connect_json("GetPrebuild", {"prebuildId": str(fresh.id)}).content)
    assert api["member"].rest("get", f"/api/v1/prebuilds/{fresh.id}/").json() == connect["prebuild"]
    assert "failureMessage" not in connect["prebuild"]["status"] and "desiredPhase" not in connect["prebuild"]["spec"]

    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=2
    )
    empty = json.loads(api["member"].connect_json("GetWarmPool", {"warmPoolId": str(pool.id)}).content)
    assert api["member"].rest("get", f"/api/v1/warm-pools/{pool.id}/").json() == empty["warmPool"]
    # min_size is an optional field (it has presence): 0 is written; running_instances is not.
    assert empty["warmPool"]["spec"]["minSize"] == 0 and "runningInstances" not in empty["warmPool"]["status"]
    WarmPool.objects.filter(pk=pool.pk).update(snapshot=prebuild, status_desired_size=1, running_instances=1)
    filled = json.loads(api["member"].connect_json("GetWarmPool", {"warmPoolId": str(pool.id)}).content)
    assert api["member"].rest("get", f"/api/v1/warm-pools/{pool.id}/").json() == filled["warmPool"]
    assert filled["warmPool"]["spec"]["snapshotId"] == str(prebuild.id)

    # Lists too: the same items as the Connect lists.
    connect_list = json.loads(api["member"].connect_json("ListPrebuilds", {}).content)["prebuilds"]
    assert api["member"].rest("get", "/api/v1/prebuilds/").json()["prebuilds"] == connect_list
    connect_pools = json.loads(api["member"].connect_json("ListWarmPools", {}).content)["warmPools"]
    assert api["member"].rest("get", "/api/v1/warm-pools/").json()["warmPools"] == connect_pools

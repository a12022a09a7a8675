"""The Connect API in-process, on what issue 16 found unfaithful: enum names in JSON, page tokens
across filters and methods, an empty UpdateWarmPool, a disabled class for a pool, an explicitly empty
class id, and the violations sent as error details."""

import base64
import json

import pytest
from buf.validate import validate_pb2
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.pagination_pb2 import PaginationRequest

from prebuilds import services as prebuild_services
from warmpools import services as pool_services
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db


def body(response) -> dict:
    return json.loads(response.content)


def refusal(response) -> tuple[int, str, str]:
    data = body(response)
    return response.status_code, data["code"], data["message"]


@pytest.fixture
def prebuilds(org):
    return [prebuild_services.prebuild_create(actor=org.member, project=org.project) for _ in range(3)]


def test_an_unknown_enum_name_in_json_is_refused_not_dropped(api, prebuilds):
    for request, path in (
        ({"filter": {"phases": ["PREBUILD_PHASE_PENDING", "PREBUILD_PHASE_PENDNIG"]}}, "filter.phases[1]"),
        ({"filter": {"triggeredBy": ["PREBUILD_TRIGGER_SOMETIMES"]}}, "filter.triggered_by[0]"),
    ):
        status, code, message = refusal(api["member"].connect_json("ListPrebuilds", request))
        assert (status, code) == (400, "invalid_argument")
        # (the library puts its "Failed to decode request body: " before a codec's words)
        assert message.endswith(f"{path}: value must be one of the defined enum values")
    refused = api["member"].connect_json("CreatePrebuild", {"projectId": "x", "spec": {"desiredPhase": "SOON"}})
    assert "spec.desired_phase: " in refusal(refused)[2]
    # An undefined number is refused by the descriptor's rule, in either codec.
    assert refusal(api["member"].connect_json("ListPrebuilds", {"filter": {"phases": [5]}}))[2].startswith(
        "filter.phases[0]: "
    )
    # Known names, and unknown fields, are as before.
    listed = api["member"].connect_json(
        "ListPrebuilds", {"filter": {"phases": ["PREBUILD_PHASE_PENDING"]}, "someFutureField": {"x": 1}}
    )
    assert len(body(listed)["prebuilds"]) == 3


def test_a_broken_rule_is_sent_with_its_violations_as_details(api):
    response = api["member"].connect_json("GetPrebuild", {"prebuildId": "nope"})
    (detail,) = body(response)["details"]
    assert detail["type"] == "buf.validate.Violations"
    violations = validate_pb2.Violations.FromString(base64.b64decode(detail["value"] + "=="))
    assert [(v.constraint_id, v.field.elements[0].field_name) for v in violations.violations] == [
        ("string.uuid", "prebuild_id")
    ]


def test_a_page_token_is_good_for_its_own_method_and_filter_only(org, api, prebuilds, make_pool):
    make_pool()
    make_pool(environment_class=org.large)
    filters = {"projectIds": [str(org.project.id)]}
    first = body(api["member"].connect_json("ListPrebuilds", {"filter": filters, "pagination": {"pageSize": 2}}))
    token = first["pagination"]["nextToken"]
    page = {"pageSize": 2, "token": token}
    second = body(api["member"].connect_json("ListPrebuilds", {"filter": filters, "pagination": page}))
    assert len(second["prebuilds"]) == 1
    for method, request in (
        ("ListPrebuilds", {"pagination": page}),  # no filter
        ("ListPrebuilds", {"filter": {"phases": ["PREBUILD_PHASE_PENDING"]}, "pagination": page}),
        ("ListWarmPools", {"filter": filters, "pagination": page}),
    ):
        status, code, message = refusal(api["member"].connect_json(method, request))
        assert (status, code) == (400, "invalid_argument"), (method, request)
        assert message.startswith("pagination.token")
    # The REST list of the same filter is the same method: its token pages the Connect list.
    rest = api["member"].client.get(
        "/api/v1/prebuilds/", {"project_ids": str(org.project.id), "page_size": 2}, headers=api["member"].headers
    )
    rest_token = rest.json()["pagination"]["nextToken"]
    again = api["member"].connect_proto(
        "ListPrebuilds",
        pb.ListPrebuildsRequest(
            filter=pb.ListPrebuildsRequest.Filter(project_ids=[str(org.project.id)]),
            pagination=PaginationRequest(page_size=2, token=rest_token),
        ),
        pb.ListPrebuildsResponse,
    )
    assert [p.id for p in again.message.prebuilds] == [p["id"] for p in second["prebuilds"]]


def test_an_update_with_nothing_to_change_keeps_the_spec_version(org, api, make_pool):
    pool = make_pool(min_size=1, max_size=3)
    for request in ({"warmPoolId": str(pool.id)}, {"warmPoolId": str(pool.id), "minSize": 1, "maxSize": 3}):
        response = api["admin"].connect_json("UpdateWarmPool", request)
        assert response.status_code == 200, response.content
        assert body(response)["warmPool"]["spec"]["specVersion"] == "1"
    assert WarmPool.objects.get(pk=pool.pk).spec_version == 1
    response = api["admin"].connect_json("UpdateWarmPool", {"warmPoolId": str(pool.id), "maxSize": 4})
    assert body(response)["warmPool"]["spec"]["specVersion"] == "2"


def test_create_warm_pool_refuses_a_disabled_class_as_create_prebuild_does(org, api):
    org.small.enabled = False
    org.small.save()
    ids = {"projectId": str(org.project.id), "environmentClassId": str(org.small.id)}
    for method, request, role in (
        ("CreateWarmPool", {**ids, "maxSize": 1}, "admin"),
        ("CreatePrebuild", {**ids, "spec": {}}, "member"),
    ):
        status, code, message = refusal(api[role].connect_json(method, request))
        assert (status, code) == (400, "failed_precondition"), method
        assert "disabled" in message
    assert not WarmPool.objects.exists()


def test_an_explicitly_empty_class_is_invalid_not_the_default(org, api):
    request = pb.CreatePrebuildRequest(project_id=str(org.project.id), environment_class_id="", spec=pb.PrebuildSpec())
    status, code, message = refusal(api["member"].connect_proto("CreatePrebuild", request))
    assert (status, code) == (400, "invalid_argument")
    assert message.startswith("environment_class_id: ")
    request.ClearField("environment_class_id")
    created = api["member"].connect_proto("CreatePrebuild", request, pb.CreatePrebuildResponse)
    assert created.message.prebuild.metadata.environment_class_id == str(org.small.id)  # absent: the default


def test_pool_sizes_are_the_descriptors(org, api):
    ids = {"projectId": str(org.project.id), "environmentClassId": str(org.small.id)}
    for sizes, path in (({"maxSize": 0}, "max_size"), ({"desiredSize": 21}, "desired_size")):
        status, code, message = refusal(api["admin"].connect_json("CreateWarmPool", {**ids, **sizes}))
        assert (status, code) == (400, "invalid_argument")
        assert message.startswith(f"{path}: "), message
    # desired_size has no presence on create: 0 is "not given", and max_size is then needed.
    status, code, message = refusal(api["admin"].connect_json("CreateWarmPool", {**ids, "desiredSize": 0}))
    assert (status, code, message) == (400, "invalid_argument", "max_size (or desired_size) is required")
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=2
    )
    status, code, message = refusal(
        api["admin"].connect_json("UpdateWarmPool", {"warmPoolId": str(pool.id), "desiredSize": 0})
    )
    assert (status, code) == (400, "invalid_argument") and message.startswith("desired_size: ")

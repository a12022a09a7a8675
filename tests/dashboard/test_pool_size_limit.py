"""The warm pool size limits over both APIs, as the descriptors declare them: maxSize 1 to 20 (0 and
21 refused), desiredSize 1 to 20 when given, on create and resize: a 400 / invalid_argument naming
the field."""

import json

import pytest
from gitpod.v1 import prebuild_pb2 as pb

from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db

POOLS = "/api/v1/warm-pools/"


def rest_create(org, api, **sizes):
    body = {"projectId": str(org.project.id), "environmentClassId": str(org.small.id), **sizes}
    return api["admin"].rest("post", POOLS, body)


def test_rest_create_accepts_twenty_and_refuses_twenty_one(org, api):
    refused = rest_create(org, api, maxSize=21)
    assert (refused.status_code, refused.json()["field"]) == (400, "maxSize")
    assert "less than or equal to 20" in refused.json()["message"]
    for sizes, field in (({"maxSize": 0}, "maxSize"), ({"desiredSize": 21}, "desiredSize")):
        refused = rest_create(org, api, **sizes)
        assert (refused.status_code, refused.json()["field"]) == (400, field), refused.content
    assert not WarmPool.objects.exists()
    accepted = rest_create(org, api, minSize=2, maxSize=20)
    assert accepted.status_code == 201, accepted.content
    assert (accepted.json()["spec"]["minSize"], accepted.json()["spec"]["maxSize"]) == (2, 20)


def test_rest_resize_accepts_twenty_and_refuses_twenty_one(org, api):
    pool = rest_create(org, api, minSize=1, maxSize=3).json()
    url = f"{POOLS}{pool['id']}/resize/"
    refused = api["admin"].rest("post", url, {"maxSize": 21})
    assert (refused.status_code, refused.json()["field"]) == (400, "maxSize")
    resized = api["admin"].rest("post", url, {"maxSize": 20})
    assert resized.status_code == 200, resized.content
    assert (resized.json()["spec"]["minSize"], resized.json()["spec"]["maxSize"]) == (1, 20)
    assert WarmPool.objects.get(id=pool["id"]).max_size == 20


def connect_error(response):
    return response.status_code, json.loads(response.content)["code"]


def test_connect_create_accepts_twenty_and_refuses_twenty_one(org, api):
    def create(max_size):
        request = pb.CreateWarmPoolRequest(
            project_id=str(org.project.id), environment_class_id=str(org.small.id), max_size=max_size
        )
        return api["admin"].connect_proto("CreateWarmPool", request, pb.CreateWarmPoolResponse)

    assert connect_error(create(21)) == (400, "invalid_argument")
    created = create(20)
    assert created.status_code == 200, created.content
    assert created.message.warm_pool.spec.max_size == 20


def test_connect_update_accepts_twenty_and_refuses_twenty_one(org, api):
    request = pb.CreateWarmPoolRequest(
        project_id=str(org.project.id), environment_class_id=str(org.small.id), min_size=1, max_size=3
    )
    pool_id = api["admin"].connect_proto("CreateWarmPool", request, pb.CreateWarmPoolResponse).message.warm_pool.id

    def update(max_size):
        request = pb.UpdateWarmPoolRequest(warm_pool_id=pool_id, max_size=max_size)
        return api["admin"].connect_proto("UpdateWarmPool", request, pb.UpdateWarmPoolResponse)

    refused = update(21)
    assert connect_error(refused) == (400, "invalid_argument")
    assert "max_size" in json.loads(refused.content)["message"]
    # desired_size 21 is refused naming desired_size (not max_size), and 0 is no size at all.
    for desired in (21, 0):
        refused = api["admin"].connect_proto(
            "UpdateWarmPool", pb.UpdateWarmPoolRequest(warm_pool_id=pool_id, desired_size=desired)
        )
        assert connect_error(refused) == (400, "invalid_argument")
        assert json.loads(refused.content)["message"].startswith("desired_size: "), refused.content
    assert WarmPool.objects.get(id=pool_id).spec_version == 1
    updated = update(20)
    assert updated.status_code == 200, updated.content
    assert (updated.message.warm_pool.spec.min_size, updated.message.warm_pool.spec.max_size) == (1, 20)

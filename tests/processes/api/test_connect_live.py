"""Ona's official client (`ona_sdk.create_client`) against a live gunicorn: every method of
gitpod.v1.PrebuildService, every error code on purpose, lists with each filter and across pages;
then the same calls in the JSON codec over plain HTTP."""

from __future__ import annotations

import uuid

import pytest
import requests
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.identity_pb2 import Principal
from gitpod.v1.pagination_pb2 import PaginationRequest
from google.protobuf.duration_pb2 import Duration
from ona_sdk import create_client

from tests.processes.api.live import start_live_server

pytestmark = pytest.mark.slow

PREFIX = "/gitpod.v1.PrebuildService/"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server(tmp_path_factory.mktemp("live"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sdk(live):
    """The PrebuildService client of each role (None: no token at all)."""
    clients = {
        role: create_client(api_key=secret, base_url=live.base_url) for role, secret in live.seed["tokens"].items()
    }
    clients[None] = create_client(api_key=None, base_url=live.base_url)
    return {role: client.services.prebuild for role, client in clients.items()}


def error_of(call, *args) -> ConnectError:
    with pytest.raises(ConnectError) as exc:
        call(*args)
    return exc.value


def create_request(project_id, class_id=None, timeout=None):
    request = pb.CreatePrebuildRequest(project_id=project_id, spec=pb.PrebuildSpec())
    if class_id:
        request.environment_class_id = class_id
    if timeout:
        request.spec.timeout.CopyFrom(Duration(seconds=timeout))
    return request


def test_prebuild_methods_with_the_official_client(live, sdk):
    seed, member = live.seed, sdk["member"]
    created = member.create_prebuild(create_request(seed["projects"]["app"], timeout=900)).prebuild
    assert uuid.UUID(created.id)
    meta = created.metadata
    assert (meta.organization_id, meta.project_id) == (seed["organization"], seed["projects"]["app"])
    assert meta.environment_class_id == seed["classes"]["small"]  # the project's default class
    assert (meta.creator.id, meta.creator.principal) == (seed["users"]["member"], Principal.PRINCIPAL_USER)
    assert (meta.executor.id, meta.executor.principal) == (seed["users"]["member"], Principal.PRINCIPAL_USER)
    assert meta.triggered_by == pb.PrebuildMetadata.PREBUILD_TRIGGER_MANUAL
    assert meta.created_at.seconds > 0 and meta.updated_at.seconds > 0
    assert created.spec.timeout.seconds == 900 and created.spec.spec_version == 1
    assert created.status.phase == pb.PREBUILD_PHASE_PENDING and created.status.status_version == 1

    fetched = member.get_prebuild(pb.GetPrebuildRequest(prebuild_id=created.id)).prebuild
    assert fetched == created

    on_large = member.create_prebuild(create_request(seed["projects"]["app"], seed["classes"]["large"])).prebuild
    assert on_large.metadata.environment_class_id == seed["classes"]["large"]
    assert on_large.spec.timeout.seconds == 3600  # the default

    # A logs token reads this prebuild's logs at the logs endpoint, and only with the token.
    token = member.create_prebuild_logs_token(pb.CreatePrebuildLogsTokenRequest(prebuild_id=created.id)).access_token
    assert token
    logs = requests.get(f"{live.base_url}/logs/{created.id}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert logs.status_code == 200, logs.text
    assert "lines" in logs.json()
    assert (
        requests.get(f"{live.base_url}/logs/{on_large.id}", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )

    cancelled = member.cancel_prebuild(pb.CancelPrebuildRequest(prebuild_id=created.id)).prebuild
    assert cancelled.spec.desired_phase == pb.PREBUILD_PHASE_CANCELLED
    assert cancelled.spec.spec_version == 2
    assert cancelled.status.phase == pb.PREBUILD_PHASE_CANCELLED  # never started: cancelled at once
    assert cancelled.status.completion_time.seconds > 0
    again = member.cancel_prebuild(pb.CancelPrebuildRequest(prebuild_id=created.id)).prebuild
    assert again.spec.spec_version == 2  # cancelling a finished prebuild is harmless

    listed = member.list_prebuilds(pb.ListPrebuildsRequest()).prebuilds
    assert {created.id, on_large.id} <= {p.id for p in listed}

    assert sdk["admin"].delete_prebuild(pb.DeletePrebuildRequest(prebuild_id=created.id)) == pb.DeletePrebuildResponse()
    deleting = member.get_prebuild(pb.GetPrebuildRequest(prebuild_id=created.id)).prebuild
    assert deleting.spec.desired_phase == pb.PREBUILD_PHASE_DELETED
    assert deleting.status.phase == pb.PREBUILD_PHASE_DELETING  # removed in the background


def test_warm_pool_methods_with_the_official_client(live, sdk):
    seed, admin = live.seed, sdk["admin"]
    pool = admin.create_warm_pool(
        pb.CreateWarmPoolRequest(
            project_id=seed["projects"]["lib"], environment_class_id=seed["classes"]["small"], min_size=1, max_size=3
        )
    ).warm_pool
    assert uuid.UUID(pool.id)
    assert (pool.metadata.project_id, pool.metadata.environment_class_id) == (
        seed["projects"]["lib"],
        seed["classes"]["small"],
    )
    assert pool.metadata.organization_id == seed["organization"] and uuid.UUID(pool.metadata.runner_id)
    assert pool.metadata.created_at.seconds > 0
    assert (pool.spec.min_size, pool.spec.max_size, pool.spec.spec_version) == (1, 3, 1)
    assert pool.spec.snapshot_id == ""  # no completed prebuild of the pair yet
    assert pool.status.phase == pb.WARM_POOL_PHASE_PENDING
    assert pool.status.desired_size == 1

    assert sdk["member"].get_warm_pool(pb.GetWarmPoolRequest(warm_pool_id=pool.id)).warm_pool == pool

    resized = admin.update_warm_pool(pb.UpdateWarmPoolRequest(warm_pool_id=pool.id, min_size=2, max_size=5)).warm_pool
    assert (resized.spec.min_size, resized.spec.max_size, resized.spec.spec_version) == (2, 5, 2)
    deprecated = admin.update_warm_pool(pb.UpdateWarmPoolRequest(warm_pool_id=pool.id, desired_size=4)).warm_pool
    assert (deprecated.spec.min_size, deprecated.spec.max_size, deprecated.spec.desired_size) == (4, 4, 4)

    second = admin.create_warm_pool(
        pb.CreateWarmPoolRequest(
            project_id=seed["projects"]["app"], environment_class_id=seed["classes"]["large"], desired_size=2
        )
    ).warm_pool
    assert (second.spec.min_size, second.spec.max_size) == (2, 2)

    def listed(**filters):
        request = pb.ListWarmPoolsRequest(filter=pb.ListWarmPoolsRequest.Filter(**filters))
        return [p.id for p in sdk["member"].list_warm_pools(request).warm_pools]

    assert set(listed()) >= {pool.id, second.id}
    assert listed(project_ids=[seed["projects"]["lib"]]) == [pool.id]
    assert listed(environment_class_ids=[seed["classes"]["large"]]) == [second.id]
    assert listed(project_ids=[seed["projects"]["lib"]], environment_class_ids=[seed["classes"]["large"]]) == []
    page = sdk["member"].list_warm_pools(pb.ListWarmPoolsRequest(pagination=PaginationRequest(page_size=1)))
    assert len(page.warm_pools) == 1 and page.pagination.next_token
    rest = sdk["member"].list_warm_pools(
        pb.ListWarmPoolsRequest(pagination=PaginationRequest(page_size=1, token=page.pagination.next_token))
    )
    assert rest.warm_pools[0].id != page.warm_pools[0].id

    assert admin.delete_warm_pool(pb.DeleteWarmPoolRequest(warm_pool_id=second.id)) == pb.DeleteWarmPoolResponse()
    gone = admin.get_warm_pool(pb.GetWarmPoolRequest(warm_pool_id=second.id)).warm_pool
    assert gone.spec.desired_phase == pb.WARM_POOL_PHASE_DELETED
    assert gone.status.phase == pb.WARM_POOL_PHASE_DELETING  # drained in the background


def test_every_error_code_with_the_official_client(live, sdk):
    seed, member, admin, outsider = live.seed, sdk["member"], sdk["admin"], sdk["outsider"]
    app, small = seed["projects"]["app"], seed["classes"]["small"]
    prebuild = member.create_prebuild(create_request(app)).prebuild
    pool = admin.create_warm_pool(
        pb.CreateWarmPoolRequest(project_id=app, environment_class_id=small, max_size=2)
    ).warm_pool

    # not_found: unknown ids
    unknown = str(uuid.uuid4())
    for call, request in (
        (member.get_prebuild, pb.GetPrebuildRequest(prebuild_id=unknown)),
        (member.cancel_prebuild, pb.CancelPrebuildRequest(prebuild_id=unknown)),
        (member.create_prebuild_logs_token, pb.CreatePrebuildLogsTokenRequest(prebuild_id=unknown)),
        (member.get_warm_pool, pb.GetWarmPoolRequest(warm_pool_id=unknown)),
        (admin.delete_warm_pool, pb.DeleteWarmPoolRequest(warm_pool_id=unknown)),
        (member.create_prebuild, create_request(unknown)),
    ):
        assert error_of(call, request).code is Code.NOT_FOUND

    # not_found: another organization's objects, never revealed
    for call, request in (
        (outsider.get_prebuild, pb.GetPrebuildRequest(prebuild_id=prebuild.id)),
        (outsider.cancel_prebuild, pb.CancelPrebuildRequest(prebuild_id=prebuild.id)),
        (outsider.delete_prebuild, pb.DeletePrebuildRequest(prebuild_id=prebuild.id)),
        (outsider.create_prebuild_logs_token, pb.CreatePrebuildLogsTokenRequest(prebuild_id=prebuild.id)),
        (outsider.create_prebuild, create_request(app)),
        (outsider.get_warm_pool, pb.GetWarmPoolRequest(warm_pool_id=pool.id)),
        (outsider.update_warm_pool, pb.UpdateWarmPoolRequest(warm_pool_id=pool.id, max_size=3)),
        (outsider.delete_warm_pool, pb.DeleteWarmPoolRequest(warm_pool_id=pool.id)),
    ):
        error = error_of(call, request)
        assert error.code is Code.NOT_FOUND, (call, error)
    assert prebuild.id not in {p.id for p in outsider.list_prebuilds(pb.ListPrebuildsRequest()).prebuilds}

    # invalid_argument, naming the field
    for call, request, field in (
        (member.get_prebuild, pb.GetPrebuildRequest(prebuild_id="nope"), "prebuild_id"),
        (member.get_prebuild, pb.GetPrebuildRequest(), "prebuild_id"),
        (member.create_prebuild, pb.CreatePrebuildRequest(project_id=app), "spec"),
        (member.create_prebuild, pb.CreatePrebuildRequest(spec=pb.PrebuildSpec()), "project_id"),
        (member.create_prebuild, create_request(app, "not-a-uuid"), "environment_class_id"),
        (member.create_prebuild, create_request(app, timeout=-60), "spec.timeout"),
        (member.create_prebuild, create_request(app, timeout=3 * 3600), "spec.timeout"),
        (
            member.list_prebuilds,
            pb.ListPrebuildsRequest(filter=pb.ListPrebuildsRequest.Filter(project_ids=["x"])),
            "filter.project_ids",
        ),
        (
            member.list_prebuilds,
            pb.ListPrebuildsRequest(filter=pb.ListPrebuildsRequest.Filter(phases=[33])),
            "filter.phases",
        ),
        (
            member.list_prebuilds,
            pb.ListPrebuildsRequest(pagination=PaginationRequest(token="not a token")),
            "pagination.token",
        ),
        (
            member.list_prebuilds,
            pb.ListPrebuildsRequest(pagination=PaginationRequest(page_size=-1)),
            "pagination.page_size",
        ),
        (
            admin.create_warm_pool,
            pb.CreateWarmPoolRequest(project_id=app, environment_class_id=seed["classes"]["large"], max_size=25),
            "max_size",
        ),
        (
            admin.create_warm_pool,
            pb.CreateWarmPoolRequest(project_id=app, environment_class_id="", max_size=2),
            "environment_class_id",
        ),
        (admin.update_warm_pool, pb.UpdateWarmPoolRequest(warm_pool_id=pool.id, min_size=3, max_size=2), "min_size"),
        (admin.update_warm_pool, pb.UpdateWarmPoolRequest(warm_pool_id="x", max_size=2), "warm_pool_id"),
    ):
        error = error_of(call, request)
        assert error.code is Code.INVALID_ARGUMENT, (request, error)
        assert field in error.message, (field, error.message)

    # already_exists: a second pool for the pair
    error = error_of(
        admin.create_warm_pool, pb.CreateWarmPoolRequest(project_id=app, environment_class_id=small, max_size=1)
    )
    assert error.code is Code.ALREADY_EXISTS

    # failed_precondition: a class that does not get prebuilds on the project
    unconfigured = seed["classes"]["unconfigured"]
    error = error_of(
        admin.create_warm_pool, pb.CreateWarmPoolRequest(project_id=app, environment_class_id=unconfigured, max_size=1)
    )
    assert error.code is Code.FAILED_PRECONDITION and "environment_class_id" in error.message
    assert error_of(member.create_prebuild, create_request(app, unconfigured)).code is Code.FAILED_PRECONDITION

    # unauthenticated: no token, a made-up one, a revoked one
    for client in (
        sdk[None],
        sdk["revoked"],
        create_client(api_key="pbk_made-up", base_url=live.base_url).services.prebuild,
    ):
        assert (
            error_of(client.get_prebuild, pb.GetPrebuildRequest(prebuild_id=prebuild.id)).code is Code.UNAUTHENTICATED
        )
        assert error_of(client.list_prebuilds, pb.ListPrebuildsRequest()).code is Code.UNAUTHENTICATED

    # permission_denied: a member may not delete prebuilds nor manage pools
    for call, request in (
        (member.delete_prebuild, pb.DeletePrebuildRequest(prebuild_id=prebuild.id)),
        (
            member.create_warm_pool,
            pb.CreateWarmPoolRequest(project_id=app, environment_class_id=seed["classes"]["large"], max_size=1),
        ),
        (member.update_warm_pool, pb.UpdateWarmPoolRequest(warm_pool_id=pool.id, max_size=3)),
        (member.delete_warm_pool, pb.DeleteWarmPoolRequest(warm_pool_id=pool.id)),
    ):
        assert error_of(call, request).code is Code.PERMISSION_DENIED
    admin.delete_warm_pool(pb.DeleteWarmPoolRequest(warm_pool_id=pool.id))


def walk(client, filters=None, page_size=100):
    """Every prebuild a list returns, following next_token to the end; also the number of pages."""
    ids, token, pages = [], "", 0
    while True:
        request = pb.ListPrebuildsRequest(
            pagination=PaginationRequest(page_size=page_size, token=token), filter=filters or None
        )
        response = client.list_prebuilds(request)
        ids += [p for p in response.prebuilds]
        pages += 1
        token = response.pagination.next_token
        if not token:
            return ids, pages


def test_list_prebuilds_with_each_filter_and_across_pages(live, sdk):
    seed, member, admin = live.seed, sdk["member"], sdk["admin"]
    app, lib = seed["projects"]["app"], seed["projects"]["lib"]
    mine = [member.create_prebuild(create_request(app)).prebuild for _ in range(3)]
    member.create_prebuild(create_request(lib))  # runs as the lib project's executor (the admin)
    admin.create_prebuild(create_request(app, seed["classes"]["large"]))
    member.cancel_prebuild(pb.CancelPrebuildRequest(prebuild_id=mine[0].id))

    everything, _ = walk(member)
    assert len(everything) >= 7  # with the seeded scheduled prebuild
    by_id = {p.id: p for p in everything}
    F = pb.ListPrebuildsRequest.Filter
    cases = [
        (F(project_ids=[lib]), lambda p: p.metadata.project_id == lib),
        (F(project_ids=[app, lib]), lambda p: p.metadata.project_id in (app, lib)),
        (F(phases=[pb.PREBUILD_PHASE_CANCELLED]), lambda p: p.status.phase == pb.PREBUILD_PHASE_CANCELLED),
        (
            F(phases=[pb.PREBUILD_PHASE_PENDING, pb.PREBUILD_PHASE_CANCELLED]),
            lambda p: p.status.phase in (pb.PREBUILD_PHASE_PENDING, pb.PREBUILD_PHASE_CANCELLED),
        ),
        (
            F(triggered_by=[pb.PrebuildMetadata.PREBUILD_TRIGGER_SCHEDULED]),
            lambda p: p.metadata.triggered_by == pb.PrebuildMetadata.PREBUILD_TRIGGER_SCHEDULED,
        ),
        (
            F(triggered_by=[pb.PrebuildMetadata.PREBUILD_TRIGGER_MANUAL]),
            lambda p: p.metadata.triggered_by == pb.PrebuildMetadata.PREBUILD_TRIGGER_MANUAL,
        ),
        (F(creator_ids=[seed["users"]["member"]]), lambda p: p.metadata.creator.id == seed["users"]["member"]),
        (F(executor_ids=[seed["users"]["admin"]]), lambda p: p.metadata.executor.id == seed["users"]["admin"]),
        (
            F(project_ids=[app], creator_ids=[seed["users"]["admin"]]),
            lambda p: p.metadata.project_id == app and p.metadata.creator.id == seed["users"]["admin"],
        ),
    ]
    for filters, matches in cases:
        found, _ = walk(member, filters)
        expected = {p.id for p in everything if matches(p)}
        assert expected, filters
        assert {p.id for p in found} == expected, filters
        assert all(by_id[p.id] == p for p in found)
    assert seed["scheduled_prebuild"] in {p.id for p in walk(member, F(triggered_by=[2]))[0]}
    assert walk(member, F(executor_ids=[seed["users"]["outsider"]]))[0] == []

    # Pages of 2: the same prebuilds in the same order, newest first, none twice.
    paged, pages = walk(member, page_size=2)
    assert [p.id for p in paged] == [p.id for p in everything]
    assert pages == (len(everything) + 1) // 2 or pages == len(everything) // 2 + 1
    created = [p.metadata.created_at.ToDatetime() for p in paged]
    assert created == sorted(created, reverse=True)
    # The default page is 25, and 100 the largest (101 is refused: the descriptor's rule).
    first = member.list_prebuilds(pb.ListPrebuildsRequest())
    assert len(first.prebuilds) == min(25, len(everything))
    assert len(
        member.list_prebuilds(pb.ListPrebuildsRequest(pagination=PaginationRequest(page_size=100))).prebuilds
    ) == len(everything)
    too_many = pb.ListPrebuildsRequest(pagination=PaginationRequest(page_size=101))
    assert error_of(member.list_prebuilds, too_many).code is Code.INVALID_ARGUMENT


# --- the JSON codec over plain HTTP ------------------------------------------------------------------


def call_json(live, method, body, role="member", data=None):
    headers = {"Content-Type": "application/json"}
    if role:
        headers["Authorization"] = f"Bearer {live.seed['tokens'][role]}"
    return requests.post(
        live.base_url + PREFIX + method, json=body if data is None else None, data=data, headers=headers, timeout=10
    )


def test_every_method_in_the_json_codec_over_http(live):
    seed = live.seed
    app, large = seed["projects"]["app"], seed["classes"]["large"]
    medium = seed["classes"]["medium"]  # a pair no other test gives a pool

    r = call_json(live, "CreatePrebuild", {"projectId": app, "environmentClassId": large, "spec": {"timeout": "1200s"}})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"), r.text
    prebuild = r.json()["prebuild"]
    assert prebuild["spec"]["timeout"] == "1200s"
    assert prebuild["status"]["phase"] == "PREBUILD_PHASE_PENDING"
    assert prebuild["metadata"]["creator"] == {"id": seed["users"]["member"], "principal": "PRINCIPAL_USER"}
    assert prebuild["metadata"]["triggeredBy"] == "PREBUILD_TRIGGER_MANUAL"
    assert prebuild["metadata"]["createdAt"].endswith("Z")
    assert prebuild["spec"]["specVersion"] == "1"  # 64-bit integers are strings in protobuf JSON

    # snake_case input is accepted too, and unknown fields are ignored (a newer client's request)
    r = call_json(live, "GetPrebuild", {"prebuild_id": prebuild["id"], "someFutureField": 1})
    assert r.status_code == 200 and r.json()["prebuild"] == prebuild

    r = call_json(
        live,
        "ListPrebuilds",
        {"filter": {"phases": ["PREBUILD_PHASE_PENDING"], "projectIds": [app]}, "pagination": {"pageSize": 1}},
    )
    assert r.status_code == 200
    assert len(r.json()["prebuilds"]) == 1 and r.json()["pagination"]["nextToken"]

    r = call_json(live, "CreatePrebuildLogsToken", {"prebuildId": prebuild["id"]})
    assert r.status_code == 200 and r.json()["accessToken"]

    r = call_json(live, "CancelPrebuild", {"prebuildId": prebuild["id"]})
    assert r.status_code == 200 and r.json()["prebuild"]["status"]["phase"] == "PREBUILD_PHASE_CANCELLED"

    r = call_json(live, "DeletePrebuild", {"prebuildId": prebuild["id"]}, role="admin")
    assert (r.status_code, r.json()) == (200, {})

    r = call_json(
        live,
        "CreateWarmPool",
        {"projectId": app, "environmentClassId": medium, "minSize": 0, "maxSize": 2},
        role="admin",
    )
    assert r.status_code == 200, r.text
    pool = r.json()["warmPool"]
    assert pool["spec"]["maxSize"] == 2 and pool["status"]["phase"] == "WARM_POOL_PHASE_PENDING"

    r = call_json(live, "GetWarmPool", {"warmPoolId": pool["id"]})
    assert r.status_code == 200 and r.json()["warmPool"] == pool
    r = call_json(live, "ListWarmPools", {"filter": {"environmentClassIds": [medium]}})
    assert [p["id"] for p in r.json()["warmPools"]] == [pool["id"]]
    r = call_json(live, "UpdateWarmPool", {"warmPoolId": pool["id"], "maxSize": 4}, role="admin")
    assert r.status_code == 200 and r.json()["warmPool"]["spec"]["maxSize"] == 4

    # Each error code, as the JSON error body of the Connect protocol
    for method, body, role, status, code in (
        ("GetPrebuild", {"prebuildId": str(uuid.uuid4())}, "member", 404, "not_found"),
        ("GetPrebuild", {"prebuildId": "nope"}, "member", 400, "invalid_argument"),
        ("GetPrebuild", {"prebuildId": str(uuid.uuid4())}, None, 401, "unauthenticated"),
        ("GetWarmPool", {"warmPoolId": pool["id"]}, "outsider", 404, "not_found"),
        ("UpdateWarmPool", {"warmPoolId": pool["id"], "maxSize": 3}, "member", 403, "permission_denied"),
        (
            "CreateWarmPool",
            {"projectId": app, "environmentClassId": medium, "maxSize": 2},
            "admin",
            409,
            "already_exists",
        ),
        (
            "CreateWarmPool",
            {"projectId": app, "environmentClassId": seed["classes"]["unconfigured"], "maxSize": 2},
            "admin",
            400,
            "failed_precondition",
        ),
        ("CreatePrebuild", {"projectId": app, "spec": {"timeout": "0s"}}, "member", 400, "invalid_argument"),
    ):
        r = call_json(live, method, body, role=role)
        assert (r.status_code, r.json()["code"]) == (status, code), (method, body, r.text)
        assert r.json()["message"]

    r = call_json(live, "DeleteWarmPool", {"warmPoolId": pool["id"]}, role="admin")
    assert (r.status_code, r.json()) == (200, {})


def test_malformed_bodies_over_http_are_invalid_argument(live):
    for data, content_type in (
        (b'{"prebuildId": ', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[]", "application/json"),
        (b"\x0a\x05abc", "application/proto"),  # truncated: says 5 bytes, has 3
        (b"\xff\xff\xff\xff", "application/proto"),
    ):
        r = requests.post(
            live.base_url + PREFIX + "GetPrebuild",
            data=data,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {live.seed['tokens']['member']}"},
            timeout=10,
        )
        assert (r.status_code, r.json()["code"]) == (400, "invalid_argument"), (data, r.text)

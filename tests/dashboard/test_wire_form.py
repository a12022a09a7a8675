"""The REST API's JSON form of a message is protobuf's own, as the Connect JSON codec writes it
(MessageToDict: a field at its default value left out), though core.rest.message_data builds it
without MessageToDict for speed."""

from datetime import timedelta

import pytest
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.pagination_pb2 import PaginationRequest
from google.protobuf.json_format import MessageToDict

from core.rest import message_data
from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase
from prebuilds.proto import prebuild_message, wire_rows
from warmpools import services as pool_services
from warmpools.proto import warm_pool_message

pytestmark = pytest.mark.django_db


def protobuf_json(message) -> dict:
    return MessageToDict(message)


def test_prebuilds_in_every_state_read_as_protobuf_writes_them(org):
    pending = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    failed = prebuild_services.prebuild_create(actor=org.member, project=org.project, timeout=timedelta(seconds=90.5))
    prebuild_status.prebuild_set_status(prebuild=failed, phase=PrebuildPhase.STARTING)
    prebuild_status.prebuild_set_status(
        prebuild=failed, phase=PrebuildPhase.FAILED, failure_message="onCreateCommand exited 3 <b>", warning_message="w"
    )
    completed = prebuild_services.prebuild_create(
        actor=org.admin, project=org.project, environment_class_id=org.large.id
    )
    for phase in (PrebuildPhase.STARTING, PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild_status.prebuild_set_status(prebuild=completed, phase=phase, snapshot_completion_percentage=40)
    prebuild_status.prebuild_set_status(
        prebuild=completed,
        phase=PrebuildPhase.COMPLETED,
        snapshot_size_bytes=2**40 + 7,
        snapshot_completion_percentage=100,
    )
    cancelled = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    prebuild_services.prebuild_cancel(actor=org.member, prebuild=cancelled)

    rows = {row.id: row for row in wire_rows(Prebuild.objects.all())}
    for prebuild in (pending, failed, completed, cancelled):
        prebuild.refresh_from_db()
        message = prebuild_message(prebuild)
        assert message_data(message) == protobuf_json(message)
        # Lists convert rows of the wire columns, not models: the same message.
        assert prebuild_message(rows[prebuild.id]) == message
    completed_data = message_data(prebuild_message(completed))
    assert completed_data["status"]["snapshotSizeBytes"] == str(2**40 + 7)
    assert completed_data["status"]["phase"] == "PREBUILD_PHASE_COMPLETED"
    assert message_data(prebuild_message(failed))["spec"]["timeout"] == "90.500s"


def test_warm_pools_with_and_without_a_snapshot_read_as_protobuf_writes_them(org):
    sized = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=3
    )
    fixed = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.large.id, desired_size=2
    )
    for pool in (sized, fixed):
        message = warm_pool_message(pool)
        assert message_data(message) == protobuf_json(message)
    data = message_data(warm_pool_message(fixed))
    assert (data["spec"]["minSize"], data["spec"]["maxSize"], data["spec"]["desiredSize"]) == (2, 2, 2)
    # An optional field appears only when set (no snapshot yet), as protobuf writes it.
    assert "snapshotId" not in data["spec"]
    message = warm_pool_message(fixed)
    message.spec.snapshot_id = "3f1c5b0e-0000-4000-8000-000000000000"
    assert message_data(message)["spec"]["snapshotId"] == message.spec.snapshot_id
    assert message_data(message) == protobuf_json(message)


@pytest.mark.parametrize(
    "message",
    [
        pb.Prebuild(),  # nothing set
        pb.PrebuildStatus(phase=99),  # an enum number this version does not know is written as a number
        # Repeated fields and more are left to MessageToDict.
        pb.ListPrebuildsRequest(
            filter=pb.ListPrebuildsRequest.Filter(phases=[1, 2], project_ids=["a"]),
            pagination=PaginationRequest(page_size=3),
        ),
    ],
    ids=["empty", "unknown-enum", "repeated"],
)
def test_unusual_messages_read_as_protobuf_writes_them(message):
    assert message_data(message) == protobuf_json(message)

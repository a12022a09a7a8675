"""A prebuild created with Ona's official client, run by a real Celery worker for the runner's queue,
followed to COMPLETED; its logs read with a logs token. Its own server and data dir, so that the
worker runs nothing the other live tests left queued."""

import tempfile
import time
from pathlib import Path

import pytest
import requests
from gitpod.v1 import prebuild_pb2 as pb
from ona_sdk import create_client

from runner._fs import cleanup_tree
from tests.processes.api.live import start_live_server

pytestmark = pytest.mark.slow

TERMINAL = {pb.PREBUILD_PHASE_COMPLETED, pb.PREBUILD_PHASE_FAILED, pb.PREBUILD_PHASE_CANCELLED}


@pytest.fixture(scope="module")
def live():
    # Not under pytest's tmp_path: that is 0700, and as root the sandbox runs as an unprivileged
    # user who must reach the workspaces.
    data_dir = Path(tempfile.mkdtemp(prefix="api-live-run-", dir="/tmp"))
    data_dir.chmod(0o711)
    server = start_live_server(data_dir, queue="runner-live-run")
    server.start_worker("runner-live-run")
    yield server
    server.stop()
    cleanup_tree(data_dir)


def test_a_prebuild_followed_to_completed(live):
    client = create_client(api_key=live.seed["tokens"]["member"], base_url=live.base_url).services.prebuild
    request = pb.CreatePrebuildRequest(project_id=live.seed["projects"]["app"], spec=pb.PrebuildSpec())
    prebuild = client.create_prebuild(request).prebuild
    seen = [prebuild.status.phase]
    deadline = time.monotonic() + 180
    while prebuild.status.phase not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        prebuild = client.get_prebuild(pb.GetPrebuildRequest(prebuild_id=prebuild.id)).prebuild
        if prebuild.status.phase != seen[-1]:
            seen.append(prebuild.status.phase)
    # The bubblewrap runner builds in no environment of the API: none is named (not the prebuild's id).
    assert prebuild.status.environment_id == ""
    assert prebuild.status.phase == pb.PREBUILD_PHASE_COMPLETED, (prebuild.status, seen)
    assert prebuild.status.completion_time.seconds > 0
    assert prebuild.status.snapshot_size_bytes > 0
    assert prebuild.status.log_url.endswith(f"/logs/{prebuild.id}")
    assert prebuild.status.status_version > 1

    token = client.create_prebuild_logs_token(pb.CreatePrebuildLogsTokenRequest(prebuild_id=prebuild.id)).access_token
    logs = requests.get(prebuild.status.log_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert logs.status_code == 200 and logs.json()["lines"], logs.text
    assert logs.json()["more"] is False

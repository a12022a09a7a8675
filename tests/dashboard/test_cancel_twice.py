"""Cancel over REST, then again over Connect: the second answer shows the same spec (version 2)."""

import json

import pytest

from prebuilds import services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase

pytestmark = pytest.mark.django_db


def test_cancel_over_rest_then_connect_leaves_spec_version_at_2(org, api):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild = prebuild_status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.RUNNING)

    rest = api["member"].rest("post", f"/api/v1/prebuilds/{prebuild.id}/cancel/")
    assert rest.status_code == 200, rest.content
    assert (rest.json()["spec"]["specVersion"], rest.json()["spec"]["desiredPhase"]) == (
        "2",
        "PREBUILD_PHASE_CANCELLED",
    )
    connect = api["member"].connect_json("CancelPrebuild", {"prebuildId": str(prebuild.id)})
    assert connect.status_code == 200, connect.content
    assert json.loads(connect.content)["prebuild"]["spec"]["specVersion"] == "2"
    assert Prebuild.objects.get(id=prebuild.id).spec_version == 2

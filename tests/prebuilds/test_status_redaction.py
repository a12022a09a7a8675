"""The runner's messages name its folders; what is stored (and so what every interface reads)
names the place instead: `<workspaces>/...`, `<snapshot store>`, `<warm pools>/...`."""

import pytest
from django.conf import settings

from prebuilds import services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase

pytestmark = pytest.mark.django_db


def test_a_prebuilds_failure_and_warning_messages_are_stored_without_host_paths(org, client):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild_status.prebuild_set_status(
        prebuild=prebuild,
        phase=PrebuildPhase.FAILED,
        failure_message=f"tar: {settings.WORKSPACES_DIR}/{prebuild.id}/src: Cannot open",
        warning_message=f"no space in {settings.SNAPSHOTS_DIR}",
    )
    stored = Prebuild.objects.get(id=prebuild.id)
    assert stored.failure_message == f"tar: <workspaces>/{prebuild.id}/src: Cannot open"
    assert stored.warning_message == "no space in <snapshot store>"
    client.force_login(org.member)
    page = client.get(f"/prebuilds/{prebuild.id}/").content.decode()
    assert f"&lt;workspaces&gt;/{prebuild.id}/src" in page
    assert str(settings.WORKSPACES_DIR) not in page and str(settings.DATA_DIR) not in page

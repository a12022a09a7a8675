"""Data for a live server process, created in that process's own database (pytest-django's test
database is invisible to it). Run as `manage.py shell -c "from tests.processes.api.live_seed import main; main()"`
with the server's DATA_DIR; prints the ids and tokens as JSON.

LIVE_REPO names a local git repository for the projects; LIVE_QUEUE the runner's queue.
"""

import json
import os
from datetime import timedelta

from django.contrib.auth import get_user_model

from projects import services
from projects.models import Role


def main():
    User = get_user_model()
    admin = User.objects.create_user("alice", password="pw-alice")
    member = User.objects.create_user("bob", password="pw-bob")
    outsider = User.objects.create_user("mallory", password="pw-mallory")
    organization = services.organization_create(name="Acme", admin=admin)
    services.membership_set(organization=organization, user=member, role=Role.MEMBER)
    other = services.organization_create(name="Other", admin=outsider)
    runner = services.runner_create(organization=organization, name="local", queue=os.environ["LIVE_QUEUE"])
    small = services.environment_class_create(runner=runner, display_name="small", allow_network=False)
    large = services.environment_class_create(runner=runner, display_name="large")
    medium = services.environment_class_create(runner=runner, display_name="medium")
    unconfigured = services.environment_class_create(runner=runner, display_name="gpu")
    repository = os.environ["LIVE_REPO"]
    app = services.project_create(
        actor=admin,
        organization=organization,
        name="app",
        repository_url=repository,
        default_environment_class_id=small.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[small.id, large.id, medium.id],
        prebuild_timeout=timedelta(minutes=30),
    )
    # A second project whose prebuilds run with the admin's credentials whoever starts them.
    lib = services.project_create(
        actor=admin,
        organization=organization,
        name="lib",
        repository_url=repository,
        default_environment_class_id=small.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[small.id],
        executor_id=admin.id,
    )
    other_runner = services.runner_create(organization=other, name="theirs", queue=os.environ["LIVE_QUEUE"] + "-other")
    other_class = services.environment_class_create(runner=other_runner, display_name="theirs")
    other_project = services.project_create(
        actor=outsider,
        organization=other,
        name="theirs",
        repository_url=repository,
        default_environment_class_id=other_class.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[other_class.id],
    )
    # A scheduled prebuild, so that the triggered_by filter has something to tell apart.
    from prebuilds.models import PrebuildTrigger
    from prebuilds.services import prebuild_create

    scheduled = prebuild_create(actor=admin, project=lib, triggered_by=PrebuildTrigger.SCHEDULED)
    revoked, revoked_secret = services.api_token_create(user=member, name="revoked")
    services.api_token_revoke(actor=member, token=revoked)
    print(
        json.dumps(
            {
                "users": {"admin": str(admin.id), "member": str(member.id), "outsider": str(outsider.id)},
                "tokens": {
                    role: services.api_token_create(user=user, name="live")[1]
                    for role, user in (("admin", admin), ("member", member), ("outsider", outsider))
                }
                | {"revoked": revoked_secret},
                "organization": str(organization.id),
                "classes": {
                    "small": str(small.id),
                    "large": str(large.id),
                    "medium": str(medium.id),
                    "unconfigured": str(unconfigured.id),
                },
                "projects": {"app": str(app.id), "lib": str(lib.id), "other": str(other_project.id)},
                "scheduled_prebuild": str(scheduled.id),
            }
        )
    )

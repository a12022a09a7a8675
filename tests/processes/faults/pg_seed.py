"""Seeds the private PostgreSQL of the restart test (run in a subprocess with its DATABASE_URL): an
organization, a runner on FAULT_QUEUE, a project on FAULT_REPO, and one prebuild. Prints its id."""

import json
import os
from datetime import timedelta

from django.contrib.auth import get_user_model

from prebuilds import services
from projects import services as project_services


def main() -> None:
    admin = get_user_model().objects.create_user(username="admin", password="pw-admin")
    organization = project_services.organization_create(name="Faults", admin=admin)
    runner = project_services.runner_create(organization=organization, name="r", queue=os.environ["FAULT_QUEUE"])
    environment_class = project_services.environment_class_create(runner=runner, display_name="small")
    project = project_services.project_create(
        actor=admin,
        organization=organization,
        name="app",
        repository_url=os.environ["FAULT_REPO"],
        default_environment_class_id=environment_class.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[environment_class.id],
        prebuild_timeout=timedelta(minutes=30),
    )
    timeout = timedelta(seconds=int(os.environ["FAULT_TIMEOUT_SECONDS"]))
    prebuild = services.prebuild_create(actor=admin, project=project, timeout=timeout)
    print(json.dumps({"prebuild_id": str(prebuild.id)}))

"""An environment of a real container in a live server's own database (after live_seed.py): run as
`manage.py shell -c "from tests.processes.browser.terminal_seed import main; main()"` with
TERMINAL_CONTAINER set; prints the pool and environment ids as JSON. Its creator is carol, a member
of Acme; bob is another member, alice the admin, mallory an outsider."""

import json
import os

from django.contrib.auth import get_user_model

from projects import services
from projects.models import EnvironmentClass, Organization, Project, Role
from warmpools import services as pool_services
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource


def main():
    User = get_user_model()
    organization = Organization.objects.get(name="Acme")
    admin = User.objects.get(username="alice")
    creator = User.objects.create_user("carol", password="pw-carol")
    services.membership_set(organization=organization, user=creator, role=Role.MEMBER)
    project = Project.objects.get(organization=organization, name="app")
    small = EnvironmentClass.objects.get(runner__organization=organization, display_name="small")
    pool = pool_services.warm_pool_create(
        actor=admin, project=project, environment_class_id=small.id, min_size=0, max_size=1
    )
    environment = Environment.objects.create(
        organization=organization,
        project=project,
        environment_class=small,
        pool=pool,
        creator=creator,
        source=EnvironmentSource.POOL,
        phase=EnvironmentPhase.READY,
        container_name=os.environ["TERMINAL_CONTAINER"],
        remote_user="vscode",
        workspace_folder="/home/vscode",
    )
    print(json.dumps({"pool": str(pool.id), "environment": str(environment.id)}))

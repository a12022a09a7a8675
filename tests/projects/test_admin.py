"""The Django admin shows projects read-only: every change to a project goes through
projects.services (validation, the repository rule, the signal that retires pools), so the admin's
model form cannot be a way around them."""

import pytest
from django.test import Client

from projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(make_user):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_projects_are_listed_and_shown_without_a_save_button(superuser_client, org):
    listing = superuser_client.get("/admin/projects/project/")
    assert listing.status_code == 200 and "app" in listing.content.decode()
    assert "/admin/projects/project/add/" not in listing.content.decode()
    page = superuser_client.get(f"/admin/projects/project/{org.project.id}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "/srv/git/app" in body and 'name="_save"' not in body
    assert 'name="repository_url"' not in body  # shown as text, not as an input


def test_the_admin_cannot_add_change_or_delete_a_project(superuser_client, org):
    form = {
        "organization": str(org.organization.id),
        "name": "app",
        "repository_url": "/etc",
        "branch": "main",
        "devcontainer_path": ".devcontainer/devcontainer.json",
        "prebuild_timeout": "01:00:00",
        "prebuilds_enabled": "",
    }
    assert superuser_client.post("/admin/projects/project/add/", {**form, "name": "new"}).status_code == 403
    assert superuser_client.post(f"/admin/projects/project/{org.project.id}/change/", form).status_code == 403
    delete = superuser_client.post(f"/admin/projects/project/{org.project.id}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    project = Project.objects.get(pk=org.project.pk)
    assert (project.repository_url, project.prebuilds_enabled, project.deleted_at) == ("/srv/git/app", True, None)
    assert not Project.objects.filter(name="new").exists()

"""The terminal panel on the environment's page: the panel (xterm.js and its websocket) for its
creator and the admins, a plain refusal for other members, and on the bubblewrap backend a plain
statement that there is no terminal there. The websocket itself: tests/processes/browser/test_terminal.py."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from projects.models import Membership, Role, RunnerBackend

pytestmark = pytest.mark.django_db


def page(client, user, pool, environment):
    client.force_login(user)
    return client.get(reverse("warmpools:detail", args=[pool.id]) + f"?environment={environment.id}")


def test_the_creator_and_an_admin_get_the_terminal_with_xterm_from_our_static_files(
    client, org, make_pool, make_environment
):
    pool = make_pool()
    environment = make_environment(pool, container_name="env-1", remote_user="vscode", workspace_folder="/w")
    for user in (org.member, org.admin):
        body = page(client, user, pool, environment).content.decode()
        assert f'data-socket="/ws/environments/{environment.id}/terminal"' in body
        assert "/static/vendor/xterm/lib/xterm.mjs" in body
        assert "/static/vendor/xterm/css/xterm.css" in body
        assert 'aria-label="Terminal of environment' in body


def test_another_member_sees_no_terminal(client, org, make_pool, make_environment):
    other = get_user_model().objects.create_user("carol", password="pw-carol")
    Membership.objects.create(organization=org.organization, user=other, role=Role.MEMBER)
    pool = make_pool()
    environment = make_environment(pool, container_name="env-1", remote_user="vscode", workspace_folder="/w")
    body = page(client, other, pool, environment).content.decode()
    assert "data-socket" not in body
    assert "Only the environment's creator and the organization's admins may open its terminal." in body


def test_on_the_bubblewrap_backend_the_page_says_there_is_no_terminal(client, org, make_pool, make_environment):
    assert org.runner.backend == RunnerBackend.BUBBLEWRAP
    pool = make_pool()
    environment = make_environment(pool, path="/var/envs/1")
    body = page(client, org.member, pool, environment).content.decode()
    assert "No terminal on the bubblewrap backend" in body
    assert "data-socket" not in body


def test_xterm_is_served_as_a_static_file(client):
    response = client.get("/static/vendor/xterm/lib/xterm.mjs")
    assert response.status_code == 200
    assert b"Terminal" in b"".join(response.streaming_content)

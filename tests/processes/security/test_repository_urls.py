"""An organization admin points a project at a repository on the runner's disk that is not theirs:
another organization's repository, the product's own data, or a link to either. Every way of saving
a project refuses it, naming the setting that allows more, and the runner checks again when it
clones. A failed local clone says the same thing whatever the path is, and names no path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from core.errors import InvalidArgument
from prebuilds import execution, logstore
from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import Project
from runner import checkout
from runner.errors import CheckoutError
from tests.conftest import REPO_ROOT, SAMPLE_REPO_SCRIPT
from warmpools import environments
from warmpools import services as pool_services
from warmpools.models import EnvironmentPhase

NOT_ACCESSIBLE = "could not clone the repository: not found or not accessible"


def make_repo(kind: str, dest: Path) -> Path:
    subprocess.run([sys.executable, str(SAMPLE_REPO_SCRIPT), kind, str(dest)], check=True, capture_output=True)
    return dest


class Disk:
    """A runner's disk: a folder the operator allows (with our own repository in it), another
    organization's repository outside it, and links inside the allowed folder pointing out."""

    def __init__(self, root: Path):
        root = Path(os.path.realpath(root))
        self.allowed = root / "allowed"
        self.allowed.mkdir()
        self.ours = make_repo("bare", self.allowed / "ours")
        self.theirs = make_repo("bare", root / "other-org" / "repo")
        # A repository inside the data directory (a workspace, a pool instance or the like).
        self.in_data = make_repo("bare", settings.DATA_DIR / "workspaces" / f"ws-{root.name}")
        self.link_to_theirs = self.allowed / "link-to-theirs"
        self.link_to_theirs.symlink_to(self.theirs)
        self.link_to_data = self.allowed / "link-to-data"
        self.link_to_data.symlink_to(settings.DATA_DIR)
        self.link_to_data_repo = self.allowed / "link-to-workspace"
        self.link_to_data_repo.symlink_to(self.in_data)


@pytest.fixture
def disk(tmp_path, settings):
    d = Disk(tmp_path)
    settings.REPOSITORY_LOCAL_ROOTS = [str(d.allowed)]
    yield d
    subprocess.run(["rm", "-rf", str(d.in_data)], check=False)


def refused_urls(d: Disk) -> dict[str, str]:
    return {
        "another organization's repository": str(d.theirs),
        "its file:// URL": d.theirs.as_uri(),
        "a file:// URL with a host": f"file://runner-host{d.theirs}",
        "a way out of the allowed folder with ..": f"{d.allowed}/../other-org/repo",
        "the data directory": str(settings.DATA_DIR),
        "the secret key": str(settings.DATA_DIR / "secret_key"),
        "the snapshot store": str(settings.SNAPSHOTS_DIR),
        "a workspace's repository": str(d.in_data),
        "a link to another organization's repository": str(d.link_to_theirs),
        "a link to the data directory": str(d.link_to_data),
        "a path through a link to the data directory": f"{d.link_to_data}/secret_key",
        "a link to a repository in the data directory": d.link_to_data_repo.as_uri(),
    }


@pytest.mark.parametrize(
    "case",
    [
        "another organization's repository",
        "its file:// URL",
        "a file:// URL with a host",
        "a way out of the allowed folder with ..",
        "the data directory",
        "the secret key",
        "the snapshot store",
        "a workspace's repository",
        "a link to another organization's repository",
        "a link to the data directory",
        "a path through a link to the data directory",
        "a link to a repository in the data directory",
    ],
)
def test_the_service_refuses_a_repository_outside_the_allowed_folders(org, disk, case):
    url = refused_urls(disk)[case]
    with pytest.raises(InvalidArgument) as err:
        project_services.project_create(
            actor=org.admin, organization=org.organization, name="stolen", repository_url=url
        )
    assert err.value.field == "repository_url"
    assert "REPOSITORY_LOCAL_ROOTS" in err.value.message
    assert not Project.objects.filter(name="stolen").exists()

    project = project_services.project_create(
        actor=org.admin, organization=org.organization, name="mine", repository_url=str(disk.ours)
    )
    with pytest.raises(InvalidArgument) as err:
        project_services.project_update(actor=org.admin, project=project, repository_url=url)
    assert "REPOSITORY_LOCAL_ROOTS" in err.value.message
    assert Project.objects.get(pk=project.pk).repository_url == str(disk.ours)


def test_the_allowed_folder_and_https_still_work(org, disk):
    for url in (str(disk.ours), disk.ours.as_uri(), "https://git.example.com/app.git"):
        project = project_services.project_update(actor=org.admin, project=org.project, repository_url=url)
        assert project.repository_url == url


def test_production_allows_no_local_repository_by_default(org, disk, settings):
    settings.REPOSITORY_LOCAL_ROOTS = []
    with pytest.raises(InvalidArgument, match="REPOSITORY_LOCAL_ROOTS"):
        project_services.project_update(actor=org.admin, project=org.project, repository_url=str(disk.ours))


def _rest(org):
    _, secret = project_services.api_token_create(user=org.admin, name="attack")
    client = Client(headers={"Authorization": f"Bearer {secret}"})

    def call(method, path, body):
        return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")

    return call


@pytest.mark.parametrize("case", ["another organization's repository", "a link to the data directory"])
def test_rest_refuses_it_on_create_and_update(org, disk, case):
    url = refused_urls(disk)[case]
    rest = _rest(org)
    body = {"name": "stolen", "repositoryUrl": url, "organizationId": str(org.organization.id)}
    response = rest("post", "/api/v1/projects/", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "repositoryUrl"
    assert "REPOSITORY_LOCAL_ROOTS" in response.json()["message"]
    assert not Project.objects.filter(name="stolen").exists()

    for method in ("patch", "put"):
        response = rest(method, f"/api/v1/projects/{org.project.id}/", {"name": "app", "repositoryUrl": url})
        assert response.status_code == 400, response.content
        assert "REPOSITORY_LOCAL_ROOTS" in response.json()["message"]
    assert Project.objects.get(pk=org.project.pk).repository_url == "/srv/git/app"


def saved_then_swapped(org, disk) -> Project:
    """The project saved while its link led to our own repository, the link then pointed elsewhere."""
    link = disk.allowed / "swappable"
    link.symlink_to(disk.ours)
    project = project_services.project_update(actor=org.admin, project=org.project, repository_url=str(link))
    link.unlink()
    link.symlink_to(disk.theirs)
    return project


def test_a_link_swapped_after_saving_is_caught_when_the_prebuild_clones(org, disk):
    """Saved while the link led to our own repository; by the time the worker clones, it leads to
    another organization's. The prebuild fails, and neither its message nor its log names a path."""
    project = saved_then_swapped(org, disk)

    prebuild = prebuild_services.prebuild_create(actor=org.member, project=project)
    execution.execute(str(prebuild.id))
    prebuild = Prebuild.objects.get(id=prebuild.id)
    assert prebuild.phase == PrebuildPhase.FAILED
    assert prebuild.failure_message == NOT_ACCESSIBLE
    log_text = "\n".join(line.text for line in logstore.read(prebuild, after=0, limit=1000).lines)
    for path in (str(disk.theirs), str(disk.allowed), str(settings.DATA_DIR)):
        assert path not in log_text
        assert path not in prebuild.failure_message
    assert not (settings.WORKSPACES_DIR / str(prebuild.id)).exists()


def test_a_link_swapped_after_saving_is_caught_when_an_environment_builds_cold(org, disk):
    """The same swap, met by the other clone the product makes: an environment with no pool and no
    snapshot builds cold from the repository, and must check it as a prebuild does."""
    project = saved_then_swapped(org, disk)

    environment = pool_services.environment_create(actor=org.member, project=project)
    environment = environments.build(environment.id)
    assert environment.phase == EnvironmentPhase.FAILED
    assert environment.failure_message == NOT_ACCESSIBLE
    for path in (str(disk.theirs), str(disk.allowed), str(settings.DATA_DIR)):
        assert path not in environment.failure_message


def test_clone_failures_look_the_same_whatever_the_path_is(tmp_path):
    """Missing, a regular file, a folder that is not a repository, a repository the policy does not
    admit: one message, no path, and no git output that would tell them apart."""
    root = Path(os.path.realpath(tmp_path))
    (root / "a-file").write_text("not a repository\n")
    (root / "a-folder").mkdir()
    (root / "a-folder" / "README").write_text("no .git here\n")
    make_repo("bare", root / "outside")
    (root / "allowed").mkdir()
    (root / "allowed" / "gitdir-file").mkdir()
    (root / "allowed" / "gitdir-file" / ".git").write_text(f"gitdir: {root / 'outside' / '.git'}\n")
    policy = checkout.LocalSources.of([root / "allowed", root / "a-file", root / "a-folder", root / "missing"])
    targets = {
        "missing": str(root / "missing"),
        "a regular file": str(root / "a-file"),
        "not a repository": str(root / "a-folder"),
        "not admitted": str(root / "outside"),
        "a .git file pointing out": str(root / "allowed" / "gitdir-file"),
    }
    messages = {}
    for name, path in targets.items():
        lines = []
        with pytest.raises(CheckoutError) as err:
            checkout.clone(
                path,
                "main",
                root / f"ws-{len(messages)}",
                on_line=lambda stream, text, lines=lines: lines.append(text),
                local_sources=policy,
            )
        messages[name] = (str(err.value), lines)
    assert {message for message, _ in messages.values()} == {NOT_ACCESSIBLE}, messages
    assert all(lines == [] for _, lines in messages.values()), messages


def test_a_successful_local_clone_logs_no_host_path(tmp_path):
    root = Path(os.path.realpath(tmp_path))
    repo = make_repo("bare", root / "repo")
    lines = []
    checkout.clone(
        str(repo),
        "main",
        root / "ws",
        on_line=lambda stream, text: lines.append(text),
        local_sources=checkout.LocalSources.of([root]),
    )
    assert lines, "git says what it clones"
    assert not any(str(root) in line for line in lines), lines


def test_the_demo_project_still_clones_in_development(db, tmp_path, settings):
    # The defaults, as a fresh process computes them: development admits the demo repository's
    # folder only (not the data directory around it), production nothing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "REPOSITORY_LOCAL_ROOTS"}
    env.update(DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="dashboard.settings")
    show = "import django; django.setup(); from django.conf import settings; print(settings.REPOSITORY_LOCAL_ROOTS)"

    def roots(**extra):
        result = subprocess.run(
            [sys.executable, "-c", show], env={**env, **extra}, cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert roots() == str([os.path.realpath(tmp_path / "data" / "demo-repo")])
    assert (
        roots(PRODUCTION="1", SECRET_KEY="k" * 40 + "abcdefghij", DEBUG="0", SECRETS_ENCRYPTION_KEYS="A" * 43 + "=")
        == "[]"
    )

    from dashboard.demo import create_demo_data

    settings.REPOSITORY_LOCAL_ROOTS = [os.path.realpath(settings.DEMO_REPOSITORY_DIR)]
    assert create_demo_data().created
    project = Project.objects.get(name="demo")
    commit = checkout.clone(
        project.repository_url,
        project.branch,
        tmp_path / "ws",
        local_sources=project_services.repository_local_sources(),
    )
    assert len(commit) == 40 and (tmp_path / "ws" / ".devcontainer" / "devcontainer.json").is_file()
    # The same configuration refuses the rest of the data directory.
    with pytest.raises(InvalidArgument, match="REPOSITORY_LOCAL_ROOTS"):
        project_services.project_update(
            actor=project.created_by, project=project, repository_url=str(settings.DATA_DIR)
        )

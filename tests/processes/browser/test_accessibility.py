"""Every page of ours, at 1440 and at 390 px wide, in the states people see them in (a prebuild
running, one failed, a degraded pool, a confirmation open, a first-run overview...): axe-core
reports no violation, and no page is wider than the window. (The API docs page is a third party's.)

One test per width, each walking every page with the same data, so that one failure report lists
every page that fails, and the server and the browser are started once."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from prebuilds import logstore
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep
from projects import services as project_services
from projects.models import Role
from tests.builders import make_users
from tests.processes.browser.conftest import DESKTOP, PHONE, horizontal_overflow
from warmpools.models import WarmPool, WarmPoolPhase

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def world(org, make_prebuild, make_pool, make_environment, add_step):
    """A busy organization: runs in every state, a ready and a degraded pool, a token."""
    previous = make_prebuild(phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=734_003_200)
    Prebuild.objects.filter(pk=previous.pk).update(completion_time=previous.started_at + timedelta(seconds=140))
    for position, (name, seconds) in enumerate([("clone", 4), ("onCreateCommand", 90), ("snapshot", 30)]):
        add_step(previous, position, name, seconds)
    running = make_prebuild(phase=PrebuildPhase.RUNNING, started_at=timezone.now() - timedelta(seconds=75))
    add_step(running, 0, "clone", 3)
    add_step(running, 1, "onCreateCommand", None, outcome=PrebuildStep.Outcome.RUNNING)
    logstore.append(
        running.id,
        1,
        [("clone", "stderr", "Cloning into 'workspace'...")]
        + [("onCreateCommand", "stdout", f"\x1b[32mstep {n}\x1b[0m compiled") for n in range(1, 60)],
    )
    failed = make_prebuild(
        environment_class=org.large,
        phase=PrebuildPhase.FAILED,
        failure_message="onCreateCommand exited with status 3",
        warning_message="devcontainer.json: the local runner cannot honour features",
    )
    add_step(failed, 0, "clone", 2)
    add_step(failed, 1, "onCreateCommand", 12, outcome=PrebuildStep.Outcome.FAILED, exit_status=3)
    logstore.append(failed.id, 1, [("onCreateCommand", "stderr", f"npm error {n}") for n in range(30)])
    logstore.archive(Prebuild.objects.get(pk=failed.pk))
    make_prebuild(phase=PrebuildPhase.SNAPSHOTTING, snapshot_completion_percentage=64)
    ready = make_pool(
        min_size=1, max_size=4, running_instances=1, stopped_instances=3, status_desired_size=1, snapshot=previous
    )
    WarmPool.objects.filter(pk=ready.pk).update(phase=WarmPoolPhase.READY)
    make_environment(ready, ready_after_ms=4)
    degraded = make_pool(environment_class=org.large, min_size=1, max_size=2, snapshot=previous)
    WarmPool.objects.filter(pk=degraded.pk).update(
        phase=WarmPoolPhase.DEGRADED,
        next_attempt_at=timezone.now() + timedelta(seconds=40),
        failure_message=(
            f"cannot provision instances from prebuild {previous.id}: snapshot {previous.id} is corrupt: checksum "
            f"mismatch (expected {'a' * 64}, got {'b' * 64}); retrying in 40s"
        ),
    )
    project_services.api_token_create(user=org.admin, name="ci", expires_in=timedelta(days=30))
    # Another organization where nothing has run yet: the first-run overview.
    (newcomer,) = make_users("nina")
    empty = project_services.organization_create(name="Fresh")
    project_services.membership_set(organization=empty, user=newcomer, role=Role.ADMIN)
    return {"running": running, "failed": failed, "previous": previous, "ready": ready, "degraded": degraded}


def pages(world, org):
    """(name, user, url, what to do once it is open)."""

    def open_bulk_confirmation(page):
        page.get_by_role("checkbox").nth(1).check()
        page.get_by_role("button", name="Delete selected").click()
        expect(page.get_by_role("dialog")).to_be_visible()

    def show_failing_lines(page):
        page.get_by_role("link", name="Show the failing lines of onCreateCommand").click()
        expect(page.locator(".log-line.failing").first).to_be_visible()

    def open_menu(page):
        toggle = page.get_by_role("button", name="Menu")
        if toggle.is_visible():
            toggle.click()
            expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    def create_token(page):
        page.get_by_label("Name").fill("deploy")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_label("Token secret")).to_be_visible()

    def wait_for_log(page):
        expect(page.locator("section.logs")).to_have_attribute("data-state", re.compile("live|complete|paused"))

    detail = reverse("prebuilds:detail", args=[world["running"].id])
    return [
        ("login", None, reverse("login"), None),
        ("overview", "alice", reverse("overview"), open_menu),
        ("prebuilds", "alice", reverse("prebuilds:list"), None),
        ("prebuilds-confirm-delete", "alice", reverse("prebuilds:list"), open_bulk_confirmation),
        ("prebuild-running", "bob", detail, wait_for_log),
        ("prebuild-failed", "bob", reverse("prebuilds:detail", args=[world["failed"].id]), show_failing_lines),
        ("prebuild-completed", "alice", reverse("prebuilds:detail", args=[world["previous"].id]), wait_for_log),
        ("warm-pools", "alice", reverse("warmpools:list"), None),
        ("warm-pool-ready", "alice", reverse("warmpools:detail", args=[world["ready"].id]), None),
        ("warm-pool-degraded", "bob", reverse("warmpools:detail", args=[world["degraded"].id]), None),
        ("warm-pool-delete", "alice", reverse("warmpools:delete", args=[world["ready"].id]), None),
        ("projects", "alice", reverse("projects:list"), None),
        ("project", "alice", reverse("projects:detail", args=[org.project.id]), None),
        ("project-member", "bob", reverse("projects:detail", args=[org.project.id]), None),
        ("project-new", "alice", reverse("projects:create"), None),
        ("tokens", "alice", reverse("api-tokens"), create_token),
        ("first-run", "nina", reverse("overview"), None),
        ("not-found", "bob", "/prebuilds/00000000-0000-0000-0000-000000000000/", None),
    ]


def check_every_page(page, world, org, log_in, axe, screenshot, viewport, suffix):
    page.set_viewport_size(viewport)
    problems = []
    current = None
    for name, user, url, then in pages(world, org):
        if user != current:
            page.context.clear_cookies()
            if user:
                log_in(user)
            current = user
        page.goto(url)
        if then:
            then(page)
        overflow = horizontal_overflow(page)
        if overflow > 0:
            problems.append(f"{name}: {overflow} px wider than the {viewport['width']} px window")
        for rule, impact, help_text, targets in axe(page):
            problems.append(f"{name}: {rule} ({impact}) {help_text}: {targets[:3]}")
        screenshot(page, f"a11y-{name}-{suffix}")
    assert not problems, "\n".join(problems)


def test_every_page_at_1440_px_is_accessible(page, world, org, log_in, axe, screenshot):
    check_every_page(page, world, org, log_in, axe, screenshot, DESKTOP, "1440")


def test_every_page_at_390_px_is_accessible_and_no_wider_than_the_phone(page, world, org, log_in, axe, screenshot):
    check_every_page(page, world, org, log_in, axe, screenshot, PHONE, "390")
    # On a phone the navigation is one row behind a button, and a prebuild opens on its status and log.
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[world["running"].id]))
    header = page.locator("header.topbar").bounding_box()
    assert header["height"] <= 60, f"the navigation takes {header['height']} px"
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    log_top = page.get_by_role("region", name="Logs").bounding_box()["y"]
    assert log_top < PHONE["height"], f"the log starts {log_top} px down"
    status = page.get_by_role("region", name="Status: Running").bounding_box()["y"]
    assert status < log_top

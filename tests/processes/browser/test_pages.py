"""The pages in a real browser, with prebuilds and pools put into each state directly. (Watching a
prebuild run, its live logs from a real worker, cancelling a slow one, a pool the worker provisions
and environments created from it: test_live_worker.py.)"""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import Role
from warmpools.models import WarmPool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def mark_page(page):
    """A marker that a full page load would wipe: proves an update happened in place."""
    page.evaluate("window.__noReload = true")


def still_same_page(page):
    return page.evaluate("window.__noReload === true")


def test_log_in_and_every_page_renders(page, live_server, org, log_in, screenshot, make_prebuild, make_pool):
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=734_003_200)
    make_prebuild(phase=PrebuildPhase.FAILED, failure_message="onCreateCommand exited with status 1")
    make_prebuild(phase=PrebuildPhase.SNAPSHOTTING, snapshot_completion_percentage=64)
    make_pool(
        min_size=1, max_size=4, running_instances=1, stopped_instances=1, status_desired_size=2, snapshot=snapshot
    )

    log_in("alice")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("progress")).to_have_attribute("value", "64")
    expect(page.get_by_text("onCreateCommand exited with status 1")).to_be_visible()
    screenshot(page, "overview")

    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Prebuilds")).click()
    expect(page.get_by_role("heading", name="Prebuilds", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile(r"700.0\sMB"))).to_be_visible()
    screenshot(page, "prebuilds")

    page.get_by_role("link", name="Warm pools").click()
    expect(page.get_by_role("img", name="1 running, 1 stopped, target 2; min 1, max 4")).to_be_visible()
    screenshot(page, "warm-pools")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    page.get_by_role("link", name="app").click()
    expect(page.get_by_role("heading", name="Prebuild configuration")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Duration of the last 3 prebuilds"))).to_be_visible()
    screenshot(page, "project")

    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Token secret", exact=True).input_value()
    assert secret.startswith("pbk_")
    page.goto("/settings/tokens/")
    expect(page.get_by_label("Token secret", exact=True)).to_have_count(0)  # shown once
    expect(page.get_by_role("cell", name=secret[:10] + "…")).to_be_visible()
    page.get_by_role("button", name="Revoke token ci").click()
    expect(page.get_by_text(re.compile("^revoked"))).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_narrow_window(page, org, log_in, screenshot, make_prebuild):
    make_prebuild(phase=PrebuildPhase.RUNNING)
    page.set_viewport_size({"width": 390, "height": 800})
    log_in("bob")
    page.goto("/prebuilds/")
    expect(page.get_by_role("button", name="Trigger prebuild")).to_be_visible()
    # Nothing wider than the window but the table, which scrolls inside its own box.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    screenshot(page, "prebuilds-narrow")


def test_trigger_form_validates_in_place_and_follows_the_project(page, org, log_in, screenshot):
    project_services.project_create(
        actor=org.admin,
        organization=org.organization,
        name="api",
        repository_url="/srv/git/api",
        default_environment_class_id=org.large.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[org.large.id],
    )
    log_in("bob")
    page.goto("/prebuilds/")
    mark_page(page)
    form = page.get_by_role("region", name="Trigger prebuild")
    project = form.get_by_label("Project", exact=True)
    environment_class = form.get_by_label("Environment class", exact=True)
    timeout = form.get_by_label("Timeout", exact=True)

    project.select_option(label="api")
    expect(environment_class.locator("option")).to_have_text(["large (default)"])
    project.select_option(label="app")
    expect(environment_class.locator("option")).to_have_text(["small (default)", "large"])

    environment_class.select_option(label="large")
    timeout.fill("3h")
    page.get_by_role("button", name="Trigger prebuild").click()
    error = page.locator("#id_timeout_error")
    expect(error).to_have_text("value must be greater than or equal to 300s and less than or equal to 7200s")
    expect(timeout).to_have_attribute("aria-invalid", "true")
    expect(environment_class).to_have_value(str(org.large.id))  # kept
    assert still_same_page(page)
    screenshot(page, "trigger-form-error", full_page=False)

    timeout.fill("soon")
    page.get_by_role("button", name="Trigger prebuild").click()
    expect(page.locator("#id_timeout_error")).to_have_text("Enter minutes or a duration such as 30m or 1h.")
    assert not Prebuild.objects.exists()

    timeout.fill("45m")
    page.get_by_role("button", name="Trigger prebuild").click()
    page.wait_for_url(re.compile(r"/prebuilds/[0-9a-f-]{36}/$"))
    prebuild = Prebuild.objects.get()
    assert (prebuild.environment_class, prebuild.timeout) == (org.large, timedelta(minutes=45))
    expect(page.get_by_role("heading", name=re.compile("Status: Pending"))).to_be_visible()
    expect(page.get_by_role("button", name="Cancel prebuild")).to_be_visible()
    expect(page.get_by_role("region", name="Logs")).to_be_visible()

    # Cancel a prebuild that has not started: it is cancelled at once, and the page follows.
    mark_page(page)
    page.get_by_role("button", name="Cancel prebuild").click()
    expect(page.get_by_role("heading", name=re.compile("Status: Cancelled"))).to_be_visible()
    expect(page.get_by_role("button", name="Cancel prebuild")).to_have_count(0)
    assert still_same_page(page)


def test_create_a_pool_resize_it_and_see_the_gauge_change(page, org, log_in, screenshot):
    log_in("alice")
    page.goto("/warm-pools/")
    page.get_by_label("Environment class", exact=True).select_option(label="large")
    page.get_by_label("Minimum instances").fill("5")
    page.get_by_label("Maximum instances").fill("2")
    page.get_by_role("button", name="Create warm pool").click()
    expect(page.locator("#id_min_size_error")).to_have_text("min_size (5) must not exceed max_size (2)")
    page.get_by_label("Minimum instances").fill("1")
    page.get_by_label("Maximum instances").fill("3")
    page.get_by_role("button", name="Create warm pool").click()
    page.wait_for_url(re.compile(r"/warm-pools/[0-9a-f-]{36}/$"))
    pool = WarmPool.objects.get()
    assert (pool.environment_class, pool.min_size, pool.max_size) == (org.large, 1, 3)
    gauge = page.locator("#pool-status").get_by_role("img")
    expect(gauge).to_have_attribute("aria-label", re.compile("min 1, max 3$"))
    band_before = page.locator("#pool-status .gauge-band").get_attribute("width")

    mark_page(page)
    page.get_by_label("Minimum instances").fill("4")
    page.get_by_label("Maximum instances").fill("25")
    page.get_by_role("button", name="Resize").click()
    expect(page.locator("#id_max_size_error")).to_have_text(
        "value must be greater than or equal to 1 and less than or equal to 20"
    )
    page.get_by_label("Maximum instances").fill("8")
    page.get_by_role("button", name="Resize").click()
    expect(page.get_by_role("status").filter(has_text="Resized.")).to_be_visible()
    expect(gauge).to_have_attribute("aria-label", re.compile("min 4, max 8$"))
    assert page.locator("#pool-status .gauge-band").get_attribute("width") != band_before
    assert still_same_page(page)
    screenshot(page, "warm-pool")

    page.get_by_role("link", name="Delete warm pool").click()
    expect(page.get_by_role("heading", name="Delete warm pool?")).to_be_visible()
    page.get_by_role("button", name="Delete warm pool").click()
    page.wait_for_url("**/warm-pools/")
    expect(page.get_by_text("is being deleted")).to_be_visible()


def test_organization_switcher(page, org, log_in, make_prebuild):
    beta = project_services.organization_create(name="Beta")
    project_services.membership_set(organization=beta, user=org.member, role=Role.MEMBER)
    runner = project_services.runner_create(organization=beta, name="r", queue="runner-beta")
    cls = project_services.environment_class_create(runner=runner, display_name="beta-small")
    project_services.project_create(
        actor=_beta_admin(beta),
        organization=beta,
        name="beta-app",
        repository_url="/srv/b",
        default_environment_class_id=cls.id,
    )
    log_in("bob")
    page.goto("/projects/")
    expect(page.get_by_role("link", name="app", exact=True)).to_be_visible()
    page.get_by_label("Organization").select_option(label="Beta")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("link", name="beta-app")).to_be_visible()
    expect(page.get_by_role("link", name="app", exact=True)).to_have_count(0)
    expect(page.get_by_text("Now showing Beta.")).to_be_visible()

    log_in("alice")  # in one organization only: no switcher
    expect(page.get_by_label("Organization")).to_have_count(0)


def _beta_admin(organization):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_user(username="beta-admin", password="pw-beta-admin")
    project_services.membership_set(organization=organization, user=admin, role=Role.ADMIN)
    return admin


def test_bulk_cancel_keeps_the_selection_while_the_list_refreshes(page, org, log_in, make_prebuild):
    first, second = make_prebuild(), make_prebuild()
    make_prebuild(phase=PrebuildPhase.RUNNING)  # keeps the list polling
    log_in("bob")
    page.goto("/prebuilds/")
    mark_page(page)
    expect(page.get_by_role("button", name="Delete selected")).to_have_count(0)  # members do not delete
    page.get_by_role("checkbox").nth(1).check()
    page.get_by_role("checkbox").nth(2).check()
    page.wait_for_timeout(2500)  # one refresh of the rows went by
    expect(page.get_by_role("checkbox").nth(1)).to_be_checked()
    page.get_by_role("button", name="Cancel selected").click()
    expect(page.get_by_text("2 prebuilds cancelled.")).to_be_visible()
    expect(page.get_by_role("link", name="Cancelled")).to_have_count(2)
    assert still_same_page(page)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.phase == second.phase == PrebuildPhase.CANCELLED

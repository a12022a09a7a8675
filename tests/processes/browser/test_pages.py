"""The pages in a real browser, with prebuilds and pools put into each state directly. (Watching a
prebuild run, its live logs from a real worker, cancelling a slow one, a pool the worker provisions
and environments created from it: test_live_worker.py; the log panel: test_log_panel.py; axe and
phone widths on every page: test_accessibility.py.)"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core import words
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import Role
from warmpools.models import WarmPool, WarmPoolPhase

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
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    chart = page.get_by_role("figure", name=re.compile("Duration of the last 3 prebuilds"))
    expect(chart).to_be_visible()
    # Every bar a link named in words, on an axis of time.
    expect(
        chart.get_by_role("link", name=re.compile(r"^Failed, \d+m \d+s, small, \d{4}-\d\d-\d\d .* UTC$"))
    ).to_be_visible()
    screenshot(page, "project")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Token secret", exact=True).input_value()
    assert secret.startswith("pbk_")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(page.locator("#announcer")).to_have_text("Copied to the clipboard.")
    page.goto("/settings/tokens/")
    expect(page.get_by_label("Token secret", exact=True)).to_have_count(0)  # shown once
    expect(page.get_by_role("cell", name=secret[:10] + "…")).to_be_visible()
    # Its expiry and times carry the time zone.
    expect(page.locator("time[data-relative]").first).to_have_attribute("title", re.compile(r" UTC$"))
    page.get_by_role("button", name="Revoke token ci").click()
    expect(page.get_by_role("heading", name="Revoke token ci?")).to_be_visible()  # asked first
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_text(re.compile("^revoked"))).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


def test_on_a_phone_the_menu_opens_and_closes(page, org, log_in, screenshot, make_prebuild):
    make_prebuild(phase=PrebuildPhase.RUNNING)
    page.set_viewport_size({"width": 390, "height": 800})
    log_in("bob")
    page.goto("/prebuilds/")
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Warm pools")).to_be_visible()
    screenshot(page, "menu-open-narrow", full_page=False)
    menu.click()
    expect(nav).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


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

    # The timeout's help names the project's own timeout, and follows the project.
    expect(form.get_by_text("Empty: the project's timeout, 30m.")).to_be_visible()
    environment_class.select_option(label="large")
    timeout.fill("3h")
    page.get_by_role("button", name="Trigger prebuild").click()
    error = page.locator("#id_timeout_error")
    expect(error).to_have_text("Enter a timeout from 5 minutes to 2 hours, such as 30m or 1h.")
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

    # Cancel a prebuild that has not started: asked first, then cancelled at once, and the page follows.
    mark_page(page)
    page.get_by_role("button", name="Cancel prebuild").click()
    dialog = page.get_by_role("dialog", name="Cancel this prebuild?")
    expect(dialog).to_contain_text("It has not started: it is taken off the runner's queue")
    expect(dialog.get_by_role("button", name="Keep it running")).to_be_focused()
    dialog.get_by_role("button", name="Cancel prebuild").click()
    expect(dialog).to_be_hidden()
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
    expect(page.locator("#id_min_size_error")).to_have_text("The minimum (5) cannot be more than the maximum (2).")
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
    # The input holds the limit too: 25 is out of its range before anything is sent.
    assert page.get_by_label("Maximum instances").evaluate("el => el.validity.rangeOverflow")
    page.get_by_role("button", name="Resize").click()
    expect(page.locator("#id_max_size_error")).to_have_text("Enter a number of instances from 1 to 20.")
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
    # Asked first, naming both; nothing happens until confirmed.
    dialog = page.get_by_role("dialog", name="Cancel these 2 prebuilds?")
    expect(dialog.get_by_role("listitem")).to_have_count(2)
    expect(dialog.get_by_role("listitem").first).to_contain_text("app on small, created ")
    dialog.get_by_role("button", name="Cancel 2 prebuilds").click()
    expect(page.get_by_text("2 prebuilds cancelled.")).to_be_visible()
    expect(page.locator("#prebuild-rows .phase-cancelled")).to_have_count(2)
    assert still_same_page(page)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.phase == second.phase == PrebuildPhase.CANCELLED


def test_keep_it_leaves_everything_as_it_was(page, org, log_in, make_prebuild):
    done = make_prebuild(phase=PrebuildPhase.COMPLETED)
    log_in("alice")
    page.goto("/prebuilds/")
    page.get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Delete selected").click()
    dialog = page.get_by_role("dialog", name="Delete this prebuild?")
    expect(dialog).to_contain_text("Its snapshot and logs are removed")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Delete selected").click()
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    done.refresh_from_db()
    assert done.desired_phase == PrebuildPhase.UNSPECIFIED


def test_a_filtered_list_is_in_the_address_bar_and_opens_the_same_rows_elsewhere(
    page, browser, live_server, org, log_in, make_prebuild, screenshot
):
    small_failed = make_prebuild(phase=PrebuildPhase.FAILED)
    make_prebuild(phase=PrebuildPhase.COMPLETED)
    make_prebuild(environment_class=org.large, phase=PrebuildPhase.FAILED)
    log_in("bob")
    page.goto("/prebuilds/")
    mark_page(page)
    filters = page.get_by_role("region", name="Filter")
    filters.get_by_label("Phase").select_option(label="Failed")
    expect(page).to_have_url(re.compile(rf"/prebuilds/\?phase={PrebuildPhase.FAILED.value}$"))
    filters.get_by_label("Environment class").select_option(label="small")
    # Each change is in the address bar at once, exactly the filters the rows are of.
    expect(page).to_have_url(
        re.compile(rf"/prebuilds/\?environment_class={org.small.id}&phase={PrebuildPhase.FAILED.value}$")
    )
    rows = page.locator("#prebuild-rows tbody tr")
    expect(rows).to_have_count(1)
    assert still_same_page(page)
    shown = rows.first.get_by_role("link").get_attribute("href")
    assert shown == f"/prebuilds/{small_failed.id}/"

    # The copied link, in another browser context (another person): the same rows.
    other = browser.new_context(base_url=live_server.url)
    try:
        second = other.new_page()
        second.goto("/login/")
        second.get_by_label("Username").fill("alice")
        second.get_by_label("Password").fill("pw-alice")
        second.get_by_role("button", name="Log in").click()
        second.wait_for_url("**/")
        second.goto(page.url)
        expect(second.locator("#prebuild-rows tbody tr")).to_have_count(1)
        assert second.locator("#prebuild-rows tbody tr a").first.get_attribute("href") == shown
        expect(second.get_by_label("Phase")).to_have_value(str(PrebuildPhase.FAILED.value))
    finally:
        other.close()


def test_the_list_shows_a_new_prebuild_without_a_reload_when_all_had_finished(page, org, log_in, make_prebuild):
    make_prebuild(phase=PrebuildPhase.COMPLETED)
    log_in("bob")
    page.goto("/prebuilds/")
    mark_page(page)
    requests = []
    page.on(
        "response",
        lambda r: requests.append(r.status) if "/prebuilds/" in r.url and r.request.method == "GET" else None,
    )
    page.wait_for_timeout(2500)
    assert 204 in requests and 200 not in requests  # polled, and nothing new: nothing rendered
    new = make_prebuild(environment_class=org.large)
    expect(page.locator(f'#prebuild-rows a[href="/prebuilds/{new.id}/"]')).to_be_visible(timeout=5000)
    assert still_same_page(page)
    # A hidden tab asks nothing; shown again, it refreshes at once.
    page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
    requests.clear()
    page.wait_for_timeout(2500)
    assert requests == []
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(300)
    assert requests, "no refresh when the tab was shown again"


def test_an_admin_creates_edits_and_deletes_a_project_in_the_browser(page, org, log_in, make_pool, screenshot):
    make_pool(running_instances=1)
    log_in("alice")
    page.goto("/projects/")
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("")
    page.get_by_label("Timeout").fill("3h")
    page.get_by_label("Daily prebuild at (hour, UTC)").fill("30")
    page.get_by_role("button", name="Create project").click()
    # Every field's problem at once, each next to its field.
    expect(page.locator("#id_name_error")).to_have_text("Enter a name for the project.")
    expect(page.locator("#id_repository_url_error")).to_have_text("Enter the repository's URL.")
    expect(page.locator("#id_prebuild_timeout_error")).to_have_text(
        "Enter a timeout from 5 minutes to 2 hours, such as 30m or 1h."
    )
    expect(page.locator("#id_daily_schedule_hour_utc_error")).to_have_text(
        "Enter an hour from 0 to 23, or leave it empty."
    )
    screenshot(page, "project-new-errors")
    page.get_by_label("Name").fill("api")
    page.get_by_label("Repository").fill("https://git.example/acme/api.git")
    page.get_by_label("Timeout").fill("10m")
    page.get_by_label("Daily prebuild at (hour, UTC)").fill("")
    page.get_by_label("Prebuilds enabled").check()
    page.get_by_role("checkbox", name="small").check()
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Project api created")).to_be_visible()
    expect(page.get_by_label("Webhook secret")).to_have_value(re.compile("^whsec_"))
    page.get_by_role("link", name="Go to the project").click()
    expect(page.get_by_role("heading", name="api", exact=True)).to_be_visible()
    # The project page triggers a prebuild, with the project's timeout unless another is entered.
    trigger = page.get_by_role("region", name="Trigger prebuild")
    expect(trigger.get_by_text("Empty: the project's timeout, 10m.")).to_be_visible()
    trigger.get_by_role("button", name="Trigger prebuild").click()
    page.wait_for_url(re.compile(r"/prebuilds/[0-9a-f-]{36}/$"))
    assert Prebuild.objects.get(project__name="api").timeout == timedelta(minutes=10)
    expect(page.get_by_text("Timeout 10m 00s (the project's)")).to_be_visible()

    # Unticking the class of app's pool: said before saving, and asked when saving.
    page.goto(f"/projects/{org.project.id}/")
    expect(page.get_by_text("With a warm pool: small.")).to_be_visible()
    page.get_by_role("checkbox", name="small").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    dialog = page.get_by_role("dialog", name="Save and delete a warm pool?")
    expect(dialog).to_contain_text("The warm pool of app on small (1 running, 0 stopped instances)")
    dialog.get_by_role("button", name="Save and delete the pool").click()
    expect(
        page.get_by_role("status").filter(has_text="Saved. The warm pool of small is being deleted.")
    ).to_be_visible()
    assert WarmPool.objects.get().desired_phase == WarmPoolPhase.DELETED

    # Delete the project: asked first, naming it.
    page.get_by_role("button", name="Delete project").click()
    dialog = page.get_by_role("dialog", name="Delete project app?")
    dialog.get_by_role("button", name="Delete project").click()
    page.wait_for_url("**/projects/")
    expect(page.get_by_text("Project app deleted.")).to_be_visible()
    expect(page.get_by_role("link", name="app", exact=True)).to_have_count(0)


def test_a_degraded_pool_counts_down_to_its_retry_and_offers_the_fix(page, org, log_in, make_prebuild, make_pool):
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    pool = make_pool(snapshot=snapshot)
    WarmPool.objects.filter(pk=pool.pk).update(
        phase=WarmPoolPhase.DEGRADED,
        next_attempt_at=timezone.now() + timedelta(seconds=30),
        failure_message=f"cannot provision instances from prebuild {snapshot.id}: snapshot {snapshot.id} does not "
        "exist in the store; retrying in 30s",
    )
    log_in("bob")
    page.goto(f"/warm-pools/{pool.id}/")
    status = page.locator("#pool-status")
    expect(status.get_by_text("The snapshot this pool warms is missing from the snapshot store.")).to_be_visible()
    countdown = status.locator("time.countdown")
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first, timeout=3000)  # it counts
    assert re.fullmatch(r"in \d+s", countdown.text_content())
    # The ids and the runner's words stay behind the disclosures.
    expect(status.get_by_text(str(snapshot.id), exact=True)).to_be_hidden()
    expect(status.locator(".diagnosis .mono")).to_be_hidden()
    status.get_by_role("button", name="Trigger a prebuild of app on small").click()
    page.wait_for_url(re.compile(r"/prebuilds/[0-9a-f-]{36}/$"))
    new = Prebuild.objects.exclude(pk=snapshot.pk).get()
    assert (new.environment_class, new.creator) == (org.small, org.member)


def test_the_browser_says_times_in_the_servers_words(page, org, log_in):
    """ui.js keeps relative times and ticking durations current; it must write what core.words does."""
    log_in("bob")
    now = timezone.now()
    for seconds in (0, 9, 10, 59, 60, 119, 3599, 3600, 86399, 86400, 200000, -5, -120):
        moment = now - timedelta(seconds=seconds)
        shown = page.evaluate(
            "([m, n]) => window.dashboardUi.relative(Date.parse(m), Date.parse(n))",
            [moment.isoformat(), now.isoformat()],
        )
        assert shown == words.relative(moment, now), seconds
    for seconds in (0, 7, 125, 3725):
        assert page.evaluate("s => window.dashboardUi.duration(s)", seconds) == words.duration(
            timedelta(seconds=seconds)
        )

"""The pages in a real browser against a real worker: prebuilds that really run (clone, lifecycle,
snapshot) on a Celery worker process, their logs streaming into the page, cancel, and a warm pool
that the worker really provisions, resizes and hands environments out of.

The live server serves from a thread of this process and the worker is another process; both use
this test's database (subprocess_env hands the worker its name). Nothing here reloads a page once it
is open: `mark_page` proves every change arrived in place.
"""

import re
import time

import pytest
from playwright.sync_api import expect

from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from tests.processes.browser.test_pages import mark_page, still_same_page
from warmpools import status as pool_status
from warmpools.models import Environment, EnvironmentPhase, InstanceState, PoolInstance, WarmPool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The `org` fixture's runner listens on "runner-test"; "control" carries the periodic and fan-out tasks.
QUEUES = "control,runner-test"
# Real work (a clone, the lifecycle in the sandbox, a compressed snapshot) on a shared test machine.
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def worker(start_worker):
    return start_worker(QUEUES)


def use_repo(org, repo):
    return project_services.project_update(actor=org.admin, project=org.project, repository_url=str(repo))


def trigger_through_the_form(page):
    page.goto("/prebuilds/")
    form = page.get_by_role("region", name="Trigger prebuild")
    expect(form.get_by_label("Project", exact=True)).to_have_value(re.compile(".+"))
    page.get_by_role("button", name="Trigger prebuild").click()
    page.wait_for_url(re.compile(r"/prebuilds/[0-9a-f-]{36}/$"))
    return Prebuild.objects.get(id=page.url.rstrip("/").rsplit("/", 1)[1])


def status_heading(page, phase):
    return page.get_by_role("heading", name=re.compile(rf"^Status: {phase}$"))


def test_a_triggered_prebuild_runs_to_completed_with_its_logs(page, org, worker, sample_repo, log_in, screenshot):
    use_repo(org, sample_repo("ok", "--files", "50"))
    log_in("bob")
    prebuild = trigger_through_the_form(page)
    assert prebuild.creator == org.member
    mark_page(page)

    expect(status_heading(page, "Completed")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert still_same_page(page)
    logs = page.get_by_role("region", name="Logs")
    output = logs.get_by_role("region", name="Log output")
    expect(output.get_by_role("heading", name="onCreateCommand")).to_be_visible()
    expect(output.get_by_text("dependency tree ready: 50 files")).to_be_visible()
    expect(logs).to_have_attribute("data-state", "complete", timeout=10_000)  # the archive, after the end
    expect(page.get_by_role("button", name="Cancel prebuild")).to_have_count(0)
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.COMPLETED and prebuild.snapshot_size_bytes > 0
    screenshot(page, "prebuild-with-logs")


# What the page shows, sampled: the status card's phase and the steps whose lines the log shows.
SAMPLE = """() => ({
    phase: (document.querySelector("#status-heading .phase") || {}).textContent || "",
    steps: Array.from(document.querySelectorAll(".log-output .log-group")).map((g) => g.dataset.step),
})"""
PHASE_RANK = {"Pending": 0, "Starting": 1, "Running": 2, "Stopping": 3, "Snapshotting": 4, "Cancelling": 5}


def least_phase_for(steps) -> int:
    """The phase the status must have reached when the log shows these steps' lines."""
    if any(step not in ("clone", "snapshot", "") for step in steps):
        return PHASE_RANK["Running"]
    return PHASE_RANK["Starting"] if "clone" in steps else PHASE_RANK["Pending"]


def sample_until(page, done, seconds: float) -> list[tuple[float, str, list]]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = page.evaluate(SAMPLE)
        samples.append((time.monotonic(), shown["phase"], shown["steps"]))
        if done(shown):
            break
        page.wait_for_timeout(100)
    return samples


def longest_disagreement(samples) -> float:
    """The longest stretch (seconds) in which the log showed lines the status phase had not reached."""
    longest, since = 0.0, None
    for at, phase, steps in samples:
        behind = PHASE_RANK.get(phase, 9) < least_phase_for(steps)
        if behind and since is None:
            since = at
        if not behind and since is not None:
            longest, since = max(longest, at - since), None
    if since is not None:
        longest = max(longest, samples[-1][0] - since)
    return longest


def test_logs_arrive_while_a_slow_prebuild_runs_and_cancel_stops_it(page, org, worker, sample_repo, log_in, screenshot):
    use_repo(org, sample_repo("slow"))
    log_in("bob")
    prebuild = trigger_through_the_form(page)
    mark_page(page)
    output = page.get_by_role("region", name="Logs").get_by_role("region", name="Log output")

    # From the trigger until its commands have ticked three times, the status and the log are
    # sampled ten times a second: they never disagree for longer than about one log poll (0.5 s,
    # plus the status card's own request), whereas the card used to refresh every 2 s alone.
    samples = sample_until(
        page, lambda shown: output.get_by_text("tick 3", exact=True).count() > 0, RUN_TIMEOUT_MS / 1000
    )
    assert any(phase == "Running" for _, phase, _ in samples), samples[-5:]
    assert longest_disagreement(samples) < 1.5, samples

    # Line by line, a second apart: tick 3 came after tick 1 was shown.
    expect(output.get_by_text("tick 1", exact=True)).to_be_visible()
    expect(output.get_by_text("tick 3", exact=True)).to_be_visible(timeout=10_000)
    expect(status_heading(page, "Running")).to_be_visible()
    # The elapsed time ticks, against nothing yet (no completed run to compare with).
    elapsed = page.locator("#prebuild-status .ticking")
    first = elapsed.text_content()
    expect(elapsed).not_to_have_text(first, timeout=3000)
    screenshot(page, "prebuild-running-with-logs")

    # The overview shows it running, then back to its page to cancel it.
    page.goto("/")
    running = page.get_by_role("region", name=re.compile("Running now"))
    expect(running.get_by_role("link").first).to_be_visible()
    screenshot(page, "overview-live")
    page.goto(f"/prebuilds/{prebuild.id}/")
    mark_page(page)

    page.get_by_role("button", name="Cancel prebuild").click()
    started = time.monotonic()
    page.get_by_role("dialog").get_by_role("button", name="Cancel prebuild").click()
    expect(status_heading(page, "Cancelled")).to_be_visible(timeout=30_000)
    # The stepper: stopped while its commands ran, then cancelled; no Completed.
    expect(page.get_by_role("list", name="Phases").get_by_role("listitem")).to_have_text(
        ["Pending (passed)", "Starting (passed)", "Running (stopped here)", "Cancelled (how it ended)"]
    )
    assert still_same_page(page)
    assert time.monotonic() - started < 15
    expect(page.get_by_role("button", name="Cancel prebuild")).to_have_count(0)
    ticks = output.locator(".log-text").filter(has_text=re.compile(r"^tick \d+$")).count()
    page.wait_for_timeout(2500)
    assert output.locator(".log-text").filter(has_text=re.compile(r"^tick \d+$")).count() == ticks  # nothing runs
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.CANCELLED


def wait_for_completed_prebuild(org, repo) -> Prebuild:
    """A completed prebuild of (app, small), made through the service and run by the worker: the
    snapshot a pool warms. (Triggering through the page has its own test above.)"""
    use_repo(org, repo)
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        prebuild.refresh_from_db()
        if prebuild.is_terminal:
            break
        time.sleep(0.2)
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    return prebuild


def test_a_pool_warms_resizes_and_hands_out_an_environment(page, org, worker, sample_repo, log_in, screenshot):
    snapshot = wait_for_completed_prebuild(org, sample_repo("ok", "--files", "50"))
    log_in("alice")
    page.goto("/warm-pools/")
    page.get_by_label("Environment class", exact=True).select_option(label="small")
    page.get_by_label("Minimum instances").fill("1")
    page.get_by_label("Maximum instances").fill("2")
    page.get_by_role("button", name="Create warm pool").click()
    page.wait_for_url(re.compile(r"/warm-pools/[0-9a-f-]{36}/$"))
    pool = WarmPool.objects.get()
    mark_page(page)

    # The worker reconciles it: one running instance (the minimum) and one staged up to the maximum.
    status = page.locator("#pool-status")
    gauge = status.get_by_role("img")
    expect(status.get_by_role("heading", name="Status: Ready")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(gauge).to_have_attribute("aria-label", "1 running, 1 stopped, target 1; min 1, max 2", timeout=20_000)
    expect(status.get_by_role("link", name=re.compile("^prebuild "))).to_have_attribute(
        "href", f"/prebuilds/{snapshot.id}/"
    )
    running_before = page.locator("#pool-status .gauge-running").get_attribute("width")

    # Resize: the target follows the new minimum, and the worker provisions the second instance.
    page.get_by_label("Minimum instances").fill("2")
    page.get_by_label("Maximum instances").fill("3")
    page.get_by_role("button", name="Resize").click()
    expect(page.get_by_role("status").filter(has_text="Resized.")).to_be_visible()
    expect(gauge).to_have_attribute("aria-label", "2 running, 1 stopped, target 2; min 2, max 3", timeout=60_000)
    assert page.locator("#pool-status .gauge-running").get_attribute("width") != running_before
    assert still_same_page(page)

    # An environment from the pool: a warm instance, handed out in the request itself.
    page.get_by_role("button", name="Create environment").click()
    result = page.locator("#environment-result")
    expect(result.get_by_text("Warm pool", exact=True)).to_be_visible()
    expect(result.get_by_text(re.compile(r"^ready in (<1|\d+) ms$"))).to_be_visible()
    environment = Environment.objects.get()
    assert (environment.source, environment.phase, environment.creator) == ("pool", "ready", org.admin)
    recent = page.locator("#pool-environments")
    expect(recent.get_by_role("cell", name="Warm pool")).to_be_visible()
    expect(status.locator("dt:text-is('Hits') + dd")).to_have_text("1")
    expect(status.locator("dt:text-is('Claim latency p95') + dd")).to_have_text(re.compile(r"ms$"))
    # The reconciler backfills the instance just handed out, and the page follows.
    expect(gauge).to_have_attribute("aria-label", re.compile("^2 running, 1 stopped"), timeout=60_000)
    assert still_same_page(page)
    screenshot(page, "warm-pool-live")

    # Delete it: the worker removes its workspace, and the row goes.
    recent.get_by_role("button", name=re.compile("^Delete environment ")).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete environment").click()
    expect(recent.get_by_text("No environments from this pool yet.")).to_be_visible(timeout=30_000)
    environment.refresh_from_db()
    assert environment.phase == EnvironmentPhase.DELETED
    assert still_same_page(page)

    # With no running instance left the next environment is a miss: the worker restores the
    # snapshot, and the result follows it (polling) until it is ready. (A pool's maximum is at
    # least 1 and the demand keeps its target up, so the idle instances are retired through their
    # one writer, as the reconciler retires them; nothing reconciles before the click.)
    for instance in PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING):
        assert pool_status.instance_retired(pool, instance)
    page.get_by_role("button", name="Create environment").click()
    expect(result.get_by_text("Snapshot", exact=True)).to_be_visible()
    expect(result.get_by_text(re.compile(r"^ready in \S+ m?s$"))).to_be_visible(timeout=60_000)
    restored = Environment.objects.get(source="snapshot")
    assert restored.phase == EnvironmentPhase.READY and restored.pool_id == pool.id
    expect(recent.get_by_role("cell", name="Snapshot")).to_be_visible()
    expect(status.locator("dt:text-is('Misses') + dd")).to_have_text("1")
    assert still_same_page(page)

    # The list page shows the pool's hits and claim latency p95.
    page.goto("/warm-pools/")
    row = page.get_by_role("row").filter(has=page.get_by_text("Ready", exact=True))
    expect(row.get_by_role("cell", name=re.compile(r"^\S+ m?s$"))).to_be_visible()
    pool.refresh_from_db()
    assert (pool.hits, pool.misses) == (1, 1)
    screenshot(page, "warm-pools-live")
    page.goto("/")
    expect(page.get_by_role("region", name="Warm pools by health").get_by_role("img")).to_be_visible()
    screenshot(page, "overview-with-pool")

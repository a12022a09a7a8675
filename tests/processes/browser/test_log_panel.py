"""The live log panel (static/js/logs.js) against the real logs endpoint, with lines written into the
log store the way a worker writes them: streaming, colours, following, a 200,000-line log searched,
downloaded and linked into by line, the failure banner leading to the failing lines, the timeline's
steps leading to theirs, and the status card following the log. (Lines written by a real prebuild
run: test_live_worker.py.)"""

import re
import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from prebuilds import logstore, status
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def lines(start, count, step="onCreateCommand", stream="stdout", text="line {n}"):
    return [(step, stream, text.format(n=n)) for n in range(start, start + count)]


@pytest.fixture
def watch_logs(page):
    """Every request to the logs endpoint and the token endpoint, with all headers (cookies too)."""
    seen = {"logs": [], "tokens": 0}

    def on_logs(route):
        seen["logs"].append({"url": route.request.url, "headers": route.request.all_headers()})
        route.continue_()

    def on_token(route):
        seen["tokens"] += 1
        route.continue_()

    page.route(re.compile(r"/logs/[0-9a-f-]{36}\?"), on_logs)
    page.route(re.compile(r"/logs-token$"), on_token)
    return seen


def test_lines_stream_in_grouped_by_step_coloured_and_escaped(page, org, log_in, make_prebuild, watch_logs, screenshot):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    next_seq = logstore.append(
        prebuild.id,
        1,
        [
            ("clone", "stderr", "Cloning into 'workspace'..."),
            ("onCreateCommand", "stdout", "\x1b[32mbuilt\x1b[0m module \x1b[1;31m1\x1b[0m/40\x1b[2K"),
            ("onCreateCommand", "stderr", "<script>window.__pwned = 1</script><b>not bold</b>"),
        ],
    )
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    panel = page.get_by_role("region", name="Logs")
    output = panel.get_by_role("region", name="Log output")
    expect(panel).to_have_attribute("data-state", "live")
    expect(output.get_by_role("heading", name="clone")).to_be_visible()
    expect(output.get_by_role("heading", name="onCreateCommand")).to_be_visible()
    expect(output.get_by_text("<script>window.__pwned = 1</script><b>not bold</b>")).to_be_visible()
    assert page.evaluate("window.__pwned") is None
    expect(output.locator("span.ansi-32")).to_have_text("built")
    expect(output.locator("span.ansi-31.ansi-bold")).to_have_text("1")
    expect(output.locator(".log-text").nth(1)).to_have_text("built module 1/40")  # other escapes dropped
    expect(output.locator(".log-line.stderr")).to_have_count(2)
    # Every line has its number (a link to it) and the time it was stored; git's progress on stderr
    # is not marked the way other stderr is.
    first = output.locator(".log-line").first
    expect(first.locator(".log-num")).to_have_text("1")
    expect(first.locator(".log-num")).to_have_attribute("href", "#L1")
    expect(first.locator(".log-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(first.locator(".log-time")).to_have_attribute("title", re.compile(r" UTC$"))
    expect(first).to_have_class(re.compile(r"\bstderr progress\b"))
    expect(output.locator(".log-line.stderr:not(.progress)")).to_have_count(1)

    # Lines written now show up without a reload, within about a second.
    next_seq = logstore.append(prebuild.id, next_seq, lines(1, 3, step="updateContentCommand", text="update {n}"))
    expect(output.get_by_text("update 3")).to_be_visible(timeout=3000)
    expect(output.get_by_role("heading", name="updateContentCommand")).to_have_count(1)
    screenshot(page, "prebuild-with-logs")

    # The logs endpoint is read with the token alone: never the session cookie.
    assert watch_logs["logs"] and watch_logs["tokens"] == 1
    for request in watch_logs["logs"]:
        assert request["headers"]["authorization"].startswith("Bearer ")
        assert "cookie" not in request["headers"]
    assert "tail=1000" in watch_logs["logs"][0]["url"]

    # The prebuild finishes and its logs are archived: the panel shows them and stops polling.
    Prebuild.objects.filter(pk=prebuild.pk).update(phase=PrebuildPhase.COMPLETED)
    logstore.archive(Prebuild.objects.get(pk=prebuild.pk))
    expect(panel).to_have_attribute("data-state", "complete", timeout=3000)
    requests = len(watch_logs["logs"])
    page.wait_for_timeout(1500)
    assert len(watch_logs["logs"]) == requests
    page.reload()
    expect(panel).to_have_attribute("data-state", "complete")
    expect(output.locator(".log-line")).to_have_count(6)  # archived: the same lines after the end
    expect(panel.get_by_text("Lines 1–6 of 6")).to_be_visible()


def test_following_pauses_when_scrolled_up_and_the_dom_stays_capped(page, org, log_in, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    seq = logstore.append(prebuild.id, 1, lines(1, 300))
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    panel = page.get_by_role("region", name="Logs")
    output = panel.get_by_role("region", name="Log output")
    expect(output.locator(".log-line")).to_have_count(300)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the whole panel in view

    # Following: the end stays in view as lines arrive, and at most 5000 line elements are kept.
    for _ in range(3):
        seq = logstore.append(prebuild.id, seq, lines(seq, 2500))
    expect(output.get_by_text(f"line {seq - 1}", exact=True)).to_be_in_viewport(timeout=5000)
    assert output.locator(".log-line").count() <= 5000
    expect(panel.get_by_role("button", name="Load earlier lines")).to_be_visible()

    # Scrolled up: new lines arrive below without pulling the view down.
    output.evaluate("el => { el.scrollTop = 0; }")
    expect(panel).to_have_attribute("data-state", "paused")
    first_visible = output.locator(".log-line").first.text_content()
    seq = logstore.append(prebuild.id, seq, lines(seq, 5))
    expect(output.get_by_text(f"line {seq - 1}", exact=True)).to_be_attached(timeout=3000)
    assert output.evaluate("el => el.scrollTop") == 0
    expect(output.locator(".log-line").first).to_have_text(first_visible)
    # Back at the end: following again.
    output.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(panel).to_have_attribute("data-state", "live")


def build_200000_lines(prebuild):
    """200,000 lines in the worker's largest batches, one of them near the start unlike the others."""
    seq = 1
    for start in range(0, 200_000, 2000):
        batch = lines(start + 1, 2000, text="output line {n} " + "x" * 40)
        if start == 0:
            batch[41] = ("onCreateCommand", "stderr", "warning: deprecated option --legacy-peer-deps")
        seq = logstore.append(prebuild.id, seq, batch)
    logstore.archive(Prebuild.objects.get(pk=prebuild.pk))
    return batch


def test_a_200000_line_log_searched_downloaded_and_linked_into(page, org, log_in, make_prebuild, screenshot, tmp_path):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    build_200000_lines(prebuild)
    log_in("bob")
    detail = reverse("prebuilds:detail", args=[prebuild.id])
    page.goto(detail)
    panel = page.get_by_role("region", name="Logs")
    output = panel.get_by_role("region", name="Log output")
    expect(panel).to_have_attribute("data-state", "complete", timeout=15000)
    expect(output.locator(".log-line")).to_have_count(1000)
    expect(output.locator(".log-line").last).to_contain_text("output line 200000 ")
    expect(output.locator(".log-line").first).to_contain_text("output line 199001 ")
    expect(panel.get_by_text("Lines 199,001–200,000 of 200,000")).to_be_visible()  # the total, always

    panel.get_by_role("button", name="Load earlier lines").click()
    expect(output.locator(".log-line")).to_have_count(2000)
    expect(output.locator(".log-line").first).to_contain_text("output line 198001 ")
    expect(panel.get_by_text("Lines 198,001–200,000 of 200,000")).to_be_visible()
    # The reader's place is kept: what they looked at did not jump.
    assert output.evaluate("el => el.scrollTop") > 0
    # Still one header for the one step, however many pages were joined.
    expect(output.get_by_role("heading", name="onCreateCommand")).to_have_count(1)
    # The page stays responsive: a scroll and a click are handled promptly.
    started = page.evaluate("performance.now()")
    output.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    assert page.evaluate("performance.now()") - started < 500

    # Search the whole log, server-side: the line near its start is found and scrolled to.
    search = panel.get_by_role("searchbox", name="Search the whole log")
    search.fill("LEGACY-PEER")
    search.press("Enter")
    expect(panel.get_by_text("Match 1 of 1 · line 42")).to_be_visible(timeout=10000)
    hit = output.locator('.log-line[data-seq="42"]')
    expect(hit).to_be_in_viewport()
    expect(hit).to_have_class(re.compile(r"\bcurrent-match\b"))
    expect(hit.locator("mark")).to_have_text("legacy-peer")
    screenshot(page, "log-search-200000", full_page=False)
    # Many matches: a count, next and previous.
    search.fill("output line 1999")
    panel.get_by_role("button", name="Find").click()
    expect(panel.get_by_text(re.compile(r"^Match 1 of 111 · line 1,999$"))).to_be_visible(timeout=10000)
    panel.get_by_role("button", name="Next").click()
    expect(panel.get_by_text("Match 2 of 111 · line 19,990")).to_be_visible()
    panel.get_by_role("button", name="Previous").click()
    panel.get_by_role("button", name="Previous").click()  # wraps round to the last
    expect(panel.get_by_text("Match 111 of 111 · line 199,999")).to_be_visible()
    expect(output.locator('.log-line[data-seq="199999"]')).to_be_in_viewport()

    # Back to the start.
    panel.get_by_role("button", name="Jump to start").click()
    expect(output.locator(".log-line").first).to_contain_text("output line 1 ")
    expect(panel.get_by_text(re.compile(r"^Lines 1–1,000 of 200,000$"))).to_be_visible()
    expect(output.locator('.log-line[data-seq="1"]')).to_be_in_viewport()

    # The raw download streams every line.
    with page.expect_download() as download:
        panel.get_by_role("link", name="Download raw log").click()
    saved = tmp_path / "log.txt"
    download.value.save_as(saved)
    text = saved.read_text().splitlines()
    assert len(text) == 200_000 and text[41] == "warning: deprecated option --legacy-peer-deps"
    assert text[0].startswith("output line 1 ") and text[-1].startswith("output line 200000 ")

    # A link to a line opens the page there; clicking a line's number makes such a link.
    page.goto(f"{detail}#L150000")
    target = output.locator('.log-line[data-seq="150000"]')
    expect(target).to_be_in_viewport(timeout=10000)
    expect(target).to_have_class(re.compile(r"\bpicked\b"))
    expect(panel.get_by_role("region", name="Log output")).to_be_in_viewport()
    expect(panel.get_by_role("button", name="Load later lines")).to_be_visible()
    screenshot(page, "log-line-150000", full_page=False)
    output.locator('.log-line[data-seq="150010"] .log-num').click()
    expect(page).to_have_url(re.compile(r"#L150010$"))
    expect(output.locator('.log-line[data-seq="150010"]')).to_have_class(re.compile(r"\bpicked\b"))
    output.locator('.log-line[data-seq="150014"] .log-num').click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile(r"#L150010-L150014$"))
    expect(output.locator(".log-line.picked")).to_have_count(5)
    # A line past the end: said, and the end shown.
    page.goto(f"{detail}#L300000")
    expect(panel.get_by_role("status").first).to_have_text("The log has no line 300,000; it has 200,000.")
    expect(output.locator(".log-line").last).to_contain_text("output line 200000 ")


def test_a_failed_prebuild_leads_from_its_banner_to_the_failing_lines(page, org, log_in, make_prebuild, add_step):
    prebuild = make_prebuild(phase=PrebuildPhase.FAILED, failure_message="onCreateCommand exited with status 3")
    add_step(prebuild, 0, "clone", 2)
    add_step(prebuild, 1, "onCreateCommand", 30, outcome=PrebuildStep.Outcome.FAILED, exit_status=3)
    seq = logstore.append(prebuild.id, 1, lines(1, 3, step="clone", text="clone {n}"))
    seq = logstore.append(prebuild.id, seq, lines(1, 400, text="installing package {n}"))
    seq = logstore.append(prebuild.id, seq, [("onCreateCommand", "stderr", "npm error code E404")])
    logstore.append(prebuild.id, seq, lines(1, 1500, step="cleanup", text="removing {n}"))  # after it, lots
    logstore.archive(Prebuild.objects.get(pk=prebuild.pk))
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    # The stepper: the path it took, failing in Running, then Failed; nothing it never reached.
    steps = page.get_by_role("list", name="Phases").get_by_role("listitem")
    expect(steps).to_have_text(
        ["Pending (passed)", "Starting (passed)", "Running (failed here)", "Failed (how it ended)"]
    )
    panel = page.get_by_role("region", name="Logs")
    output = panel.get_by_role("region", name="Log output")
    expect(panel).to_have_attribute("data-state", "complete")
    expect(output.locator('.log-line[data-seq="404"]')).to_have_count(0)  # the tail is the cleanup's

    page.get_by_role("link", name="Show the failing lines of onCreateCommand").click()
    failing = output.locator(".log-line.failing")
    expect(failing).to_have_count(20)
    expect(failing.last).to_contain_text("npm error code E404")
    expect(failing.last).to_be_in_viewport()
    expect(failing.first).to_contain_text("installing package 382")
    expect(page).to_have_url(re.compile(r"#L385-L404$"))
    expect(panel.get_by_role("status").first).to_have_text("The last lines of onCreateCommand: 385–404")

    # The timeline's step names lead to each step's first line.
    page.get_by_role("region", name="Timeline").get_by_role("link", name="clone").click()
    expect(output.locator('.log-line[data-seq="1"]')).to_be_in_viewport()
    expect(page).to_have_url(re.compile(r"#L1$"))


def test_the_status_card_follows_the_log_within_one_poll(page, org, log_in, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.STARTING)
    seq = logstore.append(prebuild.id, 1, lines(1, 2, step="clone", text="clone {n}"))
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    heading = page.get_by_role("heading", name=re.compile("^Status: "))
    expect(heading).to_have_text("Status: Starting")
    output = page.get_by_role("region", name="Log output")
    # As the worker does it: lines flushed, then the phase, then the next step's lines.
    current = Prebuild.objects.get(pk=prebuild.pk)
    status.prebuild_set_status(prebuild=current, phase=PrebuildPhase.RUNNING)
    logstore.append(prebuild.id, seq, lines(1, 1, text="npm install"))
    started = time.monotonic()
    expect(output.get_by_text("npm install")).to_be_visible(timeout=3000)
    expect(heading).to_have_text("Status: Running", timeout=3000)
    # The card's own timer is 10 s; the log poll (0.5 s) carries the status version.
    assert time.monotonic() - started < 2.5
    snapshotting = status.prebuild_set_status(
        prebuild=Prebuild.objects.get(pk=prebuild.pk), phase=PrebuildPhase.STOPPING
    )
    status.prebuild_set_status(
        prebuild=snapshotting, phase=PrebuildPhase.SNAPSHOTTING, snapshot_completion_percentage=40
    )
    expect(page.locator("#snapshot-progress")).to_have_attribute("value", "40", timeout=3000)


def test_the_token_is_renewed_on_a_401_and_before_it_expires(page, org, log_in, make_prebuild, watch_logs):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    seq = logstore.append(prebuild.id, 1, lines(1, 3))
    log_in("bob")
    page.clock.install()
    rejected = {"n": 0}

    def reject_once(route):
        # The first read is answered as if the token had expired.
        if rejected["n"] == 0:
            rejected["n"] += 1
            route.fulfill(status=401, json={"code": "unauthenticated", "message": "the logs token has expired"})
        else:
            route.fallback()

    page.route(re.compile(r"/logs/[0-9a-f-]{36}\?"), reject_once)
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    panel = page.get_by_role("region", name="Logs")
    expect(panel.get_by_text("line 3", exact=True)).to_be_visible()
    assert rejected["n"] == 1 and watch_logs["tokens"] == 2  # a new token after the 401

    # Fifty minutes later the token is renewed before it expires, and lines keep coming.
    page.clock.fast_forward("50:01")
    for _ in range(50):
        if watch_logs["tokens"] >= 3:
            break
        page.wait_for_timeout(100)
    assert watch_logs["tokens"] == 3
    logstore.append(prebuild.id, seq, lines(seq, 1, text="after renewal"))
    expect(panel.get_by_text("after renewal")).to_be_visible(timeout=3000)

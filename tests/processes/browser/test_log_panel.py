"""The live log panel (static/js/logs.js) against the real logs endpoint, with lines written into the
log store the way a worker writes them. (Lines written by a real prebuild run: test_live_worker.py.)"""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from prebuilds import logstore
from prebuilds.models import Prebuild, PrebuildPhase

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
            ("clone", "stdout", "Cloning into 'workspace'..."),
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
    expect(output.locator(".log-line").nth(1)).to_have_text("built module 1/40")  # other escapes dropped
    expect(output.locator(".log-line.stderr")).to_have_count(1)

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


def test_a_200000_line_log_opens_at_its_end_and_loads_earlier_lines_on_demand(page, org, log_in, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    seq = 1
    for _ in range(40):
        seq = logstore.append(prebuild.id, seq, lines(seq, 5000, text="output line {n} " + "x" * 40))
    logstore.archive(Prebuild.objects.get(pk=prebuild.pk))
    log_in("bob")
    page.goto(reverse("prebuilds:detail", args=[prebuild.id]))
    panel = page.get_by_role("region", name="Logs")
    output = panel.get_by_role("region", name="Log output")
    expect(panel).to_have_attribute("data-state", "complete", timeout=15000)
    expect(output.locator(".log-line")).to_have_count(1000)
    expect(output.locator(".log-line").last).to_contain_text("output line 200000 ")
    expect(output.locator(".log-line").first).to_contain_text("output line 199001 ")

    panel.get_by_role("button", name="Load earlier lines").click()
    expect(output.locator(".log-line")).to_have_count(2000)
    expect(output.locator(".log-line").first).to_contain_text("output line 198001 ")
    # The reader's place is kept: what they looked at did not jump.
    assert output.evaluate("el => el.scrollTop") > 0
    # Still one header for the one step, however many pages were joined.
    expect(output.get_by_role("heading", name="onCreateCommand")).to_have_count(1)
    # The page stays responsive: a scroll and a click are handled promptly.
    started = page.evaluate("performance.now()")
    output.evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    assert page.evaluate("performance.now()") - started < 500


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

"""Playwright driving Debian's Chromium, headless, against pytest-django's live server (one per
session) and one browser per package; each test gets a fresh context.

Screenshots go to test-artifacts/ (gitignored) so that a person can look at the pages. Accessibility
is checked with axe-core from node_modules (pinned in package.json, installed by `make install`),
evaluated into the page through the DevTools protocol: the page's Content-Security-Policy stays on.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.builders import add_step, make_environment, make_pool, make_prebuild  # noqa: F401 (shared fixtures)
from tests.conftest import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


# Package scope: the browser (and Playwright's event loop) is gone once the browser tests are done.
@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in the test's thread; Django's ORM refuses to run
    # where an event loop is running unless told this is fine (the test thread never awaits). Set
    # for as long as that loop exists, and no longer: later tests and their processes must not
    # inherit it (`check --deploy` rightly refuses it).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Whatever the Content-Security-Policy refused (an inline style or script) is a bug of ours.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="session")
def axe_source():
    if not AXE.exists():
        pytest.skip("axe-core is not installed (make install runs npm ci)")
    return AXE.read_text()


@pytest.fixture
def axe(axe_source):
    """axe-core's violations on the page as it is now: [(rule id, impact, help, [targets])]."""

    def run(page, *, exclude=()):
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(axe_source)
        result = page.evaluate(
            """async (exclude) => {
                const context = exclude.length ? {exclude: exclude.map((s) => [s])} : document;
                const r = await axe.run(context, {resultTypes: ["violations"]});
                return r.violations.map((v) => [v.id, v.impact, v.help, v.nodes.map((n) => n.target.join(" "))]);
            }""",
            list(exclude),
        )
        return [tuple(v) for v in result]

    return run


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than its window (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


@pytest.fixture
def screenshot():
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        # caret="initial": hiding the caret means a style element Playwright injects, which the page's
        # Content-Security-Policy refuses (and the page fixture would report).
        page.screenshot(path=str(path), full_page=full_page, caret="initial")
        return path

    return take


@pytest.fixture
def log_in(page):
    def login(username: str):
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(f"pw-{username}")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/")
        return page

    return login

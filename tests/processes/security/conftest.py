"""The attack tests must really run where it counts: with SECURITY_TESTS_MUST_RUN=1 (set by .ci/run),
a skipped test here (no bwrap, no root, no setpriv, no redis-server) fails instead, so a missing
install step cannot turn the whole folder quietly green."""

import os

import pytest
from django.core.cache import cache


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SECURITY_TESTS_MUST_RUN") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"a security test was skipped, and SECURITY_TESTS_MUST_RUN=1 forbids it: {reason}"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Login and token-failure counters live in the cache, which outlives a test's database.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def workspace(work_dir):
    """A workspace folder the sandbox user can reach (inside tests/conftest.py's work_dir)."""
    path = work_dir / "ws"
    path.mkdir()
    return path

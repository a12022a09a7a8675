"""The PROCESS_TESTS_MUST_RUN switch on real pytest reports (no process, no inner pytest run)."""

import pytest

from tests.processes.must_run import PROCESSES, enforce, folder_of, must_run_folders

BROWSER_TEST = PROCESSES / "browser" / "test_pages.py"
FAULT_TEST = PROCESSES / "faults" / "test_worker_killed.py"


def report(outcome="skipped", when="setup", **extra) -> pytest.TestReport:
    longrepr = (str(BROWSER_TEST), 1, "Skipped: Chromium is not installed") if outcome == "skipped" else None
    result = pytest.TestReport("t::x", (str(BROWSER_TEST), 0, "x"), {}, outcome, longrepr, when)
    for name, value in extra.items():
        setattr(result, name, value)
    return result


def test_a_skipped_test_of_a_named_folder_fails_with_the_reason():
    skipped = report()
    enforce(skipped, BROWSER_TEST, "browser,faults")
    assert skipped.failed
    assert "tests/processes/browser was skipped" in skipped.longrepr
    assert "PROCESS_TESTS_MUST_RUN" in skipped.longrepr and "Chromium is not installed" in skipped.longrepr


def test_other_folders_passes_xfails_and_an_unset_switch_are_left_alone():
    for path, value, outcome, extra in [
        (FAULT_TEST, "browser", "skipped", {}),  # the SQLite pass: fault tests may skip
        (BROWSER_TEST, "", "skipped", {}),  # no switch (a developer's run)
        (BROWSER_TEST, "browser", "passed", {}),
        (BROWSER_TEST, "browser", "skipped", {"wasxfail": "known"}),
        (PROCESSES / "test_serve.py", "browser", "skipped", {}),  # in no folder
    ]:
        result = report(outcome, **extra)
        enforce(result, path, value)
        assert result.outcome == outcome, (path, value)


def test_the_folders_are_named_exactly():
    assert must_run_folders(" browser , faults ,") == {"browser", "faults"}
    assert folder_of(FAULT_TEST) == "faults" and folder_of(PROCESSES / "test_serve.py") is None
    with pytest.raises(pytest.UsageError, match="names no folder of tests/processes: fault"):
        must_run_folders("browser,fault")

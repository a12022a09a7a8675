"""Hooks for every test that starts processes: the PROCESS_TESTS_MUST_RUN switch (must_run.py)."""

import os

import pytest

from tests.processes.must_run import VARIABLE, enforce, must_run_folders


def pytest_configure(config):
    must_run_folders(os.environ.get(VARIABLE, ""))  # a misspelt folder stops the run at once


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    enforce(outcome.get_result(), item.path, os.environ.get(VARIABLE, ""))

from __future__ import annotations

import json

import pytest
from runner_testlib import requires_bwrap

from runner.devcontainer import parse_devcontainer
from runner.errors import LifecycleFailed
from runner.lifecycle import run_lifecycle
from runner.sandbox import SandboxLimits

pytestmark = requires_bwrap


@pytest.fixture
def workspace(work_dir):
    path = work_dir / "ws"
    path.mkdir()
    return path


def run(text, workspace):
    lines, events = [], []
    run_lifecycle(
        parse_devcontainer(text),
        workspace=workspace,
        limits=SandboxLimits(),
        on_lines=lines.extend,
        on_step=events.append,
    )
    return lines, events


def test_object_form_runs_in_parallel(workspace):
    # 'waiter' can only finish if 'maker' runs at the same time: it waits for maker's file,
    # and maker waits for the waiter's. Run one after the other, one of them would time out.
    wait_for = "for i in $(seq 200); do [ -e {0}-up ] && echo saw {0} && exit 0; sleep 0.05; done; exit 9"
    config = json.dumps(
        {
            "onCreateCommand": {
                "waiter": "touch waiter-up; " + wait_for.format("maker"),
                "maker": ["sh", "-c", "touch maker-up; " + wait_for.format("waiter")],
            }
        }
    )
    lines, events = run(config, workspace)
    assert ("onCreateCommand:waiter", "stdout", "saw maker") in lines
    assert ("onCreateCommand:maker", "stdout", "saw waiter") in lines
    ends = {e.step: e for e in events if e.ended_at is not None}
    assert {step: e.exit_status for step, e in ends.items()} == {
        "onCreateCommand:waiter": 0,
        "onCreateCommand:maker": 0,
    }


def test_array_form_runs_without_a_shell(workspace):
    lines, _ = run('{"onCreateCommand": ["echo", "$HOME", "a;b", "*"]}', workspace)
    assert lines == [("onCreateCommand", "stdout", "$HOME a;b *")]


def test_string_form_uses_a_shell_and_order_is_kept(workspace):
    config = '{"updateContentCommand": "echo second $HOME", "onCreateCommand": "echo first > f; cat f"}'
    lines, events = run(config, workspace)
    assert [t for _, _, t in lines] == ["first", "second /workspace"]
    assert [(e.step, e.status) for e in events] == [
        ("onCreateCommand", "running"),
        ("onCreateCommand", "succeeded"),
        ("updateContentCommand", "running"),
        ("updateContentCommand", "succeeded"),
    ]
    assert all(e.started_at <= e.ended_at for e in events if e.ended_at)


def test_failure_names_the_command_and_status(workspace):
    config = json.dumps(
        {
            "onCreateCommand": {"ok": "true", "bad": "echo oops >&2; exit 3"},
            "updateContentCommand": "touch no",
        }
    )
    lines, events = [], []
    with pytest.raises(LifecycleFailed) as err:
        run_lifecycle(
            parse_devcontainer(config),
            workspace=workspace,
            limits=SandboxLimits(),
            on_lines=lines.extend,
            on_step=events.append,
        )
    assert str(err.value) == "onCreateCommand:bad exited with status 3"
    assert ("onCreateCommand:bad", "stderr", "oops") in lines
    assert not (workspace / "no").exists()
    assert {e.step: e.status for e in events if e.ended_at} == {
        "onCreateCommand:ok": "succeeded",
        "onCreateCommand:bad": "failed",
    }

from __future__ import annotations

import json

import pytest

from runner.devcontainer import find_devcontainer, load_devcontainer, parse_devcontainer
from runner.errors import DevcontainerError


def test_sample_jsonc_with_all_forms(make_repo):
    repo = make_repo("ok")
    config = load_devcontainer(repo)
    assert config.path == ".devcontainer/devcontainer.json"
    assert [hook.name for hook in config.hooks] == ["onCreateCommand", "updateContentCommand"]
    on_create, update = config.hooks
    assert on_create.commands[0].argv[:2] == ("/bin/sh", "-c")
    assert update.commands[0].argv == ("sh", "-c", "date -u +%s > .prebuilt-at && echo content updated")
    assert config.unsupported_keys == ("image",)
    assert "postCreateCommand" in config.data  # parsed, but never part of the prebuild hooks


def test_object_form_is_parallel_with_named_steps():
    config = parse_devcontainer('{"onCreateCommand": {"a": "echo a", "b": ["echo", "b"], "empty": ""}}')
    (hook,) = config.hooks
    assert hook.parallel
    assert [c.step for c in hook.commands] == ["onCreateCommand:a", "onCreateCommand:b"]
    assert hook.commands[1].argv == ("echo", "b")


def test_lookup_order(tmp_path):
    assert find_devcontainer(tmp_path) is None
    (tmp_path / ".devcontainer.json").write_text("{}")
    assert find_devcontainer(tmp_path) == tmp_path / ".devcontainer.json"
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer" / "devcontainer.json").write_text("{}")
    assert find_devcontainer(tmp_path) == tmp_path / ".devcontainer" / "devcontainer.json"
    (tmp_path / "custom.json").write_text("{}")
    assert find_devcontainer(tmp_path, "custom.json") == tmp_path / "custom.json"
    # A configured path that does not exist falls back to the standard locations.
    assert find_devcontainer(tmp_path, "nope.json") == tmp_path / ".devcontainer" / "devcontainer.json"


def test_paths_outside_the_workspace_are_ignored(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"onCreateCommand": "echo outside"}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".devcontainer.json").symlink_to(outside)
    assert find_devcontainer(workspace, "../outside.json") is None


def test_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer" / "devcontainer.json").write_text(
        '// comment\n{\n  /* block\n  comment */\n  "name": "x",\n  "onCreateCommand": "echo hi"\n  "image": "y",\n}\n'
    )
    with pytest.raises(DevcontainerError, match=r"^\.devcontainer/devcontainer\.json line 7: Expecting ','"):
        load_devcontainer(tmp_path)


def test_unterminated_comment_names_line():
    with pytest.raises(DevcontainerError, match="x.json line 3: unterminated"):
        parse_devcontainer('{\n "a": 1,\n /* oops\n}', "x.json")


def test_comment_markers_inside_strings_are_kept():
    config = parse_devcontainer('{"onCreateCommand": "echo http://x /* not a comment */ , ]",}')
    assert config.hooks[0].commands[0].argv[2] == "echo http://x /* not a comment */ , ]"


def test_bad_command_type():
    with pytest.raises(DevcontainerError, match="onCreateCommand must be a string"):
        parse_devcontainer('{"onCreateCommand": 3}')

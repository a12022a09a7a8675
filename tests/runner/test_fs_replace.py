"""runner._fs.replace_in_tree: the runner writes into a tree a container can change (the workspace),
never through a symbolic link the container may have put on the way."""

import os

import pytest

from runner._fs import replace_in_tree


def test_it_replaces_a_file_with_the_mode_asked_for(tmp_path):
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer/devcontainer.json").write_text("vetted")
    replace_in_tree(tmp_path, ".devcontainer/devcontainer.json", b"original", 0o644)
    path = tmp_path / ".devcontainer/devcontainer.json"
    assert path.read_bytes() == b"original" and (path.stat().st_mode & 0o777) == 0o644
    replace_in_tree(tmp_path, ".devcontainer/devcontainer.json", None)
    assert not path.exists()


@pytest.mark.parametrize("link", [".devcontainer", ".devcontainer/devcontainer.json"])
def test_a_link_on_the_way_stops_it_and_nothing_is_written_outside(tmp_path, link):
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "devcontainer.json").write_text("a host file")
    tree = tmp_path / "workspace"
    tree.mkdir()
    if link == ".devcontainer":
        os.symlink(outside, tree / ".devcontainer")
        with pytest.raises(OSError):
            replace_in_tree(tree, ".devcontainer/devcontainer.json", b"attacker's bytes")
    else:
        (tree / ".devcontainer").mkdir()
        os.symlink(outside / "devcontainer.json", tree / link)
        replace_in_tree(tree, link, b"written in the tree")  # the link itself is replaced
        assert (tree / link).read_bytes() == b"written in the tree" and not (tree / link).is_symlink()
    assert (outside / "devcontainer.json").read_text() == "a host file"
    assert sorted(p.name for p in outside.iterdir()) == ["devcontainer.json"]


def test_a_path_out_of_the_tree_is_refused(tmp_path):
    with pytest.raises(ValueError):
        replace_in_tree(tmp_path, "../escape", b"x")

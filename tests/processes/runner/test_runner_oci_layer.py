"""The snapshot layer of the container backend (runner.oci): ids mapped back into the container's
range, overlay whiteouts translated, the workspace under its prefix (GNU tar), the manifest."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile

import pytest
import zstandard

from runner.oci import IdShift, LayerSource, Layout, snapshot_manifest, write_layer


def layer_members(blob: bytes) -> dict[str, tarfile.TarInfo]:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.skipif(os.geteuid() != 0, reason="an overlay whiteout is a 0/0 character device: mknod needs root")
def test_the_layer_maps_ids_back_and_translates_whiteouts(tmp_path):
    base = 2147483647
    upper = tmp_path / "upper"
    (upper / "usr/local/bin").mkdir(parents=True)
    tool = upper / "usr/local/bin/tool"
    tool.write_text("made by onCreateCommand")
    os.chown(tool, base + 1000, base + 1000)
    os.mknod(upper / "usr/local/bin/removed", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.chown(upper / "usr", 4242, 4242)  # outside the container's range
    (upper / "workspaces/repo").mkdir(parents=True)  # the bind mount's empty mount point
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "README.md").write_text("hello")
    os.chown(workspace / "README.md", base, base)
    layer = write_layer(
        tmp_path / "blobs",
        [
            LayerSource(upper, overlay=True, skip=frozenset({"workspaces/repo"})),
            LayerSource(workspace, prefix="workspaces/repo"),
        ],
        IdShift(base, base),
    )
    blob = (tmp_path / "blobs" / layer.digest.removeprefix("sha256:")).read_bytes()
    assert layer.size == len(blob)
    members = layer_members(blob)
    assert (members["usr/local/bin/tool"].uid, members["usr/local/bin/tool"].gid) == (1000, 1000)
    assert members["usr/local/bin/.wh.removed"].isfile() and "usr/local/bin/removed" not in members
    assert members["usr"].uid == 65534  # not an id of the container: nobody
    assert members["workspaces/repo/README.md"].uid == 0
    assert list(members).count("workspaces") == 1 and list(members).count("workspaces/repo") == 1


def test_the_snapshot_manifest_is_the_base_with_the_layer_on_top(tmp_path):
    layout = Layout(tmp_path / "layout")
    config_digest, config_size = layout.put_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]}, "config": {}}
    )
    base_layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:bb", "size": 5}
    manifest = {"schemaVersion": 2, "config": {"digest": config_digest, "size": config_size}, "layers": [base_layer]}
    digest, size = layout.put_json(manifest)
    layout.tag("base-1", digest, size)
    layer = write_layer(tmp_path / "layout/blobs/sha256", [LayerSource(tmp_path / "layout", prefix="x")], IdShift())
    out = snapshot_manifest(layout, "base-1", layer, {"dev.prebuilds.workspace-folder": "/workspaces/x"}, "prebuild p")
    assert out["layers"][0] == base_layer and out["layers"][1]["digest"] == layer.digest
    config = json.loads(layout.blob(out["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:aa", layer.diff_id]
    assert config["config"]["Labels"] == {"dev.prebuilds.workspace-folder": "/workspaces/x"}

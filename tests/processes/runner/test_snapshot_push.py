"""The snapshot's push over the registry's HTTP API (runner.oci.push_over_http), against a real
docker-registry: the progress it reports is driven by the bytes sent (a big layer gives many
intermediate values), never goes back, reaches 1 when the blobs are in; the registry keeps the
manifest under the digest the layout computed (the snapshot's checksum), and blobs it has already
(a base layer shared with an earlier snapshot) are not sent again."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request

import pytest

from runner.images import EmbeddedRegistry, free_port
from runner.oci import (
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    IdShift,
    LayerSource,
    Layout,
    Registry,
    push_over_http,
    snapshot_manifest,
    write_layer,
)

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry is not installed")


def _base(layout: Layout) -> None:
    base_blob = os.urandom(2_000_000)
    digest = hashlib.sha256(base_blob).hexdigest()
    layout.blobs.mkdir(parents=True, exist_ok=True)
    (layout.blobs / digest).write_bytes(base_blob)
    config_digest, config_size = layout.put_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest]}}
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": "sha256:" + digest, "size": len(base_blob)}],
    }
    layout.tag("base-1", *layout.put_json(manifest))


def _snapshot(layout: Layout, tree, name: str) -> str:
    layer = write_layer(layout.blobs, [LayerSource(tree, prefix="workspaces/x")], IdShift())
    manifest = snapshot_manifest(layout, "base-1", layer, {"dev.prebuilds.workspace-folder": "/workspaces/x"}, name)
    return layout.put_json(manifest)[0]


def test_the_push_reports_the_bytes_sent_and_keeps_the_manifest_digest(tmp_path):
    layout = Layout(tmp_path / "layout")
    _base(layout)
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(6):
        (tree / f"random-{i}").write_bytes(os.urandom(3_000_000))  # incompressible: a ~18 MB layer
    embedded = EmbeddedRegistry(tmp_path / "registry", free_port()).start()
    try:
        registry = Registry(embedded.address, repository="prebuilds/org-1")
        first = _snapshot(layout, tree, "prebuild one")
        seen: list[float] = []
        assert push_over_http(layout, first, registry, "snapshot-one", seen.append) == first

        assert seen == sorted(seen) and seen[-1] == 1.0
        assert len({round(x, 2) for x in seen if 0 < x < 1}) >= 10  # driven by bytes, not by steps
        request = urllib.request.Request(registry._url(f"manifests/{first}"), headers={"Accept": MANIFEST_MEDIA_TYPE})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        assert "sha256:" + hashlib.sha256(body).hexdigest() == first
        for blob in json.loads(body)["layers"]:
            with urllib.request.urlopen(registry._url(f"blobs/{blob['digest']}"), timeout=30) as response:
                assert "sha256:" + hashlib.sha256(response.read()).hexdigest() == blob["digest"]

        # A second snapshot on the same base: only its own layer and config are sent.
        (tree / "small").write_text("changed")
        for i in range(6):
            (tree / f"random-{i}").unlink()
        second = _snapshot(layout, tree, "prebuild two")
        sent: list[int] = []
        manifest = json.loads(layout.blob(second))
        own = manifest["layers"][-1]["size"] + manifest["config"]["size"]
        assert push_over_http(layout, second, registry, "snapshot-two", lambda f: sent.append(f)) == second
        assert sent[-1] == 1.0
        assert registry.manifest("snapshot-two") == manifest
        # Each report is one block read for the request body (8 KiB by http.client): the 2 MB base
        # would be hundreds of them; the own layer and config are one each.
        assert own < 8192 and len(sent) <= 2
    finally:
        embedded.stop()

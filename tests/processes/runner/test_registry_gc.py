"""The embedded registry's garbage collection, against a real docker-registry: two snapshots share
a base layer; the manifest of one is deleted (as projects.runner_bridge.delete_snapshot does); the
collection frees that snapshot's own layer, keeps the shared one, and the other snapshot still
pulls by digest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from projects.runner_bridge import collect_registry_garbage
from runner.images import EmbeddedRegistry, free_port
from runner.oci import CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Registry
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry is not installed")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _push_blob(registry: Registry, data: bytes) -> dict:
    start = urllib.request.Request(registry._url("blobs/uploads/"), method="POST", data=b"")
    with urllib.request.urlopen(start, timeout=30) as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry.address}{location}"
    separator = "&" if "?" in location else "?"
    put = urllib.request.Request(
        f"{location}{separator}digest={_digest(data)}",
        method="PUT",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(put, timeout=30):
        pass
    return {"digest": _digest(data), "size": len(data)}


def _push_snapshot(registry: Registry, tag: str, base: bytes, own: bytes) -> str:
    layers = [{"mediaType": LAYER_MEDIA_TYPE, **_push_blob(registry, blob)} for blob in (base, own)]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]}, "tag": tag}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, **_push_blob(registry, config)},
            "layers": layers,
        }
    ).encode()
    put = urllib.request.Request(
        registry._url(f"manifests/{tag}"), method="PUT", data=manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE}
    )
    with urllib.request.urlopen(put, timeout=30):
        pass
    return _digest(manifest)


def _pull(registry: Registry, digest: str) -> None:
    """Everything a pull by digest reads, each piece checked against its digest."""
    request = urllib.request.Request(registry._url(f"manifests/{digest}"), headers={"Accept": MANIFEST_MEDIA_TYPE})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    assert _digest(body) == digest
    manifest = json.loads(body)
    for blob in [manifest["config"], *manifest["layers"]]:
        with urllib.request.urlopen(registry._url(f"blobs/{blob['digest']}"), timeout=30) as response:
            assert _digest(response.read()) == blob["digest"]


def _stored(root, digest: str) -> bool:
    hexdigest = digest.removeprefix("sha256:")
    return (root / "data" / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data").exists()


def test_collection_frees_a_deleted_snapshots_own_layer_and_keeps_the_shared_one(tmp_path):
    embedded = EmbeddedRegistry(tmp_path / "registry", free_port()).start()
    try:
        registry = Registry(embedded.address, maintenance_lock=str(embedded.maintenance_lock))
        base, first, second = os.urandom(300_000), os.urandom(200_000), os.urandom(100_000)
        deleted = _push_snapshot(registry, "snapshot-one", base, first)
        kept = _push_snapshot(registry, "snapshot-two", base, second)
        registry.delete(deleted)
        assert _stored(embedded.root, _digest(first))  # deleting a manifest frees nothing by itself

        embedded.collect_garbage()

        assert not _stored(embedded.root, _digest(first))
        assert _stored(embedded.root, _digest(base))
        assert _stored(embedded.root, _digest(second))
        assert embedded.running()  # started again after the collection
        assert registry.manifest(deleted) is None
        _pull(registry, kept)
    finally:
        embedded.stop()


def test_the_beat_task_has_serves_registry_process_collect_and_leaves_an_operators_registry_alone(tmp_path, settings):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PYTEST_VERSION", "PYTEST_CURRENT_TEST"}}
    env.update(DATA_DIR=str(tmp_path / "data"), CONTAINER_EMBEDDED_REGISTRY_PORT=str(port), CONTAINER_REGISTRY="")
    settings.CONTAINER_REGISTRY = ""
    settings.CONTAINERS_DIR = tmp_path / "data" / "containers"
    settings.CONTAINER_EMBEDDED_REGISTRY_PORT = port
    embedded = EmbeddedRegistry(settings.CONTAINERS_DIR / "registry", port)
    supervisor = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), "embedded_registry"], env=env, cwd=REPO_ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while not (embedded.running() and embedded.supervisor_pid_file.exists()):
            assert supervisor.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        registry = Registry(embedded.address, maintenance_lock=str(embedded.maintenance_lock))
        base, first, second = os.urandom(300_000), os.urandom(200_000), os.urandom(100_000)
        registry.delete(_push_snapshot(registry, "snapshot-one", base, first))
        kept = _push_snapshot(registry, "snapshot-two", base, second)

        assert str(supervisor.pid) in collect_registry_garbage()

        while _stored(embedded.root, _digest(first)):
            assert supervisor.poll() is None and time.monotonic() < deadline + 60
            time.sleep(0.2)
        # A pull waits for the registry to be back (a pull by podman would retry the same way).
        while not embedded.running():
            assert supervisor.poll() is None and time.monotonic() < deadline + 120
            time.sleep(0.2)
        assert _stored(embedded.root, _digest(base))
        _pull(registry, kept)
        settings.CONTAINER_REGISTRY = "registry.example.com:5000"
        assert "operator" in collect_registry_garbage()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    assert not embedded.running()
    assert not embedded.supervisor_pid_file.exists()

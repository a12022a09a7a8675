from __future__ import annotations

import base64
import subprocess
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from runner import checkout
from runner.checkout import clone
from runner.errors import CheckoutError


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_clone_local_path_is_shallow_and_independent(make_repo, tmp_path):
    repo = make_repo("ok")
    lines = []
    commit = clone(str(repo), "main", tmp_path / "ws", on_line=lambda s, t: lines.append(t))
    assert commit == git(repo, "rev-parse", "HEAD").strip()
    assert (tmp_path / "ws" / "README.md").is_file()
    assert git(tmp_path / "ws", "rev-parse", "--is-shallow-repository").strip() == "true"

    # --no-local: objects are copied, not hard-linked to the source repository.
    def inodes(root: Path) -> set[int]:
        return {p.stat().st_ino for p in (root / ".git" / "objects").rglob("*") if p.is_file()}

    assert not inodes(repo) & inodes(tmp_path / "ws")


def test_clone_file_url(make_repo, tmp_path):
    repo = make_repo("bare")
    commit = clone(repo.as_uri(), "main", tmp_path / "ws")
    assert len(commit) == 40


def test_missing_branch(make_repo, tmp_path):
    repo = make_repo("bare")
    with pytest.raises(CheckoutError) as err:
        clone(str(repo), "nope", tmp_path / "ws")
    # The branch is named; the runner's path to the repository is not.
    assert str(err.value) == "git clone failed: branch 'nope' not found in the repository"


def test_missing_repository(tmp_path):
    with pytest.raises(CheckoutError) as err:
        clone(str(tmp_path / "nothing"), "main", tmp_path / "ws")
    assert str(err.value) == "could not clone the repository: not found or not accessible"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def git_http_server(make_repo, tmp_path):
    """Serve the 'bare' sample over git's smart HTTP protocol; record Authorization headers."""
    repo = make_repo("bare")
    seen_auth = []

    def app(environ, start_response):
        seen_auth.append(environ.get("HTTP_AUTHORIZATION"))
        env = {
            "GIT_PROJECT_ROOT": str(repo.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": environ["PATH_INFO"],
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin",
        }
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [tuple(h.split(": ", 1)) for h in head.decode().split("\r\n") if ": " in h]
        status = next((v for k, v in headers if k.lower() == "status"), "200 OK")
        start_response(status, [(k, v) for k, v in headers if k.lower() != "status"])
        return [payload]

    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/{repo.name}", seen_auth
    server.shutdown()


def test_access_token_is_sent_but_never_stored_shown_or_logged(git_http_server, tmp_path, monkeypatch):
    url, seen_auth = git_http_server
    token = "ghp_SECRETTOKEN123"
    argvs = []
    real_popen = subprocess.Popen

    def recording_popen(argv, *args, **kwargs):
        argvs.append(list(argv))
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(checkout.subprocess, "Popen", recording_popen)
    lines = []
    commit = clone(url, "main", tmp_path / "ws", access_token=token, on_line=lambda s, t: lines.append(t))
    assert len(commit) == 40
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert expected in seen_auth
    assert token not in (tmp_path / "ws" / ".git" / "config").read_text()
    assert not any(token in arg for argv in argvs for arg in argv)
    assert not any(token in line or expected in line for line in lines)


def test_token_is_redacted_from_failures(tmp_path):
    token = "ghp_SECRETTOKEN123"
    lines = []
    with pytest.raises(CheckoutError) as err:
        # Port 9 (discard) is closed here: the clone fails quickly without network.
        clone(
            "https://127.0.0.1:9/org/repo.git",
            "main",
            tmp_path / "ws",
            access_token=token,
            on_line=lambda s, t: lines.append(t),
        )
    assert token not in str(err.value)
    assert not any(token in line for line in lines)

"""The environment terminal end to end: a real container of the base image, a real ASGI server
(gunicorn with uvicorn workers, as `make run` serves), Chromium typing into xterm.js, and the
websocket refused to everyone but the environment's creator and the organization's admins."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from runner.podman import Podman
from tests.conftest import REPO_ROOT
from tests.processes.api.live import start_live_server

pytestmark = pytest.mark.slow

BASE_IMAGE = "localhost/prebuilds/devcontainer-base:bookworm"
LABEL = "prebuilds-test=terminal"
LOCK = "/work/wt/podman.lock"


def locked(podman: Podman, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """podman under the shared lock when there is one (several sessions share one storage)."""
    argv = [podman.binary, *args]
    if Path(LOCK).exists() and shutil.which("flock"):
        argv = ["flock", LOCK, *argv]
    return subprocess.run(argv, env=podman.env(), capture_output=True, text=True, timeout=180, check=check)


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    podman = Podman(home=tmp_path_factory.mktemp("podman"))
    podman.ensure()
    if locked(podman, "image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.skip(f"{BASE_IMAGE} is not built (manage.py container_setup)")
    name = f"terminal-test-{uuid.uuid4().hex[:10]}"
    locked(podman, "run", "-d", "--name", name, "--label", LABEL, "--userns=auto", "--network=none",
           BASE_IMAGE, "sleep", "infinity")  # fmt: skip
    try:
        yield podman, name
    finally:
        locked(podman, "rm", "-f", "-t", "0", name, check=False)


def serve(container, data_dir):
    podman, name = container
    live = start_live_server(data_dir)
    try:
        seeded = subprocess.run(
            [sys.executable, str(REPO_ROOT / "manage.py"), "shell", "-c",
             "from tests.processes.browser.terminal_seed import main; main()"],
            env=live.env | {"TERMINAL_CONTAINER": name},
            cwd=REPO_ROOT, check=True, capture_output=True, text=True,
        )  # fmt: skip
        live.seed |= json.loads(seeded.stdout.strip().splitlines()[-1])
    except BaseException:
        live.stop()
        raise
    return live


@pytest.fixture(scope="module")
def server(container, tmp_path_factory):
    live = serve(container, tmp_path_factory.mktemp("terminal-live"))
    yield live
    live.stop()


def session_cookie(browser, live, username: str) -> tuple:
    context = browser.new_context(base_url=live.base_url)
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"pw-{username}")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    return context, page


def handshake(live, environment: str, *, cookie: str | None, origin: str | None) -> str:
    """The websocket upgrade's status line, sent by hand (a browser cannot lie about its Origin)."""
    host, port = live.base_url.removeprefix("http://").split(":")
    lines = [
        f"GET /ws/environments/{environment}/terminal HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    if cookie:
        lines.append(f"Cookie: sessionid={cookie}")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(4096).decode(errors="replace").split("\r\n")[0]


def session_processes(podman: Podman, name: str) -> str:
    """The processes of vscode's (the sessions' user) that carry a terminal session's marker, each
    as "/proc/<pid> <command line>"."""
    done = locked(podman, "exec", "-u", "vscode", name, "sh", "-c",
                  "for f in $(grep -l TERMINAL_SESSION= /proc/[0-9]*/environ 2>/dev/null); do "
                  "d=${f%/environ}; echo \"$d $(tr '\\000' ' ' < $d/cmdline)\"; done; true")  # fmt: skip
    return done.stdout.strip()


def terminal_text(page):
    return page.locator("#environment-terminal .xterm-rows")


def test_the_creators_terminal_runs_a_command_resizes_and_ends_cleanly(browser, server, container, axe):
    podman, name = container
    context, page = session_cookie(browser, server, "carol")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda m: errors.append(f"{m.text}") if m.type == "error" and "Content Security Policy" in m.text else None,
    )
    page.goto(f"/warm-pools/{server.seed['pool']}/?environment={server.seed['environment']}")
    expect(page.get_by_role("region", name="Terminal of environment")).to_be_visible()
    expect(page.locator("#terminal-state")).to_have_text("Connected.", timeout=30_000)
    page.locator("#environment-terminal").click()
    page.keyboard.type("echo hello-$((6*7)); whoami; pwd\n")
    expect(terminal_text(page)).to_contain_text("hello-42", timeout=30_000)
    expect(terminal_text(page)).to_contain_text("vscode")
    expect(terminal_text(page)).to_contain_text("/home/vscode")
    assert axe(page) == []
    page.screenshot(path=str(server.data_dir / "terminal.png"))

    page.evaluate("document.getElementById('environment-terminal').terminal.resize(97, 31)")
    page.keyboard.type("clear; stty size\n")
    expect(terminal_text(page)).to_contain_text("31 97", timeout=30_000)

    page.keyboard.type("exit\n")
    expect(page.locator("#terminal-state")).to_contain_text("The session ended", timeout=30_000)
    expect(page.locator("#terminal-state")).to_contain_text("status 0")
    assert session_processes(podman, name) == ""
    assert not errors, errors
    context.close()


def test_closing_the_page_kills_the_shell_in_the_container(browser, server, container):
    podman, name = container
    context, page = session_cookie(browser, server, "alice")  # an admin of the organization may enter
    page.goto(f"/warm-pools/{server.seed['pool']}/?environment={server.seed['environment']}")
    expect(page.locator("#terminal-state")).to_have_text("Connected.", timeout=30_000)
    page.locator("#environment-terminal").click()
    page.keyboard.type("sleep 1000 & echo started-$((40+2))\n")
    expect(terminal_text(page)).to_contain_text("started-42", timeout=30_000)
    assert session_processes(podman, name) != ""  # the shell and its sleep carry the session's marker
    context.close()  # the socket closes with the page
    deadline_checks = 0
    while session_processes(podman, name) and deadline_checks < 20:
        deadline_checks += 1
        subprocess.run(["sleep", "0.5"], check=True)
    assert session_processes(podman, name) == ""


def test_the_websocket_is_refused_to_others_without_a_session_and_from_another_origin(browser, server, container):
    environment = server.seed["environment"]
    origin = server.base_url
    cookies = {}
    for username in ("carol", "bob", "mallory"):
        context, _page = session_cookie(browser, server, username)
        cookies[username] = next(c["value"] for c in context.cookies() if c["name"] == "sessionid")
        context.close()
    # The creator gets in (the same handshake, so the refusals below are about who and where).
    assert " 101 " in handshake(server, environment, cookie=cookies["carol"], origin=origin) + " "
    assert " 403" in handshake(server, environment, cookie=cookies["bob"], origin=origin)  # another member
    assert " 403" in handshake(server, environment, cookie=cookies["mallory"], origin=origin)  # an outsider
    assert " 403" in handshake(server, environment, cookie=None, origin=origin)  # no session
    assert " 403" in handshake(server, environment, cookie=cookies["carol"], origin="http://evil.example")
    assert " 403" in handshake(server, str(uuid.uuid4()), cookie=cookies["carol"], origin=origin)  # no such one
    # The creator's session, closed the moment it was accepted, leaves no shell behind (its exec
    # was still starting when the socket closed).
    podman, name = container
    deadline = time.monotonic() + 60
    while (left := session_processes(podman, name)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == ""


def test_an_idle_session_ends_and_its_shell_is_killed(browser, container, tmp_path, monkeypatch):
    podman, name = container
    monkeypatch.setenv("TERMINAL_IDLE_TIMEOUT_SECONDS", "8")  # long enough to type in first
    live = serve(container, tmp_path)
    try:
        context, page = session_cookie(browser, live, "carol")
        page.goto(f"/warm-pools/{live.seed['pool']}/?environment={live.seed['environment']}")
        expect(page.locator("#terminal-state")).to_have_text("Connected.", timeout=30_000)
        page.locator("#environment-terminal").click()
        page.keyboard.type("sleep 1000 & echo idle-$((40+2))\n")
        expect(terminal_text(page)).to_contain_text("idle-42", timeout=30_000)
        expect(page.locator("#terminal-state")).to_contain_text("without input", timeout=30_000)
        assert session_processes(podman, name) == ""
        context.close()
    finally:
        live.stop()

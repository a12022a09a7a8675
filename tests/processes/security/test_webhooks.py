"""An organization admin sets a project's webhook URL to something inside the control plane's
network and waits for a prebuild to fail. Real listeners on loopback count what reaches them;
private addresses are refused before any connection is tried (and the test makes sure none is)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from django.utils import timezone

from prebuilds import maintenance, webhooks
from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services


class Listener:
    """An HTTP server on 127.0.0.1 that records every request and answers `status` (with `location`)."""

    def __init__(self, status=204, location=None):
        self.requests: list[dict] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch):
    """No name but localhost (from /etc/hosts) and numeric addresses is ever looked up: names the
    tests use stand in for DNS through webhooks._resolve, and a regression must not query a resolver."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name != "localhost":
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
            except OSError:
                if not name.isdigit():
                    raise AssertionError(f"a DNS lookup of {name!r} was attempted") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def listen():
    listeners = []

    def make(**kwargs) -> Listener:
        listeners.append(Listener(**kwargs))
        return listeners[-1]

    yield make
    for listener in listeners:
        listener.close()


@pytest.fixture
def no_connections(monkeypatch):
    """Every outgoing TCP connection attempt of this process, recorded and stopped."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise AssertionError(f"a connection to {address} was attempted")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def failed_prebuild(org, project, url):
    project = project_services.project_update(actor=org.admin, project=project, webhook_url=url)
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=project)
    Prebuild.objects.filter(id=prebuild.id).update(
        phase=PrebuildPhase.FAILED,
        failure_message="onCreateCommand exited with status 3",
        completion_time=timezone.now(),
    )
    return prebuild


def send(prebuild) -> None:
    # The task's own entry point; it must never raise, whatever the destination does.
    maintenance.send_failure_webhook(str(prebuild.id))


def test_loopback_is_refused(org, listen, settings, caplog):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    receiver = listen()
    for url in (
        f"http://127.0.0.1:{receiver.port}/hook",
        f"http://127.1.2.3:{receiver.port}/hook",  # still loopback (not where it listens: a refusal, not a miss)
        f"http://[::ffff:127.0.0.1]:{receiver.port}/hook",
        f"http://2130706433:{receiver.port}/hook",  # 127.0.0.1 as an integer, which resolvers accept
    ):
        with caplog.at_level(logging.WARNING, logger="prebuilds.webhooks"):
            send(failed_prebuild(org, org.project, url))
    assert receiver.requests == []
    assert "not sent" in caplog.text and "loopback" in caplog.text


def test_a_name_resolving_to_loopback_is_refused(org, listen, settings, caplog):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    receiver = listen()
    with caplog.at_level(logging.WARNING, logger="prebuilds.webhooks"):
        send(failed_prebuild(org, org.project, f"http://localhost:{receiver.port}/hook"))
    assert receiver.requests == []
    assert "localhost resolves to a loopback address" in caplog.text


@pytest.mark.parametrize(
    "host",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.169.254",  # the cloud metadata service
        "169.254.1.1",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "[fc00::1]",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "192.0.2.2",  # this host's own (documentation-range) address
        "[::ffff:10.1.2.3]",
        "[64:ff9b::a01:203]",  # NAT64 of 10.1.2.3
        "[2002:a01:203::1]",  # 6to4 of 10.1.2.3
    ],
)
def test_private_link_local_and_metadata_addresses_are_refused_before_any_connection(
    org, settings, no_connections, caplog, host
):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    with caplog.at_level(logging.WARNING, logger="prebuilds.webhooks"):
        send(failed_prebuild(org, org.project, f"http://{host}:8080/hook?token=receiver-token"))
    assert no_connections == []
    assert "not sent" in caplog.text
    assert "receiver-token" not in caplog.text


def test_a_name_resolving_to_a_private_address_among_public_ones_is_refused(org, settings, no_connections, monkeypatch):
    # DNS is stood in for: the name resolves to a public address and a private one. Both are judged,
    # so the private one cannot ride along.
    settings.WEBHOOK_ALLOWED_HOSTS = []
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: ["8.8.8.8", "10.0.0.5"])
    send(failed_prebuild(org, org.project, "https://hooks.example.com/hook"))
    assert no_connections == []


def test_a_redirect_is_never_followed(org, listen, settings, caplog):
    inner = listen()
    receiver = listen(status=302, location=f"http://127.0.0.1:{inner.port}/inward")
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # the receiver is allowed, so is the target's host
    with caplog.at_level(logging.WARNING, logger="prebuilds.webhooks"):
        send(failed_prebuild(org, org.project, f"http://127.0.0.1:{receiver.port}/hook"))
    assert len(receiver.requests) == 1
    assert inner.requests == []
    assert "answered 302: redirects are not followed" in caplog.text


def test_the_checked_address_is_the_one_connected_to(org, listen, settings, monkeypatch):
    """No DNS rebinding: the name is resolved once, and the request goes to that address with the
    name in its Host header (a second lookup, which would now answer 10.0.0.5, never happens)."""
    receiver = listen()
    answers = [["127.0.0.1"], ["10.0.0.5"]]
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return answers[min(len(lookups), 2) - 1]

    monkeypatch.setattr(webhooks, "_resolve", resolve)
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.internal"]
    send(failed_prebuild(org, org.project, f"http://hooks.internal:{receiver.port}/hook"))
    assert lookups == ["hooks.internal"]
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["Host"] == f"hooks.internal:{receiver.port}"


def test_an_allowed_host_name_never_makes_the_metadata_address_acceptable(org, settings, no_connections, monkeypatch):
    monkeypatch.setattr(webhooks, "_resolve", lambda host, port: ["169.254.169.254"])
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.internal"]
    send(failed_prebuild(org, org.project, "http://hooks.internal/hook"))
    assert no_connections == []


def test_a_receiver_that_never_answers_does_not_break_the_sender(org, settings, caplog):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.2
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts the connection into its backlog, never reads or answers
    try:
        with caplog.at_level(logging.WARNING, logger="prebuilds.webhooks"):
            send(failed_prebuild(org, org.project, f"http://127.0.0.1:{silent.getsockname()[1]}/hook"))
    finally:
        silent.close()
    assert "failed: TimeoutError" in caplog.text


def verify(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_a_delivered_body_is_signed_with_its_projects_secret(org, listen, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = listen()
    # The admin gets each project's secret once: from the create response, or by rotating it.
    _, token = project_services.api_token_create(user=org.admin, name="hooks")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    created = client.post(
        "/api/v1/projects/",
        data=json.dumps({"name": "other", "repositoryUrl": "https://git.example.com/o.git"}),
        content_type="application/json",
    ).json()
    other_secret = created["webhookSecret"]
    rotated = client.post(f"/api/v1/projects/{org.project.id}/rotate-webhook-secret/").json()["webhookSecret"]
    assert "webhookSecret" not in client.get(f"/api/v1/projects/{org.project.id}/").json()
    assert "webhookSecret" not in client.get(f"/api/v1/projects/{created['id']}/").json()

    prebuild = failed_prebuild(org, org.project, f"http://127.0.0.1:{receiver.port}/hook")
    send(prebuild)
    [request] = receiver.requests
    body, signature = request["body"], request["headers"]["X-Prebuild-Signature-256"]
    assert json.loads(body)["prebuild"]["id"] == str(prebuild.id)
    assert verify(rotated, body, signature)
    assert not verify(other_secret, body, signature)
    assert not verify(rotated, body + b" ", signature)

    # Rotating again: the old secret no longer verifies what is sent next.
    newer = client.post(f"/api/v1/projects/{org.project.id}/rotate-webhook-secret/").json()["webhookSecret"]
    send(prebuild)
    body, signature = receiver.requests[1]["body"], receiver.requests[1]["headers"]["X-Prebuild-Signature-256"]
    assert verify(newer, body, signature) and not verify(rotated, body, signature)


def test_the_secret_is_not_in_the_database_and_only_admins_rotate_it(org):
    secret = project_services.webhook_secret(org.project)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM projects_project")
        dump = repr(cursor.fetchall())
    assert secret not in dump and secret.removeprefix("whsec_") not in dump

    member = Client()
    member.force_login(org.member)
    assert member.post(f"/projects/{org.project.id}/webhook-secret/").status_code == 403
    outsider = Client()
    outsider.force_login(org.outsider)
    assert outsider.post(f"/projects/{org.project.id}/webhook-secret/").status_code == 404
    assert project_services.webhook_secret(org.project) == secret


def test_the_project_page_shows_a_rotated_secret_once(org):
    admin = Client()
    admin.force_login(org.admin)
    page = admin.get(f"/projects/{org.project.id}/").content.decode()
    assert "Rotate webhook secret" in page
    # (confirmed: a rotation asks first, tests/projects/test_pages.py)
    response = admin.post(f"/projects/{org.project.id}/webhook-secret/", {"confirmed": "yes"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    org.project.refresh_from_db()
    secret = project_services.webhook_secret(org.project)
    assert secret in response.content.decode()
    assert secret not in admin.get(f"/projects/{org.project.id}/").content.decode()

"""Webhooks: a project's URL is told when one of its prebuilds failed.

The URL is an organization admin's input and the request leaves from the control plane, which sits
next to Redis, the database, the runners and a cloud's metadata service. So the destination is
checked when the webhook is sent, not when the URL was saved: its name is resolved once, every
address it resolves to must be public (or its host named in WEBHOOK_ALLOWED_HOSTS), and the
request goes to the address that was checked (the socket is connected to that IP; the Host header
and TLS's server name and certificate check use the host name), so a second resolution cannot
send it elsewhere. Redirects are not followed: a 3xx is a failed delivery. Nothing here raises
into the caller; a refused or failed delivery is logged, with the URL's origin only (its path may
hold a receiver's token) and never the signing secret.

Each body is signed like GitHub's X-Hub-Signature-256: `X-Prebuild-Signature-256: sha256=<hex>`,
the HMAC-SHA256 of the raw body under the project's webhook secret (projects.services.webhook_secret).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import uuid
from urllib.parse import urlsplit

from django.conf import settings

from prebuilds.models import Prebuild, PrebuildTrigger
from projects import services as project_services

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Prebuild-Signature-256"
DELIVERY_HEADER = "X-Prebuild-Delivery"
EVENT_HEADER = "X-Prebuild-Event"
MAX_RESPONSE_BYTES = 64 * 1024

# Cloud instance metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6; ECS task
# metadata; Alibaba). Most are link-local and refused anyway; named so a message can say so.
METADATA_ADDRESSES = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
}


class Refused(Exception):
    """The destination may not be sent to; the message says why (no secret, no path)."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not go to this address, or None when it is a public one."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 address are judged by it (::ffff:127.0.0.1 is loopback).
        embedded = ip.ipv4_mapped or (ip.sixtofour if ip.sixtofour else None) or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    for test, reason in (
        (lambda a: a in METADATA_ADDRESSES, "a cloud metadata address"),
        (lambda a: a.is_unspecified, "an unspecified address"),
        (lambda a: a.is_loopback, "a loopback address"),
        (lambda a: a.is_link_local, "a link-local address"),
        (lambda a: a.is_multicast, "a multicast address"),
        (lambda a: a.is_private, "a private address"),
        (lambda a: a.is_reserved, "a reserved address"),
        (lambda a: not a.is_global, "not a public address"),
    ):
        if test(ip):
            return reason
    return None


def _resolve(host: str, port: int) -> list[str]:
    """Every address host resolves to (a name here so that tests can stand in for DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def destination(url: str, allowed_hosts=()) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, address to connect to, path and query) for url, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused("only http:// and https:// URLs with a host are sent to")
    host = parts.hostname.lower().rstrip(".")
    port = port or (443 if scheme == "https" else 80)
    allowed = {h.lower() for h in allowed_hosts}
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = _resolve(host, port)
        except (OSError, UnicodeError):
            raise Refused(f"{host} cannot be resolved") from None
    if not addresses:
        raise Refused(f"{host} cannot be resolved")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        reason = refusal(ip)
        # Any refused address refuses the name: a name that also resolves inward is not trusted.
        # An allowed host name never makes a metadata address acceptable; only its IP listed does.
        named = host in allowed and ip not in METADATA_ADDRESSES
        if reason and not named and str(ip) not in allowed:
            raise Refused(f"{host} resolves to {reason}; WEBHOOK_ALLOWED_HOSTS can allow an internal host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, addresses[0], path


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a given address, with the URL's host name in the Host header."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a given address; the certificate is checked against the URL's host name (SNI too)."""

    def __init__(self, host, port, address, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def deliver(url: str, body: bytes, secret: str, *, event: str, allowed_hosts=None, timeout=None) -> bool:
    """POST body to url, signed with secret. True when the receiver answered 2xx; False (logged)
    when the destination was refused, could not be reached, redirected or answered otherwise."""
    allowed_hosts = settings.WEBHOOK_ALLOWED_HOSTS if allowed_hosts is None else allowed_hosts
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        scheme, host, port, address, path = destination(url, allowed_hosts)
    except Refused as refused:
        log.warning("webhook %s not sent: %s", event, refused)
        return False
    origin = f"{scheme}://{host}:{port}"
    delivery = str(uuid.uuid4())
    if scheme == "https":
        connection = _PinnedHTTPSConnection(host, port, address, timeout, ssl.create_default_context())
    else:
        connection = _PinnedHTTPConnection(host, port, address, timeout)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "prebuild-control-plane",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery,
        SIGNATURE_HEADER: sign(secret, body),
    }
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        log.warning("webhook %s to %s (delivery %s) failed: %s", event, origin, delivery, type(exc).__name__)
        return False
    finally:
        connection.close()
    if 300 <= status < 400:
        log.warning(
            "webhook %s to %s (delivery %s) answered %s: redirects are not followed", event, origin, delivery, status
        )
        return False
    if not 200 <= status < 300:
        log.warning("webhook %s to %s (delivery %s) answered %s", event, origin, delivery, status)
        return False
    log.info("webhook %s delivered to %s (delivery %s)", event, origin, delivery)
    return True


def failure_body(prebuild: Prebuild) -> bytes:
    body = {
        "event": "prebuild.failed",
        "prebuild": {
            "id": str(prebuild.id),
            "projectId": str(prebuild.project_id),
            "projectName": prebuild.project.name,
            "environmentClassId": str(prebuild.environment_class_id),
            "environmentClassName": prebuild.environment_class.display_name,
            "triggeredBy": PrebuildTrigger(prebuild.triggered_by).name,
            "failureMessage": prebuild.failure_message,
            "completionTime": prebuild.completion_time.isoformat() if prebuild.completion_time else None,
            "url": f"{settings.SITE_URL}/prebuilds/{prebuild.id}/",
        },
    }
    return json.dumps(body).encode()


def send_failure_webhook(prebuild_id: str) -> bool:
    """POST a signed JSON description of a failed prebuild to its project's webhook URL, if any.
    Never raises: a webhook must not break the prebuild's finish (or its task)."""
    try:
        prebuild = Prebuild.objects.select_related("project", "environment_class").filter(id=prebuild_id).first()
        if prebuild is None or not prebuild.project.webhook_url:
            return False
        project = prebuild.project
        return deliver(
            project.webhook_url,
            failure_body(prebuild),
            project_services.webhook_secret(project),
            event="prebuild.failed",
        )
    except Exception:
        log.exception("webhook prebuild.failed for prebuild %s could not be sent", prebuild_id)
        return False

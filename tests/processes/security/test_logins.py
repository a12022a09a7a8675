"""Guessing passwords and API tokens, the way an attacker does it: many wrong passwords for one
account from one address, the same from many addresses, a spray of accounts from one address, and
bad API tokens from one address. Each is stopped; an admin can unlock; no password is logged."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from dashboard.logging import JsonFormatter
from projects.services import api_token_create

CONNECT = "/gitpod.v1.PrebuildService/"
PASSWORD = "right-Password-42"
WRONG = "Wrong-guess-%d-xyzzy"


@pytest.fixture
def member(db):
    return get_user_model().objects.create_user(username="member", password=PASSWORD)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="root", password="root-Password-42")


@pytest.fixture
def logs():
    """Every record logged while the test runs, formatted as production writes them (JSON) and as
    development does (plain), so that what a log reader sees is what is checked."""
    stream = io.StringIO()
    handlers = []
    for formatter in (JsonFormatter(), logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.setLevel(logging.DEBUG)
        handlers.append(handler)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    yield stream
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(old_level)


def login(client: Client, username: str, password: str, *, address="10.0.0.1", path="/login/"):
    data = {"username": username, "password": password}
    if path.startswith("/admin/"):
        data["next"] = "/admin/"
    return client.post(path, data, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_thirty_wrong_passwords_lock_the_account_until_an_admin_unlocks_it(member, superuser, logs):
    attacker = Client()
    for attempt in range(30):
        response = login(attacker, "member", WRONG % attempt)
        assert response.status_code in (200, 429), response.status_code
    assert response.status_code == 429
    assert not logged_in(attacker)

    # The owner, with the right password (from the same address, and from another one: it is the
    # account that is locked): a clear page, not a session.
    for address in ("10.0.0.1", "10.9.9.9"):
        owner = Client()
        response = login(owner, "member", PASSWORD, address=address)
        assert response.status_code == 429
        assert not logged_in(owner)
        page = response.content.decode()
        assert "Too many failed logins" in page
        assert f"after {settings.AXES_FAILURE_LIMIT} failed attempts" in page
        assert 'name="password"' not in page  # no login form to keep guessing on

    # The Django admin's login is locked too.
    response = login(Client(), "member", PASSWORD, address="10.9.9.9", path="/admin/login/")
    assert response.status_code == 429

    # A superuser unlocks the account in the Django admin, with the "unlock" action on its
    # failed attempts.
    admin = Client()
    admin.force_login(superuser)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "member" in listing.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.filter(username="member").values_list("pk", flat=True)]
    assert ids
    response = admin.post(
        "/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": ids, "index": 0}, follow=True
    )
    assert response.status_code == 200
    assert "Unlocked member" in response.content.decode()
    assert not AccessAttempt.objects.filter(username="member").exists()

    owner = Client()
    response = login(owner, "member", PASSWORD)
    assert response.status_code == 302
    assert logged_in(owner)

    # The password was never written to a log line, in either format, nor kept with the attempt.
    text = logs.getvalue()
    assert "New login failure" in text  # the failures were logged
    assert "Locking out" in text
    for secret in [PASSWORD, *(WRONG % n for n in range(30))]:
        assert secret not in text
    for line in text.splitlines():
        if line.startswith("{"):
            assert "password" not in json.loads(line).get("message", "").lower()


def test_a_distributed_guess_at_one_account_is_locked(member):
    # Thirty addresses, one guess each: no address is over the limit, the account is.
    for attempt in range(30):
        login(Client(), "member", WRONG % attempt, address=f"10.1.{attempt}.7")
    owner = Client()
    response = login(owner, "member", PASSWORD, address="192.0.2.200")
    assert response.status_code == 429
    assert not logged_in(owner)
    # The stored attempts keep no password either (the admin shows their form data).
    for attempt in AccessAttempt.objects.all():
        assert "Wrong-guess" not in attempt.post_data
        assert PASSWORD not in attempt.post_data


def test_a_password_spray_from_one_address_is_locked(member, db):
    user_model = get_user_model()
    for n in range(30):
        user_model.objects.create_user(username=f"user{n}", password=PASSWORD)
    # One guess per account, each account far below the limit: the address is over it.
    for n in range(30):
        login(Client(), f"user{n}", WRONG % n, address="10.2.0.1")
    sprayer = Client()
    response = login(sprayer, "member", PASSWORD, address="10.2.0.1")
    assert response.status_code == 429
    assert not logged_in(sprayer)
    # Someone else, from elsewhere, logs in.
    other = Client()
    assert login(other, "member", PASSWORD, address="10.3.0.1").status_code == 302
    assert logged_in(other)


def test_the_lock_lifts_after_the_cool_off(member):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        for attempt in range(settings.AXES_FAILURE_LIMIT):
            login(Client(), "member", WRONG % attempt)
        assert login(Client(), "member", PASSWORD).status_code == 429
        traveller.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
        owner = Client()
        assert login(owner, "member", PASSWORD).status_code == 302
        assert logged_in(owner)


def test_a_few_typos_do_not_lock(member):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        login(Client(), "member", WRONG % attempt)
    owner = Client()
    assert login(owner, "member", PASSWORD).status_code == 302


def test_axes_reset_username_unlocks_from_the_command_line(member):
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        login(Client(), "member", WRONG % attempt, address=f"10.4.0.{attempt}")
    assert login(Client(), "member", PASSWORD, address="10.4.1.1").status_code == 429
    call_command("axes_reset_username", "member", stdout=io.StringIO())
    assert login(Client(), "member", PASSWORD, address="10.4.1.1").status_code == 302


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(member, settings):
    """With TLS_TERMINATED_BY_PROXY the client address is the proxy's last X-Forwarded-For entry;
    anything a client writes further left cannot give it a fresh address per guess."""
    settings.TLS_TERMINATED_BY_PROXY = True
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        # Each guess claims another address on the left, with another username (a spray).
        Client().post(
            "/login/",
            {"username": f"nobody{attempt}", "password": WRONG % attempt},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR=f"6.6.6.{attempt}, 203.0.113.9",
        )
    response = Client().post(
        "/login/",
        {"username": "member", "password": PASSWORD},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="6.6.6.250, 203.0.113.9",
    )
    assert response.status_code == 429
    assert AccessAttempt.objects.filter(ip_address="203.0.113.9").exists()
    # Another client behind the same proxy is not locked out.
    other = Client()
    response = other.post(
        "/login/",
        {"username": "member", "password": PASSWORD},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="198.51.100.4",
    )
    assert response.status_code == 302


def test_an_ipv6_client_counts_as_its_64(member):
    # A spray from fresh addresses of one /64 (which one subscriber holds) is one address.
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        login(Client(), f"nobody{attempt}", WRONG % attempt, address=f"2001:db8:1:2::{attempt + 1:x}")
    assert login(Client(), "member", PASSWORD, address="2001:db8:1:2:ffff::1").status_code == 429
    assert login(Client(), "member", PASSWORD, address="2001:db8:1:3::1").status_code == 302


def test_without_a_proxy_x_forwarded_for_is_ignored(member):
    for attempt in range(settings.AXES_FAILURE_LIMIT + 2):
        Client().post(
            "/login/",
            {"username": f"nobody{attempt}", "password": WRONG % attempt},
            REMOTE_ADDR="10.5.0.1",
            HTTP_X_FORWARDED_FOR=f"6.6.{attempt}.1",
        )
    assert AccessAttempt.objects.filter(ip_address="10.5.0.1").count() == settings.AXES_FAILURE_LIMIT + 2
    assert login(Client(), "member", PASSWORD, address="10.5.0.1").status_code == 429


# --- API tokens -----------------------------------------------------------------------------------


def rest(secret, address):
    return Client().get("/api/v1/prebuilds/", headers={"Authorization": f"Bearer {secret}"}, REMOTE_ADDR=address)


def connect(secret, address):
    return Client().post(
        CONNECT + "ListPrebuilds",
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
        REMOTE_ADDR=address,
    )


@pytest.mark.parametrize("call", [rest, connect], ids=["rest", "connect"])
def test_bad_api_tokens_from_one_address_block_that_address(member, call):
    _, secret = api_token_create(user=member, name="automation")
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        for n in range(settings.API_TOKEN_FAILURE_LIMIT):
            response = call(f"pbk_guess{n:040d}", "10.6.0.1")
            assert response.status_code == 401, response.content
        # The address is now refused, whatever token it sends, the right one included.
        for token in (secret, "pbk_another-guess"):
            response = call(token, "10.6.0.1")
            assert response.status_code == 429, response.content
            body = response.json()
            assert body["code"] == "resource_exhausted"
            assert "failed API token authentications from this address" in body["message"]
            assert int(response["Retry-After"]) >= 1
        # Another address with the valid token works.
        assert call(secret, "10.6.0.2").status_code == 200
        # The window passes: the blocked address works again.
        traveller.shift(timedelta(seconds=settings.API_TOKEN_FAILURE_WINDOW_SECONDS + 1))
        assert call(secret, "10.6.0.1").status_code == 200


def test_both_apis_count_against_the_same_budget(member):
    _, secret = api_token_create(user=member, name="automation")
    half = settings.API_TOKEN_FAILURE_LIMIT // 2
    for n in range(half):
        rest(f"pbk_guess{n}", "10.7.0.1")
    for n in range(settings.API_TOKEN_FAILURE_LIMIT - half):
        connect(f"pbk_guess{n}", "10.7.0.1")
    assert rest(secret, "10.7.0.1").status_code == 429
    assert connect(secret, "10.7.0.1").json()["code"] == "resource_exhausted"


def test_good_tokens_do_not_count(member):
    _, secret = api_token_create(user=member, name="automation")
    for _ in range(settings.API_TOKEN_FAILURE_LIMIT * 2):
        assert rest(secret, "10.8.0.1").status_code == 200
    # One bad token after many good ones is one failure, not a block.
    assert rest("pbk_guess", "10.8.0.1").status_code == 401
    assert rest(secret, "10.8.0.1").status_code == 200

"""core.pagination's tokens: signed, so they cannot be forged or edited, and bound to the list they
came from (method and filter), so a token used elsewhere is invalid_argument, never a page of
something else."""

import base64
import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.core import signing
from gitpod.v1 import prebuild_pb2 as pb

from core.errors import InvalidArgument
from core.pagination import TOKEN_SALT, _decode, _encode, list_scope

ROW = SimpleNamespace(created_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC), id=uuid.uuid4())
SCOPE = list_scope("gitpod.v1.PrebuildService/ListPrebuilds", pb.ListPrebuildsRequest.Filter(phases=[10]))


def refused(token, scope=SCOPE) -> str:
    with pytest.raises(InvalidArgument) as exc:
        _decode(token, scope)
    assert exc.value.field == "pagination.token"
    return exc.value.message


def test_a_token_reads_back_in_its_own_scope():
    assert _decode(_encode(ROW, SCOPE), SCOPE) == (ROW.created_at, ROW.id)


def test_a_token_of_another_filter_or_method_is_refused():
    token = _encode(ROW, SCOPE)
    other_filter = list_scope("gitpod.v1.PrebuildService/ListPrebuilds", pb.ListPrebuildsRequest.Filter(phases=[20]))
    no_filter = list_scope("gitpod.v1.PrebuildService/ListPrebuilds")
    other_method = list_scope("gitpod.v1.PrebuildService/ListWarmPools", pb.ListPrebuildsRequest.Filter(phases=[10]))
    for scope in (other_filter, no_filter, other_method):
        assert "another list or filter" in refused(token, scope)


def test_the_same_filter_is_the_same_scope_and_no_filter_is_an_empty_one():
    filters = pb.ListPrebuildsRequest.Filter(project_ids=[str(ROW.id)], phases=[10, 20])
    again = pb.ListPrebuildsRequest.Filter()
    again.CopyFrom(filters)
    method = "gitpod.v1.PrebuildService/ListPrebuilds"
    assert list_scope(method, filters) == list_scope(method, again)
    assert list_scope(method, pb.ListPrebuildsRequest.Filter()) == list_scope(method)


def test_an_edited_or_forged_token_is_refused():
    token = _encode(ROW, SCOPE)
    signature = token.split(":", 1)[1]
    edited = base64.urlsafe_b64encode(
        json.dumps({"c": "2030-01-01T00:00:00+00:00", "i": str(ROW.id), "s": "x"}).encode()
    ).decode()
    for forged in (
        f"{edited.rstrip('=')}:{signature}",  # another row, the old signature
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # a changed signature
        signing.dumps({"c": ROW.created_at.isoformat(), "i": str(ROW.id), "s": "x"}, salt=TOKEN_SALT + ".other"),
        # the unsigned form tokens used to have
        base64.urlsafe_b64encode(json.dumps({"c": ROW.created_at.isoformat(), "i": str(ROW.id)}).encode()).decode(),
        "garbage",
    ):
        assert "not a token from a previous page" in refused(forged)

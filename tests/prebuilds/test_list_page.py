"""/prebuilds/: rows, filters, pages of 25, refreshing by version, the trigger form and the bulk
actions with their confirmation."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from prebuilds.models import Prebuild, PrebuildPhase, PrebuildTrigger

pytestmark = pytest.mark.django_db

LIST = "/prebuilds/"
HTMX = {"HTTP_HX_REQUEST": "true"}
ROWS = {**HTMX, "HTTP_HX_TARGET": "prebuild-rows"}
TIMEOUT_RULE = "Enter a timeout from 5 minutes to 2 hours, such as 30m or 1h."


def test_rows_show_phase_words_and_every_column(client, org, make_prebuild):
    make_prebuild(
        phase=PrebuildPhase.COMPLETED,
        snapshot_size_bytes=5 * 1024 * 1024,
        started_at=None,
    )
    failed = make_prebuild(
        environment_class=org.large, phase=PrebuildPhase.FAILED, failure_message="clone failed: <b>x</b>"
    )
    Prebuild.objects.filter(pk=failed.pk).update(completion_time=failed.started_at + timedelta(seconds=125))
    client.force_login(org.member)
    body = client.get(LIST).content.decode()
    assert ">Completed</span>" in body and ">Failed</span>" in body
    # Each row links by its name (project / class) to the prebuild.
    assert (
        f'<a href="{reverse("prebuilds:detail", args=[failed.id])}">app <span class="muted">/</span> large</a>' in body
    )
    assert "5.0\xa0MB" in body  # humanized snapshot size
    assert "clone failed: &lt;b&gt;x&lt;/b&gt;" in body  # failure reason inline, escaped
    assert "2m 05s" in body  # duration
    assert "large" in body and "small" in body and "Manual" in body and "bob" in body


def test_filters_narrow_the_list(client, org, make_prebuild):
    small = make_prebuild(phase=PrebuildPhase.RUNNING)
    large = make_prebuild(environment_class=org.large, actor=org.admin)
    client.force_login(org.member)

    def ids(**params):
        return {str(p.id) for p in client.get(LIST, params).context["page"].items}

    assert ids() == {str(small.id), str(large.id)}
    assert ids(environment_class=org.large.id) == {str(large.id)}
    assert ids(phase=PrebuildPhase.RUNNING) == {str(small.id)}
    assert ids(creator=org.admin.id) == {str(large.id)}
    assert ids(project=org.project.id) == {str(small.id), str(large.id)}
    assert ids(trigger=PrebuildTrigger.SCHEDULED) == set()
    # An unknown value is reported on the filter form, never a 500.
    response = client.get(LIST, {"phase": "999", "project": "not-a-project"})
    assert response.status_code == 200
    assert response.context["filter_form"].errors


def test_pages_of_25_with_an_opaque_next_token(client, org, make_prebuild):
    for _ in range(27):
        make_prebuild()
    client.force_login(org.member)
    first = client.get(LIST)
    assert len(first.context["page"].items) == 25
    next_url = first.context["next_url"]
    assert next_url and "page=" in next_url
    second = client.get(next_url)
    assert len(second.context["page"].items) == 2
    assert not second.context["next_url"]
    seen = {p.id for p in first.context["page"].items} | {p.id for p in second.context["page"].items}
    assert len(seen) == 27
    # A forged token is a message, not an error page.
    forged = client.get(LIST, {"page": "garbage!"})
    assert forged.status_code == 200 and "not a token from a previous page" in forged.content.decode()


def test_list_runs_the_same_number_of_queries_for_1_and_25_rows(client, org, make_prebuild):
    make_prebuild()
    client.force_login(org.member)
    client.get(LIST)  # warm up the session
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(LIST).context["page"].items) == 1
    for _ in range(24):
        make_prebuild(phase=PrebuildPhase.FAILED, failure_message="boom", snapshot_size_bytes=1)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(LIST).context["page"].items) == 25
    assert len(many) == len(one) <= 12
    with CaptureQueriesContext(connection) as rows_one:
        client.get(LIST, **ROWS)
    assert len(rows_one) <= len(one)


def rows_version(body: str) -> str:
    return body.split('"X-Shown-Version": "', 1)[1].split('"', 1)[0]


def test_rows_refresh_while_open_and_cost_a_204_when_nothing_changed(client, org, make_prebuild):
    done = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    page = client.get(LIST).content.decode()
    # Polled even when everything shown is finished: a new prebuild must appear.
    assert 'hx-trigger="every 2s, page-visible from:body"' in page
    version = rows_version(page)
    same = client.get(LIST, **ROWS, HTTP_X_SHOWN_VERSION=version)
    assert same.status_code == 204 and same.content == b""
    # A new prebuild, a status change, a filter: each a new version and the rows rendered again.
    new = make_prebuild()
    response = client.get(LIST, **ROWS, HTTP_X_SHOWN_VERSION=version)
    assert response.status_code == 200 and str(new.id) in response.content.decode()
    assert 'id="active-count"' in response.content.decode() and 'hx-swap-oob="true"' in response.content.decode()
    version = rows_version(response.content.decode())
    Prebuild.objects.filter(pk=done.pk).update(status_version=done.status_version + 1)  # as status.py writes
    assert client.get(LIST, **ROWS, HTTP_X_SHOWN_VERSION=version).status_code == 200


def test_the_version_check_costs_fewer_queries_than_a_render(client, org, make_prebuild):
    for _ in range(25):
        make_prebuild(phase=PrebuildPhase.FAILED, failure_message="boom")
    client.force_login(org.member)
    version = rows_version(client.get(LIST).content.decode())
    with CaptureQueriesContext(connection) as unchanged:
        assert client.get(LIST, **ROWS, HTTP_X_SHOWN_VERSION=version).status_code == 204
    with CaptureQueriesContext(connection) as changed:
        assert client.get(LIST, **ROWS, HTTP_X_SHOWN_VERSION="old").status_code == 200
    assert len(unchanged) < len(changed)
    # The version query reads three columns of the prebuilds alone: no join, no related row.
    version_query = next(q["sql"] for q in unchanged.captured_queries if '"status_version"' in q["sql"])
    assert "JOIN" not in version_query.upper() and '"failure_message"' not in version_query


def test_a_filter_change_writes_the_filters_into_the_address_bar_and_a_poll_does_not(client, org, make_prebuild):
    make_prebuild()
    client.force_login(org.member)
    response = client.get(
        LIST, {"phase": PrebuildPhase.PENDING, "selected": "x"}, **ROWS, HTTP_HX_TRIGGER="filter-form"
    )
    assert response["HX-Push-Url"] == f"{LIST}?phase={PrebuildPhase.PENDING.value}"  # the filters, not the selection
    poll = client.get(LIST, {"phase": PrebuildPhase.PENDING}, **ROWS, HTTP_HX_TRIGGER="prebuild-rows")
    assert "HX-Push-Url" not in poll


def test_polling_keeps_the_selection(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    body = client.get(LIST, {"selected": str(prebuild.id)}, **ROWS).content.decode()
    assert f'value="{prebuild.id}" form="bulk-form" checked' in body


# --- trigger form ------------------------------------------------------------------------------------


def test_trigger_form_has_the_labelled_fields_and_the_projects_classes(client, org):
    org.large.enabled = False
    org.large.save()
    client.force_login(org.member)
    body = client.get(LIST).content.decode()
    assert '<label for="id_project">Project</label>' in body
    assert '<label for="id_environment_class">Environment class</label>' in body
    assert '<label for="id_timeout">Timeout</label>' in body
    assert ">Trigger prebuild</button>" in body
    form = client.get(LIST).context["trigger_form"]
    offered = [label for _, label in form.fields["environment_class"].widget.choices]
    assert offered == ["small (default)"]  # large is disabled, gpu does not get prebuilds


def test_class_select_follows_the_project(client, org):
    client.force_login(org.member)
    response = client.get(reverse("prebuilds:trigger-classes"), {"project": org.project.id}, **HTMX)
    body = response.content.decode()
    assert body.strip().startswith('<div id="class-select">')
    assert "small (default)" in body and "large" in body and "gpu" not in body
    # A project of another organization offers nothing.
    client.force_login(org.outsider)
    body = client.get(reverse("prebuilds:trigger-classes"), {"project": org.project.id}, **HTMX).content.decode()
    assert "small" not in body


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        ("45", timedelta(minutes=45)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("", timedelta(minutes=30)),  # the project's timeout, not a site default
    ],
)
def test_trigger_creates_a_prebuild_and_opens_it(client, org, timeout, expected):
    client.force_login(org.member)
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.large.id, "timeout": timeout})
    prebuild = Prebuild.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("prebuilds:detail", args=[prebuild.id])
    assert (prebuild.environment_class, prebuild.timeout, prebuild.creator) == (org.large, expected, org.member)


def test_the_timeout_field_names_the_projects_timeout(client, org):
    client.force_login(org.member)
    body = client.get(LIST).content.decode()
    assert "Empty: the project&#x27;s timeout, 30m. Or minutes, 30m, 1h; 5m to 2h." in body
    assert "default 1h" not in body
    # Another project chosen: its timeout, out of band.
    org.project.prebuild_timeout = timedelta(minutes=10)
    org.project.save()
    body = client.get(reverse("prebuilds:trigger-classes"), {"project": org.project.id}, **HTMX).content.decode()
    assert 'id="id_timeout_helptext" hx-swap-oob="true">Empty: the project&#x27;s timeout, 10m.' in body


def test_trigger_with_htmx_redirects_the_browser(client, org):
    client.force_login(org.member)
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.small.id}, **HTMX)
    assert response["HX-Redirect"] == reverse("prebuilds:detail", args=[Prebuild.objects.get().id])


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"timeout": "soon"}, "timeout", "Enter minutes or a duration such as 30m or 1h."),
        # CreatePrebuild's rules (its descriptor's, in protovalidate's words), as the APIs apply them
        ({"timeout": "3h"}, "timeout", TIMEOUT_RULE),
        ({"timeout": "4m59s"}, "timeout", TIMEOUT_RULE),  # the 5-minute floor holds for a prebuild too
        ({"timeout": "0"}, "timeout", TIMEOUT_RULE),
        ({"environment_class": "nonsense"}, "environment_class", "Choose an environment class from the list."),
        # the service's
        ({"environment_class": "gpu"}, "environment_class", "environment class 'gpu' does not have prebuilds enabled"),
        ({"project": "nonsense"}, "project", "project nonsense not found"),
    ],
)
def test_trigger_errors_are_human_words_next_to_the_field(client, org, data, field, message):
    client.force_login(org.member)
    post = {"project": str(org.project.id), "environment_class": str(org.small.id), "timeout": "30m", **data}
    if post["environment_class"] == "gpu":
        post["environment_class"] = str(org.unconfigured.id)
    response = client.post(LIST, post, **HTMX)
    assert response.status_code == 200
    form = response.context["trigger_form"]
    assert any(message in error for error in form.errors[field]), form.errors
    body = response.content.decode()
    assert body.strip().startswith('<form id="trigger-form"')
    assert f'id="id_{field}_error"' in body and 'aria-invalid="true"' in body
    assert not Prebuild.objects.exists()


def test_every_trigger_error_shows_at_once(client, org):
    client.force_login(org.member)
    response = client.post(LIST, {"project": "nonsense", "environment_class": "nonsense", "timeout": "3h"}, **HTMX)
    assert set(response.context["trigger_form"].errors) == {"project", "environment_class", "timeout"}


def test_trigger_errors_without_htmx_render_the_whole_page(client, org):
    client.force_login(org.member)
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.small.id, "timeout": "5h"})
    assert response.status_code == 200
    assert TIMEOUT_RULE in response.content.decode()
    assert "<h1>Prebuilds</h1>" in response.content.decode()


def test_outsiders_cannot_trigger_in_another_organization(client, org):
    client.force_login(org.outsider)
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.small.id}, **HTMX)
    assert "not found" in str(response.context["trigger_form"].errors["project"])
    assert not Prebuild.objects.exists()


# --- bulk actions ------------------------------------------------------------------------------------


def bulk(client, action, ids, *, confirm=True, **headers):
    data = {"action": action, "selected": ids, "next": LIST}
    if confirm:
        data["confirmed"] = "yes"
    return client.post(reverse("prebuilds:bulk"), data, **headers)


def test_bulk_actions_ask_first_naming_every_selected_prebuild(client, org, make_prebuild):
    pending, running = make_prebuild(), make_prebuild(environment_class=org.large, phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    asked = bulk(client, "cancel", [pending.id, running.id], confirm=False, **HTMX)
    body = asked.content.decode()
    assert asked.status_code == 200 and asked["HX-Retarget"] == "#confirm-dialog"
    assert "Cancel these 2 prebuilds?" in body and "Cancel 2 prebuilds</button>" in body
    assert "app on small, created " in body and "(Pending)" in body and "app on large" in body and "(Running)" in body
    assert f'name="selected" value="{pending.id}"' in body and 'name="confirmed" value="yes"' in body
    pending.refresh_from_db()
    assert pending.phase == PrebuildPhase.PENDING  # asking is not doing
    # Without JavaScript, the same question as a page of its own.
    page = bulk(client, "cancel", [pending.id], confirm=False).content.decode()
    assert '<h1 id="confirm-title">Cancel this prebuild?</h1>' in page and f'href="{LIST}">Keep it</a>' in page


def test_members_bulk_cancel(client, org, make_prebuild):
    pending, running = make_prebuild(), make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    response = bulk(client, "cancel", [pending.id, running.id])
    assert response.status_code == 302 and response["Location"] == LIST
    pending.refresh_from_db()
    running.refresh_from_db()
    assert pending.phase == PrebuildPhase.CANCELLED
    assert running.desired_phase == PrebuildPhase.CANCELLED
    assert "2 prebuilds cancelled." in client.get(LIST).content.decode()


def test_members_may_not_bulk_delete_and_see_why(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    assert "Delete selected" not in client.get(LIST).content.decode()
    response = bulk(client, "delete", [prebuild.id], **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "only organization admins may delete prebuilds" in body
    assert 'id="messages"' in body  # out of band, above the page
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.COMPLETED


def test_admins_bulk_delete_after_confirming(client, org, make_prebuild):
    done = make_prebuild(phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=1)
    failed = make_prebuild(phase=PrebuildPhase.FAILED)
    client.force_login(org.admin)
    assert "Delete selected" in client.get(LIST).content.decode()
    asked = bulk(client, "delete", [done.id, failed.id], confirm=False, **HTMX).content.decode()
    assert "Delete these 2 prebuilds?" in asked and "snapshots and logs are removed" in asked
    assert set(Prebuild.objects.values_list("desired_phase", flat=True)) == {PrebuildPhase.UNSPECIFIED}
    response = bulk(client, "delete", [done.id, failed.id], **HTMX)
    assert "2 prebuilds will be deleted." in response.content.decode()
    assert set(Prebuild.objects.values_list("desired_phase", flat=True)) == {PrebuildPhase.DELETED}
    assert set(Prebuild.objects.values_list("phase", flat=True)) == {PrebuildPhase.DELETING}


def test_bulk_without_selection_or_on_foreign_prebuilds(client, org, make_prebuild):
    prebuild = make_prebuild()
    client.force_login(org.member)
    client.post(reverse("prebuilds:bulk"), {"action": "cancel"})
    assert "Select at least one prebuild first." in client.get(LIST).content.decode()
    client.force_login(org.outsider)
    asked = bulk(client, "cancel", [prebuild.id, "junk"], confirm=False).content.decode()
    assert "2 more that you cannot see (they will be refused)" in asked and "app on small" not in asked
    bulk(client, "cancel", [prebuild.id, "junk"])
    assert "not found" in client.get(LIST).content.decode()
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.PENDING


def test_bulk_never_redirects_off_site(client, org, make_prebuild):
    client.force_login(org.member)
    response = client.post(reverse("prebuilds:bulk"), {"action": "cancel", "next": "https://evil.example/"})
    assert response["Location"] == LIST

"""Prebuild pages: the list (filters, trigger form, bulk actions) and a prebuild's own page, with
its raw log download.

Views are thin: they read through prebuilds.queries / services, write through services, and pick
a named partial when htmx asks for a fragment. Every destructive action asks first (core.pages.ask),
naming what will go.
"""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url
from gitpod.v1 import prebuild_pb2 as pb

from core import words
from core.errors import DomainError, InvalidArgument, NotFound, PermissionDenied
from core.pages import Confirmation, ask, confirmed, domain_errors, render_poll, unchanged, version_of
from core.pagination import paginate
from prebuilds import logstore, services
from prebuilds.forms import PrebuildFilterForm, TriggerPrebuildForm
from prebuilds.logtokens import LIFETIME as LOGS_TOKEN_LIFETIME
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep
from prebuilds.proto import create_prebuild_arguments
from prebuilds.queries import prebuilds_for, previous_completed
from projects.forms import add_domain_error, add_violations
from projects.models import EnvironmentClass, Membership, Project
from projects.services import project_get
from projects.views import current_organization_id, is_admin

ROWS_TARGET = "prebuild-rows"
FILTER_PARAMS = ("project", "environment_class", "phase", "trigger", "creator")
# The happy path through the phases, drawn as the phase stepper on a prebuild's page.
MAIN_PHASES = [
    PrebuildPhase.PENDING,
    PrebuildPhase.STARTING,
    PrebuildPhase.RUNNING,
    PrebuildPhase.STOPPING,
    PrebuildPhase.SNAPSHOTTING,
    PrebuildPhase.COMPLETED,
]
# The phase a step runs in: the clone while STARTING, the snapshot while SNAPSHOTTING; every other
# step (the lifecycle commands, the container backend's image, build and container) while RUNNING.
STEP_PHASES = {"clone": PrebuildPhase.STARTING, "snapshot": PrebuildPhase.SNAPSHOTTING}
# How many of the failing step's last lines the failure banner leads to.
FAILING_LINES = 20


def step_phase(name: str) -> int:
    return STEP_PHASES.get(name, PrebuildPhase.RUNNING)


def described(prebuild: Prebuild) -> str:
    """A prebuild as a person tells it from others: 'app on small, created 2026-03-01 14:05:09 UTC
    (Running)'."""
    return (
        f"{prebuild.project.name} on {prebuild.environment_class.display_name}, created "
        f"{words.absolute(prebuild.created_at)} ({prebuild.get_phase_display()})"
    )


# --- the list ---------------------------------------------------------------------------------------


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def prebuild_list(request):
    organization_id = current_organization_id(request)
    projects = list(Project.objects.alive().filter(organization_id=organization_id))
    if request.method == "POST":
        project, project_error = _posted_project(request)
        form = TriggerPrebuildForm(request.POST, projects=projects, project=project)
        prebuild = _trigger(request, form, project, project_error)
        if prebuild is not None:
            url = reverse("prebuilds:detail", args=[prebuild.id])
            messages.success(request, "Prebuild triggered.")
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if request.htmx and request.POST.get("from") == "project" and project is not None:
            # The project page's trigger form: its errors go back to it.
            return render(request, "prebuilds/project_trigger.html", {"project": project, "trigger_form": form})
        if request.htmx:
            return render(request, "prebuilds/list.html#trigger-form", {"trigger_form": form})
    else:
        # A link from a project's page (?project=) opens the form on that project.
        chosen = next((p for p in projects if str(p.id) == request.GET.get("project")), None)
        form = TriggerPrebuildForm(projects=projects, project=chosen or (projects[0] if projects else None))
    if request.htmx and request.htmx.target == ROWS_TARGET:
        # A poll (or a filter change): first the version of what the rows would show.
        context = _list_context(request, request.GET, organization_id, projects, rows_only=True)
        if (answer := unchanged(request, context["rows_version"])) is not None:
            return answer
        response = render(request, "prebuilds/list.html#rows", context)
        if request.htmx.trigger == ROWS_TARGET:
            return response  # a poll: the address stays as it is
        # A filter or a page: the address bar shows exactly the list these rows are (a copied link
        # opens the same rows), written by the server that applied the filters.
        return push_url(response, context["list_url"])
    context = _list_context(request, request.GET, organization_id, projects)
    context["trigger_form"] = form
    context["can_create_projects"] = context["can_delete"]  # both are the admins'
    return render(request, "prebuilds/list.html", context)


def _posted_project(request):
    """The project a form names, if the user may see it (else None and the service's message)."""
    try:
        return project_get(user=request.user, project_id=request.POST.get("project", "")), None
    except NotFound as error:
        return None, error


def _trigger(request, form: TriggerPrebuildForm, project, project_error) -> Prebuild | None:
    """Create the prebuild the form asks for, as CreatePrebuild does: its request message checked by
    the descriptor's rules, then the service; the errors land next to their fields. An empty timeout
    is the project's own (the form says which)."""
    if project_error is not None:
        add_domain_error(form, project_error, TriggerPrebuildForm.FIELD_MAP)
    valid = form.is_valid()
    data = form.cleaned_data
    # Checked with whatever parsed, so that every field's error shows at once.
    create = pb.CreatePrebuildRequest(project_id=str(project.id) if project else "", spec=pb.PrebuildSpec())
    if data.get("environment_class"):
        create.environment_class_id = data["environment_class"]
    timeout = form.timeout_for(project) if project else data.get("timeout")
    if timeout is not None:
        create.spec.timeout.FromTimedelta(timeout)
    if not add_violations(form, create, TriggerPrebuildForm.FIELD_MAP):
        return None
    if not valid:
        return None
    arguments = create_prebuild_arguments(create)
    del arguments["project_id"]
    try:
        return services.prebuild_create(actor=request.user, project=project, **arguments)
    except DomainError as error:
        add_domain_error(form, error, TriggerPrebuildForm.FIELD_MAP)
        return None


def _list_context(request, query: QueryDict, organization_id, projects, *, rows_only: bool = False) -> dict:
    classes = EnvironmentClass.objects.in_organization(organization_id)
    creators = [m.user for m in Membership.objects.filter(organization_id=organization_id).select_related("user")]
    filter_form = PrebuildFilterForm(
        query or None, projects=projects, classes=classes, creators=sorted(creators, key=lambda u: u.get_username())
    )
    queryset = prebuilds_for(request.user, filter_form.to_filter()).filter(organization_id=organization_id)
    # The list's URL carries the filters that were applied and the page, never the selection (that
    # comes along separately with hx-include, so ticking boxes survives a refresh).
    params = QueryDict(mutable=True)
    for name in (*FILTER_PARAMS, "page"):
        if query.get(name):
            params[name] = query[name]
    # A page token belongs to this organization's list with these filters.
    scope = f"prebuilds-page:{organization_id}?{_without_page(params)}"
    page_error = ""
    token = query.get("page", "")
    try:
        versions = paginate(_version_rows(queryset), scope=scope, token=token)
    except InvalidArgument as error:
        page_error, token = error.message, ""
        versions = paginate(_version_rows(queryset), scope=scope)
    # What the rows show changes when a row's spec or status does, a row comes or goes, or the
    # nav's count of active prebuilds moves: one query of three columns (no joins) tells.
    rows_version = version_of(
        [(row.id, row.spec_version, row.status_version) for row in versions.items],
        versions.next_token != "",
        page_error,
        Prebuild.objects.active_in(organization_id).count(),
        sorted(query.getlist("selected")),
    )
    list_url = reverse("prebuilds:list")
    context = {"rows_version": rows_version, "list_url": f"{list_url}?{params.urlencode()}" if params else list_url}
    if rows_only and request.headers.get("X-Shown-Version") == rows_version:
        return context
    page = paginate(queryset, scope=scope, token=token)
    next_params = params.copy()
    if page.next_token:
        next_params["page"] = page.next_token
    context.update(
        {
            "filter_form": filter_form,
            "page": page,
            "page_error": page_error,
            "poll_url": context["list_url"],
            "next_url": f"{list_url}?{next_params.urlencode()}" if page.next_token else "",
            "first_url": list_url + (f"?{_without_page(params)}" if _without_page(params) else ""),
            "is_first_page": not token,
            "selected": set(query.getlist("selected")),
            "can_delete": is_admin(request, organization_id),
        }
    )
    return context


def _version_rows(queryset):
    return queryset.select_related(None).values_list("id", "created_at", "spec_version", "status_version", named=True)


def _without_page(params: QueryDict) -> str:
    params = params.copy()
    params.pop("page", None)
    return params.urlencode()


@login_required
@require_GET
def trigger_classes(request):
    """The trigger form's class select for the chosen project (htmx swaps it in on change), and the
    timeout's help out of band: it names that project's timeout."""
    organization_id = current_organization_id(request)
    projects = list(Project.objects.alive().filter(organization_id=organization_id))
    try:
        project = project_get(user=request.user, project_id=request.GET.get("project", ""))
    except NotFound:
        project = None
    form = TriggerPrebuildForm(projects=projects, project=project)
    return render(request, "prebuilds/list.html#class-select", {"trigger_form": form, "oob_help": True})


@login_required
@domain_errors
@require_GET
def project_trigger(request, project_id):
    """The trigger form of a project's page (which loads it from here: the form is this room's)."""
    project = project_get(user=request.user, project_id=project_id)
    form = TriggerPrebuildForm(projects=[project], project=project)
    return render(request, "prebuilds/project_trigger.html", {"project": project, "trigger_form": form})


@login_required
@require_POST
def prebuild_bulk(request):
    """Cancel or delete the selected prebuilds, one service call each, once the confirmation that
    names them was accepted; refusals become messages."""
    action = request.POST.get("action")
    ids = request.POST.getlist("selected")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("prebuilds:list")
    if action not in ("cancel", "delete"):
        messages.error(request, "Choose Cancel selected or Delete selected.")
    elif not ids:
        messages.info(request, "Select at least one prebuild first.")
    elif not confirmed(request):
        return ask(request, _bulk_confirmation(request, action, ids, back))
    else:
        _apply_bulk(request, action, ids)
    if not request.htmx:
        return redirect(back)
    organization_id = current_organization_id(request)
    projects = list(Project.objects.alive().filter(organization_id=organization_id))
    query = QueryDict(back.partition("?")[2])
    context = _list_context(request, query, organization_id, projects)
    context["selected"] = set()
    context["show_messages"] = True
    return render(request, "prebuilds/list.html#rows", context)


def _bulk_confirmation(request, action: str, ids: list[str], back: str) -> Confirmation:
    """Names every selected prebuild the user may see (the service refuses the others anyway)."""
    chosen = [i for i in ids if _is_uuid(i)]
    found = list(Prebuild.objects.visible_to(request.user).for_list().filter(id__in=chosen).order_by("-created_at"))
    n = len(ids)
    noun = "prebuild" if n == 1 else f"{n} prebuilds"
    if action == "cancel":
        title = f"Cancel {'this' if n == 1 else 'these'} {noun}?"
        consequence = (
            "If it is running it is stopped, and what it built so far is not kept."
            if n == 1
            else "Those still running are stopped; what they built so far is not kept. Finished ones stay as they are."
        )
        button = f"Cancel {noun}"
    else:
        title = f"Delete {'this' if n == 1 else 'these'} {noun}?"
        consequence = (
            "Its snapshot and logs are removed, and a warm pool warming it moves to the newest snapshot left."
            if n == 1
            else "Their snapshots and logs are removed, and warm pools warming one of them move to the newest "
            "snapshot left."
        ) + " This cannot be undone."
        button = f"Delete {noun}"
    items = [described(p) for p in found]
    if len(found) < n:
        items.append(f"{n - len(found)} more that you cannot see (they will be refused)")
    return Confirmation(
        title=title,
        action=reverse("prebuilds:bulk"),
        button=button,
        items=items,
        consequence=consequence,
        fields=[("action", action), ("next", back)] + [("selected", i) for i in ids],
        keep="Keep them" if n > 1 else "Keep it",
        back=back,
        target="#prebuild-rows",
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _apply_bulk(request, action: str, ids: list[str]) -> None:
    service = services.prebuild_cancel if action == "cancel" else services.prebuild_delete
    done, refused = 0, []
    for prebuild_id in ids:
        try:
            prebuild = services.prebuild_get(user=request.user, prebuild_id=prebuild_id)
            service(actor=request.user, prebuild=prebuild)
            done += 1
        except DomainError as error:
            # PermissionDenied (a member deleting), NotFound (gone meanwhile), Conflict (busy).
            refused.append(error.message)
    verb = "cancelled" if action == "cancel" else "deleted"
    if done:
        noun = "prebuild" if done == 1 else "prebuilds"
        messages.success(request, f"{done} {noun} {'will be ' if action == 'delete' else ''}{verb}.")
    for message in sorted(set(refused)):
        count = refused.count(message)
        messages.error(request, f"{message}" + (f" ({count} prebuilds)" if count > 1 else ""))


# --- one prebuild -----------------------------------------------------------------------------------


@login_required
@domain_errors
@require_GET
def prebuild_detail(request, pk):
    try:
        prebuild = services.prebuild_get(user=request.user, prebuild_id=pk, related=True)
    except NotFound:
        if request.htmx:
            # Polled while it was being deleted: say so, and stop polling.
            return render_poll(request, "prebuilds/detail.html#gone", {}, settled=True)
        raise
    context = _detail_context(request, prebuild)
    if request.htmx and request.htmx.target == "prebuild-status":
        return render_poll(request, "prebuilds/detail.html#status", context, settled=prebuild.is_terminal)
    return render(request, "prebuilds/detail.html", context)


def _detail_context(request, prebuild: Prebuild) -> dict:
    steps = list(prebuild.steps.all())
    previous = previous_completed(prebuild)
    previous_steps = list(previous.steps.all()) if previous else []
    failed = [s for s in steps if s.outcome == PrebuildStep.Outcome.FAILED]
    project_timeout = prebuild.project.prebuild_timeout
    return {
        "prebuild": prebuild,
        "previous": previous,
        "estimate": previous.duration if previous else None,
        "timeline": _timeline(steps, previous_steps),
        "phases": phase_path(prebuild, steps),
        # The step the failure banner leads to: the one that failed (else the log's last lines).
        "failed_step": failed[-1] if failed else None,
        "failing_lines": FAILING_LINES,
        "timeout_is_projects": prebuild.timeout == project_timeout,
        "project_timeout": project_timeout,
        "can_delete": is_admin(request, prebuild.organization_id),
        # Cancel until someone asked for cancellation or deletion (desired_phase is only set for those).
        "can_cancel": not prebuild.is_terminal and prebuild.desired_phase == PrebuildPhase.UNSPECIFIED,
        "cancel_requested": not prebuild.is_terminal and prebuild.desired_phase == PrebuildPhase.CANCELLED,
    }


def _timeline(steps, previous_steps) -> list[dict]:
    """One row per step name (this run's order, then steps only the previous run had), each with
    this run's and the previous run's duration as a share of the longest shown."""
    previous_by_name = {s.name: s for s in previous_steps}
    names = [s.name for s in steps] + [s.name for s in previous_steps if s.name not in {x.name for x in steps}]
    current_by_name = {s.name: s for s in steps}
    longest = max([s.duration.total_seconds() for s in steps + previous_steps if s.duration is not None], default=0)
    rows = []
    for name in names:
        step, before = current_by_name.get(name), previous_by_name.get(name)
        rows.append(
            {
                "name": name,
                "step": step,
                "previous": before,
                "width": _share(step.duration if step else None, longest),
                "previous_width": _share(before.duration if before else None, longest),
            }
        )
    return rows


def _share(value, longest) -> float:
    if value is None or not longest:
        return 0
    return max(round(value.total_seconds() / longest * 100, 1), 0.5)


_NOTES = {
    "done": "passed",
    "current": "now",
    "todo": "not reached yet",
    "failed": "failed here",
    "stopped": "stopped here",
    "end": "how it ended",
}


def phase_path(prebuild: Prebuild, steps) -> list[dict]:
    """The path this prebuild took through the phases, as far as its record tells.

    While it is on the happy path, the whole path with its place on it (the phases to come as
    such). Once it left it (failed, cancelled, being cancelled or deleted): only the phases it is
    known to have reached (PENDING always; STARTING once it started; each step's own phase, and
    the phases before the snapshot once it snapshotted), the one where it failed or was stopped
    marked so (the failed or stopped step's phase, else the last reached), then the phase it ended
    in. No phase it never reached is drawn."""
    phase = prebuild.phase
    if phase in MAIN_PHASES:
        index = MAIN_PHASES.index(phase)
        path = []
        for i, each in enumerate(MAIN_PHASES):
            state = "done" if i < index else ("current" if i == index else "todo")
            path.append({"phase": each, "label": each.label, "state": state})
        if phase == PrebuildPhase.COMPLETED:
            path[-1]["state"], path[-1]["end"] = "done", True
        return _noted(path)
    reached = {PrebuildPhase.PENDING}
    if prebuild.started_at is not None:
        reached.add(PrebuildPhase.STARTING)
    reached.update(step_phase(step.name) for step in steps)
    if PrebuildPhase.SNAPSHOTTING in reached:
        reached.update({PrebuildPhase.STARTING, PrebuildPhase.RUNNING, PrebuildPhase.STOPPING})
    if PrebuildPhase.RUNNING in reached:
        reached.add(PrebuildPhase.STARTING)
    taken = [each for each in MAIN_PHASES if each in reached]
    mark, mark_state = None, None
    if phase == PrebuildPhase.FAILED:
        failed = [s for s in steps if s.outcome == PrebuildStep.Outcome.FAILED]
        mark, mark_state = (step_phase(failed[-1].name) if failed else taken[-1]), "failed"
    elif phase in (PrebuildPhase.CANCELLED, PrebuildPhase.CANCELLING):
        stopped = [s for s in steps if s.outcome == PrebuildStep.Outcome.STOPPED]
        mark, mark_state = (step_phase(stopped[-1].name) if stopped else taken[-1]), "stopped"
    path = [{"phase": each, "label": each.label, "state": mark_state if each == mark else "done"} for each in taken]
    final = "current" if phase in (PrebuildPhase.CANCELLING, PrebuildPhase.DELETING) else "end"
    path.append({"phase": phase, "label": prebuild.get_phase_display(), "state": final, "end": final == "end"})
    return _noted(path)


def _noted(path: list[dict]) -> list[dict]:
    for item in path:
        item["note"] = "how it ended" if item.get("end") and item["state"] != "current" else _NOTES[item["state"]]
        item.setdefault("end", False)
        # The step a screen reader is told is the current one: where it is now, or where it ended.
        item["is_current"] = item["state"] == "current" or item["end"]
    return path


@login_required
@domain_errors
@require_POST
def prebuild_cancel(request, pk):
    prebuild = services.prebuild_get(user=request.user, prebuild_id=pk, related=True)
    if not confirmed(request) and not prebuild.is_terminal and prebuild.desired_phase == PrebuildPhase.UNSPECIFIED:
        if prebuild.phase == PrebuildPhase.PENDING:
            consequence = "It has not started: it is taken off the runner's queue, and no snapshot is made."
        else:
            consequence = "The runner stops its commands; what it built so far is not kept, and no snapshot is made."
        return ask(
            request,
            Confirmation(
                title="Cancel this prebuild?",
                action=reverse("prebuilds:cancel", args=[pk]),
                button="Cancel prebuild",
                items=[described(prebuild)],
                consequence=consequence,
                keep="Keep it running",
                back=reverse("prebuilds:detail", args=[pk]),
                target="#prebuild-status",
            ),
        )
    prebuild = services.prebuild_cancel(actor=request.user, prebuild=prebuild)
    if request.htmx:
        context = _detail_context(request, services.prebuild_get(user=request.user, prebuild_id=pk, related=True))
        return render(request, "prebuilds/detail.html#status", context)
    messages.success(request, "Cancellation requested." if not prebuild.is_terminal else "Prebuild cancelled.")
    return redirect("prebuilds:detail", pk=pk)


@login_required
@domain_errors
@require_POST
def prebuild_delete(request, pk):
    prebuild = services.prebuild_get(user=request.user, prebuild_id=pk, related=True)
    if not is_admin(request, prebuild.organization_id):
        raise PermissionDenied("only organization admins may delete prebuilds")
    if not confirmed(request):
        size = prebuild.snapshot_size_bytes
        what = "Its snapshot" + (f" ({_size(size)})" if size else "") + " and its logs are removed"
        return ask(
            request,
            Confirmation(
                title="Delete this prebuild?",
                action=reverse("prebuilds:delete", args=[pk]),
                button="Delete prebuild",
                items=[described(prebuild)],
                consequence=f"{what}; a warm pool warming it moves to the newest snapshot left. This cannot be undone.",
                back=reverse("prebuilds:detail", args=[pk]),
                target="body",
            ),
        )
    services.prebuild_delete(actor=request.user, prebuild=prebuild)
    messages.success(request, "The prebuild is being deleted.")
    url = reverse("prebuilds:list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _size(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")


@login_required
@domain_errors
@require_GET
def prebuild_log_download(request, pk):
    """The whole log as plain text, streamed (for a member of the prebuild's organization, with the
    session: a link cannot carry the log panel's bearer token)."""
    prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
    response = StreamingHttpResponse(logstore.raw_text(prebuild.id), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="prebuild-{prebuild.id}.log"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@never_cache
@require_POST
def prebuild_logs_token(request, pk):
    """A logs token for the log panel, for a signed-in member (session and CSRF checked here); the
    panel then reads /logs/ with this token only, never with the session cookie."""
    if not request.user.is_authenticated:
        return JsonResponse({"code": "unauthenticated", "message": "log in first"}, status=401)
    try:
        prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
        token = services.prebuild_create_logs_token(actor=request.user, prebuild=prebuild)
    except (NotFound, PermissionDenied) as error:
        return JsonResponse({"code": error.code, "message": error.message}, status=404)
    return JsonResponse({"token": token, "expiresIn": int(LOGS_TOKEN_LIFETIME.total_seconds())})

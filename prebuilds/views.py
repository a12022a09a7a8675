"""Prebuild pages: the list (filters, trigger form, bulk actions) and a prebuild's own page.

Views are thin: they read through prebuilds.queries / services, write through services, and pick
a named partial when htmx asks for a fragment.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from gitpod.v1 import prebuild_pb2 as pb

from core.errors import DomainError, InvalidArgument, NotFound, PermissionDenied
from core.pages import domain_errors, render_poll
from core.pagination import paginate
from prebuilds import services
from prebuilds.forms import PrebuildFilterForm, TriggerPrebuildForm
from prebuilds.logtokens import LIFETIME as LOGS_TOKEN_LIFETIME
from prebuilds.models import Prebuild, PrebuildPhase
from prebuilds.proto import create_prebuild_arguments
from prebuilds.queries import prebuilds_for
from projects.forms import add_domain_error, add_violations
from projects.models import EnvironmentClass, Membership, Project
from projects.services import project_get
from projects.views import current_organization_id, is_admin

ROWS_TARGET = "prebuild-rows"
FILTER_PARAMS = ("project", "environment_class", "phase", "trigger", "creator")
# The happy path through the phases, drawn as the phase timeline on a prebuild's page.
MAIN_PHASES = [
    PrebuildPhase.PENDING,
    PrebuildPhase.STARTING,
    PrebuildPhase.RUNNING,
    PrebuildPhase.STOPPING,
    PrebuildPhase.SNAPSHOTTING,
    PrebuildPhase.COMPLETED,
]


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
        if request.htmx:
            return render(request, "prebuilds/list.html#trigger-form", {"trigger_form": form})
    else:
        form = TriggerPrebuildForm(projects=projects, project=projects[0] if projects else None)
    context = _list_context(request, request.GET, organization_id, projects)
    context["trigger_form"] = form
    if request.htmx and request.htmx.target == ROWS_TARGET:
        return render_poll(request, "prebuilds/list.html#rows", context, settled=context["settled"])
    return render(request, "prebuilds/list.html", context)


def _posted_project(request):
    """The project a form names, if the user may see it (else None and the service's message)."""
    try:
        return project_get(user=request.user, project_id=request.POST.get("project", "")), None
    except NotFound as error:
        return None, error


def _trigger(request, form: TriggerPrebuildForm, project, project_error) -> Prebuild | None:
    """Create the prebuild the form asks for, as CreatePrebuild does: its request message checked by
    the descriptor's rules, then the service; the errors land next to their fields."""
    if project_error is not None:
        add_domain_error(form, project_error, TriggerPrebuildForm.FIELD_MAP)
    if not form.is_valid():
        return None
    data = form.cleaned_data
    create = pb.CreatePrebuildRequest(project_id=str(project.id), spec=pb.PrebuildSpec())
    if data["environment_class"]:
        create.environment_class_id = data["environment_class"]
    if data["timeout"] is not None:
        create.spec.timeout.FromTimedelta(data["timeout"])
    if not add_violations(form, create, TriggerPrebuildForm.FIELD_MAP):
        return None
    arguments = create_prebuild_arguments(create)
    del arguments["project_id"]
    try:
        return services.prebuild_create(actor=request.user, project=project, **arguments)
    except DomainError as error:
        add_domain_error(form, error, TriggerPrebuildForm.FIELD_MAP)
        return None


def _list_context(request, query: QueryDict, organization_id, projects) -> dict:
    classes = EnvironmentClass.objects.in_organization(organization_id)
    creators = [m.user for m in Membership.objects.filter(organization_id=organization_id).select_related("user")]
    filter_form = PrebuildFilterForm(
        query or None, projects=projects, classes=classes, creators=sorted(creators, key=lambda u: u.get_username())
    )
    queryset = prebuilds_for(request.user, filter_form.to_filter()).filter(organization_id=organization_id)
    # The polled URL carries the filters and the page, never the selection (that comes along
    # separately with hx-include, so ticking boxes survives a refresh).
    params = QueryDict(mutable=True)
    for name in (*FILTER_PARAMS, "page"):
        if query.get(name):
            params[name] = query[name]
    # A page token belongs to this organization's list with these filters.
    scope = f"prebuilds-page:{organization_id}?{_without_page(params)}"
    page_error = ""
    try:
        page = paginate(queryset, scope=scope, token=query.get("page", ""))
    except InvalidArgument as error:
        page_error, page = error.message, paginate(queryset, scope=scope)
    list_url = reverse("prebuilds:list")
    next_params = params.copy()
    if page.next_token:
        next_params["page"] = page.next_token
    return {
        "filter_form": filter_form,
        "page": page,
        "page_error": page_error,
        "poll_url": f"{list_url}?{params.urlencode()}" if params else list_url,
        "next_url": f"{list_url}?{next_params.urlencode()}" if page.next_token else "",
        "first_url": list_url + (f"?{_without_page(params)}" if _without_page(params) else ""),
        "is_first_page": not query.get("page"),
        "selected": set(query.getlist("selected")),
        "settled": all(p.is_terminal for p in page.items),
        "can_delete": is_admin(request, organization_id),
    }


def _without_page(params: QueryDict) -> str:
    params = params.copy()
    params.pop("page", None)
    return params.urlencode()


@login_required
@require_GET
def trigger_classes(request):
    """The trigger form's class select for the chosen project (htmx swaps it in on change)."""
    organization_id = current_organization_id(request)
    projects = list(Project.objects.alive().filter(organization_id=organization_id))
    try:
        project = project_get(user=request.user, project_id=request.GET.get("project", ""))
    except NotFound:
        project = None
    form = TriggerPrebuildForm(projects=projects, project=project)
    return render(request, "prebuilds/list.html#class-select", {"trigger_form": form})


@login_required
@require_POST
def prebuild_bulk(request):
    """Cancel or delete the selected prebuilds, one service call each; refusals become messages."""
    action = request.POST.get("action")
    ids = request.POST.getlist("selected")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("prebuilds:list")
    if action not in ("cancel", "delete"):
        messages.error(request, "Choose Cancel selected or Delete selected.")
    elif not ids:
        messages.info(request, "Select at least one prebuild first.")
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
    return render_poll(request, "prebuilds/list.html#rows", context, settled=context["settled"])


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
    previous = (
        Prebuild.objects.filter(
            project_id=prebuild.project_id,
            environment_class_id=prebuild.environment_class_id,
            phase=PrebuildPhase.COMPLETED,
            created_at__lt=prebuild.created_at,
        )
        .order_by("-created_at")
        .first()
    )
    previous_steps = list(previous.steps.all()) if previous else []
    return {
        "prebuild": prebuild,
        "previous": previous,
        "timeline": _timeline(steps, previous_steps),
        "phases": _phase_path(prebuild),
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


def _phase_path(prebuild: Prebuild) -> list[dict]:
    """The happy path with this prebuild's place on it; a run that left it (failed, cancelled,
    deleting) ends the path with the phase it is in."""
    phase = prebuild.phase
    on_path = phase in MAIN_PHASES
    current_index = MAIN_PHASES.index(phase) if on_path else None
    path = []
    for index, step in enumerate(MAIN_PHASES):
        if on_path:
            state = "done" if index < current_index else ("current" if index == current_index else "todo")
        else:
            state = "todo"
        path.append({"phase": step, "label": step.label, "state": state})
    if not on_path:
        # Mark what happened before it left the path, as far as the timestamps tell.
        started = prebuild.started_at is not None
        for item in path:
            if item["phase"] == PrebuildPhase.PENDING or (started and item["phase"] == PrebuildPhase.STARTING):
                item["state"] = "done"
        path.append({"phase": phase, "label": prebuild.get_phase_display(), "state": "current"})
    if phase == PrebuildPhase.COMPLETED:
        path[-1]["state"] = "done"
    return path


@login_required
@domain_errors
@require_POST
def prebuild_cancel(request, pk):
    prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
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
    prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
    services.prebuild_delete(actor=request.user, prebuild=prebuild)
    messages.success(request, "The prebuild is being deleted.")
    url = reverse("prebuilds:list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


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

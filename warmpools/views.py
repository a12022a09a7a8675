"""Warm pool pages: the list with the create form, a pool's page with resize, delete, and the
environments created from it."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from gitpod.v1 import prebuild_pb2 as pb

from core import words
from core.errors import DomainError, NotFound, PermissionDenied
from core.pages import Confirmation, ask, confirmed, domain_errors, render_poll, unchanged, version_of
from projects.forms import add_domain_error, add_violations
from projects.models import Project
from projects.services import project_get
from projects.views import current_organization_id, is_admin
from warmpools import services
from warmpools.forms import WarmPoolCreateForm, WarmPoolResizeForm
from warmpools.health import diagnose
from warmpools.metrics import claim_latency_p95_by_pool, pool_metrics
from warmpools.models import Environment, EnvironmentPhase, WarmPool, WarmPoolPhase
from warmpools.proto import size_arguments, with_sizes
from warmpools.queries import can_enter, pool_environments, warm_pools_for

ROWS_TARGET = "pool-rows"
STATUS_TARGET = "pool-status"
# How many of a pool's environments its page lists, newest first.
RECENT_ENVIRONMENTS = 20
# A claim takes an instance at once, but the reconciler reports the pool's new counts (and the
# backfilled instance) only after its next pass on the runner: until then a pool that looks
# settled is not, so its page keeps refreshing for a little while after each claim.
BACKFILL_GRACE = timedelta(seconds=15)


def is_settled(pool: WarmPool) -> bool:
    """Nothing left to converge: ready, not being deleted, its target within the sizes asked for,
    that many instances running and the rest up to max_size staged (what a reconciler pass leaves).
    Anything else will change by itself (a first snapshot, provisioning after a resize, draining),
    so its page keeps refreshing."""
    return (
        pool.phase == WarmPoolPhase.READY
        and pool.desired_phase != WarmPoolPhase.DELETED
        and pool.min_size <= pool.status_desired_size <= pool.max_size
        and pool.running_instances == pool.status_desired_size
        and pool.stopped_instances == pool.max_size - pool.status_desired_size
    )


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def pool_list(request):
    organization_id = current_organization_id(request)
    projects = list(Project.objects.alive().filter(organization_id=organization_id))
    can_create = is_admin(request, organization_id)
    if request.method == "POST":
        try:
            project, project_error = project_get(user=request.user, project_id=request.POST.get("project", "")), None
        except NotFound as error:
            project, project_error = None, error
        form = WarmPoolCreateForm(request.POST, projects=projects, project=project)
        pool = _create(request, form, project, project_error)
        if pool is not None:
            messages.success(request, "Warm pool created.")
            url = reverse("warmpools:detail", args=[pool.id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if request.htmx:
            return render(request, "warmpools/list.html#create-form", {"create_form": form})
    else:
        form = WarmPoolCreateForm(projects=projects, project=projects[0] if projects else None)
    pools = list(warm_pools_for(request.user).filter(organization_id=organization_id).order_by("project__name"))
    # The rows change with a pool's spec or status, its counters, or a pool coming or going; the
    # list refreshes while it is open, and an unchanged one costs this one query and a 204.
    rows_version = version_of(
        [
            (p.id, p.spec_version, p.status_version, p.hits, p.misses, p.running_instances, p.stopped_instances)
            for p in pools
        ]
    )
    if request.htmx and request.htmx.target == ROWS_TARGET and (answer := unchanged(request, rows_version)):
        return answer
    # One query for the p95 of every pool shown, not one per row.
    p95 = claim_latency_p95_by_pool(pool.id for pool in pools)
    context = {
        "pools": pools,
        "rows": [(pool, p95.get(pool.id), diagnose(pool)) for pool in pools],
        "create_form": form if can_create else None,
        "rows_version": rows_version,
    }
    if request.htmx and request.htmx.target == ROWS_TARGET:
        return render(request, "warmpools/list.html#rows", context)
    return render(request, "warmpools/list.html", context)


def _create(request, form: WarmPoolCreateForm, project, project_error) -> WarmPool | None:
    """Create the pool the form asks for, as CreateWarmPool does: its request message checked by the
    descriptor's rules, then the service; the errors land next to their fields."""
    if project_error is not None:
        add_domain_error(form, project_error, WarmPoolCreateForm.FIELD_MAP)
    valid = form.is_valid()
    data = form.cleaned_data
    # The request is checked even when a field did not parse, with what did: every error at once
    # (a field that already has one keeps it).
    create = with_sizes(
        pb.CreateWarmPoolRequest(
            project_id=str(project.id) if project else "", environment_class_id=data.get("environment_class") or ""
        ),
        min_size=data.get("min_size"),
        max_size=data.get("max_size"),
    )
    if not add_violations(form, create, WarmPoolCreateForm.FIELD_MAP):
        return None
    if not valid:
        return None
    try:
        return services.warm_pool_create(
            actor=request.user,
            project=project,
            environment_class_id=create.environment_class_id,
            **size_arguments(create),
        )
    except PermissionDenied:
        raise
    except DomainError as error:
        add_domain_error(form, error, WarmPoolCreateForm.FIELD_MAP)
        return None


@login_required
@require_GET
def pool_classes(request):
    """The create form's class select for the chosen project (htmx swaps it in on change)."""
    projects = list(Project.objects.alive().filter(organization_id=current_organization_id(request)))
    try:
        project = project_get(user=request.user, project_id=request.GET.get("project", ""))
    except NotFound:
        project = None
    form = WarmPoolCreateForm(projects=projects, project=project)
    return render(request, "warmpools/list.html#class-select", {"create_form": form})


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def pool_detail(request, pk):
    try:
        pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    except NotFound:
        if request.htmx and request.method == "GET":
            # Polled while it was being deleted: say so, and stop polling.
            return render_poll(request, "warmpools/detail.html#gone", {}, settled=True)
        raise
    can_edit = is_admin(request, pool.organization_id)
    resized = False
    if request.method == "POST":
        form = WarmPoolResizeForm(request.POST)
        valid = form.is_valid()
        # As UpdateWarmPool: the request message checked by the descriptor's rules first (with
        # whatever parsed, so that every error shows at once).
        update = with_sizes(
            pb.UpdateWarmPoolRequest(warm_pool_id=str(pool.id)),
            min_size=form.cleaned_data.get("min_size"),
            max_size=form.cleaned_data.get("max_size"),
        )
        if not add_violations(form, update, WarmPoolResizeForm.FIELD_MAP) or not valid:
            update = None
        if update is not None:
            try:
                pool = services.warm_pool_update(actor=request.user, pool=pool, **size_arguments(update))
                resized = True
            except (NotFound, PermissionDenied):
                raise
            except DomainError as error:
                add_domain_error(form, error, WarmPoolResizeForm.FIELD_MAP)
        if resized and not request.htmx:
            messages.success(request, "Warm pool resized.")
            return redirect("warmpools:detail", pk=pool.pk)
    if request.method == "GET" or resized:
        form = WarmPoolResizeForm(initial={"min_size": pool.min_size, "max_size": pool.max_size})
    context = {
        **_status_context(pool),
        "resize_form": form,
        "can_edit": can_edit,
        "resized": resized,
    }
    if request.htmx and request.method == "POST":
        # The form with its result, and the status (gauge and sizes) out of band.
        return render(request, "warmpools/detail.html#resize-result", context)
    if request.htmx and request.htmx.target == STATUS_TARGET:
        return render_poll(request, "warmpools/detail.html#status", context, settled=context["settled"])
    context.update(_environments_context(request, pool))
    context["can_create_environment"] = pool.desired_phase != WarmPoolPhase.DELETED
    # After a create without JavaScript (a redirect here), the result area shows that environment.
    context["environment"] = _shown_environment(request, pool, request.GET.get("environment"))
    context["can_enter_environment"] = context["environment"] is not None and can_enter(
        request.user, context["environment"]
    )
    context["terminal_idle_minutes"] = max(1, settings.TERMINAL_IDLE_TIMEOUT_SECONDS // 60)
    return render(request, "warmpools/detail.html", context)


def _status_context(pool: WarmPool, *, just_claimed: bool = False) -> dict:
    """What the status card shows: the pool, its metrics, and whether it can still change."""
    recently_claimed = (
        just_claimed or Environment.objects.filter(pool=pool, created_at__gte=timezone.now() - BACKFILL_GRACE).exists()
    )
    return {
        "pool": pool,
        "metrics": pool_metrics(pool),
        "diagnosis": diagnose(pool),
        "settled": is_settled(pool) and not recently_claimed,
    }


def _environments_context(request, pool: WarmPool) -> dict:
    recent = pool_environments(request.user, pool, limit=RECENT_ENVIRONMENTS)
    return {
        "pool": pool,
        "environments": recent,
        # Its creator or an admin may delete an environment (the service refuses anyone else).
        "can_delete_any_environment": is_admin(request, pool.organization_id),
        # Creating and deleting finish on the runner: the list refreshes until neither is left.
        "environments_settled": all(e.phase in (EnvironmentPhase.READY, EnvironmentPhase.FAILED) for e in recent),
    }


def _shown_environment(request, pool: WarmPool, environment_id) -> Environment | None:
    if not environment_id:
        return None
    try:
        environment = services.environment_get(user=request.user, environment_id=environment_id)
    except NotFound:
        return None  # a stale link: show the page without a result rather than a 404
    return environment if environment.pool_id == pool.id else None


def _environment_of_pool(request, pool: WarmPool, environment_id) -> Environment:
    environment = services.environment_get(user=request.user, environment_id=environment_id)
    if environment.pool_id != pool.id:
        raise NotFound(f"environment {environment_id} not found")
    return environment


def _detail_url(pool: WarmPool, environment: Environment | None = None) -> str:
    url = reverse("warmpools:detail", args=[pool.id])
    return f"{url}?environment={environment.id}" if environment is not None else url


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def environment_list(request, pk):
    """GET: the pool's recent environments (the list polls this while one is changing).
    POST: create an environment of the pool's project and class (any member may): the service
    takes a ready instance from the pool if there is one, else restores or builds on the runner."""
    pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    if request.method == "GET":
        if not request.htmx:
            return redirect(_detail_url(pool))
        context = _environments_context(request, pool)
        return render_poll(
            request, "warmpools/detail.html#environment-list", context, settled=context["environments_settled"]
        )
    try:
        environment = services.environment_create(
            actor=request.user, project=pool.project, environment_class_id=pool.environment_class_id
        )
    except (NotFound, PermissionDenied):
        raise
    except DomainError as error:
        if not request.htmx:
            messages.error(request, error.message)
            return redirect(_detail_url(pool))
        return render(request, "warmpools/detail.html#environment-error", {"message": error.message})
    if not request.htmx:
        return redirect(_detail_url(pool, environment))
    # Hits, misses and instance counts changed: the status card comes along out of band, and
    # polls again while the reconciler backfills the instance just handed out.
    pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    context = {
        **_status_context(pool, just_claimed=True),
        **_environments_context(request, pool),
        "environment": environment,
    }
    return render(request, "warmpools/detail.html#environment-created", context)


@login_required
@domain_errors
@require_GET
def environment_result(request, pk, environment_id):
    """The result area for one environment: polled every second while it is being restored or
    built on the runner, and answered with 286 once it is ready or failed."""
    pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    environment = _environment_of_pool(request, pool, environment_id)
    if not request.htmx:
        return redirect(_detail_url(pool, environment))
    # A container environment stays polled until postCreateCommand and postStartCommand finished.
    settled = environment.phase != EnvironmentPhase.CREATING and not (
        environment.phase == EnvironmentPhase.READY and environment.container_name and not environment.lifecycle_done_at
    )
    return render_poll(
        request,
        "warmpools/detail.html#environment-outcome",
        {"pool": pool, "environment": environment},
        settled=settled,
    )


@login_required
@domain_errors
@require_POST
def environment_delete(request, pk, environment_id):
    pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    environment = _environment_of_pool(request, pool, environment_id)
    if not (is_admin(request, pool.organization_id) or environment.creator_id == request.user.pk):
        # Asked before the question, so that nobody confirms what would be refused (the service
        # decides again).
        raise PermissionDenied("only its creator or an organization admin may delete an environment")
    if not confirmed(request):
        short = str(environment.id)[:8]
        return ask(
            request,
            Confirmation(
                title=f"Delete environment {short}?",
                action=reverse("warmpools:environment-delete", args=[pool.id, environment.id]),
                button="Delete environment",
                items=[
                    f"Environment {short} of {pool.project.name} on {pool.environment_class.display_name}, "
                    f"from {environment.get_source_display().lower()}, created {words.absolute(environment.created_at)}"
                ],
                consequence="Its workspace on the runner is removed, with anything written in it.",
                back=_detail_url(pool),
                target="#pool-environments",
            ),
        )
    services.environment_delete(actor=request.user, environment=environment)
    if not request.htmx:
        messages.success(request, "The environment is being deleted.")
        return redirect(_detail_url(pool))
    return render(request, "warmpools/detail.html#environment-list", _environments_context(request, pool))


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def pool_delete(request, pk):
    """GET asks for confirmation (a page of its own, so it works without JavaScript); POST deletes."""
    pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
    if request.method == "POST":
        services.warm_pool_delete(actor=request.user, pool=pool)
        messages.success(request, "The warm pool is being deleted: its instances drain in the background.")
        url = reverse("warmpools:list")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    if not is_admin(request, pool.organization_id):
        raise PermissionDenied("only organization admins may delete warm pools")
    return render(request, "warmpools/delete.html", {"pool": pool})

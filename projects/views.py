"""Project pages, and the request helpers every page shares (current organization, roles), kept
here because every other room may import this one.

The project page shows the project's prebuilds and pools through its reverse relations
(`project.prebuilds`, `project.warm_pools`), so this room still imports nothing above it.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import DomainError, NotFound, PermissionDenied
from core.pages import domain_errors
from projects import services
from projects.forms import ProjectConfigurationForm, add_domain_error
from projects.models import EnvironmentClass, Membership, Project, Role

SESSION_ORGANIZATION = "organization_id"


# --- request helpers shared by the pages ----------------------------------------------------------


def memberships(request) -> list[Membership]:
    """The user's memberships, by organization name: read once per request, in the same query as
    the roles the services check (User.organization_memberships)."""
    return request.user.organization_memberships


def current_membership(request) -> Membership | None:
    """The membership of the organization chosen in the switcher, else the first one by name."""
    all_memberships = memberships(request)
    chosen = request.session.get(SESSION_ORGANIZATION)
    for membership in all_memberships:
        if str(membership.organization_id) == chosen:
            return membership
    return all_memberships[0] if all_memberships else None


def current_organization(request):
    membership = current_membership(request)
    return membership.organization if membership else None


def current_organization_id(request):
    """For filtering lists: None matches nothing, so a user in no organization sees empty lists."""
    membership = current_membership(request)
    return membership.organization_id if membership else None


def is_admin(request, organization_id) -> bool:
    """Whether to show admin-only buttons. The services check again on every write."""
    return request.user.organization_roles.get(organization_id) == Role.ADMIN


# --- project pages --------------------------------------------------------------------------------


@login_required
def project_list(request):
    projects = (
        Project.objects.alive()
        .filter(organization_id=current_organization_id(request))
        .select_related("default_environment_class", "executor")
        .prefetch_related("prebuild_environment_classes")
    )
    return render(request, "projects/list.html", {"projects": projects})


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def project_detail(request, pk):
    project = services.project_get(user=request.user, project_id=pk)
    classes = EnvironmentClass.objects.in_organization(project.organization_id).select_related("runner")
    members = [
        m.user for m in Membership.objects.filter(organization_id=project.organization_id).select_related("user")
    ]
    form_kwargs = {"classes": classes, "members": sorted(members, key=lambda u: u.get_username())}
    saved = False
    if request.method == "POST":
        form = ProjectConfigurationForm(request.POST, **form_kwargs)
        if form.is_valid():
            try:
                project = services.project_update(actor=request.user, project=project, **form.service_arguments())
                saved = True
            except (NotFound, PermissionDenied):
                raise
            except DomainError as error:
                add_domain_error(form, error, ProjectConfigurationForm.FIELD_MAP)
        if saved and not request.htmx:
            messages.success(request, "Prebuild configuration saved.")
            return redirect("projects:detail", pk=project.pk)
    if request.method == "GET" or saved:
        initial = ProjectConfigurationForm.initial_for(
            project, project.prebuild_environment_classes.values_list("id", flat=True)
        )
        form = ProjectConfigurationForm(initial=initial, **form_kwargs)
    context = {
        "project": project,
        "form": form,
        "can_edit": is_admin(request, project.organization_id),
        "saved": saved,
        "enabled_classes": list(project.prebuild_environment_classes.all()),
        # Oldest first, so the chart reads left to right in time.
        "recent_prebuilds": list(
            reversed(project.prebuilds.not_deleted().select_related("environment_class").order_by("-created_at")[:30])
        ),
        "pools": project.warm_pools.not_deleted().select_related("environment_class", "snapshot"),
    }
    if request.htmx and request.method == "POST":
        return render(request, "projects/detail.html#configuration", context)
    return render(request, "projects/detail.html", context)


@login_required
@never_cache
@domain_errors
@require_POST
def project_webhook_secret(request, pk):
    """Rotate the project's webhook secret and show the new one in this response, once: it is not
    kept in the session or anywhere else, and no page shows it again (rotate again if it is lost)."""
    project = services.project_get(user=request.user, project_id=pk)
    secret = services.project_rotate_webhook_secret(actor=request.user, project=project)
    return render(request, "projects/webhook_secret.html", {"project": project, "secret": secret})

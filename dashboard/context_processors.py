"""What the layout needs on every page: the organization switcher and the active-prebuild counter.

Values are callables, which templates call only when they use them, so a fragment that shows
neither costs no query.
"""

from prebuilds.models import Prebuild, PrebuildPhase
from projects.views import current_membership, current_organization_id, memberships
from warmpools.models import WarmPoolPhase


def dashboard(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def active_prebuilds():
        return Prebuild.objects.active_in(current_organization_id(request)).count()

    return {
        "organization_memberships": lambda: memberships(request),
        "current_membership": lambda: current_membership(request),
        "active_prebuilds": active_prebuilds,
    }


def phases(request):
    """The phase enums, so that templates test a phase by its value
    (`prebuild.phase == PrebuildPhase.SNAPSHOTTING`), never by its display label. Django's choices
    classes are not called by templates, and `PrebuildPhase.SNAPSHOTTING` resolves by member name."""
    return {"PrebuildPhase": PrebuildPhase, "WarmPoolPhase": WarmPoolPhase}

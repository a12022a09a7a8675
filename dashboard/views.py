from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import render

from prebuilds.models import Prebuild, PrebuildPhase
from warmpools.models import WarmPool, WarmPoolPhase


@login_required
def overview(request):
    prebuilds = Prebuild.objects.visible_to(request.user)
    by_phase = {row["phase"]: row["n"] for row in prebuilds.values("phase").annotate(n=Count("id")).order_by()}
    pools = WarmPool.objects.visible_to(request.user)
    pools_by_phase = {row["phase"]: row["n"] for row in pools.values("phase").annotate(n=Count("id")).order_by()}
    context = {
        "prebuild_phases": [(phase.label, by_phase.get(phase.value, 0)) for phase in PrebuildPhase if phase.value],
        "pool_phases": [(phase.label, pools_by_phase.get(phase.value, 0)) for phase in WarmPoolPhase if phase.value],
        "latest_failures": prebuilds.filter(phase=PrebuildPhase.FAILED).for_list()[:5],
    }
    return render(request, "dashboard/overview.html", context)

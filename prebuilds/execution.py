"""Runs a prebuild on this worker. Filled in by the runner work; until then, nothing pretends."""

from prebuilds import services
from prebuilds.models import Prebuild, PrebuildPhase


def execute(prebuild_id: str) -> None:
    raise NotImplementedError("prebuild execution arrives with the runner")


def delete(prebuild_id: str) -> None:
    prebuild = Prebuild.objects.filter(id=prebuild_id, phase=PrebuildPhase.DELETING).first()
    if prebuild is not None:
        services.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.DELETED)

"""Prepare this host for the container backend: check podman and the Dev Containers CLI, and build
the base image from Debian packages once (mmdebstrap; 20-40 s, then kept). `make run` runs it
before serving; on a host without podman it says what is missing and that runners keep to the
bubblewrap backend."""

from django.conf import settings
from django.core.management.base import BaseCommand

from projects.runner_bridge import container_host_problem, podman
from runner.errors import SandboxError
from runner.images import BASE_IMAGE, build_base_image, image_exists


class Command(BaseCommand):
    help = "Check the container backend's tools and build its base image from Debian packages (once)."

    def handle(self, *args, **options):
        problem = container_host_problem()
        if problem:
            self.stdout.write(
                self.style.WARNING(
                    f"Container backend unavailable on this host: {problem}.\n"
                    "Runners use the bubblewrap backend: lifecycle commands run in a sandbox on this host's own "
                    "userland, and devcontainer.json's image, build and features are not honoured."
                )
            )
            return
        engine = podman()
        engine.ensure()
        if image_exists(engine, BASE_IMAGE):
            self.stdout.write(f"Container backend ready; base image {BASE_IMAGE} present.")
            return
        self.stdout.write(f"Building the base image {BASE_IMAGE} from Debian packages (once, about half a minute)…")
        try:
            build_base_image(engine, settings.CONTAINERS_DIR / "images")
        except SandboxError as exc:
            self.stderr.write(self.style.ERROR(f"Could not build the base image: {exc}"))
            return
        self.stdout.write(self.style.SUCCESS(f"Container backend ready; base image {BASE_IMAGE} built."))

"""`make run`'s entry point: the web server, a Celery worker for every runner queue and beat, as
child processes of this one, all stopped together by one Ctrl-C (or when any of them dies)."""

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from projects.models import Runner, RunnerBackend
from projects.runner_bridge import container_host_problem, embedded_registry


class Command(BaseCommand):
    help = "Serve the site with a Celery worker and beat; Ctrl-C stops everything."

    def describe_backends(self) -> list[str] | None:
        """Say on start-up which backend each runner uses and what that means here; the embedded
        registry's command line when a podman runner needs it."""
        problem = container_host_problem()
        podman_runners = Runner.objects.filter(backend=RunnerBackend.PODMAN).exists()
        for runner in Runner.objects.order_by("name"):
            self.stdout.write(f"Runner {runner.name} ({runner.queue}): {runner.get_backend_display()}")
        if problem:
            self.stdout.write(
                self.style.WARNING(
                    f"The container backend is unavailable on this host ({problem}). Runners on the bubblewrap "
                    "backend run lifecycle commands in a sandbox on this host's userland: devcontainer.json's "
                    "image, build and features are not honoured."
                    + (" Prebuilds on podman runners will fail until this is fixed." if podman_runners else "")
                )
            )
            return None
        registry = embedded_registry()
        if registry is None or not podman_runners:
            return None
        if shutil.which("docker-registry") is None:
            self.stdout.write(
                self.style.WARNING(
                    "docker-registry is not installed (apt-get install docker-registry): podman runners cannot "
                    "store snapshots until it is, or until CONTAINER_REGISTRY names another registry."
                )
            )
            return None
        self.stdout.write(f"Snapshot registry (docker-registry) on {registry.address}, stored in {registry.root}")
        # Through a command of ours, which also runs the registry's periodic garbage collection.
        return [sys.executable, str(settings.BASE_DIR / "manage.py"), "embedded_registry"]

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--concurrency", type=int, default=2, help="prebuilds run at once by the worker")
        parser.add_argument("--no-worker", action="store_true", help="serve the web only")

    def handle(self, *args, port, host, concurrency, no_worker, **options):
        queues = ["control", *Runner.objects.order_by("queue").values_list("queue", flat=True)]
        python = sys.executable
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "dashboard.asgi:application",
                "--bind",
                f"{host}:{port}",
                # ASGI (dashboard/asgi.py): pages, REST, Connect and the terminal's websocket.
                "--worker-class",
                "uvicorn_worker.UvicornWorker",
                "--workers",
                "4",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
        }
        if not no_worker:
            commands["worker"] = [
                python,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "worker",
                "--queues",
                ",".join(queues),
                "--concurrency",
                str(concurrency),
                "--prefetch-multiplier",
                "1",
                "--loglevel",
                "INFO",
                "--hostname",
                f"local@{os.uname().nodename}",
            ]
            commands["beat"] = [
                python,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(settings.DATA_DIR / "celerybeat-schedule"),
            ]
        registry = self.describe_backends()
        if registry is not None:
            commands["registry"] = registry
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, argv in commands.items():
            # Each child gets its own process group, so a Ctrl-C reaches them only through us and
            # they stop in order instead of racing each other.
            children[name] = subprocess.Popen(argv, start_new_session=True)
        self.stdout.write(self.style.SUCCESS(f"Serving on http://{host}:{port}/ (queues: {', '.join(queues)})"))
        self.stdout.write("Press Ctrl-C to stop the web server, the worker and beat.")
        exit_code = 0
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with status {child.returncode}; stopping the rest")
                        exit_code = 1
                        stopping = True
                time.sleep(0.3)
        finally:
            for child in children.values():
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()
        sys.exit(exit_code)

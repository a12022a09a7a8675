"""The embedded snapshot registry as `serve` runs it: Debian's docker-registry as a child of this
process, which also runs its garbage collection when asked (SIGUSR1, sent by the beat task
prebuilds.tasks.collect_registry_garbage through projects.runner_bridge), because only the process
that runs the registry can stop it for the collection and start it again."""

import os
import signal
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from projects.runner_bridge import embedded_registry
from runner.errors import SandboxError


class Command(BaseCommand):
    help = "Run the embedded snapshot registry; SIGUSR1 collects its garbage."

    def handle(self, *args, **options):
        registry = embedded_registry()
        if registry is None:
            raise CommandError("CONTAINER_REGISTRY names an external registry: there is no embedded one to run")
        requested = False
        stopping = False

        def collect(*_):
            nonlocal requested
            requested = True

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGUSR1, collect)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        registry.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        registry.start()
        registry.supervisor_pid_file.write_text(str(os.getpid()))
        try:
            while not stopping:
                if requested:
                    requested = False
                    try:
                        self.stdout.write(f"Registry garbage collection: {registry.collect_garbage()}")
                    except SandboxError as exc:
                        self.stderr.write(str(exc))
                if registry.process is None or registry.process.poll() is not None:
                    self.stderr.write("docker-registry exited")
                    sys.exit(1)
                time.sleep(0.3)
        finally:
            registry.supervisor_pid_file.unlink(missing_ok=True)
            registry.stop()

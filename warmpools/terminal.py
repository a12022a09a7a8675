"""The environment terminal's websocket: a shell in the environment's container (runner/terminal.py),
for its creator and the organization's admins only (queries.can_enter).

The wire: binary frames both ways carry the terminal's bytes; text frames are JSON control messages.
From the page: {"type": "resize", "rows": R, "cols": C}. To the page: {"type": "exit", "code": N}
when the shell ended, {"type": "idle", "seconds": S} when the session timed out; the socket closes
after either. A refused handshake (not signed in, not allowed, no such environment, no container)
is closed before it is accepted: the browser sees the upgrade answered 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from projects.runner_bridge import podman
from runner.terminal import ContainerShell
from warmpools.models import Environment, EnvironmentPhase
from warmpools.queries import can_enter

# Close codes of our own (4000-4999 is the application's range).
CLOSE_ENDED = 4000
CLOSE_IDLE = 4001


@database_sync_to_async
def enterable_environment(user, environment_id) -> Environment | None:
    environment = Environment.objects.filter(id=environment_id).first()
    if environment is None or not environment.container_name or environment.phase != EnvironmentPhase.READY:
        return None
    return environment if can_enter(user, environment) else None


class TerminalConsumer(AsyncWebsocketConsumer):
    shell: ContainerShell | None = None
    pump: asyncio.Task | None = None
    watchdog: asyncio.Task | None = None

    async def connect(self):
        environment = await enterable_environment(
            self.scope["user"], self.scope["url_route"]["kwargs"]["environment_id"]
        )
        if environment is None:
            await self.close()
            return
        self.last_input = time.monotonic()
        self.shell = ContainerShell(
            podman(),
            container=environment.container_name,
            user=environment.remote_user,
            workdir=environment.workspace_folder,
        )
        await self.accept()
        self.shell.start()
        self.pump = asyncio.create_task(self._pump())
        self.watchdog = asyncio.create_task(self._watch_idle())

    async def _pump(self):
        """The shell's output to the page; at its end the exit code, then the socket closes."""
        while True:
            data = await self.shell.read()
            if not data:
                break
            await self.send(bytes_data=data)
        code = await self.shell.exit_code()
        await self.send(text_data=json.dumps({"type": "exit", "code": code}))
        await self.close(code=CLOSE_ENDED)

    async def _watch_idle(self):
        limit = settings.TERMINAL_IDLE_TIMEOUT_SECONDS
        while True:
            left = self.last_input + limit - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(left, 5))
        # The session's processes are gone before the page is told it ended.
        await self._end()
        await self.send(text_data=json.dumps({"type": "idle", "seconds": limit}))
        await self.close(code=CLOSE_IDLE)

    async def receive(self, text_data=None, bytes_data=None):
        if self.shell is None:
            return
        if bytes_data is not None:
            self.last_input = time.monotonic()
            self.shell.write(bytes_data)
            return
        try:
            message = json.loads(text_data or "")
            if message.get("type") == "resize":
                self.shell.resize(int(message["rows"]), int(message["cols"]))
            elif message.get("type") == "input":
                self.last_input = time.monotonic()
                self.shell.write(str(message["data"]).encode())
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # a malformed control message is ignored, the session goes on

    async def disconnect(self, code):
        await self._end()

    async def _end(self):
        current = asyncio.current_task()
        for task in (self.pump, self.watchdog):
            if task is not None and task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.shell is not None:
            shell, self.shell = self.shell, None
            await shell.close()

"""Structured logs: one JSON object per line (when PRODUCTION=1 or LOG_FORMAT=json), and the id of
the prebuild, pool or environment a line is about on every such line.

Two sources for that id: the log call's own `extra={"prebuild_id": ...}`, and a context variable
set while a Celery task about one object runs, so that lines logged by code that knows nothing of
the task (the runner, Celery itself, libraries) carry the id too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from datetime import UTC, datetime

from celery.signals import task_postrun, task_prerun

# The keys a line may be "about"; a task sets at most one of them.
CONTEXT_KEYS = ("prebuild_id", "pool_id", "environment_id", "runner_id")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_context", default=None)

# Tasks whose first argument is the id of the object they work on.
_TASK_SUBJECT = {
    "prebuilds.tasks.run_prebuild": "prebuild_id",
    "prebuilds.tasks.delete_prebuild": "prebuild_id",
    "prebuilds.tasks.send_failure_webhook": "prebuild_id",
    "warmpools.tasks.reconcile_pool": "pool_id",
    "warmpools.tasks.reconcile_runner": "runner_id",
    "warmpools.tasks.build_environment": "environment_id",
    "warmpools.tasks.remove_environment": "environment_id",
}

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def bind(**values: str) -> contextvars.Token:
    """Attach values (e.g. prebuild_id=...) to every line logged in this context until reset."""
    return _context.set({**(_context.get() or {}), **{k: str(v) for k, v in values.items()}})


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (an explicit `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Celery runs one task at a time per worker process (prefork) or thread; the signals fire in that
# process or thread, so the context variable holds the running task's subject.
_tokens: dict[str, contextvars.Token] = {}


@task_prerun.connect(weak=False)
def _bind_task_subject(task_id=None, task=None, args=None, kwargs=None, **_):
    key = _TASK_SUBJECT.get(getattr(task, "name", ""))
    subject = (args or [None])[0] if key else None
    if key and subject:
        _tokens[task_id] = bind(**{key: subject})


@task_postrun.connect(weak=False)
def _unbind_task_subject(task_id=None, **_):
    token = _tokens.pop(task_id, None)
    if token is not None:
        # Set in another context (a thread pool moved the task): nothing to undo here.
        with contextlib.suppress(ValueError):
            unbind(token)

"""A mutation run over the house's rules: break one rule at a time, run the tests that should
notice, and report which mutants they killed.

Each mutant replaces one small, distinctive snippet of one file (it must occur exactly once) and
names the tests that must fail with it applied. The file is always restored: from a backup copy
kept in .mutation-backup/ (in a finally block, so also on Ctrl-C or SIGTERM; and at the next start
if the run was killed outright). Tests run with `-x -q -p no:cacheprovider`, plus `--no-processes`
when none of a mutant's tests lives under tests/processes/.

    python scripts/mutation_run.py               # every mutant, after a baseline run
    python scripts/mutation_run.py --check       # only check that every snippet is found once
    python scripts/mutation_run.py --list        # list the mutants
    python scripts/mutation_run.py ID [ID ...]   # some of them
    python scripts/mutation_run.py --no-baseline # skip the unmutated run of the same tests

Exit status: 0 all killed; 1 a mutant survived; 2 a snippet is missing or not unique (the lead
re-targets it after code moves: the message names the mutant and its file); 3 the baseline
failed (the tests fail without any mutant, so a "kill" would mean nothing).

Run it with the project's interpreter, `make mutation` (or `.venv/bin/python scripts/mutation_run.py`):
the tests run under the same interpreter, from the repository root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKUP_DIR = ROOT / ".mutation-backup"
PID_FILE = ".pid"
PYTEST_OPTIONS = ["-x", "-q", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids or paths that must fail with the mutant applied
    rule: str  # the rule the mutant breaks, in one line

    @property
    def in_process(self) -> bool:
        return not any(t.startswith("tests/processes/") for t in self.tests)


def m(id, file, old, new, tests, rule) -> Mutant:
    return Mutant(id, file, old, new, tuple([tests] if isinstance(tests, str) else tests), rule)


MUTANTS = [
    # --- the six survivors of the manual run ---------------------------------------------
    m(
        "pool-max-size-20",
        "warmpools/api.py",
        "        validate(create)\n        project = project_services.project_get(",
        "        project = project_services.project_get(",
        ["tests/dashboard/test_pool_size_limit.py"],
        "a warm pool's max_size is 1 to 20 (its descriptor's rule): REST checks the request as Connect does",
    ),
    m(
        "prebuild-completed-to-running",
        "prebuilds/phases.py",
        "P.COMPLETED: frozenset({P.DELETING}),",
        "P.COMPLETED: frozenset({P.DELETING, P.RUNNING}),",
        "tests/prebuilds/test_phase_table.py",
        "a completed prebuild can only be deleted (the phase machine is the hand-written table)",
    ),
    m(
        "logs-token-one-hour",
        "prebuilds/logtokens.py",
        "LIFETIME = timedelta(hours=1)",
        "LIFETIME = timedelta(minutes=10)",
        "tests/prebuilds/test_logs_token_lifetime.py",
        "a logs token reads for one hour: accepted at 59 minutes, refused at 61",
    ),
    m(
        "retention-per-class",
        "prebuilds/maintenance.py",
        'environment_class=OuterRef("environment_class"),',
        "",
        "tests/prebuilds/test_retention_per_class.py",
        "retention keeps the newest completed prebuild of each (project, class), not of each project",
    ),
    m(
        "class-network-reaches-sandbox",
        "projects/runner_bridge.py",
        "allow_network=environment_class.allow_network,",
        "allow_network=False,",
        "tests/processes/security/test_class_network.py",
        "an environment class's allow_network decides whether its sandbox has a network",
    ),
    m(
        "staging-verifies-checksum",
        "runner/instances.py",
        "if digest.hexdigest() != expected_sha256.lower():",
        "if False:",
        "tests/warmpools/test_staging_checksum.py",
        "a pool stages no snapshot whose archive does not match its recorded sha256 (DEGRADED instead)",
    ),
    # --- phase machines and spec writes --------------------------------------------------------
    m(
        "pool-deleting-to-ready",
        "warmpools/phases.py",
        "P.DELETING: frozenset({P.DELETED}),",
        "P.DELETING: frozenset({P.DELETED, P.READY}),",
        "tests/warmpools/test_phase_table.py",
        "a warm pool being deleted only becomes DELETED",
    ),
    m(
        "cancel-twice-is-a-no-op",
        "prebuilds/services.py",
        "if current.phase in TERMINAL_PHASES or current.desired_phase in (",
        "if current.phase in TERMINAL_PHASES or current.desired_phase in () and (",
        ["tests/prebuilds/test_cancel_twice.py", "tests/dashboard/test_cancel_twice.py"],
        "cancelling a running prebuild twice writes once: spec_version stays at 2",
    ),
    m(
        "cas-version-filter",
        "core/versioning.py",
        ".filter(pk=obj.pk, **{version_field: version})",
        ".filter(pk=obj.pk)",
        "tests/core/test_stale_copies.py",
        "a write from a stale copy re-reads and decides again (compare-and-swap on the version)",
    ),
    m(
        "prebuild-claim-once",
        "prebuilds/status.py",
        "id=prebuild_id, phase=PrebuildPhase.PENDING, desired_phase=PrebuildPhase.UNSPECIFIED",
        "id=prebuild_id, desired_phase=PrebuildPhase.UNSPECIFIED",
        "tests/prebuilds/test_services.py::test_claim_happens_once",
        "a worker claims a prebuild by a conditional update on PENDING: a duplicate delivery runs nothing",
    ),
    m(
        "instance-claim-conditional",
        "warmpools/status.py",
        "PoolInstance.objects.filter(id=instance_id, state=InstanceState.RUNNING).update(",
        "PoolInstance.objects.filter(id=instance_id).update(",
        "tests/processes/warmpools/test_pools.py::test_twenty_concurrent_claims_against_a_pool_of_five",
        "an instance is handed out once: the claim is a conditional update on RUNNING",
    ),
    m(
        "status-fields-only",
        "prebuilds/status.py",
        "unknown = set(fields) - STATUS_FIELDS",
        "unknown = set()",
        "tests/prebuilds/test_services.py::test_status_writes_refuse_unknown_fields",
        "the runner side writes status fields only, never the spec",
    ),
    m(
        "rotation-never-older",
        "warmpools/services.py",
        "if existing_time and snapshot.completion_time and existing_time > snapshot.completion_time:",
        "if False:",
        "tests/warmpools/test_rotation_order.py",
        "a pool rotates onto a newer snapshot, never back onto an older one",
    ),
    # --- limits --------------------------------------------------------------------------------
    m(
        "page-size-at-most-100",
        "prebuilds/api.py",
        "        validate(list_prebuilds)\n",
        "",
        "tests/dashboard/test_rest.py::test_prebuild_list_filters_and_pages",
        "a list's page_size is 0 to 100 (PaginationRequest's rule): 101 is invalid_argument, never a page",
    ),
    m(
        "project-timeout-at-most-2h",
        "projects/services.py",
        "<= timeout <= settings.PREBUILD_MAX_TIMEOUT:",
        "<= timeout:",
        "tests/projects/test_services.py::test_project_configuration_is_validated",
        "a project's prebuild timeout is at most 2 hours",
    ),
    m(
        "project-timeout-at-least-5min",
        "projects/services.py",
        "if not settings.PROJECT_MIN_PREBUILD_TIMEOUT <= timeout",
        "if not timedelta(0) <= timeout",
        "tests/projects/test_services.py::test_project_configuration_is_validated",
        "a project's prebuild timeout is at least 5 minutes",
    ),
    m(
        "prebuild-timeout-at-most-2h",
        "prebuilds/views.py",
        "    if not add_violations(form, create, TriggerPrebuildForm.FIELD_MAP):",
        "    if False:",
        "tests/prebuilds/test_list_page.py",
        "a prebuild's spec.timeout is 5 minutes to 2 hours: the trigger form checks CreatePrebuild's rules",
    ),
    m(
        "connect-checks-each-request",
        "dashboard/connect.py",
        "            validate(request)\n",
        "",
        ["tests/dashboard/test_pool_size_limit.py", "tests/dashboard/test_connect_fidelity.py"],
        "every Connect request is checked by its descriptor's rules before its method runs",
    ),
    m(
        "timeout-to-the-nanosecond",
        "core/validation.py",
        'constraints._MSG_TYPE_URL_TO_CTOR["google.protobuf.Duration"] = _duration\n',
        "",
        "tests/core/test_validation.py::test_the_timeout_is_300s_to_7200s_to_the_nanosecond",
        "durations are compared to the nanosecond: 7200.000000001s is over 7200s",
    ),
    m(
        "enum-items-defined-only",
        "core/validation.py",
        "constraints.EnumConstraintRules = _EnumRules\n",
        "",
        "tests/core/test_validation.py::test_undefined_enum_values_are_refused_also_as_list_items",
        "each item of a repeated enum (filter.phases) must be a defined value",
    ),
    m(
        "page-token-bound-to-its-list",
        "core/pagination.py",
        "    if bound != _digest(scope):",
        "    if False:",
        "tests/core/test_pagination.py",
        "a page token is good for the method and filter it came from only",
    ),
    m(
        "chunked-bodies-read",
        "dashboard/bodies.py",
        'and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()',
        'and "gzip" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()',
        "tests/dashboard/test_chunked_bodies.py",
        "a body sent with Transfer-Encoding: chunked is read, not taken as empty",
    ),
    m(
        "pool-min-at-most-max",
        "warmpools/services.py",
        "if min_size > max_size:",
        "if min_size > max_size + 1:",
        "tests/warmpools/test_services.py::test_create_rejects_bad_sizes",
        "a pool's min_size never exceeds its max_size (an invalid_argument naming min_size)",
    ),
    m(
        "one-pool-per-pair",
        "warmpools/migrations/0001_initial.py",
        "models.UniqueConstraint(condition=models.Q(('phase', 50), _negated=True),",
        "models.UniqueConstraint(condition=models.Q(('phase', 50)),",
        "tests/warmpools/test_services.py::test_one_pool_per_pair",
        "one live warm pool per (project, class): the partial unique constraint leaves out DELETED pools only",
    ),
    # --- who may do what -----------------------------------------------------------------------
    m(
        "member-may-not-delete-project",
        "projects/services.py",
        'require_admin(actor, project.organization_id, "delete projects")',
        "require_member(actor, project.organization_id)",
        "tests/dashboard/test_authorization.py::test_rest_authorization[member-delete /api/v1/projects/{project}/]",
        "only organization admins delete projects",
    ),
    m(
        "member-may-not-delete-prebuild",
        "prebuilds/services.py",
        'require_admin(actor, prebuild.organization_id, "delete prebuilds")',
        "require_member(actor, prebuild.organization_id)",
        "tests/prebuilds/test_services.py::test_delete_needs_an_admin",
        "only organization admins delete prebuilds",
    ),
    m(
        "member-may-not-resize-pool",
        "warmpools/services.py",
        'require_admin(actor, pool.organization_id, "resize warm pools")',
        "None",
        "tests/dashboard/test_authorization.py::test_rest_authorization[member-post /api/v1/warm-pools/{pool}/resize/]",
        "only organization admins resize warm pools",
    ),
    m(
        "outsiders-see-nothing",
        "projects/services.py",
        'raise NotFound("not found")\n    return role',
        "return Role.MEMBER\n    return role",
        ["tests/prebuilds/test_services.py::test_delete_needs_an_admin", "tests/prebuilds/test_logs.py"],
        "an outsider is told not_found, and may do nothing in another organization",
    ),
    # --- tokens and signatures -----------------------------------------------------------------
    m(
        "api-token-expiry",
        "projects/models.py",
        "Q(expires_at__gt=now)",
        "Q(expires_at__isnull=False)",
        "tests/projects/test_services.py::test_a_token_expires_when_its_lifetime_has_passed_by_the_clock_it_is_given",
        "an API token is refused once its expiry has passed (database lookup)",
    ),
    m(
        "api-token-expiry-cached",
        "projects/services.py",
        "if expires_at is None or expires_at > now:",
        "if True:",
        "tests/projects/test_services.py::test_a_token_expires_when_its_lifetime_has_passed_by_the_clock_it_is_given",
        "an API token is refused once its expiry has passed, also while it is cached",
    ),
    m(
        "logs-token-names-its-prebuild",
        "prebuilds/logtokens.py",
        'payload.get("p") != str(prebuild_id)',
        'payload.get("p") is None',
        "tests/prebuilds/test_logs.py::test_a_token_for_another_prebuild_is_refused",
        "a logs token reads one prebuild's logs and no other's",
    ),
    m(
        "webhook-signature",
        "prebuilds/webhooks.py",
        "hmac.new(secret.encode(), body, hashlib.sha256)",
        'hmac.new(secret.encode(), b"", hashlib.sha256)',
        "tests/processes/security/test_webhooks.py::test_a_delivered_body_is_signed_with_its_projects_secret",
        "a webhook body is signed (HMAC-SHA256 of the raw body) with its project's secret",
    ),
    # --- what callers read ---------------------------------------------------------------------
    m(
        "prebuild-message-redaction",
        "prebuilds/status.py",
        "fields[message] = redact_paths(fields[message])",
        "fields[message] = fields[message]",
        "tests/prebuilds/test_status_redaction.py",
        "a prebuild's failure and warning messages are stored with the runner's paths named by place",
    ),
    m(
        "pool-message-redaction",
        "warmpools/status.py",
        'fields["failure_message"] = redact_paths(fields["failure_message"])',
        'fields["failure_message"] = fields["failure_message"]',
        "tests/warmpools/test_status_redaction.py",
        "a pool's failure message is stored with the runner's paths named by place",
    ),
    m(
        "log-line-redaction",
        "prebuilds/execution.py",
        "redact(text)) for step, stream, text in lines",
        "text) for step, stream, text in lines",
        "tests/processes/security/test_no_paths.py::test_a_failed_prebuild_shows_no_runner_path",
        "log lines are stored with the runner's paths named by place",
    ),
    # --- the periodic side ---------------------------------------------------------------------
    m(
        "reaper-heartbeat-timeout",
        "prebuilds/maintenance.py",
        "stale = now - settings.PREBUILD_HEARTBEAT_TIMEOUT",
        "stale = now - settings.PREBUILD_HEARTBEAT_TIMEOUT / 2",
        "tests/prebuilds/test_maintenance.py::test_reaper_leaves_live_prebuilds_alone_and_fails_silent_ones",
        "the reaper fails a prebuild only after a full heartbeat timeout of silence",
    ),
    m(
        "schedule-pause-after-three",
        "prebuilds/status.py",
        "if state.consecutive_failures >= limit and state.paused_at is None:",
        "if state.consecutive_failures > limit and state.paused_at is None:",
        "tests/prebuilds/test_maintenance.py::test_three_failed_scheduled_prebuilds_pause_the_pair_until_a_manual_success",
        "a pair's schedule pauses after SCHEDULE_PAUSE_AFTER_FAILURES consecutive scheduled failures",
    ),
    # --- repositories --------------------------------------------------------------------------
    m(
        "repository-local-roots",
        "projects/services.py",
        "if repository_local_sources().resolve(local) is None:",
        "if False:",
        "tests/processes/security/test_repository_urls.py::test_the_service_refuses_a_repository_outside_the_allowed_folders",
        "a project's local repository lies inside REPOSITORY_LOCAL_ROOTS and outside the data dir",
    ),
    m(
        "clone-rechecks-local-roots",
        "runner/checkout.py",
        "real = policy.resolve_repository(local)",
        "real = policy.resolve_repository(local) or local",
        "tests/processes/security/test_repository_urls.py::test_a_link_swapped_after_saving_is_caught_when_the_prebuild_clones",
        "the runner checks a local repository's real path again when it clones",
    ),
    # --- the house's structure (issue 12) -----------------------------------------------------
    m(
        "pool-size-rules-on-the-pages",
        "warmpools/views.py",
        "    if not add_violations(form, create, WarmPoolCreateForm.FIELD_MAP):",
        "    if False:",
        ["tests/warmpools/test_pool_pages.py", "tests/dashboard/test_request_shapes.py"],
        "the pool pages apply CreateWarmPool's rules (the descriptor's), in a person's words",
    ),
    m(
        "prebuild-sent-to-its-runner",
        "prebuilds/dispatch.py",
        "_send_on_commit(RUN_PREBUILD, prebuild.id, queue=prebuild.environment_class.runner.queue)",
        "_send_on_commit(RUN_PREBUILD, prebuild.id)",
        "tests/prebuilds/test_dispatch.py",
        "a prebuild is sent, by name, to the queue of its class's runner",
    ),
    m(
        "prebuild-task-name",
        "prebuilds/dispatch.py",
        'RUN_PREBUILD = "prebuilds.tasks.run_prebuild"',
        'RUN_PREBUILD = "prebuilds.tasks.run"',
        "tests/prebuilds/test_dispatch.py",
        "dispatch by name names a task the worker registers",
    ),
    m(
        "environment-sent-after-commit",
        "warmpools/dispatch.py",
        "transaction.on_commit(lambda: current_app.send_task(name, args=args, queue=queue))",
        "current_app.send_task(name, args=args, queue=queue)",
        "tests/warmpools/test_environments.py",
        "environment work is sent only once its transaction commits (a rollback sends nothing)",
    ),
    m(
        "environment-delete-idempotent",
        "warmpools/services.py",
        """        if current.desired_phase == EnvironmentPhase.DELETED:
            return None
        return {"desired_phase": EnvironmentPhase.DELETED}""",
        """        return {"desired_phase": EnvironmentPhase.DELETED}""",
        "tests/warmpools/test_environments.py",
        "deleting an environment twice writes its spec once (spec_version 2)",
    ),
]


# --- applying and restoring --------------------------------------------------------------------


def backup_path(relative: str) -> Path:
    return BACKUP_DIR / relative


def another_run() -> int | None:
    """The pid of a live run of this tool in the same checkout (its mutant is applied right now)."""
    try:
        pid = int((BACKUP_DIR / PID_FILE).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def restore_leftovers() -> None:
    """A previous run killed outright (SIGKILL, power) leaves its backup: put the file back."""
    if not BACKUP_DIR.exists():
        return
    for backup in sorted(p for p in BACKUP_DIR.rglob("*") if p.is_file() and p.name != PID_FILE):
        target = ROOT / backup.relative_to(BACKUP_DIR)
        print(f"restoring {target.relative_to(ROOT)}, left mutated by an interrupted run", file=sys.stderr)
        shutil.copy2(backup, target)
        backup.unlink()
    shutil.rmtree(BACKUP_DIR, ignore_errors=True)


def snippet_problem(mutant: Mutant) -> str | None:
    """Why the mutant cannot be applied (None when its snippet occurs exactly once)."""
    path = ROOT / mutant.file
    if not path.is_file():
        return f"mutant {mutant.id}: file {mutant.file} does not exist"
    count = path.read_text().count(mutant.old)
    if count != 1:
        found = "not found" if count == 0 else f"found {count} times"
        return f"mutant {mutant.id}: snippet {mutant.old!r} {found} in {mutant.file} (re-target it)"
    return None


def pytest_command(tests, in_process: bool) -> list[str]:
    return [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *(["--no-processes"] if in_process else []), *tests]


def run_pytest(tests, in_process: bool, timeout: float) -> tuple[int | None, str]:
    """(pytest's exit status or None on timeout, the tail of its output)."""
    # No bytecode written: two mutants of one file, of the same size and in the same second, would
    # otherwise share a cached .pyc (its check is the source's mtime and size).
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(
            pytest_command(tests, in_process), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )
        try:
            status = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
            stop(child)
        except BaseException:
            stop(child)  # Ctrl-C or SIGTERM: pytest tears its fixtures (workers, servers) down first
            raise
        output.seek(0)
        return status, output.read()[-2000:]


def stop(child: subprocess.Popen) -> None:
    """Interrupt pytest as Ctrl-C would, so that its fixtures stop what they started; kill it if
    it does not end in time. A Ctrl-C in the terminal reached pytest already (one process group):
    it gets a moment to tear down before a second SIGINT could cut its teardown short."""
    for signum, grace in ((None, 5), (signal.SIGINT, 30), (signal.SIGKILL, None)):
        if signum is not None:
            child.send_signal(signum)
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_mutant(mutant: Mutant, timeout: float) -> tuple[str, float, str]:
    """Apply, test, restore. Returns (outcome, seconds, pytest's output tail)."""
    path = ROOT / mutant.file
    original = path.read_text()
    backup = backup_path(mutant.file)
    backup.parent.mkdir(parents=True, exist_ok=True)
    (BACKUP_DIR / PID_FILE).write_text(str(os.getpid()))
    shutil.copy2(path, backup)
    started = time.monotonic()
    try:
        path.write_text(original.replace(mutant.old, mutant.new, 1))
        status, output = run_pytest(mutant.tests, mutant.in_process, timeout)
    finally:
        shutil.copy2(backup, path)
        backup.unlink()
        shutil.rmtree(BACKUP_DIR, ignore_errors=True)
    seconds = time.monotonic() - started
    if path.read_text() != original:  # never expected: say so loudly rather than leave a mutant
        raise SystemExit(f"{mutant.file} was not restored; restore it with git checkout")
    if status is None:
        return "killed (timeout)", seconds, output
    if status == 0:
        return "SURVIVED", seconds, output
    if status == 1:
        return "killed", seconds, output
    if status == 2:
        return "killed (collection error)", seconds, output
    # 3: internal error, 4: usage (a bad node id), 5: no tests collected: the mutant tells nothing.
    return f"ERROR (pytest exit {status})", seconds, output


def baseline(mutants: list[Mutant], timeout: float) -> bool:
    """The same tests without any mutant must pass, or a kill means nothing."""
    ok = True
    for in_process in (True, False):
        tests = sorted({t for mutant in mutants if mutant.in_process == in_process for t in mutant.tests})
        if not tests:
            continue
        label = "in-process" if in_process else "process"
        print(f"baseline: {len(tests)} {label} test targets ...", flush=True)
        status, output = run_pytest(tests, in_process, timeout * 4)
        if status != 0:
            print(f"baseline FAILED ({label} tests, exit {status}):\n{output}", file=sys.stderr)
            ok = False
    return ok


def _terminate(signum, frame):
    # SIGTERM becomes an exception, so run_mutant's finally block restores the file.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that every snippet occurs exactly once")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the same tests")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant's test run (default 600)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print pytest's output for every mutant")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    os.chdir(ROOT)
    running = another_run()
    if running is not None and running != os.getpid():
        print(f"another mutation run (pid {running}) is working in {ROOT}; wait for it", file=sys.stderr)
        return 2
    restore_leftovers()

    ids = [mutant.id for mutant in MUTANTS]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        print(f"duplicate mutant ids: {sorted(duplicates)}", file=sys.stderr)
        return 2
    unknown = set(args.ids) - set(ids)
    if unknown:
        print(f"unknown mutant ids: {sorted(unknown)}", file=sys.stderr)
        return 2
    selected = [mutant for mutant in MUTANTS if not args.ids or mutant.id in args.ids]

    if args.list:
        for mutant in selected:
            lane = "fast" if mutant.in_process else "processes"
            print(f"{mutant.id:34} {mutant.file:38} {lane:9} {mutant.rule}")
        return 0

    problems = [p for p in map(snippet_problem, selected) if p]
    for problem in problems:
        print(f"SNIPPET MISSING: {problem}", file=sys.stderr)
    if args.check:
        print(f"{len(selected) - len(problems)} of {len(selected)} snippets found exactly once")
        return 2 if problems else 0
    runnable = [mutant for mutant in selected if snippet_problem(mutant) is None]

    if not args.no_baseline and not baseline(runnable, args.timeout):
        return 3

    results: list[tuple[Mutant, str, float]] = []
    try:
        for number, mutant in enumerate(runnable, 1):
            print(f"[{number}/{len(runnable)}] {mutant.id} ...", end=" ", flush=True)
            outcome, seconds, output = run_mutant(mutant, args.timeout)
            print(f"{outcome} ({seconds:.0f}s)", flush=True)
            if args.verbose or outcome.startswith(("SURVIVED", "ERROR")):
                print(output)
            results.append((mutant, outcome, seconds))
    except KeyboardInterrupt:
        print("\ninterrupted: the mutated file was restored; partial results follow", file=sys.stderr)

    missing = [mutant for mutant in selected if snippet_problem(mutant) is not None]
    width = max([len(mutant.id) for mutant in selected] + [6])
    print()
    print(f"{'mutant':{width}}  {'file':38}  {'result':26}  {'secs':>5}  rule")
    for mutant, outcome, seconds in results:
        print(f"{mutant.id:{width}}  {mutant.file:38}  {outcome:26}  {seconds:5.0f}  {mutant.rule}")
    for mutant in missing:
        print(f"{mutant.id:{width}}  {mutant.file:38}  {'SNIPPET MISSING':26}  {'':>5}  {mutant.rule}")
    killed = sum(outcome.startswith("killed") for _, outcome, _ in results)
    survived = [mutant.id for mutant, outcome, _ in results if outcome == "SURVIVED"]
    errors = [mutant.id for mutant, outcome, _ in results if outcome.startswith("ERROR")]
    print(f"\nscore: {killed}/{len(results)} killed", end="")
    print(f"; survived: {', '.join(survived)}" if survived else "", end="")
    print(f"; errors: {', '.join(errors)}" if errors else "", end="")
    print(f"; snippets missing: {', '.join(m.id for m in missing)}" if missing else "")
    if missing:
        return 2
    return 1 if survived or errors or len(results) < len(runnable) else 0


if __name__ == "__main__":
    sys.exit(main())

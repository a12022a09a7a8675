"""Local prebuild runner: plain Python, no Django.

The Django side calls executor.run_prebuild() from a Celery task with a Reporter that
writes to the database; the other modules are usable on their own.
"""

# Deliberately empty of imports: every user imports the module it needs (runner.executor,
# runner.snapshot, ...), and the container backend's guard and hook, run once per podman call,
# import only what they use (loading the whole package cost 70 ms per call).

"""An environment class's allow_network reaches the sandbox, from the Django side: a class is made
through the service, the runner bridge turns it into the sandbox's options (as a prebuild or a
cold-built environment of that class gets them), and a probe inside reports what network it has.

"Has a network" is what tests/processes/security/test_sandbox_network.py accepts: an interface
besides lo, a default route and a resolver of the sandbox's own (no probe goes to the outside).
Either way the runner host stays out of reach: a listener on the host's address sees nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projects import runner_bridge
from projects import services as project_services
from runner.sandbox import find_bwrap, run_sandboxed
from tests.processes.security.test_sandbox_network import METADATA, PROBE, host_address, listen, saw_connection

pytestmark = [
    pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.django_db,
]


@pytest.fixture
def host_listener():
    server = listen(host_address())
    yield server
    server.close()


def probe_in_class(environment_class, workspace: Path, targets: list) -> dict:
    """Run the probe the way a lifecycle command of this class runs: with the bridge's options."""
    options = runner_bridge.sandbox_options(environment_class)
    lines = []
    with options.uids.lease() as uid:
        result = run_sandboxed(
            ["python3", "-c", PROBE, json.dumps({"targets": targets, "guarded": METADATA})],
            workspace=workspace,
            limits=options.limits,
            allow_unsandboxed=options.allow_unsandboxed,
            uid=uid,
            on_line=lambda stream, text: lines.append(text),
        )
    assert result.exit_status == 0, lines
    [report] = [line.removeprefix("PROBE ") for line in lines if line.startswith("PROBE ")]
    return json.loads(report)


def test_a_class_without_network_gets_a_sandbox_with_only_loopback(org, workspace, host_listener):
    offline = project_services.environment_class_create(runner=org.runner, display_name="offline", allow_network=False)
    target = list(host_listener.getsockname())
    report = probe_in_class(offline, workspace, [target])
    assert report["interfaces"] == ["lo"]
    assert report["default_route"] is False
    assert report["attempts"][f"{target[0]}:{target[1]}"].startswith("failed")
    assert not saw_connection(host_listener)


def test_a_class_with_network_gets_a_sandbox_with_a_network(org, workspace, host_listener):
    online = project_services.environment_class_create(runner=org.runner, display_name="online", allow_network=True)
    target = list(host_listener.getsockname())
    report = probe_in_class(online, workspace, [target])
    assert [name for name in report["interfaces"] if name != "lo"] != []
    assert report["default_route"] is True
    nameservers = {line.split()[1] for line in report["resolv_conf"].splitlines() if line.startswith("nameserver ")}
    assert nameservers != set()
    # A network to the outside, not to the runner host.
    assert report["attempts"][f"{target[0]}:{target[1]}"].startswith("failed")
    assert not saw_connection(host_listener)

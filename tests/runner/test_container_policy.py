"""The container policy: what a hostile devcontainer.json or CLI argument vector may not do."""

from __future__ import annotations

import os

import pytest

from runner.container_policy import vet_config, vet_podman_argv
from runner.errors import ArgumentRefused

# ---------------------------------------------------------------------------------------------
# vet_config


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("initializeCommand", "touch /tmp/owned"),
        ("privileged", True),
        ("capAdd", ["SYS_ADMIN"]),
        ("securityOpt", ["seccomp=unconfined"]),
        ("workspaceMount", "source=/,target=/workspace,type=bind"),
        ("dockerComposeFile", "docker-compose.yml"),
        ("appPort", 8080),
    ],
)
def test_hostile_keys_are_dropped_and_named(key, value):
    vetted = vet_config({"image": "debian", key: value})
    assert key not in vetted.data
    assert vetted.data["image"] == "debian"
    assert [r.key for r in vetted.refused] == [key]
    assert key in vetted.warning()


def test_privileged_false_asks_for_nothing():
    vetted = vet_config({"privileged": False})
    assert vetted.refused == ()
    assert vetted.warning() is None


def test_input_is_not_changed():
    data = {"runArgs": ["--privileged"], "initializeCommand": "x"}
    vet_config(data)
    assert data == {"runArgs": ["--privileged"], "initializeCommand": "x"}


@pytest.mark.parametrize(
    "args",
    [
        ["--privileged"],
        ["--network=host"],
        ["--net=host"],
        ["--network", "host"],
        ["--network=slirp4netns"],  # even a narrow network: the environment class decides it
        ["--pid=host"],
        ["--pid", "host"],
        ["--ipc=host"],
        ["--uts=host"],
        ["--userns=host"],
        ["--userns", "keep-id"],
        ["--cgroupns=host"],
        ["--device=/dev/kvm"],
        ["--device", "/dev/sda"],
        ["-v", "/:/host"],
        ["-v=/:/host"],
        ["-v/etc:/x"],
        ["--volume", "/etc:/x:ro"],
        ["--mount", "type=bind,src=/,dst=/h"],
        ["--cap-add=SYS_ADMIN"],
        ["--cap-add", "ALL"],
        ["--security-opt", "seccomp=unconfined"],
        ["--env-file", "/etc/environment"],
        ["--env-host"],
        ["-e", "AWS_SECRET_ACCESS_KEY"],  # no value: podman copies the runner's
        ["--volumes-from", "other"],
        ["--pod=other"],
        ["-p", "80:80"],
        ["--gpus", "all"],
        ["--memory=1t"],  # limits are the class's
        ["--name", "other-prebuild"],
        ["--some-flag-podman-adds-tomorrow"],
        ["-it"],  # -i is fine but -t... is not: neither is on the runArgs list
        ["alpine"],  # a positional would become the image
    ],
)
def test_widening_run_args_are_dropped_whole_and_named(args):
    vetted = vet_config({"runArgs": [*args, "--label", "keep=me"]})
    assert vetted.data["runArgs"] == ["--label", "keep=me"]
    (refusal,) = vetted.refused
    assert refusal.key == "runArgs"
    assert refusal.detail == " ".join(args)
    assert " ".join(args) in vetted.warning()


def test_an_option_without_its_value_is_dropped():
    vetted = vet_config({"runArgs": ["--init", "--label"]})
    assert vetted.data["runArgs"] == ["--init"]
    assert [(r.detail, r.reason) for r in vetted.refused] == [("--label", "has no value")]
    assert "has no value" in str(refused(["run", "--label"], "/w"))


def test_safe_run_args_are_kept():
    args = [
        "--label=a=b",
        "-l",
        "c=d",
        "--env",
        "FOO=bar",
        "-e=X=1",
        "--hostname",
        "dev",
        "--init",
        "--shm-size=1g",
        "--add-host=db:10.0.0.2",
        "--cap-drop=ALL",
        "-u",
        "1000",
    ]
    vetted = vet_config({"runArgs": args})
    assert vetted.data["runArgs"] == args
    assert vetted.refused == ()


def test_run_args_reasons_say_why():
    vetted = vet_config({"runArgs": ["--privileged", "--network", "host", "--frobnicate"]})
    assert [(r.detail, r.reason) for r in vetted.refused] == [
        ("--privileged", "gives the container every privilege of the host"),
        ("--network host", "the environment class decides the network"),
        ("--frobnicate", "not on the allow-list"),
    ]


@pytest.mark.parametrize(
    "mount",
    [
        "source=/,target=/host,type=bind",
        "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock",
        "type=bind,source=.,target=/x",
        {"source": "/", "target": "/x", "type": "bind"},
        {"source": "/home", "target": "/x", "type": "bind"},
        "type=volume,src=x,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/",
        "type=image,src=other-snapshot,dst=/x",
        'type=volume,"src=x,type=bind",dst=/x',
        "type=volume,src=/etc,dst=/x",
        42,
    ],
)
def test_host_bind_mounts_are_dropped_and_named(mount):
    vetted = vet_config({"mounts": [mount, "type=volume,source=cache,target=/cache"]})
    assert vetted.data["mounts"] == ["type=volume,source=cache,target=/cache"]
    (refusal,) = vetted.refused
    assert refusal.key == "mounts"
    assert refusal.detail


@pytest.mark.parametrize(
    "mount",
    [
        "source=node_modules,target=/workspace/node_modules,type=volume",
        {"source": "cargo", "target": "/usr/local/cargo", "type": "volume"},
        "type=tmpfs,target=/tmp/scratch",
        "type=volume,target=/anonymous",
    ],
)
def test_volume_mounts_are_kept(mount):
    vetted = vet_config({"mounts": [mount]})
    assert vetted.data["mounts"] == [mount]
    assert vetted.refused == ()


def test_volumes_of_other_prebuilds_are_dropped_when_a_prefix_is_given():
    vetted = vet_config(
        {"mounts": ["type=volume,src=pb1-cache,dst=/c", "type=volume,src=pb2-cache,dst=/d"]}, volumes_prefix="pb1-"
    )
    assert vetted.data["mounts"] == ["type=volume,src=pb1-cache,dst=/c"]
    assert [r.detail for r in vetted.refused] == ["type=volume,src=pb2-cache,dst=/d"]


def test_build_options_keep_arguments_only():
    vetted = vet_config(
        {"build": {"dockerfile": "Dockerfile", "options": ["--build-arg", "A=1", "--network=host", "--secret=id=x"]}}
    )
    assert vetted.data["build"] == {"dockerfile": "Dockerfile", "options": ["--build-arg", "A=1"]}
    assert [r.detail for r in vetted.refused] == ["--network=host", "--secret=id=x"]


def test_gpu_requirement_is_dropped():
    vetted = vet_config({"hostRequirements": {"gpu": True, "memory": "4gb"}})
    assert vetted.data["hostRequirements"] == {"memory": "4gb"}
    assert [r.key for r in vetted.refused] == ["hostRequirements.gpu"]


def test_a_hostile_file_names_everything_it_lost():
    vetted = vet_config(
        {
            "image": "mcr.microsoft.com/devcontainers/base:bookworm",
            "initializeCommand": "touch /tmp/pwned",
            "privileged": True,
            "runArgs": ["--network=host", "-e", "FOO=1"],
            "mounts": ["source=/,target=/host,type=bind"],
            "dockerComposeFile": "compose.yml",
            "onCreateCommand": "make",
            "containerEnv": {"A": "1"},
        }
    )
    assert vetted.data == {
        "image": "mcr.microsoft.com/devcontainers/base:bookworm",
        "runArgs": ["-e", "FOO=1"],
        "mounts": [],
        "onCreateCommand": "make",
        "containerEnv": {"A": "1"},
    }
    warning = vetted.warning()
    for name in ("initializeCommand", "privileged", "--network=host", "source=/,target=/host,type=bind", "compose"):
        assert name in warning


# ---------------------------------------------------------------------------------------------
# vet_podman_argv


@pytest.fixture
def workspace(tmp_path):
    path = tmp_path / "workspaces" / "repo"
    path.mkdir(parents=True)
    return str(path)


def cli_run_argv(workspace, *extra):
    """What @devcontainers/cli 0.88 spawnDevContainer passes for a plain image on podman (Linux),
    with the runner's own options after runArgs."""
    return [
        "run",
        "--sig-proxy=false",
        "-a",
        "STDOUT",
        "-a",
        "STDERR",
        "--mount",
        f"type=bind,source={workspace},target=/workspaces/repo",
        "--mount",
        "type=volume,src=cache,dst=/cache",
        "-l",
        f"devcontainer.local_folder={workspace}",
        "-l",
        f"devcontainer.config_file={workspace}/.devcontainer/devcontainer.json",
        "-e",
        "FOO=bar",
        "--security-opt",
        "label=disable",
        *extra,
        "--userns=auto",
        "--network=none",
        "--memory=2g",
        "--pids-limit=512",
        "--entrypoint",
        "/bin/sh",
        "-l",
        'devcontainer.metadata=[{"id":"x"}]',
        "mcr.microsoft.com/devcontainers/base:bookworm",
        "-c",
        'echo Container started\ntrap "exit 0" 15\n\nexec "$@"\nwhile sleep 1 & wait $!; do :; done',
        "-",
    ]


def test_the_cli_run_for_a_plain_image_passes(workspace):
    vet_podman_argv(cli_run_argv(workspace), workspace=workspace)


def refused(argv, workspace, **kwargs) -> ArgumentRefused:
    with pytest.raises(ArgumentRefused) as info:
        vet_podman_argv(argv, workspace=workspace, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--privileged"], "--privileged"),
        (["--privileged=true"], "--privileged=true"),
        (["--cap-add", "SYS_ADMIN"], "--cap-add"),  # an unknown option is named without guessing its value
        (["--cap-add=ALL"], "--cap-add=ALL"),
        (["--security-opt", "seccomp=unconfined"], "--security-opt seccomp=unconfined"),
        (["--security-opt=apparmor=unconfined"], "--security-opt=apparmor=unconfined"),
        (["--device", "/dev/kvm"], "--device"),
        (["--gpus", "all"], "--gpus"),
        (["--network=host"], "--network=host"),
        (["--network", "host"], "--network host"),
        (["--net=host"], "--net=host"),
        (["--network=bridge"], "--network=bridge"),
        (["--network=container:x"], "--network=container:x"),
        (["--network=slirp4netns:allow_host_loopback=true"], "--network=slirp4netns:allow_host_loopback=true"),
        (["--network=pasta"], "--network=pasta"),
        (["--pid=host"], "--pid=host"),
        (["--ipc", "host"], "--ipc host"),
        (["--uts=host"], "--uts=host"),
        (["--cgroupns=host"], "--cgroupns=host"),
        (["--userns=host"], "--userns=host"),
        (["--userns=keep-id"], "--userns=keep-id"),
        (["--userns", "keep-id"], "--userns keep-id"),
        (["--uidmap=0:0:1"], "--uidmap=0:0:1"),
        (["-v=/:/host"], "-v=/:/host"),
        (["-v", "/:/host"], "-v /:/host"),
        (["-v/:/host"], "-v/:/host"),
        (["--volume", "/etc:/x:ro"], "--volume /etc:/x:ro"),
        (["--volume=./x:/x"], "--volume=./x:/x"),
        (["-v", "cache:/c:U"], "-v cache:/c:U"),
        (["--mount", "type=bind,src=/,dst=/h"], "--mount type=bind,src=/,dst=/h"),
        (["--mount=type=bind,source=/etc,target=/h"], "--mount=type=bind,source=/etc,target=/h"),
        (
            ["--mount", "type=volume,src=x,dst=/x,volume-opt=device=/"],
            "--mount type=volume,src=x,dst=/x,volume-opt=device=/",
        ),
        (["--mount", "type=image,src=other,dst=/x"], "--mount type=image,src=other,dst=/x"),
        (["--mount", "type=bind,src=/,src=/w,dst=/x"], "--mount type=bind,src=/,src=/w,dst=/x"),
        (["--env-file", "/etc/environment"], "--env-file"),
        (["-e", "HOME"], "-e HOME"),
        (["--env=AWS_*"], "--env=AWS_*"),
        (["--env-host"], "--env-host"),
        (["--volumes-from=other"], "--volumes-from=other"),
        (["--pod", "other"], "--pod"),
        (["-p", "8080:80"], "-p"),
        (["--publish=0.0.0.0:80:80"], "--publish=0.0.0.0:80:80"),
        (["--cidfile", "/etc/passwd"], "--cidfile"),
        (["--rootfs", "/"], "--rootfs"),
        (["-itP"], "-itP"),
    ],
)
def test_widening_run_options_are_refused_and_named(workspace, args, named):
    argv = cli_run_argv(workspace, *args)
    for verb in ("run", "create"):
        error = refused([verb, *argv[1:]], workspace)
        assert error.argument.startswith(named)
        assert named in str(error)


def test_a_symlink_in_the_workspace_is_not_the_workspace(workspace):
    os.symlink("/", os.path.join(workspace, "root"))
    error = refused(["run", "-v", f"{workspace}/root:/h", "img"], workspace)
    assert "outside the workspace" in str(error)


@pytest.mark.parametrize(
    "args",
    [
        ["-it"],
        ["-i", "-t"],
        ["--rm", "-d"],
        ["--network=slirp4netns"],
        ["--network=slirp4netns:allow_host_loopback=false,enable_ipv6=false"],
        ["--network", "none"],
        ["--mount", "type=volume,source=cache,target=/c,readonly"],
        ["--mount=type=tmpfs,dst=/t,tmpfs-size=64m"],
        ["-v", "cache:/c"],
        ["-v", "/anonymous"],
        ["-v={workspace}:/w:ro,z"],
        ["--mount", "type=bind,src={workspace}/sub,dst=/w"],
        ["--security-opt=no-new-privileges"],
        ["--userns", "auto:size=65536"],
        ["--init", "--cap-drop=ALL", "--shm-size=1g", "--add-host=db:10.0.0.2"],
        ["-e=A=1", "--env", "B=2"],
    ],
)
def test_safe_run_options_pass(workspace, args):
    args = [arg.format(workspace=workspace) for arg in args]
    vet_podman_argv(cli_run_argv(workspace, *args), workspace=workspace)


def test_the_command_after_the_image_is_not_podman_s(workspace):
    # Flags of the container's command, and a -- before the image, are not options of podman.
    vet_podman_argv(["run", "--rm", "img", "sh", "--privileged", "-v", "/:/h"], workspace=workspace)
    vet_podman_argv(["run", "--rm", "--", "img", "--network=host"], workspace=workspace)
    vet_podman_argv(["exec", "-i", "-u", "1000", "-w", "/w", "cid", "sh", "-c", "--privileged"], workspace=workspace)


@pytest.mark.parametrize(
    "image",
    ["dir:/etc", "docker-archive:/tmp/x.tar", "oci-archive:x.tar", "containers-storage:[overlay@/x]img", "/etc"],
)
def test_images_from_host_paths_are_refused(workspace, image):
    assert refused(["run", image], workspace).argument == image
    assert refused(["pull", image], workspace).argument == image


@pytest.mark.parametrize("image", ["debian:bookworm", "localhost:5000/base:1", "docker://quay.io/a/b@sha256:ab12"])
def test_registry_images_pass(workspace, image):
    vet_podman_argv(["run", image], workspace=workspace)
    vet_podman_argv(["pull", image], workspace=workspace)


def test_named_volumes_must_carry_the_prefix_when_one_is_given(workspace):
    vet_podman_argv(["run", "-v", "pb1-cache:/c", "img"], workspace=workspace, allowed_volumes_prefix="pb1-")
    error = refused(
        ["run", "--mount", "type=volume,src=pb2-cache,dst=/c", "img"], workspace, allowed_volumes_prefix="pb1-"
    )
    assert "pb2-cache" in error.argument


def test_exec_refuses_what_widens(workspace):
    for args in (["--privileged"], ["--env-file=/etc/environment"], ["-e", "HOME"]):
        error = refused(["exec", "-i", *args, "cid", "sh"], workspace)
        assert error.argument.startswith(args[0])


def test_the_cli_builds_pass(workspace, tmp_path):
    staging = tmp_path / "devcontainercli" / "features"
    staging.mkdir(parents=True)
    roots = {"workspace": workspace, "build_roots": [str(staging)]}
    # singleContainer.ts buildAndExtendImage with a Dockerfile, then the features build.
    vet_podman_argv(
        ["build", "-f", f"{workspace}/.devcontainer/Dockerfile", "-t", "vsc-repo-abc", "--target", "dev",
         "--build-arg", "A=1", f"{workspace}/.devcontainer"],
        **roots,
    )  # fmt: skip
    vet_podman_argv(
        ["buildx", "build", "--load", "--build-arg", "BUILDKIT_INLINE_CACHE=1",
         "--build-context", f"dev_containers_feature_content_source={staging}",
         "--security-opt", "label=disable", "--target", "dev_containers_target_stage",
         "-f", f"{staging}/Dockerfile.extended", "-t", "vsc-repo-abc-features", str(staging)],
        **roots,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-f", "/etc/shadow", "{workspace}"], "-f /etc/shadow"),
        (["--file=/etc/shadow", "{workspace}"], "--file=/etc/shadow"),
        (["{workspace}/.."], "{workspace}/.."),
        (["/"], "/"),
        (["https://example.com/repo.git"], "https://example.com/repo.git"),
        (["--build-context", "x=/etc", "{workspace}"], "--build-context x=/etc"),
        (["--network=host", "{workspace}"], "--network=host"),
        (["-v", "/:/h", "{workspace}"], "-v /:/h"),
        (["--secret", "id=x,src=/etc/shadow", "{workspace}"], "--secret"),
        (["--output", "type=local,dest=/etc", "{workspace}"], "--output"),
        (["--cap-add=ALL", "{workspace}"], "--cap-add=ALL"),
    ],
)
def test_builds_reading_or_reaching_the_host_are_refused(workspace, args, named):
    args = [arg.format(workspace=workspace) for arg in args]
    error = refused(["build", *args], workspace)
    assert error.argument.startswith(named.format(workspace=workspace))


@pytest.mark.parametrize(
    "argv",
    [
        ["-v"],
        ["version", "--format", "{{.Server.Version}}"],
        ["info", "-f", "{{.Host.Security.SELinuxEnabled}}"],
        ["buildx", "version"],
        ["inspect", "--type", "image", "debian"],
        ["image", "inspect", "debian"],
        ["ps", "-q", "-a", "--filter", "label=devcontainer.local_folder=/w"],
        ["events", "--format", "{{json .}}", "--filter", "event=start"],
        ["start", "cid"],
        ["stop", "-t", "0", "cid"],
        ["rm", "-f", "cid"],
        ["tag", "vsc-a", "vsc-b"],
    ],
)
def test_the_cli_s_other_commands_pass(workspace, argv):
    vet_podman_argv(argv, workspace=workspace)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["cp", "/etc/shadow", "cid:/x"], "cp"),
        (["compose", "up"], "compose"),
        (["system", "reset"], "system"),
        (["volume", "rm", "other"], "volume"),
        (["--root", "/tmp/x", "run", "img"], "--root"),
        (["--remote", "ps"], "--remote"),
        ([], ""),
        (["inspect", "--type", "network", "x"], "--type network"),
        (["ps", "--latest"], "--latest"),
    ],
)
def test_other_commands_are_refused(workspace, argv, named):
    assert refused(argv, workspace).argument == named

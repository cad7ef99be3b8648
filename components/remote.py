"""Hosts and the remote steps that run on them.

A ``GpuHost`` is what the serving layer needs to know about a machine, whatever cloud
made it. ``remote_step`` turns a script file from ``components/scripts`` into a
``pulumi_command.remote.Command``: ``common.sh`` is prepended (it names the step and host
in every failure and prints the tail of the step's log), non-secret parameters become
environment assignments on the command line, and a secret travels only on stdin. A host the
team owns gets delete commands that remove what a step started; the machine running pulumi
(``local``) runs its steps as ``pulumi_command.local.Command``s.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_command import local, remote

from components.accelerators import NVIDIA, AcceleratorFamily

SCRIPTS_DIR = Path(__file__).parent / "scripts"

# SSH is not ready right after a VM is created and GPU VMs can take minutes to boot:
# retry dialing for about 20 minutes (80 x 15 s) before giving up.
DIAL_ERROR_LIMIT = 80
PER_DIAL_TIMEOUT_SECONDS = 15


@dataclass
class GpuHost:
    """A machine the serving layer runs on.

    name: logical name, used in resource names and error messages.
    public_ip / private_ip: addresses (Outputs); SSH goes to the public one, Ray and NCCL use the private one.
    user: SSH user with passwordless sudo.
    private_key: SSH private key (a secret Output).
    gpu_count: GPUs the machine must show in nvidia-smi before anything starts on it.
    instance_id: the cloud's id of this machine; a new machine (same name and IP) re-runs every step.
    booted: resources after which the machine exists and SSH may be tried (the VM or instance):
    early steps, such as the prefetch, wait only for these.
    ready: resources after which the serving steps may run (the driver extension...).
    accelerator: the devices' family (components/accelerators.py): how steps count them, hand them to
    containers and name them to Ray.
    owned: a machine the team owns and keeps: no cloud-init, steps remove the containers and units
    they started on destroy, and nothing prunes its images.
    local: the machine running pulumi: steps run there without SSH (public_ip is then unused).
    container_env: extra env for every serving container (e.g. NCCL_P2P_DISABLE on GeForce cards).
    private_interface: this machine's NIC between the hosts ("" = the stack's qwen:serving.privateInterface).

    Preconditions: `sudo -n` for ``user``; docker with access to the devices (the nvidia runtime,
    or the Ascend driver's device files); /var/lib/qwen/bootstrap-done, written by cloud-init on
    cloud nodes and by the host-setup step on owned machines (components/host_setup.py).
    """

    name: str
    public_ip: pulumi.Input[str]
    private_ip: pulumi.Input[str]
    user: str
    private_key: pulumi.Input[str]
    gpu_count: int
    instance_id: pulumi.Input[str]
    ready: Sequence[pulumi.Resource] = field(default_factory=list)
    booted: Sequence[pulumi.Resource] = field(default_factory=list)
    accelerator: AcceleratorFamily = NVIDIA
    owned: bool = False
    local: bool = False
    container_env: Mapping[str, str] = field(default_factory=dict)
    private_interface: str = ""

    def connection(self) -> remote.ConnectionArgs:
        return remote.ConnectionArgs(
            host=self.public_ip,
            user=self.user,
            private_key=self.private_key,
            dial_error_limit=DIAL_ERROR_LIMIT,
            per_dial_timeout=PER_DIAL_TIMEOUT_SECONDS,
        )


def read_script(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


# Prepended to every step's script, in this order: the step's streams and failure report, then the
# accelerator helpers that turn the family's env into commands and docker arguments.
PRELUDE_SCRIPTS = ("common.sh", "accelerator.sh")


def render_command(step: str, host: str, script: str, env: Mapping[str, str]) -> str:
    """The shell command a step runs: sudo, the parameters as env assignments, then bash -c of the script."""
    assignments = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted({**env, "QWEN_STEP": step, "QWEN_HOST": host}.items()))
    body = "\n".join(read_script(name) for name in (*PRELUDE_SCRIPTS, script))
    return f"sudo -n env {assignments} bash -c {shlex.quote(body)} {shlex.quote(step)}"


def sudo_probe(step: str, host: str) -> str:
    """Shell that stops with a clear message, before anything runs, when the user has no passwordless sudo."""
    message = (f"qwen: step '{step}' failed on host '{host}': user $(id -un) cannot run sudo without a password. "
               r"On the host: echo \"$(id -un) ALL=(ALL) NOPASSWD: ALL\" | sudo tee /etc/sudoers.d/qwen")
    return f'sudo -n true 2>/dev/null || {{ echo "{message}" >&2; exit 1; }}; '


@dataclass(frozen=True)
class Removal:
    """What a step started on an owned machine and its delete command removes on destroy (or before
    the step re-runs as a replacement). Images and model weights are never removed."""

    containers: Sequence[str] = ()  # docker containers, removed with `docker rm -f`
    units: Sequence[str] = ()  # systemd units, stopped and disabled; their files under /etc/systemd/system removed
    paths: Sequence[str] = ()  # files and directories the step installed

    def env(self) -> dict[str, str]:
        return {"CONTAINERS": "\n".join(self.containers), "UNITS": "\n".join(self.units), "PATHS": "\n".join(self.paths)}


def remote_step(
    resource_name: str,
    *,
    step: str,
    host: GpuHost,
    script: str,
    env: Mapping[str, pulumi.Input[str]] | None = None,
    stdin: pulumi.Input[str] | None = None,
    triggers: Sequence[pulumi.Input] | None = None,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] | None = None,
    removes: Removal | None = None,
    check_sudo: bool = False,
    frozen: bool = False,
) -> remote.Command | local.Command:
    """One bootstrap step on one host, as a remote Command (a local one on the machine running pulumi).

    The secret (if any) is passed on stdin so it never appears in the command line,
    in state as plain text, in stdout or in logs. On cloud machines steps have no delete command
    on purpose: `pulumi destroy` removes the machines, and must not need to reach an evicted VM.
    On an owned machine, which stays, a step with ``removes`` gets a delete command that removes
    what it started (``owned_remove.sh``); it then runs delete-before-create on replacement, so
    the removal never hits what the new step starts. ``check_sudo`` first checks passwordless sudo
    (the first step on a machine nobody set up for the program).
    frozen: keep the step as it last ran, for a host that is stopped: any change of its command or
    connection (a stopped Aliyun instance loses its public IP) would otherwise re-run it there.
    """
    env = dict(env or {})
    probe = sudo_probe(step, host.name) if check_sudo else ""
    create = pulumi.Output.all(**env).apply(lambda values: probe + render_command(step, host.name, script, values))
    delete = None
    if host.owned and removes is not None:
        delete = render_command(f"{step}-remove", host.name, "owned_remove.sh", removes.env())
    # The arguments remote and local Commands share.
    args: dict[str, Any] = dict(
        create=create,
        delete=delete,
        triggers=[host.instance_id, *(triggers or [])],
        add_previous_output_in_env=False,
        # With a secret on stdin, nothing the step prints is streamed to the engine's logs (a
        # failure still shows the step's output in the error).
        logging=remote.Logging.NONE if stdin is not None else None,
        stdin=pulumi.Output.secret(stdin) if stdin is not None else None,
    )
    opts = pulumi.ResourceOptions(
        parent=parent,
        depends_on=list(depends_on or []),
        delete_before_replace=delete is not None,
        # stdout and stderr never contain the secret, but mark them secret anyway when one was
        # sent, so a script mistake cannot leak it into state as plain text.
        additional_secret_outputs=["stdout", "stderr"] if stdin is not None else None,
        ignore_changes=["connection", "create"] if frozen else None,
    )
    if host.local:
        return local.Command(resource_name, **args, opts=opts)
    return remote.Command(resource_name, connection=host.connection(), **args, opts=opts)

"""Hosts and the remote steps that run on them.

A ``GpuHost`` is what the serving layer needs to know about a machine, whatever cloud
made it. ``remote_step`` turns a script file from ``components/scripts`` into a
``pulumi_command.remote.Command``: ``common.sh`` is prepended (it names the step and host
in every failure and prints the tail of the step's log), non-secret parameters become
environment assignments on the command line, and a secret travels only on stdin.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pulumi
from pulumi_command import remote

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


def render_command(step: str, host: str, script: str, env: Mapping[str, str]) -> str:
    """The shell command a step runs: sudo, the parameters as env assignments, then bash -c of the script."""
    assignments = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted({**env, "QWEN_STEP": step, "QWEN_HOST": host}.items()))
    body = read_script("common.sh") + "\n" + read_script(script)
    return f"sudo -n env {assignments} bash -c {shlex.quote(body)} {shlex.quote(step)}"


def remote_step(
    resource_name: str,
    *,
    step: str,
    host: GpuHost,
    script: str,
    env: Optional[Mapping[str, pulumi.Input[str]]] = None,
    stdin: Optional[pulumi.Input[str]] = None,
    triggers: Optional[Sequence[pulumi.Input]] = None,
    parent: pulumi.Resource,
    depends_on: Optional[Sequence[pulumi.Resource]] = None,
    frozen: bool = False,
) -> remote.Command:
    """One bootstrap step on one host, as a remote Command.

    The secret (if any) is passed on stdin so it never appears in the command line,
    in state as plain text, in stdout or in logs. Steps have no delete command on purpose:
    `pulumi destroy` removes the machines, and must not need to reach an evicted VM.
    frozen: keep the step as it last ran, for a host that is stopped: any change of its command or
    connection (a stopped Aliyun instance loses its public IP) would otherwise re-run it there.
    """
    env = dict(env or {})
    create = pulumi.Output.all(**env).apply(lambda values: render_command(step, host.name, script, values))
    return remote.Command(
        resource_name,
        connection=host.connection(),
        create=create,
        triggers=[host.instance_id, *(triggers or [])],
        add_previous_output_in_env=False,
        # With a secret on stdin, nothing the step prints is streamed to the engine's logs (a
        # failure still shows the step's output in the error).
        logging=remote.Logging.NONE if stdin is not None else None,
        stdin=pulumi.Output.secret(stdin) if stdin is not None else None,
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(depends_on or []),
            # stdout and stderr never contain the secret, but mark them secret anyway when one was
            # sent, so a script mistake cannot leak it into state as plain text.
            additional_secret_outputs=["stdout", "stderr"] if stdin is not None else None,
            ignore_changes=["connection", "create"] if frozen else None,
        ),
    )

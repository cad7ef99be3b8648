"""Stacks on machines a team already owns (`qwen:cloud: owned`): no cloud provider, no cloud-init.

Each machine of `qwen:owned.hosts` gets a host-setup step (checks, then the units cloud-init installs
on cloud nodes); the job ends at a list of ``GpuHost``s handed to the serving path every stack
shares (stacks/serving.py). The weights go to `qwen:owned.modelRoot` on each machine and stay there.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pulumi

from components.accelerators import min_driver_version
from components.host_setup import HostSetup, HostSetupArgs
from components.remote import GpuHost
from stacks.outputs import StackOutputs
from stacks.serving import serve_and_measure, stack_outputs
from stacks.settings import OwnedHostSettings, OwnedSettings, Settings

LOOPBACK = "127.0.0.1"


def private_key(settings: Settings, owned: OwnedSettings) -> pulumi.Input[str] | None:
    """The SSH key: the secret qwen:sshPrivateKey, else qwen:access.sshKeyFile (read here, kept secret);
    None when every host is the local machine."""
    if all(h.local for h in owned.hosts):
        return None
    if settings.ssh_private_key is not None:
        return pulumi.Output.secret(settings.ssh_private_key)
    return pulumi.Output.secret(Path(os.path.expanduser(settings.access.ssh_key_file)).read_text())


def api_address(owned: OwnedSettings) -> str:
    """Where clients reach the API: the listen address, or the head's own for 0.0.0.0."""
    head = owned.hosts[0]
    if owned.listen_address != "0.0.0.0":
        return owned.listen_address
    return LOOPBACK if head.local else head.address


def ssh_command(owned: OwnedSettings, key_file: str, port: int) -> str:
    """SSH to the head (a tunnel to the API when it listens on the head's loopback); "" for local."""
    head = owned.hosts[0]
    if head.local:
        return ""
    tunnel = f" -L {port}:{LOOPBACK}:{port}" if owned.listen_address == LOOPBACK else ""
    return f"ssh -i {key_file}{tunnel} {head.user}@{head.address}"


def owned_host(host: OwnedHostSettings, owned: OwnedSettings, key: pulumi.Input[str] | None) -> GpuHost:
    address = LOOPBACK if host.local else host.address
    return GpuHost(
        name=host.name, public_ip=address, private_ip=address, user=host.user or "", private_key=key or "",
        gpu_count=host.count,
        # The machine stays the same while its address does; a new address re-runs every step.
        instance_id=f"owned:{host.address}",
        accelerator=owned.family, owned=True, local=host.local, container_env=owned.container_env,
        private_interface=host.private_interface or "",
    )


def build(settings: Settings) -> StackOutputs:
    owned = settings.owned
    assert owned is not None, "settings put every owned stack's qwen:owned section in place"
    model_dir = f"{owned.model_root}/{settings.model.dir_name}"
    key = private_key(settings, owned)
    hosts = []
    for host in owned.hosts:
        setup = HostSetup(host.name, HostSetupArgs(
            host=owned_host(host, owned, key), accelerator=host.accelerator,
            min_driver_version=min_driver_version(owned.family, settings.serving.min_driver_version),
            image=settings.serving.image,
            image_disk_gb=math.ceil(settings.serving.image_pull_disk_gb), model_root=owned.model_root,
            model_dir=model_dir, model_revision=settings.model.revision,
            model_disk_gb=math.ceil(settings.model.spec.weights_gb), private_interface=host.private_interface or "",
        ))
        hosts.append(setup.host)
    serving = serve_and_measure(settings, hosts, owned.model_root, model_dir, prefetch_model=True,
                                listen_address=owned.listen_address, api_host=api_address(owned))
    port = settings.serving.port
    # The roofline uses the hosts' accelerator (memory, bandwidth, FLOP/s in stacks/catalog.py).
    return stack_outputs(settings, serving, public_ip=hosts[0].public_ip,
                         ssh_command=ssh_command(owned, settings.access.ssh_key_file, port))

"""HostSetup: what cloud-init does on a cloud node, for a machine the team owns.

One step per machine (``host_setup.sh``) checks what the serving layer needs (docker, the
accelerator driver and devices, docker's access to them, passwordless sudo, free disk) and installs
the same prefetch units and scripts a cloud node's cloud-init installs (``cloudinit.owned_node_files``).
It never installs a driver or docker. On destroy its delete command removes those units and files
and any serving container left; images and weights stay.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

import cloudinit
from components.accelerators import driver_hint
from components.remote import GpuHost, Removal, remote_step

# Containers the serving steps start; removed here too, should one outlive its own step.
SERVING_CONTAINERS = ("qwen-proxy", "qwen-vllm", "qwen-ray")


def files_archive(files: Sequence[dict]) -> str:
    """Base64 of a reproducible tar.gz of cloud-init write_files entries (paths relative to /), so
    the step's command, and with it the resource, changes only when a file does."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for spec in sorted(files, key=lambda f: f["path"]):
            data = spec["content"].encode()
            info = tarfile.TarInfo(spec["path"].lstrip("/"))
            info.size, info.mode, info.mtime = len(data), int(spec["permissions"], 8), 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(raw.getvalue()).decode()


@dataclass(frozen=True)
class HostSetupEnv:
    """host_setup.sh's inputs (its `# Env:` lines), in their order."""

    ACCELERATOR: str  # accelerator model, in messages
    EXPECTED_GPUS: str  # devices the stack uses on the host
    ACCEL_COUNT_COMMAND: str  # the family's shell that prints the device count
    ACCEL_DRIVER_VERSION_COMMAND: str  # the family's shell that prints the driver version
    MIN_DRIVER_VERSION: str  # oldest driver the image runs on
    DRIVER_HINT: str  # where the minimum comes from and how to install a driver (never done here)
    ACCEL_RUNTIME_CHECK: str  # the family's shell that succeeds when docker can hand the devices over
    RUNTIME_HINT: str  # what to install when it cannot
    IMAGE: str  # the serving image: no disk needed for it when present
    IMAGE_DISK_GB: str  # disk its pull needs
    MODEL_ROOT: str  # directory of the weights
    MODEL_DIR: str  # the model's directory in it
    MODEL_REVISION: str  # revision whose completion marker means the weights need no disk
    MODEL_DISK_GB: str  # disk the weights need
    PRIVATE_INTERFACE: str  # NIC whose IPv4 address is reported; "" = the default route's
    FILES_ARCHIVE: str  # files_archive() of cloudinit.owned_node_files()
    ENABLE_UNITS: str  # units to enable, one per line


@dataclass
class HostSetupArgs:
    host: GpuHost  # an owned machine (host.owned); its private_ip is not known yet and is not used
    accelerator: str  # accelerator model, for messages (e.g. "RTX 4090")
    min_driver_version: str  # oldest driver the image runs on (accelerators.min_driver_version)
    image: str  # serving image: its pull needs image_disk_gb unless it is present
    image_disk_gb: int  # extracted image + largest layer
    model_root: str  # host directory of the weights (kept on destroy)
    model_dir: str  # the model's directory in it
    model_revision: str  # revision whose completion marker means the weights need no disk
    model_disk_gb: int  # the weights' size on disk
    private_interface: str  # NIC for Ray and the collectives; "" = the default route's


class HostSetup(pulumi.ComponentResource):
    """Outputs: ``step`` (the Command), ``private_ip`` (IPv4 of the private interface), ``arch``
    (`uname -m`) and ``host`` (the input host with these filled in and the step as its readiness)."""

    def __init__(self, name: str, args: HostSetupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:owned:HostSetup", name, None, opts)
        family = args.host.accelerator
        files = cloudinit.owned_node_files()
        self.step = remote_step(
            f"{name}-host-setup", step="host-setup", host=args.host, script="host_setup.sh",
            env=dict(vars(HostSetupEnv(
                ACCELERATOR=args.accelerator, EXPECTED_GPUS=str(args.host.gpu_count),
                ACCEL_COUNT_COMMAND=family.count_command, ACCEL_DRIVER_VERSION_COMMAND=family.driver_version_command,
                MIN_DRIVER_VERSION=args.min_driver_version, DRIVER_HINT=driver_hint(family, owned=True),
                ACCEL_RUNTIME_CHECK=family.runtime_check_command, RUNTIME_HINT=family.runtime_hint,
                IMAGE=args.image, IMAGE_DISK_GB=str(args.image_disk_gb), MODEL_ROOT=args.model_root,
                MODEL_DIR=args.model_dir, MODEL_REVISION=args.model_revision, MODEL_DISK_GB=str(args.model_disk_gb),
                PRIVATE_INTERFACE=args.private_interface, FILES_ARCHIVE=files_archive(files),
                ENABLE_UNITS=cloudinit.PREFETCH_TRIGGER_UNIT,
            ))),
            parent=self,
            depends_on=list(args.host.booted),
            check_sudo=True,
            removes=Removal(
                containers=SERVING_CONTAINERS,
                # The path unit first, so it cannot start the service again while it is removed.
                units=sorted((f["path"].rsplit("/", 1)[1] for f in files if f["path"].startswith("/etc/systemd/system/")),
                             key=lambda unit: not unit.endswith(".path")),
                paths=(*(f["path"] for f in files if not f["path"].startswith("/etc/systemd/system/")),
                       "/etc/qwen", "/var/lib/qwen/bootstrap-done"),
            ),
        )
        facts = self.step.stdout.apply(json.loads)
        self.private_ip = facts.apply(lambda f: f["privateIp"])
        self.arch = facts.apply(lambda f: f["arch"])
        self.host = replace(args.host, private_ip=self.private_ip, booted=[self.step], ready=[*args.host.ready, self.step])
        self.register_outputs({"private_ip": self.private_ip, "arch": self.arch})

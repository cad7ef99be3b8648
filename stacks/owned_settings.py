"""Settings of the stacks that serve on machines a team owns (`qwen:cloud: owned`), read from `qwen:owned`.

Pure: ``parse_owned`` validates the raw object into ``OwnedSettings`` and appends every problem,
each naming its key and the fix, to the list stacks/settings.py reports. Nothing here connects to
a machine; the host-setup step checks the machines themselves (components/host_setup.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from components.accelerators import AcceleratorFamily, family_of, known_models
from stacks.catalog import ACCELERATORS, GpuSize

NAMESPACE = "qwen"
LOCAL = "local"  # the address of the machine that runs pulumi
DEFAULT_MODEL_ROOT = "/var/lib/qwen/models"
DEFAULT_LISTEN_ADDRESS = "127.0.0.1"
HOST_KEYS = {"name", "address", "user", "accelerator", "count", "privateInterface"}
OWNED_KEYS = {"hosts", "listenAddress", "ncclP2pDisable", "modelRoot"}


@dataclass(frozen=True)
class OwnedHost:
    """One machine: how to reach it and what it holds."""

    name: str  # names the machine's resources and appears in errors
    address: str  # SSH address (IP or DNS name), or "local" for the machine running pulumi
    user: str  # SSH user with passwordless sudo ("" for local: pulumi's own user)
    accelerator: str  # accelerator model, a key of stacks/catalog.ACCELERATORS (e.g. "RTX 4090")
    count: int  # devices the stack uses on this machine
    private_interface: str  # NIC between the hosts for Ray and the collectives; "" = the default route's

    @property
    def local(self) -> bool:
        return self.address == LOCAL


@dataclass(frozen=True)
class OwnedSettings:
    hosts: tuple[OwnedHost, ...]  # head first
    listen_address: str  # where the API listens on the head: 127.0.0.1 (local only), 0.0.0.0 or one address
    nccl_p2p_disable: bool  # NCCL_P2P_DISABLE=1 in the serving containers (GeForce cards have no P2P)
    model_root: str  # host directory for the weights; kept on destroy
    ssh_private_key: Any  # the secret qwen:sshPrivateKey (an Output in a real run), or None
    ssh_key_file: str  # key file read when qwen:sshPrivateKey is not set (qwen:access.sshKeyFile)
    family: AcceleratorFamily
    machine: GpuSize  # one host's devices, for sizing

    @property
    def container_env(self) -> dict[str, str]:
        return {"NCCL_P2P_DISABLE": "1"} if self.nccl_p2p_disable else {}


def _key(name: str) -> str:
    return f"{NAMESPACE}:owned.{name}"


def parse_owned(raw: Any, stack: str, problems: list[str], ssh_private_key: Any, ssh_key_file: str,
                file_exists: Callable[[str], bool] = os.path.exists) -> Optional[OwnedSettings]:
    """Validate `qwen:owned`; None when it is unusable (its problems are in ``problems``)."""
    before = len(problems)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{NAMESPACE}:owned: must be an object with hosts, listenAddress, ...; got {type(raw).__name__}")
        return None
    for name in sorted(set(raw) - OWNED_KEYS):
        problems.append(f"{_key(name)}: is not a known setting (known: {', '.join(sorted(OWNED_KEYS))}); check its spelling")
    hosts = _parse_hosts(raw.get("hosts"), stack, problems)

    listen = raw.get("listenAddress", DEFAULT_LISTEN_ADDRESS)
    try:
        ipaddress.IPv4Address(listen)
    except (ipaddress.AddressValueError, ValueError):
        problems.append(f"{_key('listenAddress')}: {listen!r} is not an IPv4 address; use 127.0.0.1 (this machine only), "
                        "0.0.0.0 (every interface) or one of the head's addresses")
    p2p = raw.get("ncclP2pDisable", False)
    if not isinstance(p2p, bool):
        problems.append(f"{_key('ncclP2pDisable')}: must be true or false, got {p2p!r}")
    model_root = raw.get("modelRoot", DEFAULT_MODEL_ROOT)
    if not isinstance(model_root, str) or not re.fullmatch(r"/[A-Za-z0-9_./-]*", model_root) or ".." in model_root:
        problems.append(f"{_key('modelRoot')}: {model_root!r} must be an absolute path such as {DEFAULT_MODEL_ROOT}")

    family = machine = None
    if hosts:
        models = {h.accelerator for h in hosts}
        counts = {h.count for h in hosts}
        if len(models) > 1 or len(counts) > 1:
            problems.append(f"{_key('hosts')}: every host must have the same accelerator and count (tensor parallel "
                            f"spans one host, pipeline parallel the hosts); got {sorted(models)} x {sorted(counts)}")
        head = hosts[0]
        if head.accelerator in known_models() and head.accelerator in ACCELERATORS:
            family = family_of(head.accelerator)
            machine = GpuSize(head.count, ACCELERATORS[head.accelerator])
        if p2p is True and family is not None and family.name != "nvidia":
            problems.append(f"{_key('ncclP2pDisable')}: is an NVIDIA (NCCL) setting; {head.accelerator} hosts use HCCL: remove it")
        if any(not h.local for h in hosts) and ssh_private_key is None and not file_exists(os.path.expanduser(ssh_key_file)):
            problems.append(
                f"{NAMESPACE}:sshPrivateKey: is not set and the key file {ssh_key_file} does not exist: "
                f"`pulumi config set --secret {NAMESPACE}:sshPrivateKey < ~/.ssh/id_ed25519 -s {stack}`, or point "
                f"{NAMESPACE}:access.sshKeyFile at the key the hosts accept")
    if len(problems) > before or family is None or machine is None:
        return None
    return OwnedSettings(
        hosts=tuple(hosts), listen_address=listen, nccl_p2p_disable=p2p, model_root=model_root,
        ssh_private_key=ssh_private_key, ssh_key_file=ssh_key_file, family=family, machine=machine,
    )


def _parse_hosts(raw: Any, stack: str, problems: list[str]) -> list[OwnedHost]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{_key('hosts')}: is required: a list of {{name, address, user, accelerator, count, "
                        "privateInterface?}, head first (see the stack files)")
        return []
    hosts = []
    for i, item in enumerate(raw):
        key = f"hosts[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{_key(key)}: must be an object {{name, address, user, accelerator, count}}, got {item!r}")
            continue
        for name in sorted(set(item) - HOST_KEYS):
            problems.append(f"{_key(f'{key}.{name}')}: is not a known setting (known: {', '.join(sorted(HOST_KEYS))})")
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", name):
            problems.append(f"{_key(f'{key}.name')}: {name!r} must be 1-31 lowercase letters, digits and '-' (it names resources)")
        address = item.get("address")
        if not isinstance(address, str) or not address:
            problems.append(f"{_key(f'{key}.address')}: is required: the machine's SSH address, or local for this machine. "
                            f"Set it: `pulumi config set --path '{_key(f'{key}.address')}' 192.0.2.10 -s {stack}`")
            address = ""
        elif address != LOCAL and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?", address):
            problems.append(f"{_key(f'{key}.address')}: {address!r} is not an IP address or DNS name (or local)")
        user = item.get("user", "")
        if address != LOCAL and (not isinstance(user, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user)):
            problems.append(f"{_key(f'{key}.user')}: {user!r} must be the SSH user (with passwordless sudo) on {address or 'the host'}. "
                            f"Set it: `pulumi config set --path '{_key(f'{key}.user')}' <user> -s {stack}`")
        accelerator = item.get("accelerator")
        if accelerator not in known_models() or accelerator not in ACCELERATORS:
            problems.append(f"{_key(f'{key}.accelerator')}: {accelerator!r} is not a known accelerator "
                            f"(known: {', '.join(m for m in known_models() if m in ACCELERATORS)}); add it to "
                            "components/accelerators.py and stacks/catalog.py")
        count = item.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{_key(f'{key}.count')}: must be the number of devices to use (1 or more), got {count!r}")
            count = 0
        interface = item.get("privateInterface", "")
        if interface and (not isinstance(interface, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,15}", interface)):
            problems.append(f"{_key(f'{key}.privateInterface')}: {interface!r} is not a network interface name such as eth0")
        hosts.append(OwnedHost(name if isinstance(name, str) else f"host-{i}", address, user if isinstance(user, str) else "",
                               accelerator if isinstance(accelerator, str) else "", count, interface or ""))
    names = [h.name for h in hosts]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{_key('hosts')}: host name '{dup}' is used twice; names must be unique")
    if len(hosts) > 1:
        if any(h.local for h in hosts):
            problems.append(f"{_key('hosts')}: address local serves alone; with several hosts give each its SSH address")
        for i, h in enumerate(hosts):
            if not h.private_interface:
                problems.append(f"{_key(f'hosts[{i}].privateInterface')}: is required with several hosts: the NIC "
                                "Ray and the collectives use between them (e.g. eth0)")
    return hosts

"""The accelerator seam: one catalog entry per accelerator family (NVIDIA GPUs, Ascend 310P NPUs).

The step scripts are the same for every family. What differs reaches them as environment built
from the family's entry: how to count and list the devices, how docker hands them to a container,
the Ray resource, the communication environment between hosts, and the `vllm serve` flags the
family needs. Adding a family is one entry in ``FAMILIES`` and no new script.
Facts: ../shared/ACCELERATORS.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi

# One CSV row per device, the shape of `nvidia-smi --query-gpu=index,name,memory.total,driver_version
# --format=csv,noheader` ("0, NVIDIA GeForce RTX 4090, 24564 MiB, 570.172.08"): every family's
# inventory command prints it, so `nodes[].gpus` has one shape (components/parsers.py).
NVIDIA_INVENTORY = "nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader"

# npu-smi prints, per chip, a row `| <chip> <device> | <bus id> | <aicore %> <used>/ <total> |` in
# `npu-smi info` (memory in MB) and a row `<npu id> <chip id> <logic id> Ascend 310P3` in
# `npu-smi info -m`; Mcu rows have logic id `-`. The logic id is the /dev/davinciN index.
ASCEND_VERSION_INFO = "/usr/local/Ascend/driver/version.info"
ASCEND_DRIVER_VERSION = f"sed -n 's/^Version=//p' {ASCEND_VERSION_INFO} | head -n 1"
ASCEND_CHIPS = "npu-smi info -m | awk '$3 ~ /^[0-9]+$/ && $4 == \"Ascend\" {print $3 \", \" $4 \" \" $5}'"
ASCEND_MEMORY = ("npu-smi info | awk -F'|' '$3 ~ /[0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\\.[0-9]/ "
                 "{ n = split($4, parts, \"/\"); print parts[n] + 0 \" MiB\" }'")
ASCEND_INVENTORY = (f"driver=$({ASCEND_DRIVER_VERSION}); "
                    f"paste -d '|' <({ASCEND_CHIPS}) <({ASCEND_MEMORY}) | "
                    "awk -F'|' -v driver=\"$driver\" 'NF == 2 && $1 != \"\" {print $1 \", \" $2 \", \" driver}'")

# The devices and host files an Ascend container needs without --privileged (ACCELERATORS.md).
ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
ASCEND_HOST_FILES = ("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                     ASCEND_VERSION_INFO, "/etc/ascend_install.info")


@dataclass(frozen=True)
class AcceleratorFamily:
    """Everything the serving layer does differently for one accelerator family."""

    name: str  # catalog key, e.g. "nvidia"
    vendor: str  # whose driver it is, in messages ("NVIDIA", "Ascend")
    models: tuple[str, ...]  # accelerator models of this family, as qwen:owned.hosts[].accelerator names them
    weight_dtype: str  # the 16-bit format the family serves weights in: bf16, or fp16 where there is no bf16
    default_image: str  # pinned serving image (vLLM v0.11.0 or the family's build of it)
    count_command: str  # shell; prints how many devices this host sees
    container_probe: tuple[str, ...]  # entrypoint and arguments that list the devices a container sees
    container_probe_pattern: str  # extended regex matching one line of that list per device
    inventory_command: str  # shell; one CSV row per device: index, name, "N MiB", driver version
    driver_version_command: str  # shell; prints the driver version
    min_driver_version: str  # oldest driver the default image runs on (numeric prefix compared); NVIDIA's is a setting
    driver_hint: str  # how to install or upgrade the driver: the program never installs one
    runtime_check_command: str  # shell; succeeds when docker can hand the devices to containers
    runtime_hint: str  # what to install when it cannot
    ray_resource: str  # Ray's resource name for the devices: GPU, or a custom resource
    device_args: Callable[[int], tuple[str, ...]]  # `docker run` arguments giving a container N devices
    ray_resource_args: Callable[[int], tuple[str, ...]]  # `ray start` arguments declaring N devices
    device_env: Callable[[int], Mapping[str, str]]  # container env every serving container needs
    communication_env: Callable[[str, str], Mapping[str, str]]  # (interface, node IP) -> env for collectives across hosts
    serve_flags: tuple[str, ...] = ()  # `vllm serve` flags the family requires
    managed_serve_flags: tuple[str, ...] = ()  # flags among serve_flags that qwen:serving.extraArgs may not set


def _nvidia_communication(interface: str, node_ip: str) -> dict[str, str]:
    return {"VLLM_HOST_IP": node_ip, "NCCL_SOCKET_IFNAME": interface, "GLOO_SOCKET_IFNAME": interface}


def _ascend_device_args(count: int) -> tuple[str, ...]:
    args: list[str] = []
    for device in [*(f"/dev/davinci{i}" for i in range(count)), *ASCEND_CONTROL_DEVICES]:
        args += ["--device", device]
    for path in ASCEND_HOST_FILES:
        args += ["-v", f"{path}:{path}:ro"]
    return tuple(args)


def _ascend_communication(interface: str, node_ip: str) -> dict[str, str]:
    # HCCL replaces NCCL; Ray must not rewrite ASCEND_RT_VISIBLE_DEVICES (vllm-ascend sets it per worker).
    return {"VLLM_HOST_IP": node_ip, "HCCL_IF_IP": node_ip, "GLOO_SOCKET_IFNAME": interface,
            "TP_SOCKET_IFNAME": interface, "RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES": "1"}


# 310P has no bf16 and no graph mode in vllm-ascend v0.10/v0.11; its custom ops must be named.
ASCEND_310P_COMPILATION_CONFIG = json.dumps({"custom_ops": ["none", "+rms_norm", "+rotary_embedding"]},
                                            separators=(",", ":"))

NVIDIA = AcceleratorFamily(
    name="nvidia",
    vendor="NVIDIA",
    models=("A100 80GB PCIe", "L20", "RTX 4090", "H100 NVL"),
    weight_dtype="bf16",
    default_image="vllm/vllm-openai:v0.11.0",
    count_command="nvidia-smi --query-gpu=name --format=csv,noheader | grep -c .",
    container_probe=("nvidia-smi", "-L"),  # injected by the nvidia runtime
    container_probe_pattern="^GPU [0-9]+:",
    inventory_command=NVIDIA_INVENTORY,
    driver_version_command="nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1",
    # The image is CUDA 12.8 (torch 2.8). GeForce cards cannot use CUDA's forward-compatibility
    # package, so the driver itself must be a 12.8 one: branch 570 or newer.
    min_driver_version="570",
    driver_hint="install NVIDIA driver 570 or newer (Ubuntu: `sudo apt install nvidia-driver-570-server`, then reboot)",
    runtime_check_command="docker info --format '{{json .Runtimes}}' | grep -q nvidia",
    runtime_hint="install the NVIDIA container toolkit and run `sudo nvidia-ctk runtime configure --runtime=docker "
                 "&& sudo systemctl restart docker`",
    ray_resource="GPU",
    device_args=lambda count: ("--gpus", "all"),
    ray_resource_args=lambda count: (f"--num-gpus={count}",),
    device_env=lambda count: {},
    communication_env=_nvidia_communication,
)

ASCEND_310P = AcceleratorFamily(
    name="ascend-310p",
    vendor="Ascend",
    models=("Ascend 310P3",),
    weight_dtype="fp16",
    # vLLM 0.10.0 with CANN 8.2.RC1: the 310P build its maintainers call the most stable
    # (vllm-ascend#4026, #4874); v0.11.0rc2-310p has reported Qwen2.5 failures. The tag is a
    # multi-architecture manifest; node-ready compares the pulled image's architecture with the host's.
    default_image="quay.io/ascend/vllm-ascend:v0.10.0rc1-310p",
    count_command=f"{ASCEND_CHIPS} | grep -c .",
    container_probe=("npu-smi", "info", "-m"),  # mounted from the host with the driver files
    container_probe_pattern="^ +[0-9]+ +[0-9]+ +[0-9]+ +Ascend ",
    inventory_command=ASCEND_INVENTORY,
    driver_version_command=ASCEND_DRIVER_VERSION,
    # The Ascend HDK seed 001 ran on (24.1.rc3).
    min_driver_version="24.1",
    driver_hint="install the Ascend HDK driver and firmware 24.1.rc3 or newer for Atlas 300I Duo "
                "(Ascend-hdk-310p-npu-driver_<version>_linux-<arch>.run --full --install-for-all, then reboot)",
    # The devices and driver files are handed over explicitly (no Ascend docker runtime needed).
    runtime_check_command="test -c /dev/davinci_manager && test -c /dev/devmm_svm && test -c /dev/hisi_hdc "
                          f"&& test -d /usr/local/Ascend/driver/lib64 && test -f {ASCEND_VERSION_INFO}",
    runtime_hint="the Ascend driver's devices (/dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc) and "
                 "/usr/local/Ascend/driver must exist: install the HDK driver with --install-for-all",
    ray_resource="NPU",
    device_args=_ascend_device_args,
    # Ray's auto-detection globs /dev/davinci? only: declare the chips as the NPU resource vllm-ascend asks for.
    ray_resource_args=lambda count: (f"--resources={json.dumps({'NPU': count})}",),
    device_env=lambda count: {"ASCEND_RT_VISIBLE_DEVICES": ",".join(str(i) for i in range(count)),
                              "PYTORCH_NPU_ALLOC_CONF": "max_split_size_mb:256"},
    communication_env=_ascend_communication,
    serve_flags=("--dtype", "float16", "--enforce-eager", "--compilation-config", ASCEND_310P_COMPILATION_CONFIG),
    managed_serve_flags=("--dtype", "--enforce-eager", "--compilation-config", "-O"),
)

FAMILIES: dict[str, AcceleratorFamily] = {family.name: family for family in (NVIDIA, ASCEND_310P)}


def family_of(model: str) -> AcceleratorFamily:
    """The family of an accelerator model such as "RTX 4090" or "Ascend 310P3" (KeyError when unknown)."""
    for family in FAMILIES.values():
        if model in family.models:
            return family
    raise KeyError(model)


def node_ready_env(family: AcceleratorFamily, count: int, *, owned: bool, nvidia_minimum: str) -> dict[str, str]:
    """What node_ready.sh needs from the family's entry (the accelerator part of its env)."""
    return {
        "MIN_DRIVER_VERSION": min_driver_version(family, nvidia_minimum),
        "ACCEL_DRIVER_VERSION_COMMAND": family.driver_version_command,
        "DRIVER_NAME": family.vendor,
        "DRIVER_HINT": driver_hint(family, owned=owned),
        "ACCEL_COUNT_COMMAND": family.count_command,
        "ACCEL_INVENTORY_COMMAND": family.inventory_command,
        "ACCEL_RUNTIME_CHECK": family.runtime_check_command,
        "RUNTIME_HINT": family.runtime_hint,
        "DEVICE_ARGS": device_args(family, count),
        "CONTAINER_PROBE": "\n".join(family.container_probe),
        "CONTAINER_PROBE_PATTERN": family.container_probe_pattern,
    }


def min_driver_version(family: AcceleratorFamily, nvidia_minimum: str) -> str:
    """The oldest driver a family's image runs on: NVIDIA's is qwen:serving.minDriverVersion (the clouds
    install NVIDIA drivers, and a mirror image may need a newer one); the others' is in their entry."""
    return nvidia_minimum if family.name == NVIDIA.name else family.min_driver_version


# Where the minimum comes from and what to change, after "needs <minimum> or newer".
CLOUD_DRIVER_HINT = ("(qwen:serving.minDriverVersion); install a newer one (qwen:aliyun.nvidiaDriverPackage, "
                     "qwen:azure.nvidiaDriver.driverVersion)")


def driver_hint(family: AcceleratorFamily, owned: bool) -> str:
    """The fix for a driver that is too old: a setting of the cloud that installs it, or, on a machine the
    team owns (the program never installs a driver there), the family's install instructions."""
    source = "(qwen:serving.minDriverVersion)" if family.name == NVIDIA.name else "(components/accelerators.py)"
    return f"{source}; {family.driver_hint}" if owned else CLOUD_DRIVER_HINT


def known_models() -> list[str]:
    return [model for family in FAMILIES.values() for model in family.models]


def container_env_lines(family: AcceleratorFamily, count: int, extra: Mapping[str, str], *, across_hosts: bool = False,
                        interface: str = "", node_ip: str = "") -> str:
    """CONTAINER_ENV of a step (one K=V per line): the family's device env, its communication env when
    the collectives cross hosts (Ray), and the stack's extra env (e.g. NCCL_P2P_DISABLE)."""
    env = {**family.device_env(count), **(family.communication_env(interface, node_ip) if across_hosts else {}), **extra}
    return "\n".join(f"{key}={value}" for key, value in env.items())


def container_env(family: AcceleratorFamily, count: int, extra: Mapping[str, str], *, across_hosts: bool = False,
                  interface: str = "", node_ip: pulumi.Input[str] = "") -> pulumi.Output[str]:
    """container_env_lines for a node IP that may be an Output."""
    return pulumi.Output.from_input(node_ip).apply(lambda ip: container_env_lines(
        family, count, extra, across_hosts=across_hosts, interface=interface, node_ip=ip))


def device_args(family: AcceleratorFamily, count: int) -> str:
    """DEVICE_ARGS of a step: the family's `docker run` arguments, one per line."""
    return "\n".join(family.device_args(count))

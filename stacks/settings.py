"""The one place that reads stack configuration and turns it into typed, validated settings.

``parse_settings`` is pure: it takes the raw ``qwen:*`` values (as loaded from the stack
file) and returns ``Settings`` or raises ``SettingsError`` listing every problem, each
naming the config key and the fix. ``load_settings`` feeds it from ``pulumi.Config``.
Nothing here creates a resource, so a bad stack file fails before anything is bought.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import pulumi

from components.benchmark import Scenario
from stacks.catalog import GPU_SIZES, MODELS, GpuSize, ModelSpec
from stacks.preflight.config import Candidate, PreflightSettings, parse_candidates, parse_preflight  # preflight (issue 11)

NAMESPACE = "qwen"
CLOUDS = ("azure", "aliyun")

# Disk needed on a GPU node's system disk besides the image and weights (GB): the Ubuntu
# base system, and the NVIDIA driver + DKMS build tools + container toolkit + docker.
OS_BASE_GB = 5.0
NVIDIA_STACK_GB = 4.0
DISK_HEADROOM_GB = 2.0
# Per-GPU memory vLLM needs beyond weights and KV cache (CUDA context, activations, graphs).
GPU_RUNTIME_OVERHEAD_GB = 2.0

SEED_SCENARIO = "seed-10k-in-800-out-c1"


class SettingsError(pulumi.RunError):
    """Invalid stack configuration; the message lists every problem with its key and fix."""

    def __init__(self, stack: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}' has {len(problems)} configuration problem(s); nothing was created:\n{lines}"
        )


# ---------------------------------------------------------------------------- typed settings


@dataclass(frozen=True)
class AccessSettings:
    allowed_cidrs: tuple[str, ...]
    ssh_public_key: Optional[str]
    ssh_key_file: str
    # The private half of ssh_public_key, from the secret `qwen:sshPrivateKey` (an Output in a real run).
    ssh_private_key: Any = None


@dataclass(frozen=True)
class ModelSettings:
    id: str
    served_name: str
    source: str  # "huggingface" | "modelscope"
    revision: str
    max_model_len: int
    spec: ModelSpec

    @property
    def dir_name(self) -> str:
        return self.id.split("/")[-1]


@dataclass(frozen=True)
class ServingSettings:
    image: str
    port: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpu_memory_utilization: float
    private_interface: str
    model_wait_timeout_minutes: int
    health_timeout_minutes: int
    image_extracted_gb: float
    image_largest_layer_gb: float
    extra_args: tuple[str, ...]
    container_toolkit_repo: str

    @property
    def image_pull_disk_gb(self) -> float:
        """Disk a pull of the image needs: the image extracted plus its largest layer still compressed."""
        return self.image_extracted_gb + self.image_largest_layer_gb


@dataclass(frozen=True)
class BenchmarkSettings:
    run_id: str
    timeout_minutes: int
    scenarios: tuple[Scenario, ...]

    @property
    def seed(self) -> Scenario:
        return next(s for s in self.scenarios if s.name == SEED_SCENARIO)


@dataclass(frozen=True)
class NvidiaExtensionSettings:
    type_handler_version: str
    settings: dict


@dataclass(frozen=True)
class AzureSettings:
    location: str
    resource_group_name: str
    vnet_name: str
    vnet_cidr: str
    subnet_name: str
    subnet_cidr: str
    nsg_name: str
    public_ip_name: str
    nic_name: str
    vm_name: str
    vm_size: str
    os_disk_size_gb: int
    os_disk_type: str
    admin_username: str
    spot_max_price: float
    eviction_policy: str
    image: dict
    nvidia_driver: NvidiaExtensionSettings
    gpu: GpuSize
    # preflight (issue 11): the ordered candidates; location, vm_size, gpu, priority and zone are the
    # chosen one's after stacks/preflight (gpu is None until then when candidates are set).
    candidates: tuple[Candidate, ...] = ()
    priority: str = "Spot"
    zone: Optional[str] = None


@dataclass(frozen=True)
class NasSettings:
    storage_type: str
    mount_dir: str
    models_subdir: str


@dataclass(frozen=True)
class AliyunSettings:
    name_prefix: str
    vpc_cidr: str
    vswitch_cidr: str
    gpu_instance_type: str
    gpu_node_count: int
    gpu_system_disk_gb: int
    downloader_instance_type: str
    downloader_system_disk_gb: int
    system_disk_category: str
    internet_max_bandwidth_out: int
    image_name_regex: str
    image_id: Optional[str]
    nvidia_driver_package: str
    modelscope_version: str
    download_timeout_hours: int
    nas: NasSettings
    gpu: GpuSize


@dataclass(frozen=True)
class Settings:
    stack: str
    cloud: str
    access: AccessSettings
    model: ModelSettings
    serving: ServingSettings
    benchmark: BenchmarkSettings
    azure: Optional[AzureSettings] = None
    aliyun: Optional[AliyunSettings] = None
    preflight: PreflightSettings = PreflightSettings()  # preflight (issue 11)



# ---------------------------------------------------------------------------- reading helpers


class _Reader:
    """Reads one config object, collecting problems instead of stopping at the first."""

    def __init__(self, key: str, raw: Any, problems: list[str]):
        self.key = key
        self.problems = problems
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            problems.append(f"{NAMESPACE}:{key} must be an object (a YAML mapping), got {type(raw).__name__}")
            raw = {}
        self.raw = raw

    def _full(self, name: str) -> str:
        return f"{NAMESPACE}:{self.key}.{name}"

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self._full(name)}: {message}")

    def _get(self, name: str, default: Any, required: bool, kind: type | tuple, hint: str) -> Any:
        if name not in self.raw or self.raw[name] is None:
            if required:
                self.problem(name, f"is required. Set it: {hint}" if hint else "is required")
            return default
        value = self.raw[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) and kind is not bool:
            self.problem(name, f"must be {getattr(kind, '__name__', kind)}, got a boolean")
            return default
        if not isinstance(value, kind):
            self.problem(name, f"must be {getattr(kind, '__name__', kind)}, got {value!r}")
            return default
        return value

    def str(self, name: str, default: Optional[str] = None, required: bool = False, hint: str = "") -> Any:
        return self._get(name, default, required, str, hint)

    def int(self, name: str, default: Optional[int] = None, required: bool = False,
            minimum: Optional[int] = None, maximum: Optional[int] = None) -> Any:
        value = self._get(name, default, required, int, "")
        if isinstance(value, int):
            if minimum is not None and value < minimum:
                self.problem(name, f"must be at least {minimum}, got {value}")
            if maximum is not None and value > maximum:
                self.problem(name, f"must be at most {maximum}, got {value}")
        return value

    def float(self, name: str, default: Optional[float] = None, required: bool = False) -> Any:
        return self._get(name, default, required, float, "")

    def bool(self, name: str, default: bool = False) -> Any:
        return self._get(name, default, False, bool, "")

    def list(self, name: str, default: Optional[list] = None) -> list:
        value = self._get(name, default if default is not None else [], False, list, "")
        return value

    def obj(self, name: str) -> "_Reader":
        return _Reader(f"{self.key}.{name}", self.raw.get(name), self.problems)

    def unknown_keys(self, known: set[str]) -> None:
        for name in sorted(set(self.raw) - known):
            self.problem(name, f"is not a known setting (known: {', '.join(sorted(known))}); check its spelling")


def _check_cidr(reader: _Reader, name: str, value: Optional[str]) -> Optional[ipaddress.IPv4Network]:
    if value is None:
        return None
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        reader.problem(name, f"'{value}' is not a valid IPv4 CIDR ({err}); write it like 10.10.0.0/16 with the host bits zero")
        return None


def _check_name(reader: _Reader, name: str, value: Optional[str], pattern: str, rule: str) -> None:
    if value is not None and not re.fullmatch(pattern, value):
        reader.problem(name, f"'{value}' is not a valid name: {rule}")


AZURE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]"
AZURE_NAME_RULE = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"


# ---------------------------------------------------------------------------- sections


def _parse_access(raw: Any, stack: str, cloud: Any, problems: list[str], private_key: Any) -> AccessSettings:
    r = _Reader("access", raw, problems)
    r.unknown_keys({"allowedCidrs", "allowAnySource", "sshPublicKey", "sshKeyFile"})
    cidrs = r.list("allowedCidrs")
    allow_any = r.bool("allowAnySource", False)
    if not cidrs:
        r.problem(
            "allowedCidrs",
            "is required: the source addresses allowed to reach SSH and the API port. Set yours with "
            f"`pulumi config set --path '{NAMESPACE}:access.allowedCidrs[0]' $(curl -s ifconfig.me)/32 -s {stack}`",
        )
    checked: list[str] = []
    for i, cidr in enumerate(cidrs):
        item = f"allowedCidrs[{i}]"
        if not isinstance(cidr, str):
            r.problem(item, f"must be a CIDR string, got {cidr!r}")
            continue
        net = _check_cidr(r, item, cidr)
        if net is None:
            continue
        if net.prefixlen == 0 and not allow_any:
            r.problem(
                item,
                "0.0.0.0/0 opens SSH and the API to the whole internet. Use your own address "
                f"(x.y.z.w/32), or opt in explicitly with `pulumi config set --path '{NAMESPACE}:access.allowAnySource' true`",
            )
        checked.append(str(net))
    public_key = r.str("sshPublicKey")
    if public_key is not None and not re.match(r"^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+", public_key):
        r.problem("sshPublicKey", "must be an OpenSSH public key line (ssh-rsa AAAA... or ssh-ed25519 AAAA...), or unset to generate one")
    elif public_key is not None and cloud == "aliyun" and public_key.startswith("ssh-ed25519"):
        r.problem("sshPublicKey", "Alibaba Cloud key pairs accept rsa, dsa and ecdsa keys only; give an ssh-rsa key, or unset it to generate one")
    if public_key is not None and private_key is None:
        r.problem(
            "sshPublicKey",
            "is set, so the deployment needs its private key to run the bootstrap steps: "
            f"`pulumi config set --secret {NAMESPACE}:sshPrivateKey < ~/.ssh/your_key -s {stack}` (or unset sshPublicKey to generate a key)",
        )
    key_file = r.str("sshKeyFile", f"~/.ssh/qwen-{stack}.pem")
    return AccessSettings(tuple(checked), public_key, key_file, private_key if public_key else None)


def _parse_model(raw: Any, problems: list[str]) -> Optional[ModelSettings]:
    r = _Reader("model", raw, problems)
    r.unknown_keys({"id", "servedName", "source", "revision", "maxModelLen"})
    model_id = r.str("id", required=True, hint=f"`pulumi config set --path {NAMESPACE}:model.id Qwen/Qwen2.5-14B-Instruct`")
    source = r.str("source", "huggingface")
    if source not in ("huggingface", "modelscope"):
        r.problem("source", f"must be 'huggingface' or 'modelscope', got '{source}'")
    spec = MODELS.get(model_id) if model_id else None
    if model_id and spec is None:
        r.problem("id", f"'{model_id}' is not in the model catalog (known: {', '.join(MODELS)}); add its numbers to stacks/catalog.py")
    max_len = r.int("maxModelLen", spec.native_context if spec else None, minimum=256)
    if spec and isinstance(max_len, int) and max_len > spec.native_context:
        r.problem(
            "maxModelLen",
            f"{max_len} exceeds the {spec.native_context} tokens {model_id} supports without rope scaling; "
            f"set it to {spec.native_context} or less",
        )
    if not model_id or spec is None:
        return None
    return ModelSettings(
        id=model_id,
        served_name=r.str("servedName", model_id),
        source=source,
        revision=r.str("revision", "main"),
        max_model_len=max_len,
        spec=spec,
    )


# `vllm serve` flags the program sets itself, with what sets them; extraArgs may not override them.
MANAGED_VLLM_FLAGS = {
    "--api-key": "the generated API key", "--tensor-parallel-size": "serving.tensorParallelSize",
    "-tp": "serving.tensorParallelSize", "--pipeline-parallel-size": "serving.pipelineParallelSize",
    "-pp": "serving.pipelineParallelSize", "--port": "serving.port", "--host": "the program",
    "--served-model-name": "model.servedName", "--max-model-len": "model.maxModelLen",
    "--gpu-memory-utilization": "serving.gpuMemoryUtilization", "--distributed-executor-backend": "the program",
    "--model": "model.id",
}
# Ray's fixed ports on every node (GCS, dashboard, client, dashboard agent) and its worker port range.
RAY_PORTS = {6379, 8265, 10001, 52365}
RAY_WORKER_PORTS = range(10002, 20000)


def _managed_flag(arg: str) -> Optional[str]:
    flag = arg.split("=", 1)[0]
    flag = flag.replace("_", "-") if flag.startswith("--") else flag
    return MANAGED_VLLM_FLAGS.get(flag)


def _parse_serving(raw: Any, problems: list[str], tp_from_candidates: bool = False) -> ServingSettings:
    r = _Reader("serving", raw, problems)
    r.unknown_keys({
        "image", "port", "tensorParallelSize", "pipelineParallelSize", "gpuMemoryUtilization",
        "privateInterface", "modelWaitTimeoutMinutes", "healthTimeoutMinutes", "imageExtractedGb",
        "imageLargestLayerGb", "extraArgs", "containerToolkitRepo",
    })
    image = r.str("image", required=True, hint=f"`pulumi config set --path {NAMESPACE}:serving.image vllm/vllm-openai:v0.11.0`")
    if image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
        r.problem("image", f"'{image}' must be pinned to a version tag (for example vllm/vllm-openai:v0.11.0), not latest or untagged")
    util = r.float("gpuMemoryUtilization", 0.9)
    if isinstance(util, float) and not 0.1 <= util <= 0.98:
        r.problem("gpuMemoryUtilization", f"must be between 0.1 and 0.98, got {util}")
    iface = r.str("privateInterface", "eth0")
    if iface and not re.fullmatch(r"[a-z0-9]{1,15}", iface):
        r.problem("privateInterface", f"'{iface}' is not a network interface name such as eth0")
    extra = r.list("extraArgs")
    for i, arg in enumerate(extra):
        if not isinstance(arg, str):
            r.problem(f"extraArgs[{i}]", f"must be a string, got {arg!r}")
        elif re.search(r"\s", arg):
            r.problem(f"extraArgs[{i}]", f"'{arg}' holds whitespace; give a flag and its value as two items or as --flag=value")
        elif _managed_flag(arg):
            r.problem(f"extraArgs[{i}]", f"'{arg}' is set by the program ({_managed_flag(arg)}); remove it from extraArgs")
    toolkit_repo = r.str("containerToolkitRepo", "https://nvidia.github.io/libnvidia-container")
    if toolkit_repo and not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?", toolkit_repo):
        r.problem("containerToolkitRepo", f"'{toolkit_repo}' must be an https URL of NVIDIA's libnvidia-container apt repository or a mirror")
    port = r.int("port", 8000, minimum=1024, maximum=65535)
    if isinstance(port, int) and (port in RAY_PORTS or port in RAY_WORKER_PORTS):
        r.problem("port", f"{port} is one of Ray's ports on the same host network (6379, 8265, 10001, 52365, 10002-19999); use e.g. 8000")
    return ServingSettings(
        image=image,
        port=port,
        # preflight (issue 11): with qwen:azure.candidates it defaults to each candidate's GPUs.
        tensor_parallel_size=r.int("tensorParallelSize", required=not tp_from_candidates, minimum=1),
        pipeline_parallel_size=r.int("pipelineParallelSize", 1, minimum=1),
        gpu_memory_utilization=util,
        private_interface=iface,
        model_wait_timeout_minutes=r.int("modelWaitTimeoutMinutes", 90, minimum=5),
        health_timeout_minutes=r.int("healthTimeoutMinutes", 40, minimum=5),
        image_extracted_gb=r.float("imageExtractedGb", 24.0),
        image_largest_layer_gb=r.float("imageLargestLayerGb", 6.0),
        extra_args=tuple(a for a in extra if isinstance(a, str)),
        container_toolkit_repo=toolkit_repo,
    )


DEFAULT_EXTRA_SCENARIOS = (
    Scenario("chat-1k-in-256-out-c8", 1024, 256, 32, 8, 2),
    Scenario("batch-256-in-256-out-c192", 256, 256, 192, 192, 4),
)


def _parse_benchmark(raw: Any, problems: list[str], max_model_len: Optional[int]) -> BenchmarkSettings:
    r = _Reader("benchmark", raw, problems)
    r.unknown_keys({"runId", "timeoutMinutes", "scenarios"})
    run_id = r._get("runId", "1", False, (str, int), "")
    seed = Scenario(SEED_SCENARIO, 10000, 800, 1, 1, 1)
    scenarios: list[Scenario] = [seed]
    defaults = [{"name": s.name, "inputTokens": s.input_tokens, "outputTokens": s.output_tokens,
                 "numPrompts": s.num_prompts, "concurrency": s.concurrency, "warmups": s.warmups}
                for s in DEFAULT_EXTRA_SCENARIOS]
    for i, item in enumerate(r.list("scenarios", defaults)):
        sr = _Reader(f"benchmark.scenarios[{i}]", item, problems)
        sr.unknown_keys({"name", "inputTokens", "outputTokens", "numPrompts", "concurrency", "warmups"})
        name = sr.str("name", required=True)
        if name == SEED_SCENARIO:
            sr.problem("name", f"'{SEED_SCENARIO}' is the fixed seed scenario and always runs; pick another name")
            continue
        if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,48}", name):
            sr.problem("name", f"'{name}' must be lowercase letters, digits and '-' (it names a resource)")
        scenarios.append(Scenario(
            name=name or f"scenario-{i}",
            input_tokens=sr.int("inputTokens", required=True, minimum=1),
            output_tokens=sr.int("outputTokens", required=True, minimum=1),
            num_prompts=sr.int("numPrompts", 1, minimum=1),
            concurrency=sr.int("concurrency", 1, minimum=1),
            warmups=sr.int("warmups", 1, minimum=0),
        ))
    names = [s.name for s in scenarios]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        r.problem("scenarios", f"scenario name '{dup}' is used twice; names must be unique")
    if max_model_len:
        for i, s in enumerate(scenarios):
            if isinstance(s.input_tokens, int) and isinstance(s.output_tokens, int) and s.input_tokens + s.output_tokens > max_model_len:
                where = "scenarios" if s.name == SEED_SCENARIO else f"scenarios[{i - 1}]"
                r.problem(where, f"scenario '{s.name}' needs {s.input_tokens + s.output_tokens} tokens of context but "
                                 f"{NAMESPACE}:model.maxModelLen is {max_model_len}; raise maxModelLen or shorten the scenario")
    return BenchmarkSettings(str(run_id), r.int("timeoutMinutes", 60, minimum=5), tuple(scenarios))


def _gpu_size(r: _Reader, name: str, size: Optional[str]) -> Optional[GpuSize]:
    if size is None:
        return None
    gpu = GPU_SIZES.get(size)
    if gpu is None:
        r.problem(name, f"'{size}' is not in the GPU size catalog (known: {', '.join(GPU_SIZES)}); add it to stacks/catalog.py")
    return gpu


def _parse_azure(raw: Any, problems: list[str]) -> AzureSettings:
    r = _Reader("azure", raw, problems)
    known = {"location", "resourceGroupName", "vnetName", "vnetCidr", "subnetName", "subnetCidr", "nsgName",
             "publicIpName", "nicName", "vmName", "vmSize", "osDiskSizeGb", "osDiskType", "adminUsername",
             "spotMaxPrice", "evictionPolicy", "image", "nvidiaDriver", "candidates"}
    r.unknown_keys(known)
    # preflight (issue 11): qwen:azure.candidates replaces location and vmSize.
    candidates, candidate_problems = parse_candidates(r.raw.get("candidates"))
    problems.extend(candidate_problems)
    if r.raw.get("candidates") is not None:
        for k in ("location", "vmSize"):
            if r.raw.get(k) is not None:
                r.problem(k, "is decided by qwen:azure.candidates; remove it (or remove candidates)")
    names = {k: r.str(k, required=k not in ("location", "vmSize") or r.raw.get("candidates") is None) for k in
             ("location", "resourceGroupName", "vnetName", "subnetName", "nsgName", "publicIpName", "nicName", "vmName", "vmSize")}
    for k in ("resourceGroupName", "vnetName", "subnetName", "nsgName", "publicIpName", "nicName"):
        _check_name(r, k, names[k], AZURE_NAME, AZURE_NAME_RULE)
    _check_name(r, "vmName", names["vmName"], r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]", "1-64 lowercase letters, digits and '-' (it is also the Linux host name)")
    vnet = _check_cidr(r, "vnetCidr", r.str("vnetCidr", required=True))
    subnet = _check_cidr(r, "subnetCidr", r.str("subnetCidr", required=True))
    if vnet and subnet and not subnet.subnet_of(vnet):
        r.problem("subnetCidr", f"{subnet} is not inside vnetCidr {vnet}; pick a subnet range within the VNet")
    max_price = r.float("spotMaxPrice", -1.0)
    if isinstance(max_price, float) and max_price != -1.0 and max_price <= 0:
        r.problem("spotMaxPrice", f"must be -1 (pay up to the on-demand price, never evicted for price) or a positive USD/hour price, got {max_price}")
    eviction = r.str("evictionPolicy", "Deallocate")
    if eviction not in ("Deallocate", "Delete"):
        r.problem("evictionPolicy", f"must be Deallocate (keeps the disk and weights) or Delete, got '{eviction}'")
    disk_type = r.str("osDiskType", "Premium_LRS")
    if disk_type not in ("Premium_LRS", "StandardSSD_LRS", "Standard_LRS", "Premium_ZRS", "StandardSSD_ZRS"):
        r.problem("osDiskType", f"'{disk_type}' is not an Azure managed disk SKU such as Premium_LRS")
    admin = r.str("adminUsername", "azureuser")
    if admin in ("root", "admin", "administrator") or (admin and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", admin)):
        r.problem("adminUsername", f"'{admin}' is reserved or not a Linux user name; use e.g. azureuser")
    image = r.obj("image")
    image.unknown_keys({"publisher", "offer", "sku", "version"})
    image_ref = {
        "publisher": image.str("publisher", "Canonical"),
        "offer": image.str("offer", "0001-com-ubuntu-server-jammy"),
        "sku": image.str("sku", "22_04-lts-gen2"),
        "version": image.str("version", "latest"),
    }
    if "gen2" not in (image_ref["sku"] or "") and "NC" in (names["vmSize"] or ""):
        image.problem("sku", f"'{image_ref['sku']}' is not a Gen2 image; NC A100 v4 sizes boot Gen2 images only (e.g. 22_04-lts-gen2)")
    nv = r.obj("nvidiaDriver")
    nv.unknown_keys({"typeHandlerVersion", "driverVersion", "installCuda", "updateOs"})
    ext_settings: dict = {"updateOS": nv.bool("updateOs", False), "installCUDA": nv.bool("installCuda", False)}
    driver_version = nv.str("driverVersion")
    if driver_version is not None:
        if not re.fullmatch(r"\d+\.\d+", driver_version):
            nv.problem("driverVersion", f"'{driver_version}' is not a CUDA version like 12.8 (the extension takes the CUDA version on NC sizes, not 'cuda_12.2')")
        ext_settings["driverVersion"] = driver_version
    handler = nv.str("typeHandlerVersion", "1.11")
    if handler and not re.fullmatch(r"\d+\.\d+", handler):
        nv.problem("typeHandlerVersion", f"'{handler}' must be major.minor such as 1.11")
    return AzureSettings(
        location=names["location"], resource_group_name=names["resourceGroupName"],
        vnet_name=names["vnetName"], vnet_cidr=str(vnet) if vnet else "",
        subnet_name=names["subnetName"], subnet_cidr=str(subnet) if subnet else "",
        nsg_name=names["nsgName"], public_ip_name=names["publicIpName"], nic_name=names["nicName"],
        vm_name=names["vmName"], vm_size=names["vmSize"],
        os_disk_size_gb=r.int("osDiskSizeGb", 1024, minimum=64, maximum=4095),
        os_disk_type=disk_type, admin_username=admin, spot_max_price=max_price, eviction_policy=eviction,
        image=image_ref, nvidia_driver=NvidiaExtensionSettings(handler, ext_settings),
        gpu=_gpu_size(r, "vmSize", names["vmSize"]),
        candidates=candidates,  # preflight (issue 11)
    )


def _parse_aliyun(raw: Any, problems: list[str]) -> AliyunSettings:
    r = _Reader("aliyun", raw, problems)
    r.unknown_keys({"namePrefix", "vpcCidr", "vswitchCidr", "gpuInstanceType", "gpuNodeCount", "gpuSystemDiskGb",
                    "downloaderInstanceType", "downloaderSystemDiskGb", "systemDiskCategory", "internetMaxBandwidthOut",
                    "imageNameRegex", "imageId", "nvidiaDriverPackage", "modelscopeVersion", "downloadTimeoutHours", "nas"})
    prefix = r.str("namePrefix", required=True)
    _check_name(r, "namePrefix", prefix, r"[a-z][a-z0-9-]{1,30}", "2-31 lowercase letters, digits and '-', starting with a letter")
    vpc = _check_cidr(r, "vpcCidr", r.str("vpcCidr", required=True))
    vsw = _check_cidr(r, "vswitchCidr", r.str("vswitchCidr", required=True))
    if vpc and vsw and not vsw.subnet_of(vpc):
        r.problem("vswitchCidr", f"{vsw} is not inside vpcCidr {vpc}; pick a vSwitch range within the VPC")
    gpu_type = r.str("gpuInstanceType", required=True)
    regex = r.str("imageNameRegex", r"^ubuntu_22_04_x64_20G_alibase_.*\.vhd$")
    try:
        re.compile(regex or "")
    except re.error as err:
        r.problem("imageNameRegex", f"is not a valid regular expression: {err}")
    bandwidth = r.int("internetMaxBandwidthOut", 100, minimum=1, maximum=100)
    nas = r.obj("nas")
    nas.unknown_keys({"storageType", "mountDir", "modelsSubdir"})
    storage = nas.str("storageType", "Performance")
    if storage not in ("Performance", "Capacity", "Premium"):
        nas.problem("storageType", f"must be Performance, Capacity or Premium (General-purpose NAS), got '{storage}'")
    mount_dir = nas.str("mountDir", "/mnt")
    if mount_dir and not re.fullmatch(r"/[A-Za-z0-9_/-]*", mount_dir):
        nas.problem("mountDir", f"'{mount_dir}' must be an absolute path")
    return AliyunSettings(
        name_prefix=prefix, vpc_cidr=str(vpc) if vpc else "", vswitch_cidr=str(vsw) if vsw else "",
        gpu_instance_type=gpu_type, gpu_node_count=r.int("gpuNodeCount", 2, minimum=1, maximum=16),
        gpu_system_disk_gb=r.int("gpuSystemDiskGb", 45, minimum=20, maximum=2048),
        downloader_instance_type=r.str("downloaderInstanceType", "ecs.e-c1m2.large"),
        downloader_system_disk_gb=r.int("downloaderSystemDiskGb", 150, minimum=20, maximum=2048),
        system_disk_category=r.str("systemDiskCategory", "cloud_essd"),
        internet_max_bandwidth_out=bandwidth, image_name_regex=regex, image_id=r.str("imageId"),
        nvidia_driver_package=r.str("nvidiaDriverPackage", "nvidia-headless-570-server"),
        modelscope_version=r.str("modelscopeVersion", "1.31.0"),
        download_timeout_hours=r.int("downloadTimeoutHours", 8, minimum=1, maximum=48),
        nas=NasSettings(storage, mount_dir, nas.str("modelsSubdir", "models")),
        gpu=_gpu_size(r, "gpuInstanceType", gpu_type),
    )


# ---------------------------------------------------------------------------- cross-section rules


def _check_layout(settings: Settings, problems: list[str]) -> None:
    """Tensor parallel spans the GPUs of one node, pipeline parallel spans the nodes."""
    serving, model = settings.serving, settings.model
    if settings.azure:
        gpu, nodes, size_key = settings.azure.gpu, 1, "azure.vmSize"
    else:
        gpu, nodes, size_key = settings.aliyun.gpu, settings.aliyun.gpu_node_count, "aliyun.gpuInstanceType"
    if gpu is None or not isinstance(serving.tensor_parallel_size, int):
        return
    tp, pp = serving.tensor_parallel_size, serving.pipeline_parallel_size
    if tp != gpu.gpus:
        problems.append(
            f"{NAMESPACE}:serving.tensorParallelSize: {tp} does not match the {gpu.gpus} GPU(s) per node of "
            f"{NAMESPACE}:{size_key}; set it to {gpu.gpus} (tensor parallel stays inside one node)"
        )
    if pp != nodes:
        problems.append(
            f"{NAMESPACE}:serving.pipelineParallelSize: {pp} does not match the {nodes} GPU node(s); set it to {nodes} "
            "(one pipeline stage per node)"
        )
    spec = model.spec
    if spec.attention_heads % tp or (spec.kv_heads % tp and tp % spec.kv_heads):
        problems.append(
            f"{NAMESPACE}:serving.tensorParallelSize: {tp} does not divide the {spec.attention_heads} attention / "
            f"{spec.kv_heads} KV heads of {model.id}; use 1, 2, 4 or 8"
        )
    if not isinstance(serving.gpu_memory_utilization, float) or not isinstance(model.max_model_len, int):
        return
    shards = tp * pp
    weights = spec.weights_gb / shards
    kv_one_sequence = spec.kv_bytes_per_token * model.max_model_len / shards / 1e9
    budget = gpu.gpu_memory_gb * serving.gpu_memory_utilization
    needed = weights + kv_one_sequence + GPU_RUNTIME_OVERHEAD_GB
    if needed > budget:
        problems.append(
            f"{NAMESPACE}:model.maxModelLen: {model.id} needs {needed:.1f} GB per GPU ({weights:.1f} weights + "
            f"{kv_one_sequence:.1f} KV cache for one {model.max_model_len}-token sequence + {GPU_RUNTIME_OVERHEAD_GB} runtime) "
            f"but {gpu.gpu_memory_gb} GB x gpuMemoryUtilization {serving.gpu_memory_utilization} = {budget:.1f} GB; "
            "lower maxModelLen, or use more or larger GPUs"
        )


def system_disk_needed_gb(serving: ServingSettings, weights_gb: float) -> float:
    """GB a GPU node's system disk needs: OS, NVIDIA stack, the image while it is pulled, and local weights."""
    return OS_BASE_GB + NVIDIA_STACK_GB + serving.image_pull_disk_gb + weights_gb + DISK_HEADROOM_GB


def _check_disk(settings: Settings, problems: list[str]) -> None:
    if not isinstance(settings.serving.image_extracted_gb, float) or not isinstance(settings.serving.image_largest_layer_gb, float):
        return
    if settings.azure and isinstance(settings.azure.os_disk_size_gb, int):
        have, key, weights = settings.azure.os_disk_size_gb, "azure.osDiskSizeGb", settings.model.spec.weights_gb
    elif settings.aliyun and isinstance(settings.aliyun.gpu_system_disk_gb, int):
        have, key, weights = settings.aliyun.gpu_system_disk_gb, "aliyun.gpuSystemDiskGb", 0.0  # weights live on the NAS
    else:
        return
    need = system_disk_needed_gb(settings.serving, weights)
    if need > have:
        problems.append(
            f"{NAMESPACE}:{key}: {have} GB is too small: the node needs {need:.0f} GB (OS {OS_BASE_GB:.0f} + NVIDIA driver "
            f"and toolkit {NVIDIA_STACK_GB:.0f} + image {settings.serving.image_extracted_gb:.0f} extracted + "
            f"{settings.serving.image_largest_layer_gb:.0f} largest layer while pulling + weights {weights:.0f} + headroom "
            f"{DISK_HEADROOM_GB:.0f}); raise {NAMESPACE}:{key} to at least {need:.0f}"
        )


# ---------------------------------------------------------------------------- entry points


def parse_settings(stack: str, raw: Mapping[str, Any]) -> Settings:
    """Validate raw ``qwen:*`` values (keys without the namespace) into ``Settings``."""
    problems: list[str] = []
    known = {"cloud", "access", "model", "serving", "benchmark", "azure", "aliyun", "sshPrivateKey", "preflight"}
    for key in sorted(set(raw) - known):
        problems.append(f"{NAMESPACE}:{key}: is not a known setting (known: {', '.join(sorted(known))})")
    cloud = raw.get("cloud")
    if cloud not in CLOUDS:
        problems.append(f"{NAMESPACE}:cloud: must be one of {', '.join(CLOUDS)}, got {cloud!r}; "
                        f"set it with `pulumi config set {NAMESPACE}:cloud azure -s {stack}`")
    access = _parse_access(raw.get("access"), stack, cloud, problems, raw.get("sshPrivateKey"))
    model = _parse_model(raw.get("model"), problems)
    azure_raw = raw.get("azure")  # preflight (issue 11): candidates decide tensorParallelSize when it is unset
    serving = _parse_serving(raw.get("serving"), problems,
                             cloud == "azure" and isinstance(azure_raw, Mapping) and azure_raw.get("candidates") is not None)
    preflight, preflight_problems = parse_preflight(raw.get("preflight"))  # preflight (issue 11)
    problems.extend(preflight_problems)
    benchmark = _parse_benchmark(raw.get("benchmark"), problems, model.max_model_len if model else None)
    azure = _parse_azure(raw.get("azure"), problems) if cloud == "azure" else None
    aliyun = _parse_aliyun(raw.get("aliyun"), problems) if cloud == "aliyun" else None
    if cloud == "azure" and "aliyun" in raw:
        problems.append(f"{NAMESPACE}:aliyun: is set on an azure stack; remove it")
    if cloud == "aliyun" and "azure" in raw:
        problems.append(f"{NAMESPACE}:azure: is set on an aliyun stack; remove it")
    if model and aliyun and model.source != "modelscope":
        problems.append(f"{NAMESPACE}:model.source: aliyun stacks download with ModelScope into the NAS; set it to modelscope")
    if problems or model is None:
        raise SettingsError(stack, problems or [f"{NAMESPACE}:model.id: is required"])
    settings = Settings(stack, cloud, access, model, serving, benchmark, azure, aliyun, preflight)
    _check_layout(settings, problems)
    _check_disk(settings, problems)
    if problems:
        raise SettingsError(stack, problems)
    return settings


SECTIONS = ("cloud", "access", "model", "serving", "benchmark", "azure", "aliyun", "preflight")


def load_settings() -> Settings:
    """Read the ``qwen`` namespace of the current stack's config and validate it."""
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in SECTIONS:
        value = config.get(key) if key == "cloud" else config.get_object(key)
        if value is not None:
            raw[key] = value
    private_key = config.get_secret("sshPrivateKey")
    if private_key is not None:
        raw["sshPrivateKey"] = private_key
    return parse_settings(pulumi.get_stack(), raw)

"""The one place that reads stack configuration and turns it into typed, validated settings.

Each setting is one pydantic field: key (its camelCase alias), type, default, bounds and meaning (the README row).
``parse_settings`` is pure: raw ``qwen:*`` values in, ``Settings`` out, or a ``SettingsError`` listing every problem
with its key and fix. ``load_settings`` feeds it every ``qwen:*`` key the engine passed, so typos and keys set without
``--path`` are refused too. Nothing here creates a resource, so a bad stack file fails before anything is bought.
"""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
import shlex
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticUndefined

from components.accelerators import AcceleratorFamily, family_of, known_models
from components.benchmark import Scenario
from components.vllm_service import VLLM_LOCAL_PORT
from stacks import sizing
from stacks.catalog import ACCELERATORS, GPU_SIZES, MODELS, GpuSize, ModelSpec
from stacks.performance import (
    SEED_SCENARIO,
    SWEEP_CONCURRENCIES,
    SWEEP_INPUT_TOKENS,
    SWEEP_OUTPUT_TOKENS,
    sweep_scenario_name,
    weight_dtype,
)

NAMESPACE = "qwen"
CLOUDS = ("azure", "aliyun", "owned")
LOCAL = "local"  # qwen:owned.hosts[].address of the machine that runs pulumi

# Disk needed on a GPU node's system disk besides the image and weights (GB): the Ubuntu
# base system, and the NVIDIA driver + DKMS build tools + container toolkit + docker.
OS_BASE_GB = 5.0
NVIDIA_STACK_GB = 4.0
DISK_HEADROOM_GB = 2.0
# Per-GPU memory vLLM needs beyond weights and KV cache (CUDA context, activations, graphs).
GPU_RUNTIME_OVERHEAD_GB = sizing.RUNTIME_RESERVE_GB

# The tuning knobs' flags, with the setting that sets each: extraArgs may not set them a second time.
KNOB_VLLM_FLAGS = {
    "--quantization": "serving.quantization", "-q": "serving.quantization",
    "--kv-cache-dtype": "serving.kvCacheDtype", "--speculative-config": "serving.speculativeDecoding",
    "--max-num-seqs": "serving.maxNumSeqs", "--max-num-batched-tokens": "serving.maxNumBatchedTokens",
    "--enable-prefix-caching": "serving.enablePrefixCaching", "--no-enable-prefix-caching": "serving.enablePrefixCaching",
}
# `vllm serve` flags the program sets itself, with what sets them; extraArgs may not override them.
MANAGED_VLLM_FLAGS = {
    "--api-key": "the generated API key", "--tensor-parallel-size": "serving.tensorParallelSize",
    "-tp": "serving.tensorParallelSize", "--pipeline-parallel-size": "serving.pipelineParallelSize",
    "-pp": "serving.pipelineParallelSize", "--port": "serving.port", "--host": "the program",
    "--served-model-name": "model.servedName", "--max-model-len": "model.maxModelLen",
    "--gpu-memory-utilization": "serving.gpuMemoryUtilization", "--distributed-executor-backend": "the program",
    "--model": "model.id", **KNOB_VLLM_FLAGS,
}
# vLLM v0.11.0's default --max-num-batched-tokens for `vllm serve` (engine/arg_utils.py): 8192 on GPUs of 70 GiB
# and more except A100s, 2048 on the rest; --max-num-seqs defaults to min(1024 or 256, that).
VLLM_DEFAULT_BATCHED_TOKENS_LARGE, VLLM_DEFAULT_BATCHED_TOKENS = 8192, 2048
# Ray's fixed ports on every node (GCS, dashboard, client, dashboard agent) and its worker port range.
RAY_PORTS = {6379, 8265, 10001, 52365}
RAY_WORKER_PORTS = range(10002, 20000)

# Public Azure regions (`az account list-locations --query "[].name"`, physical regions only).
AZURE_REGIONS = frozenset([
    "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast", "austriaeast",
    "belgiumcentral", "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia",
    "centralus", "chilecentral", "denmarkeast", "eastasia", "eastus", "eastus2", "francecentral", "francesouth",
    "germanynorth", "germanywestcentral", "indonesiacentral", "israelcentral", "italynorth", "japaneast",
    "japanwest", "koreacentral", "koreasouth", "malaysiawest", "mexicocentral", "newzealandnorth",
    "northcentralus", "northeurope", "norwayeast", "norwaywest", "polandcentral", "qatarcentral",
    "southafricanorth", "southafricawest", "southcentralus", "southeastasia", "southindia", "spaincentral",
    "swedencentral", "swedensouth", "switzerlandnorth", "switzerlandwest", "uaecentral", "uaenorth", "uksouth",
    "ukwest", "westcentralus", "westeurope", "westindia", "westus", "westus2", "westus3",
])
AZURE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]"
AZURE_NAME_RULE = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
# Directories a NAS must never be mounted on (or, for the first group, under).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                "/sys", "/usr")
SYSTEM_DIRS = (*SYSTEM_TREES, "/", "/home", "/opt", "/root", "/snap", "/srv", "/tmp", "/var", "/var/lib")


class SettingsError(pulumi.RunError):
    """Invalid stack configuration; the message lists every problem with its key and fix."""

    def __init__(self, stack: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"stack '{stack}' has {len(problems)} configuration problem(s); nothing was created:\n"
                         + "\n".join(f"  - {p}" for p in problems))


class _ProblemsError(ValueError):
    """Rules across the fields of one section: a list of (key inside the section, message)."""


def _context(info: ValidationInfo) -> dict[str, Any]:
    """What parse_settings hands every validator: the stack, the cloud and the secret SSH key."""
    assert isinstance(info.context, dict), "settings are validated through parse_settings"
    return info.context


def _report(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise _ProblemsError(problems)


def setting(default: Any = PydanticUndefined, doc: str = "", *, example: Any = None, shown: str | None = None,
            **bounds: Any) -> Any:
    """Declare one setting: its default (none: required), what it means (the README's row), an example
    value for the fix of a missing one, how the README shows a computed default, and its bounds."""
    extra = {k: v for k, v in (("example", example), ("shown", shown)) if v is not None}
    bounds.setdefault("validate_default", isinstance(default, dict))  # a missing section still checks its keys
    return Field(default, description=doc, json_schema_extra=extra or None, **bounds)


def _rule(check: typing.Callable[[Any], str | None]) -> AfterValidator:
    """A rule on one value: `check` returns the problem, or None."""
    def validate(value: Any) -> Any:
        if value is not None and check(value):
            raise ValueError(check(value))
        return value
    return AfterValidator(validate)


def _matches(pattern: str, problem: str) -> AfterValidator:
    return _rule(lambda v: None if re.fullmatch(pattern, v) else problem.format(v=v))


def _one_of(known: typing.Collection[str], problem: str) -> AfterValidator:
    return _rule(lambda v: None if v in known else problem.format(v=v, known=", ".join(known)))


def _non_empty(fix: str) -> AfterValidator:
    return _rule(lambda v: f"is empty; {fix}" if not v.strip() else f"'{v}' holds whitespace; {fix}"
                 if re.search(r"\s", v) else None)


def _image_problem(image: str) -> str | None:
    if not image.strip() or re.search(r"\s", image):
        return (f"'{image}' is empty or holds whitespace; write an image pinned to a version tag or a digest, such as "
                "vllm/vllm-openai:v0.11.0 or nginx:1.28.0-alpine")
    name, _, digest = image.partition("@")
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    if not re.fullmatch(r"([A-Za-z0-9.-]+(:\d+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*", repository) \
            or (digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest)) \
            or (tag and not re.fullmatch(r"\w[\w.-]{0,127}", tag)):
        return f"'{image}' is not an image reference like vllm/vllm-openai:v0.11.0 or registry:5000/repo@sha256:<64 hex>"
    if not digest and (not tag or tag.lower() == "latest"):
        return (f"'{image}' must be pinned to a version tag or a digest (for example vllm/vllm-openai:v0.11.0 or "
                "nginx:1.28.0-alpine), not latest or untagged")
    return None


def _cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a CIDR string, got {value!r}")
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as err:
        raise ValueError(f"'{value}' is not a valid IPv4 CIDR ({err}); write it like 10.10.0.0/16 with the host bits zero") \
            from None


def _number_as_text(value: Any) -> Any:
    """YAML reads `runId: 2` or `minDriverVersion: 570` as integers; they are text here (a float such as
    `1.10` is refused instead: it already lost a digit)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _extra_arg_problem(arg: str) -> str | None:
    flag = arg.split("=", 1)[0]
    managed = MANAGED_VLLM_FLAGS.get(flag.replace("_", "-") if flag.startswith("--") else flag)
    if re.search(r"\s", arg):
        return f"'{arg}' holds whitespace; give a flag and its value as two items or as --flag=value"
    if managed in KNOB_VLLM_FLAGS.values():
        return f"'{arg}' is set by the program from {NAMESPACE}:{managed}; set that instead and remove it from extraArgs"
    return f"'{arg}' is set by the program ({managed}); remove it from extraArgs" if managed else None


def _mount_dir_problem(path: str) -> str | None:
    if not re.fullmatch(r"/[A-Za-z0-9_/.-]*", path) or posixpath.normpath(path) != path:
        return f"'{path}' must be an absolute path, written normalized, such as /mnt"
    if path in SYSTEM_DIRS or any(path.startswith(tree + "/") for tree in SYSTEM_TREES):
        return f"'{path}' is a system directory; mounting the NAS there hides it. Use a directory of its own such as /mnt"
    return None


def _regex_problem(regex: str) -> str | None:
    try:
        re.compile(regex)
    except re.error as err:
        return f"is not a valid regular expression: {err}"
    return None


ImageRef = Annotated[str, _rule(_image_problem)]
Cidr = Annotated[str, BeforeValidator(_cidr)]
Text = Annotated[str, BeforeValidator(_number_as_text)]
AzureName = Annotated[str, _matches(AZURE_NAME, f"'{{v}}' is not a valid name: {AZURE_NAME_RULE}")]
GpuSizeName = Annotated[str, _one_of(GPU_SIZES, "'{v}' is not in the GPU size catalog (known: {known}); "
                                                "add it to stacks/catalog.py")]
AzureRegion = Annotated[str, _one_of(AZURE_REGIONS, "'{v}' is not an Azure region name such as uksouth "
                                                    "(`az account list-locations --query \"[].name\"`)")]
AzurePriority = Literal["Spot", "Regular"]
AzureZone = Annotated[Text, _matches(r"[1-9]", "'{v}' is not an availability zone such as \"1\"; or unset it")]


def _without_nulls(data: Any) -> Any:
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, Mapping) else data


class _Section(BaseModel):
    """A config object: camelCase keys, unknown keys refused, unset (null) values take the default."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return _without_nulls(data)


# ---------------------------------------------------------------------------- sections


class AccessSettings(_Section):
    allowed_cidrs: tuple[Cidr, ...] = setting(
        (), "source CIDRs allowed to SSH and the API port; CIDRs that cover the whole internet (`0.0.0.0/0`, or "
        "`0.0.0.0/1` + `128.0.0.0/1`) are refused unless `allowAnySource: true`; unused on owned stacks (no firewall "
        "is made there)", shown="(required; not on owned)")
    allow_any_source: bool = setting(False, "explicit opt-in to the whole internet")
    ssh_public_key: str | None = setting(
        None, "an OpenSSH public key; then `qwen:sshPrivateKey` (secret) must hold its private key. Alibaba Cloud "
        "accepts RSA, DSA and ECDSA keys, not ed25519", shown="generated (RSA 4096)")
    ssh_key_file: str = setting(None, "where you keep the private key (used in `sshCommand`)",
                                shown="`~/.ssh/qwen-<stack>.pem`")
    _private_key: Any = PrivateAttr(None)

    @property
    def ssh_private_key(self) -> Any:
        """The private half of ssh_public_key, from the secret `qwen:sshPrivateKey` (an Output in a real run)."""
        return self._private_key

    @model_validator(mode="before")
    @classmethod
    def _key_file_default(cls, data: Any, info: ValidationInfo) -> Any:
        data = _without_nulls(data)
        return {"sshKeyFile": f"~/.ssh/qwen-{_context(info)['stack']}.pem", **data} if isinstance(data, Mapping) else data

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> AccessSettings:
        key, cloud, private_key = self.ssh_public_key, _context(info)["cloud"], _context(info)["private_key"]
        opt_in = f"`pulumi config set --path '{NAMESPACE}:access.allowAnySource' true -s <stack>`"
        nets, problems = [ipaddress.IPv4Network(c) for c in self.allowed_cidrs], []
        if not nets and cloud != "owned":
            problems.append(("allowedCidrs", "is required: the source addresses allowed to reach SSH and the API port. "
                             f"Set yours with `pulumi config set --path '{NAMESPACE}:access.allowedCidrs[0]' "
                             "$(curl -s ifconfig.me)/32 -s <stack>`"))
        if not self.allow_any_source and any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(nets)):
            whole = [i for i, n in enumerate(nets) if n.prefixlen == 0]
            problems += [(f"allowedCidrs[{i}]", "0.0.0.0/0 opens SSH and the API to the whole internet. Use your own "
                          f"address (x.y.z.w/32), or opt in explicitly with {opt_in}") for i in whole] or [
                ("allowedCidrs", f"{', '.join(self.allowed_cidrs)} together cover the whole internet, which opens SSH "
                 f"and the API to everyone. List your own addresses, or opt in explicitly with {opt_in}")]
        if key and not re.match(r"(ssh-rsa|ssh-dss|ssh-ed25519|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+", key):
            problems.append(("sshPublicKey", "must be an OpenSSH public key line (ssh-rsa AAAA... or ssh-ed25519 "
                             "AAAA...), or unset to generate one"))
        elif key and cloud == "aliyun" and key.startswith("ssh-ed25519"):
            problems.append(("sshPublicKey", "Alibaba Cloud key pairs accept rsa, dsa and ecdsa keys only; give an "
                             "ssh-rsa key, or unset it to generate one"))
        if key is not None and private_key is None:
            problems.append(("sshPublicKey", "is set, so the deployment needs its private key to run the bootstrap "
                             f"steps: `pulumi config set --secret {NAMESPACE}:sshPrivateKey < ~/.ssh/your_key -s <stack>` "
                             "(or unset sshPublicKey to generate a key)"))
        _report(problems)
        self._private_key = private_key if key is not None else None
        return self


class ModelSettings(_Section):
    id: Annotated[str, _one_of(MODELS, "'{v}' is not in the model catalog (known: {known}); add its numbers to "
                                       "stacks/catalog.py")] = setting(
        doc="model in `stacks/catalog.py`", example="Qwen/Qwen2.5-14B-Instruct")
    served_name: Annotated[str, _non_empty("unset it to serve under model.id")] = setting(
        None, "name clients send", shown="`model.id`")
    source: Literal["huggingface", "modelscope"] = setting(
        "huggingface", "`huggingface` (weights on the machine's disk; Azure, owned) or `modelscope` (weights on the "
        "NAS, Aliyun)")
    revision: Annotated[str, _non_empty("give a hub branch, tag or commit such as main")] = setting(
        "main", "hub revision")
    max_model_len: int = setting(
        None, "refused above the model's native 32,768, or when one such sequence plus the weights cannot fit the GPUs",
        shown="model's native context", ge=256)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_id(cls, data: Any) -> Any:
        data = _without_nulls(data)
        if isinstance(data, Mapping) and data.get("id") in MODELS:
            data = {"servedName": data["id"], "maxModelLen": MODELS[data["id"]].native_context, **data}
        return data

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ModelSettings:
        native = self.spec.native_context
        problems = []
        if self.max_model_len > native:
            problems.append(("maxModelLen", f"{self.max_model_len} exceeds the {native} tokens {self.id} supports "
                             f"without rope scaling; set it to {native} or less"))
        if _context(info)["cloud"] == "aliyun" and self.source != "modelscope":
            problems.append(("source", "aliyun stacks download with ModelScope into the NAS; set it to modelscope"))
        if _context(info)["cloud"] == "owned" and self.source != "huggingface":
            problems.append(("source", "owned machines download the weights from Hugging Face to their own disk; set "
                             "it to huggingface"))
        _report(problems)
        return self

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.id]

    @property
    def dir_name(self) -> str:
        return self.id.split("/")[-1]


class SpeculativeDecodingSettings(_Section):
    method: Annotated[str, _rule(lambda v: None if v == "ngram" else (
        "draft_model raises NotImplementedError in vLLM v0.11.0; use ngram" if v == "draft_model" else
        f"'{v}' is not supported here; use ngram (eagle, medusa and mtp need a draft head this catalog does not "
        "size)"))] = setting("ngram", "`ngram` only (`draft_model` is refused: NotImplementedError in v0.11.0)")
    num_speculative_tokens: int = setting(doc="tokens proposed per step (seed 002: 6)", example=6, ge=1, le=16)
    prompt_lookup_max: int = setting(doc="longest n-gram matched (seed 002: 8)", example=8, ge=1, le=64)
    prompt_lookup_min: int = setting(1, "shortest n-gram matched; at most `promptLookupMax`", ge=1, le=64)

    @model_validator(mode="after")
    def _lookup_range(self) -> SpeculativeDecodingSettings:
        if self.prompt_lookup_min > self.prompt_lookup_max:
            _report([("promptLookupMin", f"{self.prompt_lookup_min} is above promptLookupMax {self.prompt_lookup_max}; "
                      "vLLM refuses it: lower it or raise promptLookupMax")])
        return self

    @property
    def config_json(self) -> str:
        """The `--speculative-config` value: compact JSON, one word, no newline (EXTRA_ARGS is one word per line)."""
        return json.dumps({"method": self.method, "num_speculative_tokens": self.num_speculative_tokens,
                           "prompt_lookup_max": self.prompt_lookup_max, "prompt_lookup_min": self.prompt_lookup_min},
                          separators=(",", ":"))


class ServingSettings(_Section):
    image: ImageRef = setting(doc="pinned serving image (`repo:tag` or `repo@sha256:...`); a registry mirror of the "
                              "same tag works (e.g. for mainland China)", example="vllm/vllm-openai:v0.11.0",
                              shown="(required; owned: the accelerator family's)")
    proxy_image: ImageRef = setting("nginx:1.28.0-alpine", "pinned image of the TLS proxy in front of vLLM; a registry "
                                    "mirror of the same tag works (the Aliyun preflight checks its registry too)")
    port: Annotated[int, _rule(lambda v: f"{v} is one of Ray's ports on the same host network (6379, 8265, 10001, 52365, "
                               "10002-19999); use e.g. 8000" if v in RAY_PORTS or v in RAY_WORKER_PORTS else
                               f"{v} is vLLM's own port on 127.0.0.1 behind the TLS proxy; use e.g. 8000"
                               if v == VLLM_LOCAL_PORT else None)] = setting(
        8000, "API port, where the TLS proxy listens; ports below 1024, Ray's ports (6379, 8265, 10001, 52365, "
        "10002-19999) and vLLM's own port 8001 (on 127.0.0.1) are refused", ge=1024, le=65535)
    tensor_parallel_size: int | None = setting(
        None, "must equal the GPUs per node", shown="(required; with `qwen:azure.candidates`: each candidate's GPUs)",
        ge=1)  # required, but checked with the GPUs it must equal (_check_layout), which name the fix
    pipeline_parallel_size: int = setting(1, "must equal the GPU nodes", ge=1)
    gpu_memory_utilization: float = setting(0.9, "vLLM's share of GPU memory", ge=0.1, le=0.98)
    private_interface: Annotated[str, _matches(r"[a-z0-9]{1,15}", "'{v}' is not a network interface name such as "
                                               "eth0")] = setting("eth0", "NIC for NCCL/Gloo")
    model_wait_timeout_minutes: int = setting(90, "wait for the weights before serving", ge=5)
    health_timeout_minutes: int = setting(40, "wait for `/health`", ge=5)
    image_extracted_gb: float = setting(24.0, "the image's disk footprint extracted (an estimate for v0.11.0; measure "
                                        "with `docker image inspect`), used by the disk check", gt=0)
    image_largest_layer_gb: float = setting(6.0, "its largest layer, held compressed while pulling", gt=0)
    extra_args: tuple[Annotated[str, _rule(_extra_arg_problem)], ...] = setting(
        (), "more `vllm serve` flags, one word per item (`[\"--block-size\", \"32\"]`); flags the program sets "
        "(`--max-model-len`, `-tp`, `--host`, `--max-num-seqs`, ...) are refused", shown="`[]`")
    container_toolkit_repo: Annotated[str, _matches(
        r"https://[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?",
        "'{v}' must be an https URL of NVIDIA's libnvidia-container apt repository or a mirror")] = setting(
        "https://nvidia.github.io/libnvidia-container", "NVIDIA's container toolkit apt repository, or a mirror of it")
    min_driver_version: Annotated[Text, _matches(r"\d{3}(\.\d+){0,2}", "'{v}' is not an NVIDIA driver version such "
                                                 "as 570 or 570.172.08")] = setting(
        "570", "node-ready fails when the NVIDIA driver is older (570: the CUDA 12.8 build of vllm-openai v0.11.0)",
        shown='`"570"`')

    quantization: Literal["fp8"] | None = setting(
        None, "`fp8`: `--quantization fp8` (native W8A8 on sm_89+: L20, RTX 4090, H100; weight-only on A100; refused "
        "elsewhere); see Serving knobs", shown="(none: bf16)")
    kv_cache_dtype: Literal["fp8"] | None = setting(
        None, "`fp8`: `--kv-cache-dtype fp8` (sm_89+ only; Triton attention in v0.11.0); see Serving knobs",
        shown="(none: 16-bit)")
    speculative_decoding: SpeculativeDecodingSettings | None = setting(
        None, "n-gram speculative decoding, `--speculative-config`; see Serving knobs", shown="(none)")
    max_num_seqs: int | None = setting(
        None, "`--max-num-seqs`, sequences per batch; see Serving knobs", shown="vLLM's: 256 (1,024 on H100)",
        ge=1, le=65536)
    max_num_batched_tokens: int | None = setting(
        None, "`--max-num-batched-tokens`, tokens per scheduler step, at least `maxNumSeqs`; see Serving knobs",
        shown="vLLM's: 2,048 (8,192 on H100)", ge=1, le=1048576)
    enable_prefix_caching: bool | None = setting(
        None, "`true` / `false`: `--enable-prefix-caching` / `--no-enable-prefix-caching`; see Serving knobs",
        shown="vLLM's: on")

    @model_validator(mode="after")
    def _knob_rules(self) -> ServingSettings:
        seqs, batched = self.max_num_seqs, self.max_num_batched_tokens
        problems = []
        if seqs is not None and batched is not None and batched < seqs:
            problems.append(("maxNumBatchedTokens", f"{batched} is below maxNumSeqs {seqs}, which vLLM refuses; raise "
                             f"it to at least {seqs}"))
        async_flags = [a for a in self.extra_args if a.split("=", 1)[0] == "--async-scheduling"]
        if self.speculative_decoding is not None and async_flags:
            problems.append(("extraArgs", "--async-scheduling cannot run with speculative decoding in vLLM v0.11.0; "
                             "remove one of them"))
        _report(problems)
        return self

    @property
    def knob_args(self) -> tuple[str, ...]:
        """The `vllm serve` flags of the tuning knobs that are set, one word per item, in declaration order."""
        args: list[str] = []
        if self.quantization is not None:
            args += ["--quantization", self.quantization]
        if self.kv_cache_dtype is not None:
            args += ["--kv-cache-dtype", self.kv_cache_dtype]
        if self.speculative_decoding is not None:
            args += ["--speculative-config", self.speculative_decoding.config_json]
        if self.max_num_seqs is not None:
            args += ["--max-num-seqs", str(self.max_num_seqs)]
        if self.max_num_batched_tokens is not None:
            args += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
        if self.enable_prefix_caching is not None:
            args.append("--enable-prefix-caching" if self.enable_prefix_caching else "--no-enable-prefix-caching")
        return tuple(args)

    @property
    def vllm_args(self) -> tuple[str, ...]:
        """Every `vllm serve` flag after the ones the serve step sets itself: the knobs, then extraArgs."""
        return (*self.knob_args, *self.extra_args)

    @property
    def image_pull_disk_gb(self) -> float:
        """Disk a pull of the image needs: the image extracted plus its largest layer still compressed."""
        return self.image_extracted_gb + self.image_largest_layer_gb


class ScenarioSettings(_Section):
    name: Annotated[str, _matches(r"[a-z0-9][a-z0-9-]{0,48}", "'{v}' must be lowercase letters, digits and '-' (it "
                                  "names a resource)")] = setting(doc="scenario name")
    input_tokens: int = setting(doc="prompt tokens", ge=1)
    output_tokens: int = setting(doc="output tokens", ge=1)
    num_prompts: int = setting(1, "requests", ge=1)
    concurrency: int = setting(1, "requests in flight", ge=1)
    warmups: int = setting(1, "unmeasured requests first", ge=0)


SEED = Scenario(SEED_SCENARIO, 10000, 800, 1, 1, 1)


def sweep_num_prompts(concurrency: int) -> int:
    """Four waves of `concurrency` requests (at least 8): the first wave's ramp-up and the last one's drain, when
    fewer requests are in flight, stay a quarter of the run, and p99 has at least 8 samples."""
    return max(8, 4 * concurrency)


# The concurrency sweep of seed 001's shape; each point first warms up with one wave at its concurrency.
DEFAULT_EXTRA_SCENARIOS = tuple(
    Scenario(sweep_scenario_name(c), SWEEP_INPUT_TOKENS, SWEEP_OUTPUT_TOKENS, sweep_num_prompts(c), c, c)
    for c in SWEEP_CONCURRENCIES)


class BenchmarkSettings(_Section):
    run_id: Annotated[Text, _non_empty("use e.g. \"2\"")] = setting(
        "1", "change it to re-run the benchmarks without touching the machines", shown='`"1"`')
    timeout_minutes: int = setting(60, "bounds each of the warm-up and the measured run of a scenario", ge=5)
    extra_scenarios: tuple[ScenarioSettings, ...] = setting(
        tuple(ScenarioSettings(**{to_camel(k): v for k, v in vars(s).items()}) for s in DEFAULT_EXTRA_SCENARIOS),
        "scenarios run after the seed scenario, REPLACING the defaults: `{name, inputTokens, outputTokens, "
        "numPrompts, concurrency, warmups}`; the seed scenario `seed-10k-in-800-out-c1` always runs first",
        alias="scenarios", shown="the sweep `sweep-256-in-256-out-c{1,8,32,64,128,192}`: 256 in / 256 out, "
        "max(8, 4 x concurrency) prompts, one wave of warm-ups")

    @model_validator(mode="after")
    def _unique_names(self) -> BenchmarkSettings:
        names = [s.name for s in self.extra_scenarios]
        _report([(f"scenarios[{i}].name", f"'{SEED_SCENARIO}' is the fixed seed scenario and always runs; pick "
                  "another name") for i, name in enumerate(names) if name == SEED_SCENARIO]
                + [("scenarios", f"scenario name '{dup}' is used twice; names must be unique")
                   for dup in sorted({n for n in names if names.count(n) > 1})])
        return self

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        """Every scenario in run order: the seed scenario first."""
        return (SEED, *(Scenario(**{k: getattr(s, k) for k in type(s).model_fields}) for s in self.extra_scenarios))

    @property
    def seed(self) -> Scenario:
        return SEED


class AzureImage(_Section):
    publisher: str = setting("Canonical", "image publisher")
    offer: str = setting("0001-com-ubuntu-server-jammy", "image offer (Ubuntu 22.04)")
    sku: str = setting("22_04-lts-gen2", "image SKU; NC A100 v4 sizes boot Gen2 images only")
    version: str = setting("latest", "image version")


class NvidiaExtensionSettings(_Section):
    type_handler_version: Annotated[Text, _matches(r"\d+\.\d+", "'{v}' must be major.minor such as 1.11")] = setting(
        "1.11", "NvidiaGpuDriverLinux extension version", shown='`"1.11"`')
    driver_version: Annotated[str, _matches(r"\d+\.\d+", "'{v}' is not a CUDA version like 12.8 (the extension takes "
                                            "the CUDA version on NC sizes, not 'cuda_12.2')")] | None = setting(
        None, "CUDA version such as `12.8` (an extension setting)", shown="extension's")
    install_cuda: bool = setting(False, "install the CUDA toolkit too")
    update_os: bool = setting(False, "let the extension update the OS")

    @property
    def settings(self) -> dict:
        """The extension's settings object."""
        extension = {"updateOS": self.update_os, "installCUDA": self.install_cuda}
        return {**extension, "driverVersion": self.driver_version} if self.driver_version else extension


class AzureCandidate(_Section):
    """One place the Azure VM may go (issue 11). A change of any field replaces the VM."""

    location: AzureRegion = setting(doc="Azure region", example="uksouth")
    vm_size: GpuSizeName = setting(doc="a GPU size in `stacks/catalog.py`", example="Standard_NC48ads_A100_v4")
    priority: AzurePriority = setting("Spot", "`Spot` (evictable, low-priority quota) or `Regular` (on-demand)")
    zone: AzureZone | None = setting(None, "availability zone; unset lets Azure place the VM in the region",
                                        shown="(none)")

    def label(self) -> str:
        zone = f" zone {self.zone}" if self.zone else ""
        return f"{self.vm_size} {self.priority} in {self.location}{zone}"

    def same_place(self, other: AzureCandidate) -> bool:
        """Azure compares locations and sizes without case; priorities are one of two words."""
        return (self.location.lower() == other.location.lower() and self.vm_size.lower() == other.vm_size.lower()
                and self.priority == other.priority and (self.zone or None) == (other.zone or None))

    def as_output(self) -> dict:
        return {"location": self.location, "vmSize": self.vm_size, "priority": self.priority, "zone": self.zone}


# The VM's place: these four keys, or a list of candidates for the preflight to choose from.
PLACE_KEYS = ("location", "vmSize", "priority", "zone")


class AzureSettings(_Section):
    location: AzureRegion | None = setting(None, "Azure region", example="uksouth",
                                              shown="(required unless `candidates`)")
    resource_group_name: AzureName = setting(doc="resource group", example="rg-qwen-uksouth")
    vnet_name: AzureName = setting(doc="virtual network", example="vnet-qwen")
    vnet_cidr: Cidr = setting(doc="its range", example="10.10.0.0/16")
    subnet_name: AzureName = setting(doc="subnet", example="snet-gpu")
    subnet_cidr: Cidr = setting(doc="its range, inside `vnetCidr`", example="10.10.1.0/24")
    nsg_name: AzureName = setting(doc="network security group", example="nsg-gpu")
    public_ip_name: AzureName = setting(doc="static public IP", example="pip-gpu")
    nic_name: AzureName = setting(doc="network interface", example="nic-gpu")
    vm_name: Annotated[str, _matches(r"[a-z0-9][a-z0-9-]{0,62}[a-z0-9]", "'{v}' is not a valid name: 1-64 lowercase "
                                     "letters, digits and '-' (it is also the Linux host name)")] = setting(
        doc="the VM", example="vm-qwen-nc48")
    vm_size: GpuSizeName | None = setting(None, "a GPU size in `stacks/catalog.py`",
                                             example="Standard_NC48ads_A100_v4", shown="(required unless `candidates`)")
    priority: AzurePriority = setting("Spot", "`Spot` (evictable, low-priority quota) or `Regular` (on-demand, no "
                                      "eviction; the Spot terms below are ignored)")
    zone: AzureZone | None = setting(None, "availability zone; unset lets Azure place the VM in the region",
                                        shown="(none)")
    candidates: tuple[AzureCandidate, ...] = setting(
        (), "ordered `{location, vmSize, priority, zone}` places tried by the preflight; the first that passes is "
        "used. Replaces `location`, `vmSize`, `priority` and `zone`; with it `qwen:serving.tensorParallelSize` may be "
        "left unset (each candidate's GPUs)", shown="unset: the one place above")
    os_disk_size_gb: int = setting(1024, "OS disk, which keeps the weights across evictions", ge=64, le=4095)
    os_disk_type: Literal["Premium_LRS", "StandardSSD_LRS", "Standard_LRS", "Premium_ZRS", "StandardSSD_ZRS"] = setting(
        "Premium_LRS", "OS disk SKU")
    admin_username: Annotated[str, _rule(
        lambda v: f"'{v}' is reserved or not a Linux user name; use e.g. azureuser"
        if v in ("root", "admin", "administrator") or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", v) else None)] = \
        setting("azureuser", "SSH user")
    spot_max_price: Annotated[float, _rule(
        lambda v: None if v == -1 or v > 0 else "must be -1 (pay up to the on-demand price, never evicted for "
        f"price) or a positive USD/hour price, got {v}")] = setting(
        -1.0, "Spot price cap in USD/hour; -1 pays up to the on-demand price", shown="`-1`")
    eviction_policy: Literal["Deallocate", "Delete"] = setting("Deallocate", "Deallocate keeps the disk and weights")
    image: AzureImage = setting({})
    nvidia_driver: NvidiaExtensionSettings = setting({})

    @model_validator(mode="after")
    def _rules(self) -> AzureSettings:
        vnet, subnet = ipaddress.IPv4Network(self.vnet_cidr), ipaddress.IPv4Network(self.subnet_cidr)
        problems = []
        if not subnet.subnet_of(vnet):
            problems.append(("subnetCidr", f"{subnet} is not inside vnetCidr {vnet}; pick a subnet range within the VNet"))
        given = {type(self).model_fields[f].alias for f in self.model_fields_set}
        if "candidates" in given and not self.candidates:
            problems.append(("candidates", "is empty; list at least one {location, vmSize}, or remove it"))
        if self.candidates:
            problems += [(key, "is decided by qwen:azure.candidates; remove it (or remove candidates)")
                         for key in PLACE_KEYS if key in given]
            problems += [("candidates", f"{c.label()} is listed twice; remove the second entry")
                         for i, c in enumerate(self.candidates) if any(c.same_place(d) for d in self.candidates[:i])]
        elif "candidates" not in given:
            for field in (type(self).model_fields[name] for name in ("location", "vm_size")):
                if field.alias not in given:
                    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
                    fix = _fix_command(f"azure.{field.alias}", extra.get("example"), "<stack>")
                    problems.append((str(field.alias), f"is required; set it with {fix}"))
        sizes = [c.vm_size for c in self.candidates] or [self.vm_size or ""]
        if "gen2" not in self.image.sku and any("NC" in size for size in sizes):
            problems.append(("image.sku", f"'{self.image.sku}' is not a Gen2 image; NC A100 v4 sizes boot Gen2 images "
                             "only (e.g. 22_04-lts-gen2)"))
        _report(problems)
        return self

    @property
    def gpu(self) -> GpuSize | None:
        """The VM size's GPUs; None with candidates until the preflight has placed the VM."""
        return GPU_SIZES[self.vm_size] if self.vm_size else None


class NasSettings(_Section):
    storage_type: Literal["Performance", "Capacity", "Premium"] = setting("Performance", "General-purpose NAS type")
    mount_dir: Annotated[str, _rule(_mount_dir_problem)] = setting(
        "/mnt", "where the nodes mount it; `/` and system directories are refused")
    models_subdir: Annotated[str, _matches(r"(?!(.*/)?\.\.?(/|$))[\w.-]+(/[\w.-]+)*", "'{v}' must be a relative "
                                           "directory inside the NAS mount, such as models (no '..', no leading '/')")] = setting(
        "models", "directory of the weights inside the mount; must stay inside it")


class AliyunSettings(_Section):
    name_prefix: Annotated[str, _matches(r"[a-z][a-z0-9-]{1,30}", "'{v}' is not a valid name: 2-31 lowercase letters, "
                                         "digits and '-', starting with a letter")] = setting(
        doc="prefix of every Aliyun name", example="qwen-l20")
    vpc_cidr: Cidr = setting(doc="VPC range; the NAS accepts it", example="172.18.0.0/16")
    vswitch_cidr: Cidr = setting(doc="vSwitch range, inside `vpcCidr`", example="172.18.190.0/24")
    gpu_instance_type: GpuSizeName = setting(doc="GPU node type in `stacks/catalog.py`", example="ecs.gn8is-2x.8xlarge")
    gpu_node_count: int = setting(2, "GPU nodes", ge=1, le=16)
    gpu_system_disk_gb: int = setting(45, "GPU node system disk (see below)", ge=20, le=2048)
    downloader_instance_type: Annotated[str, _non_empty("use e.g. ecs.e-c1m2.large")] = setting(
        "ecs.e-c1m2.large", "the downloader")
    downloader_system_disk_gb: int = setting(150, "its system disk", ge=20, le=2048)
    system_disk_category: Literal["cloud_essd", "cloud_ssd", "cloud_efficiency", "cloud_auto", "cloud_essd_entry",
                                  "cloud"] = setting("cloud_essd", "system disk category")
    internet_max_bandwidth_out: int = setting(100, "Mbps, pay-by-traffic", ge=1, le=100)
    image_name_regex: Annotated[str, _rule(_regex_problem)] = setting(
        r"^ubuntu_22_04_x64_20G_alibase_.*\.vhd$", "image lookup; a looked-up image is ignored after creation "
        "(never replaces a node)", shown="Ubuntu 22.04 alibase")
    image_id: Annotated[str, _non_empty("unset it to look the image up")] | None = setting(
        None, "set to pin the image", shown="looked up")
    nvidia_driver_package: Annotated[str, _non_empty("use e.g. nvidia-headless-570-server")] = setting(
        "nvidia-headless-570-server", "driver installed by cloud-init (DKMS, loaded without reboot)")
    modelscope_version: Annotated[Text, _matches(r"\d+(\.\d+){1,3}", "'{v}' is not a ModelScope version such as "
                                                 "1.31.0")] = setting(
        "1.31.0", "pinned ModelScope for the download", shown='`"1.31.0"`')
    download_timeout_hours: int = setting(8, "145 GB at 100 Mbps takes at least 3.2 hours", ge=1, le=48)
    stop_downloader: bool = setting(False, "`true` stops the downloader without charge (`Stopped`, `StopCharging`) once "
                                    "the weights are on the NAS (see [Stopping the downloader](#stopping-the-downloader))")
    nas: NasSettings = setting({})

    @model_validator(mode="after")
    def _rules(self) -> AliyunSettings:
        vpc, vsw = ipaddress.IPv4Network(self.vpc_cidr), ipaddress.IPv4Network(self.vswitch_cidr)
        if not vsw.subnet_of(vpc):
            _report([("vswitchCidr", f"{vsw} is not inside vpcCidr {vpc}; pick a vSwitch range within the VPC")])
        return self

    @property
    def gpu(self) -> GpuSize:
        return GPU_SIZES[self.gpu_instance_type]


class PreflightSettings(_Section):
    enabled: bool = setting(True, "`false` asks the cloud nothing before the first resource (air-gapped previews); "
                            "the preview then warns that nothing was checked")


class CostSettings(_Section):
    hourly_usd: float | None = setting(
        None, "your own hourly price of the stack's machines in USD, for `costPerMillionTokens` (see Outputs); "
        "unset: no cost output", shown="(none)", gt=0)


class OwnedHostSettings(_Section):
    name: Annotated[str, _matches(r"[a-z0-9][a-z0-9-]{0,30}", "'{v}' must be 1-31 lowercase letters, digits and '-' "
                                  "(it names resources)")] = setting(doc="the machine's name in resources and errors")
    address: Annotated[str, _matches(r"local|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?", "'{v}' is not an IP "
                                     "address or DNS name, or local")] = setting(
        doc="SSH address, or `local` for the machine running pulumi (steps run there as local commands)",
        example="192.0.2.10", shown="(required, set at setup)")
    user: Annotated[str, _matches(r"[a-z_][a-z0-9_-]{0,31}", "'{v}' is not a Linux user name")] | None = setting(
        None, "SSH user with passwordless sudo and docker (not for `local`)", shown="(required but for local)")
    accelerator: Annotated[str, _one_of([m for m in known_models() if m in ACCELERATORS],
                                        "'{v}' is not a known accelerator (known: {known}); add it to "
                                        "components/accelerators.py and stacks/catalog.py")] = setting(
        doc="accelerator model (`RTX 4090`, `Ascend 310P3`, ...): its family's commands, devices and image",
        example="RTX 4090")
    count: int = setting(doc="devices the stack uses on the machine", example=2, ge=1)
    private_interface: Annotated[str, _matches(r"[A-Za-z0-9._-]{1,15}",
                                               "'{v}' is not a network interface name such as eth0")] | None = setting(
        None, "NIC between the hosts for Ray and the collectives; required with several hosts",
        shown="the default route's")

    @property
    def local(self) -> bool:
        return self.address == LOCAL


class OwnedSettings(_Section):
    hosts: Annotated[tuple[OwnedHostSettings, ...], _rule(lambda v: None if v else (
        "is required: the machines, head first: {name, address, user, accelerator, count, privateInterface?}"))] = \
        setting(doc="the machines, head first", shown="(required)")
    listen_address: Annotated[str, _rule(lambda v: None if re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", v) and
                                         all(int(o) < 256 for o in v.split(".")) else
                                         f"'{v}' is not an IPv4 address; use 127.0.0.1 (the head only), 0.0.0.0 (every "
                                         "interface) or one of the head's addresses")] = setting(
        "127.0.0.1", "where the API listens on the head; 127.0.0.1 keeps it on that machine (sshCommand then tunnels)")
    nccl_p2p_disable: bool = setting(False, "`NCCL_P2P_DISABLE=1` in the serving containers (GeForce cards have no "
                                     "peer-to-peer access; NVIDIA only)", alias="ncclP2pDisable")
    model_root: Annotated[str, _rule(lambda v: None if re.fullmatch(r"/[A-Za-z0-9_/.-]*", v) and
                                     posixpath.normpath(v) == v and v not in SYSTEM_DIRS else
                                     f"'{v}' must be an absolute, normalized path of its own such as /var/lib/qwen/models")] = \
        setting("/var/lib/qwen/models", "where each machine keeps the weights; kept on destroy")

    @model_validator(mode="after")
    def _rules(self) -> OwnedSettings:
        hosts, problems = self.hosts, []
        problems += [(f"hosts[{i}].user", "is required for a machine reached over SSH; set it with `pulumi config set "
                      f"--path '{NAMESPACE}:owned.hosts[{i}].user' <user> -s <stack>`")
                     for i, h in enumerate(hosts) if not h.local and h.user is None]
        names = [h.name for h in hosts]
        problems += [("hosts", f"host name '{dup}' is used twice; names must be unique")
                     for dup in sorted({n for n in names if names.count(n) > 1})]
        if len({(h.accelerator, h.count) for h in hosts}) > 1:
            problems.append(("hosts", "every host must have the same accelerator and count (tensor parallel spans one "
                             "host, pipeline parallel the hosts)"))
        if len(hosts) > 1:
            if any(h.local for h in hosts):
                problems.append(("hosts", "address local serves alone; with several hosts give each its SSH address"))
            problems += [(f"hosts[{i}].privateInterface", "is required with several hosts: the NIC Ray and the "
                          "collectives use between them (e.g. eth0)") for i, h in enumerate(hosts) if not h.private_interface]
        if self.nccl_p2p_disable and self.family.name != "nvidia":
            problems.append(("ncclP2pDisable", f"is an NVIDIA (NCCL) setting; {hosts[0].accelerator} hosts use HCCL: "
                             "remove it"))
        _report(problems)
        return self

    @property
    def family(self) -> AcceleratorFamily:
        return family_of(self.hosts[0].accelerator)

    @property
    def machine(self) -> GpuSize:
        """One host's devices, for sizing."""
        return GpuSize(self.hosts[0].count, ACCELERATORS[self.hosts[0].accelerator])

    @property
    def container_env(self) -> dict[str, str]:
        return {"NCCL_P2P_DISABLE": "1"} if self.nccl_p2p_disable else {}


class Settings(_Section):
    cloud: Literal["azure", "aliyun", "owned"] = setting(
        doc="`azure`, `aliyun`, or `owned` (machines the team already has)", example="azure")
    ssh_private_key: Any = setting(None, "secret: the private half of `access.sshPublicKey`", shown="(none)")
    access: AccessSettings = setting({})
    model: ModelSettings = setting({})
    serving: ServingSettings = setting({})
    benchmark: BenchmarkSettings = setting({})
    azure: AzureSettings | None = setting(None)
    aliyun: AliyunSettings | None = setting(None)
    owned: OwnedSettings | None = setting(None)
    preflight: PreflightSettings = setting({})


    cost: CostSettings = setting({})
    _stack: str = PrivateAttr("")

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def machine(self) -> GpuSize:
        """The size of the GPU machines (every GPU node of a stack has the same size); on Azure with
        candidates, known once the preflight has placed the VM."""
        if self.cloud == "azure" and self.azure is not None:
            if self.azure.gpu is None:
                raise ValueError("no VM size yet: qwen:azure.candidates are placed by the preflight")
            return self.azure.gpu
        if self.cloud == "aliyun" and self.aliyun is not None:
            return self.aliyun.gpu
        if self.cloud == "owned" and self.owned is not None:
            return self.owned.machine
        raise ValueError(f"no machine size for cloud {self.cloud!r}")

    @property
    def gpu_nodes(self) -> int:
        if self.cloud == "azure":
            return 1
        if self.cloud == "aliyun" and self.aliyun is not None:
            return self.aliyun.gpu_node_count
        if self.cloud == "owned" and self.owned is not None:
            return len(self.owned.hosts)
        raise ValueError(f"no node count for cloud {self.cloud!r}")

    @property
    def layout(self) -> sizing.Layout:
        """The model's layout as served: weight format, TP x PP, KV cache format."""
        serving = self.serving
        if serving.tensor_parallel_size is None:
            raise ValueError("no tensor parallel size yet: the preflight sets it from the placed VM's GPUs")
        return sizing.Layout(weight_dtype(serving.quantization, self.machine.accelerator), serving.tensor_parallel_size,
                             serving.pipeline_parallel_size, serving.kv_cache_dtype or "auto")


# ---------------------------------------------------------------------------- the declarations


def _section_of(annotation: Any) -> type[_Section] | None:
    """The model a field holds (itself, optional, or as list items), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation
    return next((m for m in map(_section_of, typing.get_args(annotation)) if m), None)


def _declared(key: str) -> tuple[type[_Section] | None, Any]:
    """The object that holds `key` (as in `qwen:<key>`) and the key's field; None for what is not declared."""
    holder: type[_Section] | None = None
    model: type[_Section] | None = Settings
    field = None
    for part in re.sub(r"\[\d+\]", "", key).split("."):
        holder, field = model, next((f for f in model.model_fields.values() if f.alias == part), None) if model else None
        model = _section_of(field.annotation) if field else None
    return holder, field


# ---------------------------------------------------------------------------- messages


TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
              "list": "a list", "tuple": "a list", "model": "an object (a YAML mapping)", "dict": "an object (a YAML mapping)"}


def _fix_command(key: str, value: Any, stack: str, secret: bool = False) -> str:
    shown = "<value>" if secret else shlex.quote(value if isinstance(value, str) else json.dumps(value))
    return f"`pulumi config set{' --secret' if secret else ''} --path '{NAMESPACE}:{key}' {shown} -s {stack}`"


def _message(error: Mapping[str, Any], stack: str) -> list[str]:
    """One line per problem of one pydantic error: `qwen:<key>: <what is wrong and the fix>`."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    # a checked default reports its field's name, a given value its key: both become the key (an unknown key as given)
    loc = [p if isinstance(p, int) else to_camel(p) for p in error["loc"]]
    loc[-1:] = error["loc"][-1:] if kind == "extra_forbidden" else loc[-1:]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if isinstance(ctx.get("error"), _ProblemsError):
        return [f"{NAMESPACE}:{key}.{sub}: {text.replace('-s <stack>', f'-s {stack}')}" for sub, text in ctx["error"].args[0]]
    if kind == "missing":
        example = ((_declared(key)[1].json_schema_extra or {}) if _declared(key)[1] else {}).get("example")
        text = "is required" + (f"; set it with {_fix_command(key, example, stack)}" if example is not None else "")
    elif kind == "extra_forbidden":
        holder = _declared(key)[0]
        known = sorted(str(f.alias) for f in holder.model_fields.values()) if holder else []
        text = f"is not a known setting (known: {', '.join(known)}); check its spelling, or remove it"
    elif kind == "value_error":
        text = str(ctx["error"])
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        bound = {"greater_than_equal": "at least {ge}", "greater_than": "more than {gt}",
                 "less_than_equal": "at most {le}"}[kind].format(**ctx)
        text = f"must be {bound}, got {value}"
    elif kind == "literal_error":
        text = f"must be {ctx['expected']}, got {value!r}"
    elif kind.split("_")[0] in TYPE_NAMES:
        quote = "; quote it in the stack file" if kind == "string_type" and isinstance(value, (int, float)) else ""
        text = f"must be {TYPE_NAMES[kind.split('_')[0]]}, got {value!r}{quote}"
    else:
        text = error["msg"]
    return [f"{NAMESPACE}:{key}: {text.replace('-s <stack>', f'-s {stack}')}"]


# ---------------------------------------------------------------------------- cross-section rules


def _check_layout(settings: Settings) -> list[str]:
    """Tensor parallel spans the GPUs of one node, pipeline parallel spans the nodes, the model fits the GPUs in
    its formats, and the knobs suit them. The Azure preflight applies it to each candidate
    (stacks/preflight/azure.py:sized_for)."""
    serving, model, problems = settings.serving, settings.model, []
    if settings.cloud == "azure":
        assert settings.azure is not None
        size_key, size = "azure.vmSize", settings.azure.vm_size
    elif settings.cloud == "aliyun":
        assert settings.aliyun is not None
        size_key, size = "aliyun.gpuInstanceType", settings.aliyun.gpu_instance_type
    elif settings.cloud == "owned":
        assert settings.owned is not None
        size_key, size = "owned.hosts[].count", settings.owned.hosts[0].accelerator
    else:
        raise ValueError(f"no layout rule for cloud {settings.cloud!r}")
    if size is None:
        return []  # qwen:azure.candidates: no size until the preflight places the VM
    gpu, nodes = settings.machine, settings.gpu_nodes
    tp, pp = serving.tensor_parallel_size, serving.pipeline_parallel_size
    if tp is None:
        return [f"{NAMESPACE}:serving.tensorParallelSize: is required; set it with "
                f"{_fix_command('serving.tensorParallelSize', gpu.gpus, settings.stack)}"]
    if tp != gpu.gpus:
        problems.append(
            f"{NAMESPACE}:serving.tensorParallelSize: {tp} does not match the {gpu.gpus} GPU(s) per node of "
            f"{NAMESPACE}:{size_key}; set it to {gpu.gpus} (tensor parallel stays inside one node)")
    if pp != nodes:
        problems.append(f"{NAMESPACE}:serving.pipelineParallelSize: {pp} does not match the {nodes} GPU node(s); "
                        f"set it to {nodes} (one pipeline stage per node)")
    spec = model.spec
    if spec.attention_heads % tp or (spec.kv_heads % tp and tp % spec.kv_heads):
        problems.append(f"{NAMESPACE}:serving.tensorParallelSize: {tp} does not divide the {spec.attention_heads} "
                        f"attention / {spec.kv_heads} KV heads of {model.id}; use 1, 2, 4 or 8")
    problems += _check_knobs(settings, f"{NAMESPACE}:{size_key} {size}")
    if any(p.startswith(f"{NAMESPACE}:serving.quantization") or p.startswith(f"{NAMESPACE}:serving.kvCacheDtype")
           for p in problems):
        return problems  # no memory figure for a format the accelerator cannot serve
    layout = settings.layout
    weights = sizing.weight_bytes_per_device(spec, layout) / 1e9
    kv_one_sequence = sizing.kv_bytes_per_token_per_device(spec, layout) * model.max_model_len / 1e9
    budget = gpu.gpu_memory_gb * serving.gpu_memory_utilization
    needed = weights + kv_one_sequence + GPU_RUNTIME_OVERHEAD_GB
    if needed > budget:
        formats = f"{layout.weight_dtype} weights" + (", fp8 KV cache" if layout.kv_cache_dtype == "fp8" else "")
        problems.append(
            f"{NAMESPACE}:model.maxModelLen: {model.id} needs {needed:.1f} GB per GPU ({weights:.1f} {formats} + "
            f"{kv_one_sequence:.1f} KV cache for one {model.max_model_len}-token sequence + {GPU_RUNTIME_OVERHEAD_GB} "
            f"runtime) but {gpu.gpu_memory_gb} GB x gpuMemoryUtilization {serving.gpu_memory_utilization} = "
            f"{budget:.1f} GB; lower maxModelLen, set serving.quantization or serving.kvCacheDtype to fp8, or use "
            "more or larger GPUs (`python -m tools.layouts` lists the layouts that fit)")
    return problems


def _check_scenarios(settings: Settings) -> list[str]:
    """Every scenario fits the context, whatever the machine."""
    model, problems = settings.model, []
    for i, s in enumerate(settings.benchmark.scenarios):
        if s.input_tokens + s.output_tokens > model.max_model_len:
            where = "scenarios" if s.name == SEED_SCENARIO else f"scenarios[{i - 1}]"
            problems.append(
                f"{NAMESPACE}:benchmark.{where}: scenario '{s.name}' needs {s.input_tokens + s.output_tokens} tokens "
                f"of context but {NAMESPACE}:model.maxModelLen is {model.max_model_len}; raise maxModelLen or shorten "
                "the scenario")
    return problems


def _check_knobs(settings: Settings, size_setting: str) -> list[str]:
    """The tuning knobs the accelerator and vLLM v0.11.0 can run. size_setting: `qwen:<key> <machine size>`."""
    serving, accelerator, problems = settings.serving, settings.machine.accelerator, []
    where = f"{accelerator.name} ({size_setting})"
    if serving.quantization == "fp8" and "fp8" not in accelerator.weight_dtypes:
        problems.append(f"{NAMESPACE}:serving.quantization: fp8 weights cannot run on {where}; unset it")
    if serving.kv_cache_dtype == "fp8" and not accelerator.tflops_fp8:
        problems.append(f"{NAMESPACE}:serving.kvCacheDtype: an fp8 KV cache cannot run on {where}: vLLM v0.11.0 reads it "
                        "with Triton attention, which compiles fp8 (e4m3) only for sm_89 and newer (L20, RTX 4090, "
                        "H100); unset it")
    default_batched = (VLLM_DEFAULT_BATCHED_TOKENS_LARGE if accelerator.memory_gb * 1e9 >= 70 * 2**30
                       and "A100" not in accelerator.name else VLLM_DEFAULT_BATCHED_TOKENS)
    if serving.max_num_seqs is not None and serving.max_num_batched_tokens is None and serving.max_num_seqs > default_batched:
        problems.append(f"{NAMESPACE}:serving.maxNumSeqs: {serving.max_num_seqs} is above vLLM's default "
                        f"--max-num-batched-tokens {default_batched} on {accelerator.name}, which vLLM refuses; set "
                        f"{NAMESPACE}:serving.maxNumBatchedTokens to at least {serving.max_num_seqs}")
    return problems


def _check_owned(settings: Settings) -> list[str]:
    """An owned stack: the SSH key exists, and the family's required serve flags are the program's."""
    if settings.cloud != "owned":
        return []
    owned, problems = settings.owned, []
    assert owned is not None, "settings put every owned stack's qwen:owned section in place"
    key_file = settings.access.ssh_key_file
    if any(not h.local for h in owned.hosts) and settings.ssh_private_key is None \
            and not os.path.exists(os.path.expanduser(key_file)):
        problems.append(f"{NAMESPACE}:sshPrivateKey: is not set and the key file {key_file} does not exist: "
                        f"`pulumi config set --secret {NAMESPACE}:sshPrivateKey < ~/.ssh/id_ed25519 -s {settings.stack}`, "
                        f"or point {NAMESPACE}:access.sshKeyFile at the key the hosts accept")
    family = owned.family
    for i, arg in enumerate(settings.serving.extra_args):
        if arg.split("=", 1)[0] in family.managed_serve_flags:
            problems.append(f"{NAMESPACE}:serving.extraArgs[{i}]: '{arg}' is set by the program for "
                            f"{owned.hosts[0].accelerator} ({' '.join(family.serve_flags)}); remove it from extraArgs")
    return problems


def system_disk_needed_gb(serving: ServingSettings, weights_gb: float) -> float:
    """GB a GPU node's system disk needs: OS, NVIDIA stack, the image while it is pulled, and local weights."""
    return OS_BASE_GB + NVIDIA_STACK_GB + serving.image_pull_disk_gb + weights_gb + DISK_HEADROOM_GB


def _check_disk(settings: Settings) -> list[str]:
    if settings.cloud == "azure":
        assert settings.azure is not None
        have, key, weights = settings.azure.os_disk_size_gb, "azure.osDiskSizeGb", settings.model.spec.weights_gb
    elif settings.cloud == "aliyun":
        assert settings.aliyun is not None
        have, key, weights = settings.aliyun.gpu_system_disk_gb, "aliyun.gpuSystemDiskGb", 0.0  # weights on the NAS
    elif settings.cloud == "owned":
        return []  # the machines' free disk is checked on them, by the host-setup step
    else:
        raise ValueError(f"no disk rule for cloud {settings.cloud!r}")
    need, serving = system_disk_needed_gb(settings.serving, weights), settings.serving
    if need <= have:
        return []
    return [f"{NAMESPACE}:{key}: {have} GB is too small: the node needs {need:.0f} GB (OS {OS_BASE_GB:.0f} + NVIDIA "
            f"driver and toolkit {NVIDIA_STACK_GB:.0f} + image {serving.image_extracted_gb:.0f} extracted + "
            f"{serving.image_largest_layer_gb:.0f} largest layer while pulling + weights {weights:.0f} + headroom "
            f"{DISK_HEADROOM_GB:.0f}); raise {NAMESPACE}:{key} to at least {need:.0f}"]


# ---------------------------------------------------------------------------- entry points


def parse_settings(stack: str, raw: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()) -> Settings:
    """Validate raw ``qwen:*`` values (keys without the namespace, as set) into ``Settings``.

    A key holding '.' or '[' was set without ``--path``: nothing would read it, so it is refused
    with the command that sets what the user meant. ``secret_keys`` keeps their values out of the message."""
    problems: list[str] = []
    data = dict(raw)
    for key in sorted(k for k in raw if re.search(r"[.\[]", k)):
        value = data.pop(key)
        problems.append(f"{NAMESPACE}:{key}: is a flat key (set without --path), which nothing reads. Set what you "
                        f"meant with {_fix_command(key, value, stack, key in secret_keys)} and remove this one with "
                        f"`pulumi config rm '{NAMESPACE}:{key}' -s {stack}`")
    cloud = data.get("cloud")
    if cloud in CLOUDS:
        for other in (c for c in CLOUDS if c != cloud and c in data):
            data.pop(other)
            problems.append(f"{NAMESPACE}:{other}: is set on an {cloud} stack; remove it")
        if data.get(cloud) is None:
            data[cloud] = {}
    if cloud == "owned":
        data["serving"] = _with_family_image(data.get("serving"), data.get("owned"))
    context = {"stack": stack, "cloud": cloud, "private_key": data.get("sshPrivateKey")}
    try:
        settings = Settings.model_validate(data, context=context)
    except ValidationError as err:
        problems += [line for e in err.errors() for line in _message(e, stack)]
        raise SettingsError(stack, problems) from None
    settings._stack = stack
    problems += _check_layout(settings) + _check_scenarios(settings) + _check_disk(settings) + _check_owned(settings)
    if problems:
        raise SettingsError(stack, problems)
    return settings


def _with_family_image(serving: Any, owned: Any) -> Any:
    """qwen:serving with the image of the owned hosts' accelerator family when it names none."""
    try:
        family = family_of(owned["hosts"][0]["accelerator"])
    except (KeyError, IndexError, TypeError):
        return serving  # the hosts' own rules report it
    if isinstance(serving, Mapping) and serving.get("image") is None:
        return {**serving, "image": family.default_image}
    return serving


def _decode(value: Any) -> Any:
    """The engine passes objects and lists as JSON text, scalars as text."""
    try:
        return json.loads(value) if isinstance(value, str) and value[:1] in ("{", "[") else value
    except json.JSONDecodeError:
        return value


def load_settings() -> Settings:
    """Read every key of the ``qwen`` namespace of the current stack's config and validate it."""
    passed = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}  # the engine's map, or the env's
    secret = {*runtime_config.get_config_secret_keys_env(), *(k for k in passed if runtime_config.is_config_secret(k))}
    raw = {k.split(":", 1)[1]: _decode(v) for k, v in passed.items() if k.startswith(f"{NAMESPACE}:")}
    raw.pop("sshPrivateKey", None)
    secret_keys = frozenset(k.split(":", 1)[1] for k in secret if k.startswith(f"{NAMESPACE}:"))
    private_key = pulumi.Config(NAMESPACE).get_secret("sshPrivateKey")
    if private_key is not None:
        raw["sshPrivateKey"] = private_key
    return parse_settings(pulumi.get_stack(), raw, secret_keys)

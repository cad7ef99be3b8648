"""The policy pack's rules: plain functions over resource properties in the providers' wire shapes
(camelCase, as the engine sends them), wrapped as pulumi-policy policies in ``POLICIES``.

``__main__.py`` builds the ``PolicyPack`` from ``POLICIES`` (constructing one starts a server, so
tests import this module instead and call the ``check_*`` functions or ``policy.validate``).
Every ``check_*`` function returns the violations it found as messages; an empty list passes.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

AZURE_NSG = "azure-native:network:NetworkSecurityGroup"
AZURE_SECURITY_RULE = "azure-native:network:SecurityRule"
AZURE_VM = "azure-native:compute:VirtualMachine"
ALIYUN_SG_RULE = "alicloud:ecs/securityGroupRule:SecurityGroupRule"
ALIYUN_INSTANCE = "alicloud:ecs/instance:Instance"
ALIYUN_VPC = "alicloud:vpc/network:Network"
ALIYUN_NAS_ACCESS_RULE = "alicloud:nas/accessRule:AccessRule"
REMOTE_COMMAND = "command:remote:Command"
LOCAL_COMMAND = "command:local:Command"

# ---------------------------------------------------------------------------- inbound ports

SSH_PORT = 22
DEFAULT_API_PORTS = (8000,)
# Ray's GCS, dashboard + jobs API (remote code execution if reachable), client, dashboard agent,
# and the worker port range Ray picks from by default.
RAY_PORTS: tuple[tuple[int, int], ...] = ((6379, 6379), (8265, 8265), (10001, 10001), (52365, 52365), (10002, 19999))
# Source spellings that mean "anyone": Azure's service tags and wildcards, Aliyun's open ranges.
ANY_SOURCE_WORDS = frozenset({"*", "internet", "any", "0.0.0.0", "0.0.0.0/0", "::/0", "::"})


def protected_port_ranges(api_ports: Iterable[int]) -> list[tuple[int, int, str]]:
    """(first, last, what) for every port that must not be reachable from anywhere."""
    ranges = [(SSH_PORT, SSH_PORT, "SSH")]
    ranges += [(p, p, "the API") for p in api_ports]
    ranges += [(a, b, "Ray") for a, b in RAY_PORTS]
    return ranges


def is_any_source(source: str) -> bool:
    """True for a source that admits the whole internet (0.0.0.0/0, ::/0, *, Internet, Any)."""
    text = source.strip().lower()
    if text in ANY_SOURCE_WORDS:
        return True
    try:
        return ipaddress.ip_network(text, strict=False).prefixlen == 0
    except ValueError:
        return False


def parse_port_range(text: str, separator: str) -> tuple[int, int] | None:
    """A port range as (first, last): Azure's "22", "10000-20000" and "*", Aliyun's "22/22" and "-1/-1"
    (all ports). None for text that is not a port range."""
    text = text.strip()
    if text in ("*", "-1/-1", "-1"):
        return 0, 65535
    first, _, last = text.partition(separator)
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        return None
    return (0, 65535) if low < 0 else (low, high)


def exposed(ports: tuple[int, int], api_ports: Iterable[int]) -> list[str]:
    """What a port range opens among SSH, the API and Ray's ports, as "SSH (22)" words."""
    low, high = ports
    found = []
    for first, last, what in protected_port_ranges(api_ports):
        if low <= last and first <= high:
            span = str(first) if first == last else f"{first}-{last}"
            found.append(f"{what} ({span})")
    return found


def check_azure_security_rule(rule: Mapping[str, Any], api_ports: Iterable[int] = DEFAULT_API_PORTS) -> list[str]:
    """One Azure security rule (an NSG's ``securityRules`` item, or a SecurityRule resource's properties)."""
    if str(rule.get("direction", "")).lower() != "inbound" or str(rule.get("access", "")).lower() != "allow":
        return []
    if str(rule.get("protocol", "*")).lower() not in ("*", "tcp"):
        return []  # SSH, the API and Ray are TCP
    sources = [rule["sourceAddressPrefix"]] if rule.get("sourceAddressPrefix") else []
    sources += list(rule.get("sourceAddressPrefixes") or [])
    open_sources = [s for s in sources if is_any_source(str(s))]
    if not open_sources:
        return []
    port_texts = [rule["destinationPortRange"]] if rule.get("destinationPortRange") else []
    port_texts += list(rule.get("destinationPortRanges") or [])
    hit: list[str] = []
    for text in port_texts:
        ports = parse_port_range(str(text), "-")
        hit += exposed(ports, api_ports) if ports else []
    if not hit:
        return []
    name = rule.get("name", "(unnamed)")
    return [f"security rule '{name}' allows {', '.join(map(str, open_sources))} to {', '.join(dict.fromkeys(hit))}: "
            "allow only your own CIDRs (qwen:access.allowedCidrs); Ray's ports stay inside the network"]


def check_azure_nsg(props: Mapping[str, Any], api_ports: Iterable[int] = DEFAULT_API_PORTS) -> list[str]:
    return [m for rule in props.get("securityRules") or [] for m in check_azure_security_rule(rule, api_ports)]


def check_aliyun_security_group_rule(props: Mapping[str, Any], api_ports: Iterable[int] = DEFAULT_API_PORTS) -> list[str]:
    """An ``alicloud.ecs.SecurityGroupRule``: an ingress accept rule from an open CIDR to a protected port."""
    if str(props.get("type", "")).lower() != "ingress" or str(props.get("policy") or "accept").lower() != "accept":
        return []
    if str(props.get("ipProtocol", "")).lower() not in ("tcp", "all"):
        return []
    sources = [str(props[k]) for k in ("cidrIp", "ipv6CidrIp") if props.get(k)]
    open_sources = [s for s in sources if is_any_source(s)]
    ports = parse_port_range(str(props.get("portRange") or "-1/-1"), "/")
    hit = exposed(ports, api_ports) if open_sources and ports else []
    if not hit:
        return []
    return [f"ingress rule allows {', '.join(open_sources)} to {', '.join(hit)} (portRange {props.get('portRange')}): "
            "allow only your own CIDRs (qwen:access.allowedCidrs); Ray's ports stay inside the security group"]


# ---------------------------------------------------------------------------- Spot terms


def check_spot_vm(props: Mapping[str, Any]) -> list[str]:
    """An Azure Spot (or legacy Low priority) VM names what happens on eviction and what it pays at most."""
    if str(props.get("priority", "Regular")).lower() not in ("spot", "low"):
        return []
    problems = []
    if str(props.get("evictionPolicy", "")).lower() not in ("deallocate", "delete"):
        problems.append("a Spot VM must set evictionPolicy (Deallocate keeps the disk and the weights, or Delete): "
                        "qwen:azure.evictionPolicy")
    max_price = (props.get("billingProfile") or {}).get("maxPrice")
    if not isinstance(max_price, (int, float)) or isinstance(max_price, bool) or not (max_price == -1 or max_price > 0):
        problems.append(f"a Spot VM must set billingProfile.maxPrice (-1 = up to the on-demand price, or a price per "
                        f"hour > 0), got {max_price!r}: qwen:azure.spotMaxPrice")
    return problems


def check_aliyun_spot_instance(props: Mapping[str, Any]) -> list[str]:
    """An Aliyun spot instance with a price limit states the limit."""
    if props.get("spotStrategy") == "SpotWithPriceLimit" and not props.get("spotPriceLimit"):
        return ["spotStrategy SpotWithPriceLimit needs spotPriceLimit (the highest hourly price to pay)"]
    return []


# ---------------------------------------------------------------------------- images pinned

# Tags that follow a moving target even when they look like a name.
FLOATING_TAGS = frozenset({"latest", "stable", "nightly", "main", "master", "edge", "dev", "release", "rolling"})
# A version names at least major.minor (v0.11.0, 22.04, 1.17.8-1) or a date (20261015): "3" or
# "cuda12" still move.
VERSION_TAG = re.compile(r"\d+[._-]\d+|\d{6,}")
DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-f]{32,}$")
# docker run / create / pull flags that take no value (every other flag takes the next word).
DOCKER_BOOLEAN_FLAGS = frozenset({
    "--rm", "-d", "--detach", "-i", "--interactive", "-t", "--tty", "-it", "-ti", "--init", "--privileged",
    "--read-only", "-P", "--publish-all", "--no-healthcheck", "--oom-kill-disable", "--sig-proxy", "-q", "--quiet",
    "-a", "--all-tags", "--disable-content-trust", "--use-api-socket",
})
DOCKER_IMAGE_COMMANDS = {("run",), ("create",), ("pull",), ("container", "run"), ("container", "create"),
                         ("image", "pull")}
VARIABLE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[?-][^}]*)?\}?$")


def image_is_pinned(reference: str) -> bool:
    """True for ``name@sha256:<digest>`` or ``name:<version tag>`` (see VERSION_TAG; never a moving
    name such as ``latest``); a registry's ``host:port/`` prefix is not a tag."""
    name, at, digest = reference.partition("@")
    if at:
        return bool(DIGEST.match(digest))
    last = name.rsplit("/", 1)[-1]
    _, colon, tag = last.partition(":")
    if not colon or not tag:
        return False
    return tag.lower() not in FLOATING_TAGS and bool(VERSION_TAG.search(tag))


def command_env(create: str) -> dict[str, str]:
    """The env assignments of a rendered remote step (components/remote.py ``render_command``:
    ``sudo -n env K=V ... bash -c SCRIPT STEP``), or of a plain ``env K=V cmd`` / ``K=V cmd`` line."""
    try:
        words = shlex.split(create)
    except ValueError:
        return {}
    env: dict[str, str] = {}
    for word in words:
        if word in ("sudo", "-n", "-E", "env"):
            continue
        key, eq, value = word.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            break
        env[key] = value
    return env


def docker_images(script: str) -> Iterator[str]:
    """The image argument of every ``docker run|create|pull`` in a shell script (continued lines joined),
    as written: a literal reference or a ``$VARIABLE``."""
    joined = re.sub(r"\\\n", " ", script)
    for line in joined.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a comment that mentions docker
        for match in re.finditer(r"(?:^|[\s;&|(`])docker\s+(.*)", line):
            try:
                words = shlex.split(match.group(1), comments=True)
            except ValueError:
                words = match.group(1).split()
            image = _image_argument(words)
            if image:
                yield image


def _image_argument(words: Sequence[str]) -> str | None:
    for command in DOCKER_IMAGE_COMMANDS:
        if tuple(words[: len(command)]) == command:
            rest = list(words[len(command):])
            break
    else:
        return None
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-"):
            break
        i += 1 if (word in DOCKER_BOOLEAN_FLAGS or "=" in word) else 2
    return rest[i] if i < len(rest) else None


def check_command_images(create: str) -> list[str]:
    """Every image a command runs or pulls is pinned: ``IMAGE=`` assignments and the images of its
    ``docker run``/``docker pull`` lines (a ``$VAR`` image is resolved from the command's env)."""
    env = command_env(create)
    # A rendered step carries its script as one word (bash -c SCRIPT): search the scripts; a plain
    # one-line command is searched as it is.
    try:
        texts = [word for word in shlex.split(create) if "\n" in word] or [create]
    except ValueError:
        texts = [create]
    images: dict[str, str] = {}
    for key, value in env.items():
        if key == "IMAGE" or key.endswith("_IMAGE"):
            images.setdefault(value, f"{key}=")
    for text in texts:
        for image in docker_images(text):
            variable = VARIABLE.match(image)
            if variable and variable.group(1) in env:
                images.setdefault(env[variable.group(1)], f"docker ${variable.group(1)}")
            elif "$" not in image:
                images.setdefault(image, "docker")
            # else: a value computed inside the script, which this check cannot follow
    return [f"image '{image}' ({where}) is not pinned: use a version tag (vllm/vllm-openai:v0.11.0) or a digest "
            "(@sha256:...), never latest or no tag (qwen:serving.image)"
            for image, where in images.items() if not image_is_pinned(image)]


# ---------------------------------------------------------------------------- NAS and VPC


def check_nas_access_rules(vpc_cidrs: Sequence[str], access_rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each NAS access rule's ``sourceCidrIp`` lies inside one of the stack's VPC ranges."""
    networks = []
    for cidr in vpc_cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    problems = []
    for rule in access_rules:
        source = str(rule.get("sourceCidrIp") or rule.get("ipv6SourceCidrIp") or "")
        try:
            net = ipaddress.ip_network(source, strict=False)
        except ValueError:
            problems.append(f"NAS access rule source '{source}' is not a CIDR")
            continue
        if not any(net.version == vpc.version and net.subnet_of(vpc) for vpc in networks):  # type: ignore[arg-type]
            within = ", ".join(vpc_cidrs) or "no VPC in this stack"
            problems.append(f"NAS access rule allows {source}, outside the VPC ({within}): "
                            "give the NAS to the VPC's range only (qwen:aliyun.vpcCidr)")
    return problems


# ---------------------------------------------------------------------------- disks

# Besides the image and the weights: Ubuntu (5 GB), the NVIDIA driver and toolkit (4 GB) and 2 GB
# headroom, as stacks/settings.py counts them (tests keep the two in step).
DEFAULT_SYSTEM_GB = 11.0
# bf16 weights on disk, as stacks/catalog.py has them (tests keep the two in step); policy config
# `modelWeightsGb` adds models.
DEFAULT_MODEL_WEIGHTS_GB: dict[str, float] = {
    "Qwen/Qwen2.5-14B-Instruct": 29.5,
    "Qwen/Qwen2.5-72B-Instruct": 145.0,
}


@dataclass(frozen=True)
class Machine:
    """A VM or instance and its OS / system disk in GB (None when not set or not known yet)."""

    host: str
    disk_gb: float | None
    urn: str


@dataclass(frozen=True)
class Prefetch:
    """What a host's prefetch step (``QWEN_STEP=prefetch``) puts on the host's disk."""

    host: str
    image_disk_gb: float
    weights_on_disk: bool
    model_id: str


def machine_of(resource_type: str, props: Mapping[str, Any], urn: str) -> Machine | None:
    if resource_type == AZURE_VM:
        disk = ((props.get("storageProfile") or {}).get("osDisk") or {}).get("diskSizeGB")
        return Machine(str(props.get("vmName") or props.get("name") or ""), _number(disk), urn)
    if resource_type == ALIYUN_INSTANCE:
        return Machine(str(props.get("instanceName") or props.get("hostName") or ""),
                       _number(props.get("systemDiskSize")), urn)
    return None


def prefetch_of(create: str) -> Prefetch | None:
    env = command_env(create)
    if env.get("QWEN_STEP") != "prefetch":
        return None
    return Prefetch(host=env.get("QWEN_HOST", ""), image_disk_gb=_number(env.get("IMAGE_DISK_GB")) or 0.0,
                    weights_on_disk=env.get("PREFETCH_MODEL") == "1", model_id=env.get("MODEL_ID", ""))


def check_disk(machine: Machine, prefetch: Prefetch, weights_gb: Mapping[str, float],
               system_gb: float = DEFAULT_SYSTEM_GB) -> list[str]:
    """The machine's disk holds the system, the image while it is pulled and (when they are
    downloaded to it) the weights."""
    if prefetch.weights_on_disk and prefetch.model_id not in weights_gb:
        return [f"{machine.host}: the weights of {prefetch.model_id} are downloaded to its disk but their size is "
                "unknown to the policy: add it to the policy config `modelWeightsGb`"]
    weights = weights_gb[prefetch.model_id] if prefetch.weights_on_disk else 0.0
    need = system_gb + prefetch.image_disk_gb + weights
    if machine.disk_gb is None:
        return [f"{machine.host}: no disk size set, and it needs {math.ceil(need)} GB"]
    if machine.disk_gb < need:
        return [f"{machine.host}: {machine.disk_gb:g} GB disk is smaller than the {math.ceil(need)} GB it needs (system "
                f"{system_gb:g} + image {prefetch.image_disk_gb:g} + weights {weights:g}): raise "
                "qwen:azure.osDiskSizeGb / qwen:aliyun.gpuSystemDiskGb"]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- the policies

API_PORTS_SCHEMA = PolicyConfigSchema(properties={
    "apiPorts": {"type": "array", "items": {"type": "integer"}, "default": list(DEFAULT_API_PORTS),
                 "description": "the serving API's ports (qwen:serving.port)"},
})
DISK_SCHEMA = PolicyConfigSchema(properties={
    "modelWeightsGb": {"type": "object", "additionalProperties": {"type": "number"},
                       "description": "weights on disk in GB per model id, added to the pack's own table"},
    "systemGb": {"type": "number", "default": DEFAULT_SYSTEM_GB,
                 "description": "OS, NVIDIA driver and toolkit, headroom"},
})


def _api_ports(config: Mapping[str, Any]) -> list[int]:
    return [int(p) for p in config.get("apiPorts") or DEFAULT_API_PORTS]


def _skip_unknown(args: ResourceValidationArgs | StackValidationArgs, error: UnknownValueError) -> None:
    # `pulumi preview` does not know values computed from other resources' outputs; `up` checks
    # each resource again with every input known, before it is created.
    args.not_applicable(f"not known in preview: {error}")


def _validate_inbound(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    ports = _api_ports(args.get_config())
    try:
        if args.resource_type == AZURE_NSG:
            problems = check_azure_nsg(args.props, ports)
        elif args.resource_type == AZURE_SECURITY_RULE:
            problems = check_azure_security_rule(args.props, ports)
        elif args.resource_type == ALIYUN_SG_RULE:
            problems = check_aliyun_security_group_rule(args.props, ports)
        else:
            return
    except UnknownValueError as error:
        _skip_unknown(args, error)
        return
    for message in problems:
        report_violation(message, None)


def _validate_spot(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    try:
        if args.resource_type == AZURE_VM:
            problems = check_spot_vm(args.props)
        elif args.resource_type == ALIYUN_INSTANCE:
            problems = check_aliyun_spot_instance(args.props)
        else:
            return
    except UnknownValueError as error:
        _skip_unknown(args, error)
        return
    for message in problems:
        report_violation(message, None)


def _validate_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in (REMOTE_COMMAND, LOCAL_COMMAND):
        return
    for key in ("create", "update"):
        try:
            text = args.props.get(key)
        except UnknownValueError as error:
            _skip_unknown(args, error)
            return
        for message in check_command_images(text) if isinstance(text, str) else []:
            report_violation(f"{key}: {message}", None)


def _known(resource: PolicyResource, *keys: str) -> dict[str, Any] | None:
    """The named properties of a stack resource, or None when one is unknown in preview."""
    try:
        return {key: resource.props.get(key) for key in keys}
    except UnknownValueError:
        return None


def _validate_nas(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    vpcs = [p["cidrBlock"] for r in args.resources if r.resource_type == ALIYUN_VPC
            for p in [_known(r, "cidrBlock")] if p and p["cidrBlock"]]
    for resource in args.resources:
        if resource.resource_type != ALIYUN_NAS_ACCESS_RULE:
            continue
        props = _known(resource, "sourceCidrIp", "ipv6SourceCidrIp")
        if props is None:
            continue
        for message in check_nas_access_rules(vpcs, [props]):
            report_violation(message, resource.urn)


def _validate_disks(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = args.get_config()
    weights = {**DEFAULT_MODEL_WEIGHTS_GB, **{k: float(v) for k, v in (config.get("modelWeightsGb") or {}).items()}}
    system_gb = float(config.get("systemGb", DEFAULT_SYSTEM_GB))
    machines: dict[str, Machine] = {}
    prefetches: list[Prefetch] = []
    for resource in args.resources:
        try:
            machine = machine_of(resource.resource_type, resource.props, resource.urn)
            if machine:
                machines[machine.host] = machine
            elif resource.resource_type == REMOTE_COMMAND:
                create = resource.props.get("create")
                prefetch = prefetch_of(create) if isinstance(create, str) else None
                if prefetch:
                    prefetches.append(prefetch)
        except UnknownValueError:
            continue  # checked at `up`, when it is known
    for prefetch in prefetches:
        machine = machines.get(prefetch.host)
        if machine is None:
            continue  # a host this program did not create (owned machines): not ours to size
        for message in check_disk(machine, prefetch, weights, system_gb):
            report_violation(message, machine.urn)


NO_INTERNET_TO_ADMIN_OR_RAY_PORTS = ResourceValidationPolicy(
    name="no-internet-to-admin-or-ray-ports",
    description="No inbound rule from 0.0.0.0/0, ::/0, *, Internet or Any to SSH, the API port or a Ray port "
                "(Azure NSGs and security rules, Aliyun security group rules).",
    validate=_validate_inbound,
    config_schema=API_PORTS_SCHEMA,
)
SPOT_VM_SETS_EVICTION_AND_MAX_PRICE = ResourceValidationPolicy(
    name="spot-vm-sets-eviction-and-max-price",
    description="A Spot VM sets an eviction policy and a max price (an Aliyun price-limited spot instance its limit).",
    validate=_validate_spot,
)
CONTAINER_IMAGES_PINNED = ResourceValidationPolicy(
    name="container-images-pinned",
    description="Every image a remote step runs or pulls is pinned to a version tag or a digest.",
    validate=_validate_images,
)
NAS_ACCESS_WITHIN_VPC = StackValidationPolicy(
    name="nas-access-within-vpc",
    description="Every NAS access rule admits only a range inside the stack's VPC.",
    validate=_validate_nas,
)
OS_DISK_FITS_WEIGHTS_AND_IMAGE = StackValidationPolicy(
    name="os-disk-fits-weights-and-image",
    description="A machine's OS disk holds the system, the serving image while it is pulled, and the weights "
                "downloaded to it (sizes from its prefetch step and the model table).",
    validate=_validate_disks,
    config_schema=DISK_SCHEMA,
)

POLICIES = [
    NO_INTERNET_TO_ADMIN_OR_RAY_PORTS,
    SPOT_VM_SETS_EVICTION_AND_MAX_PRICE,
    CONTAINER_IMAGES_PINNED,
    NAS_ACCESS_WITHIN_VPC,
    OS_DISK_FITS_WEIGHTS_AND_IMAGE,
]
# Every rule blocks `preview` and `up`: they are the platform's floor, not advice.
ENFORCEMENT = EnforcementLevel.MANDATORY

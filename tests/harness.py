"""Run components or the whole program under Pulumi mocks (preview=False) and record everything.

``RecordingMonitor`` keeps every registration with its inputs, options and dependencies;
``CloudMocks`` answers like the clouds and the remote hosts would, from the fixtures.
Nothing here reaches a network.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TEST_CIDR = "198.51.100.7/32"  # the operator's address in these tests (RFC 5737 documentation range)
SECRET_SIG = rpc._special_secret_sig
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
# The private address host-setup reports for an owned host, by host name (default 192.168.50.10).
OWNED_PRIVATE_IPS = {"atlas-a": "10.60.0.11", "atlas-b": "10.60.0.12"}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    inputs: dict
    dependencies: list[str]
    delete_before_replace: bool
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    secret_inputs: set[str]
    deleted_with: str
    custom: bool = False
    id: str = ""
    state: dict = field(default_factory=dict)  # the outputs the mocks answered


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        raw = json.loads(json.dumps(_struct_to_python(request.object)))
        secret_inputs = {k for k, v in raw.items() if isinstance(v, dict) and v.get(rpc._special_sig_key) == SECRET_SIG}
        self.registrations[response.urn] = Registration(
            type=request.type, name=request.name, urn=response.urn, parent=request.parent,
            inputs=rpc.deserialize_properties(request.object), dependencies=list(request.dependencies),
            delete_before_replace=request.deleteBeforeReplace, ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs), secret_inputs=secret_inputs,
            deleted_with=request.deletedWith, custom=request.custom, id=response.id,
            state=rpc.deserialize_properties(response.object) if response.HasField("object") else {},
        )
        return response


def _struct_to_python(struct) -> Any:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(struct)


def step_env(create: str) -> dict[str, str]:
    """The env assignments of a rendered remote step: `sudo -n env K=V ... bash -c SCRIPT NAME`
    (after the sudo probe some steps start with)."""
    words = shlex.split(create)
    start = next(i for i in range(len(words)) if words[i:i + 3] == ["sudo", "-n", "env"])
    env = {}
    for word in words[start + 3:]:
        if word == "bash":
            break
        key, _, value = word.partition("=")
        env[key] = value
    return env


class CloudMocks(pulumi.runtime.Mocks):
    """Answers for the resources and invokes of both clouds, and Command stdout from fixtures."""

    def __init__(self, zones_by_type: dict[str, list[str]] | None = None,
                 nas_offers: dict[str, list[tuple[str, str]]] | None = None):
        self.zones_by_type = zones_by_type or {
            "ecs.gn8is-2x.8xlarge": ["cn-hangzhou-k", "cn-hangzhou-j"],
            "ecs.e-c1m2.large": ["cn-hangzhou-h", "cn-hangzhou-j", "cn-hangzhou-k"],
        }
        # zone -> (storage type, protocol) pairs General-purpose NAS offers there (nas.getZones)
        self.nas_offers = nas_offers if nas_offers is not None else {
            "cn-hangzhou-h": [("Capacity", "nfs"), ("Capacity", "smb")],
            "cn-hangzhou-j": [("Performance", "nfs"), ("Capacity", "nfs"), ("Performance", "smb")],
            "cn-hangzhou-k": [("Performance", "nfs"), ("Capacity", "nfs")],
        }
        self.counter = 0
        self.invokes: list[tuple[str, dict]] = []
        self.served_models: dict[str, list[str]] = {}  # host -> models its vLLM serves

    def _next_ip(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # azure-native resources output their name from the type-specific name input
    AZURE_NAME_INPUTS = {
        "azure-native:resources:ResourceGroup": "resourceGroupName",
        "azure-native:network:VirtualNetwork": "virtualNetworkName",
        "azure-native:network:Subnet": "subnetName",
        "azure-native:network:NetworkSecurityGroup": "networkSecurityGroupName",
        "azure-native:network:PublicIPAddress": "publicIpAddressName",
        "azure-native:network:NetworkInterface": "networkInterfaceName",
        "azure-native:compute:VirtualMachine": "vmName",
        "azure-native:compute:VirtualMachineExtension": "vmExtensionName",
    }

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        t = args.typ
        if t in self.AZURE_NAME_INPUTS:
            state["name"] = args.inputs.get(self.AZURE_NAME_INPUTS[t])
        if t == "azure-native:network:PublicIPAddress":
            state["ipAddress"] = "51.142.202.62"
        elif t == "azure-native:network:NetworkInterface":
            cfgs = [dict(c) for c in state.get("ipConfigurations", [])]
            if cfgs:
                cfgs[0]["privateIPAddress"] = "10.10.1.4"
            state["ipConfigurations"] = cfgs
        elif t == "azure-native:compute:VirtualMachine":
            state["vmId"] = "5f0c7a52-3c1e-4a59-9d61-0e3c2b7f4a11"
        elif t == "tls:index/privateKey:PrivateKey":
            state["publicKeyOpenssh"] = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAACAQMockPublicKeyForTestsOnly qwen\n"
            state["privateKeyOpenssh"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n"
            state["privateKeyPem"] = f"-----BEGIN PRIVATE KEY-----\nmock-{args.name}\n-----END PRIVATE KEY-----\n"
        elif t in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            state["certPem"] = f"-----BEGIN CERTIFICATE-----\nmock-{args.name}\n-----END CERTIFICATE-----\n"
        elif t == "tls:index/certRequest:CertRequest":
            state["certRequestPem"] = (f"-----BEGIN CERTIFICATE REQUEST-----\nmock-{args.name}\n"
                                       "-----END CERTIFICATE REQUEST-----\n")
        elif t == "random:index/randomPassword:RandomPassword":
            state["result"] = "k" * int(state.get("length", 32))
        elif t == "alicloud:ecs/instance:Instance":
            # Stopped with StopCharging, an instance has given its public IP back.
            stopped = state.get("status") == "Stopped" and state.get("stoppedMode") == "StopCharging"
            state["publicIp"] = "" if stopped else self._next_ip("47.96.10.")
            state["privateIp"] = self._next_ip("172.18.190.")
        elif t == "alicloud:nas/mountTarget:MountTarget":
            state["mountTargetDomain"] = "0a1b2c3d4e-abc12.cn-hangzhou.nas.aliyuncs.com"
        elif t in COMMAND_TYPES:
            state["stdout"] = self.command_stdout(step_env(args.inputs["create"]))
            state["stderr"] = ""
        return f"{args.name}-id", state

    def command_stdout(self, env: dict[str, str]) -> str:
        step = env["QWEN_STEP"]
        if step == "node-ready":
            gpus = int(env["EXPECTED_GPUS"])
            if "npu-smi" in env["ACCEL_INVENTORY_COMMAND"]:
                name = "npu_inventory_310p3.csv"
            elif "4090" in env["QWEN_HOST"] or env["QWEN_HOST"] == "local":
                name = "nvidia_smi_rtx4090.csv"
            else:
                name = "nvidia_smi_a100.csv" if "nc48" in env["QWEN_HOST"] else "nvidia_smi_l20.csv"
            rows = fixture(name).splitlines()
            return "\n".join(rows[:gpus])
        if step == "host-setup":
            return json.dumps({"privateIp": OWNED_PRIVATE_IPS.get(env["QWEN_HOST"], "192.168.50.10"), "arch": "x86_64"})
        if step == "ray-wait-gpus":
            text = fixture("ray_status_1node.txt" if env["EXPECTED_GPUS"] == "2" else "ray_status_2nodes.txt")
            if env["RAY_RESOURCE"] != "GPU":  # a custom resource (NPU) is listed like GPUs, by its name
                text = re.sub(r"0\.0/[\d.]+ GPU.*", f"0.0/{float(env['EXPECTED_GPUS'])} {env['RAY_RESOURCE']}", text)
            return text
        if step == "vllm-serve" and "SERVED_NAME" in env:
            self.served_models[env["QWEN_HOST"]] = [env["SERVED_NAME"]]
        if step == "vllm-health":
            # what the host's vLLM lists: the name the serve step started it with (not the health
            # step's own SERVED_NAME, so a mismatch between the two steps shows)
            return json.dumps({"models": self.served_models.get(env["QWEN_HOST"], [])})
        if step == "proxy-smoke":
            return json.dumps({"status": 200, "seconds": 0.412, "withoutKey": {
                "/health": 200, "/v1/models": 401, "/v1/chat/completions": 401, "/invocations": 401, "/metrics": 401,
                "/tokenize": 401}})
        if step.startswith("benchmark-"):
            return self.bench_result(env)
        if step == "model-download":
            return json.dumps({"model": "Qwen/Qwen2.5-72B-Instruct", "revision": "master", "files": 45, "bytes": 145412800512})
        return ""

    # The head of each stack file -> its directory of `vllm bench serve` v0.11.0 results in tests/fixtures/bench/.
    BENCH_RESULTS_BY_HEAD = {"vm-qwen-nc48": "uksouth", "qwen-l20-gpu-0": "aliyun-l20",
                             "qwen-l20-fp8-gpu-0": "aliyun-l20-fp8"}

    def bench_result(self, env: dict[str, str]) -> str:
        """The saved result of one scenario: the stack's own file for it when there is one (checked against the
        scenario's shape), else the seed or chat sample relabelled."""
        stack, scenario = self.BENCH_RESULTS_BY_HEAD.get(env["QWEN_HOST"]), env["SCENARIO"]
        path = FIXTURES / "bench" / str(stack) / f"{scenario}.json"
        if stack and path.exists():
            result = json.loads(path.read_text())
            shape = (result["num_prompts"], result["max_concurrency"], result["total_input_tokens"] // result["num_prompts"],
                     result["total_output_tokens"] // result["num_prompts"])
            wanted = tuple(int(env[k]) for k in ("NUM_PROMPTS", "CONCURRENCY", "INPUT_LEN", "OUTPUT_LEN"))
            assert shape == wanted, f"{path} holds {shape}, the scenario asks for {wanted}"
            return json.dumps(result)
        result = json.loads(fixture("vllm_bench_seed.json" if scenario.startswith("seed-") else "vllm_bench_chat.json"))
        result["label"] = scenario
        return json.dumps(result)

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "alicloud:index/getZones:getZones":
            ids = self.zones_by_type.get(args.args.get("availableInstanceType", ""), [])
            return {"ids": ids, "zones": [{"id": z, "localName": z, "multiZoneIds": [], "availableInstanceTypes": [],
                                           "availableResourceCreations": [], "availableDiskCategories": [],
                                           "slbSlaveZoneIds": []} for z in ids]}
        if args.token == "alicloud:nas/getZones:getZones":
            # The shape of pulumi_alicloud.nas.GetZonesResult: zones[].zoneId, zones[].instanceTypes[].
            return {"id": "cn-hangzhou", "fileSystemType": args.args.get("fileSystemType"), "zones": [
                {"zoneId": zone, "instanceTypes": [{"storageType": s, "protocolType": p} for s, p in offers]}
                for zone, offers in self.nas_offers.items()]}
        if args.token == "alicloud:ecs/getImages:getImages":
            image = "ubuntu_22_04_x64_20G_alibase_20261015.vhd"
            return {"ids": [image], "images": [{"id": image, "imageId": image, "name": image}]}
        return {}


@dataclass
class Run:
    monitor: RecordingMonitor
    mocks: CloudMocks
    outputs: dict
    exported: list[str] = field(default_factory=list)  # names passed to pulumi.export, known or not
    secret_outputs: set[str] = field(default_factory=set)  # exported names whose Output is secret

    @property
    def resources(self) -> list[Registration]:
        return list(self.monitor.registrations.values())

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Registration:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Registration:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def commands(self) -> dict[str, Registration]:
        """Every step, remote or local (the machine running pulumi)."""
        return {r.name: r for r in self.resources if r.type in COMMAND_TYPES}

    def depends_on(self, later: Registration, earlier: Registration) -> bool:
        """True when `later` depends on `earlier` directly or through other resources."""
        by_urn = self.monitor.registrations
        seen, todo = set(), list(later.dependencies)
        while todo:
            urn = todo.pop()
            if urn == earlier.urn:
                return True
            if urn in seen or urn not in by_urn:
                continue
            seen.add(urn)
            todo.extend(by_urn[urn].dependencies)
            # a component's dependency covers its children
            todo.extend(r.urn for r in by_urn.values() if r.parent == urn)
        return False


class PreviewMocks(CloudMocks):
    """What `pulumi preview` knows of new resources: their inputs, and no computed output at all
    (no IP address, no Command stdout). Invokes still answer, as they do in a real preview."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return f"{args.name}-id", dict(args.inputs)


def run_pulumi(program: Callable[[], Any], stack: str = "test", config: dict[str, str] | None = None,
               mocks: CloudMocks | None = None, preview: bool = False) -> Run:
    """Run `program` under mocks; it returns a dict of Outputs (or plain values) to resolve."""
    mocks = mocks or CloudMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="qwen-serving", stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config or {})
    resolved: dict = {}

    @pulumi.runtime.test
    def _run():
        outputs = program() or {}
        return pulumi.Output.all(**outputs).apply(lambda values: resolved.update(values))

    _run()
    return Run(monitor, mocks, resolved)


def stack_config(stack: str, **overrides: Any) -> dict[str, str]:
    """The config of Pulumi.<stack>.yaml as the engine passes it (objects as JSON), plus the test
    operator's CIDR and any `qwen:<key>` overrides."""
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw.setdefault("qwen:access", {"allowedCidrs": [TEST_CIDR]})
    for key, value in overrides.items():
        if value is None:
            raw.pop(f"qwen:{key}", None)
        else:
            raw[f"qwen:{key}"] = value
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def run_stack(stack: str, monkeypatch, mocks: CloudMocks | None = None, preview: bool = False,
              azure_client: Any = None, **overrides: Any) -> Run:
    """Run the real program (stacks.program.main) for a stack file, capturing pulumi.export.
    The Azure preflight asks `azure_client` (default: the recorded answers, where the stack fits)."""
    from stacks import program
    from stacks.preflight import azure as preflight_azure
    from tests.azure_fakes import TEST_SUBSCRIPTION, FakeComputeClient

    exports: dict = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exports.__setitem__(name, value))
    client = azure_client or FakeComputeClient()
    monkeypatch.setattr(preflight_azure, "connect", lambda subscription: client)
    monkeypatch.delenv("ARM_SUBSCRIPTION_ID", raising=False)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", TEST_SUBSCRIPTION)

    def _program():
        program.main()
        return exports

    run = run_pulumi(_program, stack=stack, config=stack_config(stack, **overrides), mocks=mocks, preview=preview)
    run.exported = list(exports)
    run.secret_outputs = {name for name, value in exports.items() if is_secret(value)}
    return run


def contract_outputs(ssh_key_generated: bool, azure: bool = False, priced: bool = False) -> list[str]:
    """The names a stack must export, in order: the contract (its optional outputs only when `priced`, i.e.
    qwen:cost.hourlyUsd is set), then sshPrivateKey when generated, then the preflight's placement on Azure."""
    from stacks.outputs import CONTRACT, PLACEMENT_OUTPUT, SSH_PRIVATE_KEY_OUTPUT

    names = [name for name, spec in CONTRACT.items() if priced or not spec.optional]
    if ssh_key_generated:
        names.append(SSH_PRIVATE_KEY_OUTPUT)
    if azure:
        names.append(PLACEMENT_OUTPUT)
    return names


def is_secret(value: Any) -> bool:
    """Whether an exported value is a secret Output. Read after the program ran, when the Output's
    state has resolved (the SDK keeps value and secret flag in one future, Output._data)."""
    return isinstance(value, pulumi.Output) and value._data.done() and bool(value._data.result().is_secret)

"""The policy pack as the engine runs it, against the whole program under mocks.

The pack is started exactly as `pulumi preview --policy-pack policy` starts it
(`python -m pulumi.policy <engine> <pack dir>`: it prints its port and serves the Analyzer gRPC
protocol); every resource the program registers is sent to `Analyze` with its inputs, and the
whole stack to `AnalyzeStack` with the resources' states, as the engine does. The stacks as
configured pass; overlays that open SSH to the internet or float the image are refused, by rule name.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tests.harness import ROOT, PreviewMocks, RecordingMonitor, run_stack

MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    inputs: struct_pb2.Struct  # as sent to the engine
    state: struct_pb2.Struct  # as the (mocked) provider answered


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    pack = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."], cwd=ROOT / "policy",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = pack.stdout.readline().strip() if pack.stdout else ""
        assert port.isdigit(), f"the pack did not start: {pack.stderr.read() if pack.stderr else ''}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        pack.kill()
        pack.wait()


def registered(stack: str, monkeypatch, **overrides) -> list[Registered]:
    """Every resource the program registers for `stack`, with its wire inputs and state."""
    found: list[Registered] = []
    original = RecordingMonitor.RegisterResource

    def record(self, request):
        response = original(self, request)
        found.append(Registered(request.type, request.name, response.urn, request.object, response.object))
        return response

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", record)
    run_stack(stack, monkeypatch, **overrides)
    return [r for r in found if not r.type.startswith(("pulumi:", "qwen:"))]


@dataclass
class Diagnostic:
    policyName: str  # noqa: N815 (the protocol's name)
    message: str
    enforcementLevel: int  # noqa: N815
    urn: str  # the resource refused (the engine attributes a per-resource diagnostic to the resource analyzed)


@pytest.fixture(scope="module")
def configured() -> dict[str, list[Registered]]:
    """Every cloud stack as its stack file configures it, registered once for this module."""
    with pytest.MonkeyPatch.context() as mp:
        return {stack: registered(stack, mp) for stack in ("uksouth", "aliyun-l20", "aliyun-l20-fp8")}


def analyze(analyzer: analyzer_pb2_grpc.AnalyzerStub, resources: list[Registered]) -> list[Diagnostic]:
    """The diagnostics of every per-resource check and of the stack check."""
    found = []
    for r in resources:
        response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(type=r.type, properties=r.inputs, urn=r.urn, name=r.name))
        found += [Diagnostic(d.policyName, d.message, d.enforcementLevel, r.urn) for d in response.diagnostics]
    stack = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type=r.type, properties=r.state, urn=r.urn, name=r.name) for r in resources]))
    return found + [Diagnostic(d.policyName, d.message, d.enforcementLevel, d.urn) for d in stack.diagnostics]


def test_pack_describes_its_mandatory_rules(analyzer):
    from google.protobuf import empty_pb2

    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "qwen-serving"
    assert {p.name: p.enforcementLevel for p in info.policies} == {
        "no-internet-to-admin-or-ray-ports": MANDATORY, "spot-vm-sets-eviction-and-max-price": MANDATORY,
        "container-images-pinned": MANDATORY, "nas-access-within-vpc": MANDATORY,
        "os-disk-fits-weights-and-image": MANDATORY}


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20", "aliyun-l20-fp8"])
def test_stacks_as_configured_pass(analyzer, stack, configured):
    resources = configured[stack]
    assert any(r.type == "command:remote:Command" for r in resources)
    assert [(d.policyName, d.message) for d in analyze(analyzer, resources)] == []


@pytest.mark.parametrize("stack, rule_type", [("uksouth", "azure-native:network:NetworkSecurityGroup"),
                                              ("aliyun-l20", "alicloud:ecs/securityGroupRule:SecurityGroupRule")])
def test_ssh_open_to_the_internet_is_refused_by_rule_name(analyzer, stack, rule_type, monkeypatch):
    # The settings accept 0.0.0.0/0 only with the explicit opt-in; the platform's pack still refuses it.
    resources = registered(stack, monkeypatch, access={"allowedCidrs": ["0.0.0.0/0"], "allowAnySource": True})
    diagnostics = analyze(analyzer, resources)
    assert diagnostics and {d.policyName for d in diagnostics} == {"no-internet-to-admin-or-ray-ports"}
    assert all(d.enforcementLevel == MANDATORY for d in diagnostics)
    offenders = {r.urn for r in resources if r.type == rule_type}
    assert any("SSH (22)" in d.message for d in diagnostics)
    assert {d.urn for d in diagnostics} <= offenders and offenders


def test_a_floating_image_tag_is_refused_in_every_step_that_uses_it(analyzer, monkeypatch):
    import yaml

    serving = yaml.safe_load((ROOT / "Pulumi.uksouth.yaml").read_text())["config"]["qwen:serving"]
    resources = registered("uksouth", monkeypatch, serving={**serving, "image": "vllm/vllm-openai:nightly"})
    diagnostics = analyze(analyzer, resources)
    assert {d.policyName for d in diagnostics} == {"container-images-pinned"}
    steps = {r.urn for r in resources if r.type == "command:remote:Command"}
    flagged = {d.urn for d in diagnostics}
    assert flagged <= steps and len(flagged) >= 5  # prefetch, node-ready, ray head, serve, benchmarks


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_preview_with_unknown_values_is_not_refused(analyzer, stack, monkeypatch):
    resources = registered(stack, monkeypatch, mocks=PreviewMocks(), preview=True)
    assert [(d.policyName, d.message) for d in analyze(analyzer, resources) if d.enforcementLevel == MANDATORY] == []


def test_policy_config_reaches_the_rules(analyzer):
    """`--policy-pack-config` values arrive through Configure: another API port is protected too."""

    nsg = struct_pb2.Struct()
    nsg.update({"networkSecurityGroupName": "nsg-gpu", "securityRules": [{
        "name": "allow-tcp-9000", "priority": 1000, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "sourceAddressPrefix": "Internet", "sourcePortRange": "*", "destinationAddressPrefix": "*",
        "destinationPortRange": "9000"}]})
    request = analyzer_pb2.AnalyzeRequest(type="azure-native:network:NetworkSecurityGroup", properties=nsg,
                                          urn="urn:pulumi:uksouth::qwen-serving::nsg", name="nsg")
    assert list(analyzer.Analyze(request).diagnostics) == []
    properties = struct_pb2.Struct()
    properties.update({"apiPorts": [9000]})
    config = analyzer_pb2.PolicyConfig(enforcementLevel=MANDATORY, properties=properties)
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={"no-internet-to-admin-or-ray-ports": config}))
    try:
        [diagnostic] = analyzer.Analyze(request).diagnostics
        assert diagnostic.policyName == "no-internet-to-admin-or-ray-ports" and "the API (9000)" in diagnostic.message
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest())


def test_pack_runs_on_the_program_sdk_version():
    def pins(path):
        return dict(line.split("==") for line in (ROOT / path).read_text().splitlines() if "==" in line)

    assert pins("policy/requirements.txt")["pulumi"] == pins("requirements.txt")["pulumi"]


@pytest.mark.parametrize("stack, resource_type, change, rule", [
    ("uksouth", "azure-native:compute:VirtualMachine", {"storageProfile.osDisk.diskSizeGB": 64},
     "os-disk-fits-weights-and-image"),
    ("aliyun-l20", "alicloud:ecs/instance:Instance", {"systemDiskSize": 30}, "os-disk-fits-weights-and-image"),
    ("aliyun-l20", "alicloud:nas/accessRule:AccessRule", {"sourceCidrIp": "0.0.0.0/0"}, "nas-access-within-vpc"),
])
def test_stack_rules_read_the_program_real_resources(analyzer, configured, stack, resource_type, change, rule):
    """The stack rules find the program's own hosts, prefetch steps, VPC and NAS rule: a state the
    settings would refuse (a smaller disk, an open NAS) is refused by the pack too."""
    from google.protobuf import json_format

    resources = [dataclasses.replace(r) for r in configured[stack]]  # the state of one is replaced below
    target = next(r for r in resources if r.type == resource_type
                  and ("gpu" in r.name or resource_type != "alicloud:ecs/instance:Instance"))
    state = json_format.MessageToDict(target.state)
    for path, value in change.items():
        *parents, leaf = path.split(".")
        node = state
        for key in parents:
            node = node[key]
        node[leaf] = value
    target.state = struct_pb2.Struct()
    target.state.update(state)
    diagnostics = analyze(analyzer, resources)
    assert [(d.policyName, d.urn) for d in diagnostics] == [(rule, target.urn)], [d.message for d in diagnostics]

"""Each rule of the policy pack (policy/rules.py) on passing and failing resource properties, in the
providers' wire shapes (what the engine sends: camelCase inputs)."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs, StackValidationArgs

from components.remote import render_command
from policy import rules
from stacks import catalog, settings

OPERATOR = "198.51.100.7/32"
OPTIONS = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=False, aliases=[],
                                custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])


def nsg_rule(port: str, *, source: Any = None, sources: Any = None, **extra: Any) -> dict:
    """An NSG securityRules item as azure-native sends it."""
    rule = {"name": f"allow-tcp-{port}", "priority": 1000, "direction": "Inbound", "access": "Allow",
            "protocol": "Tcp", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": port}
    if source is not None:
        rule["sourceAddressPrefix"] = source
    if sources is not None:
        rule["sourceAddressPrefixes"] = sources
    return {**rule, **extra}


def sg_rule(port_range: str, cidr: str, **extra: Any) -> dict:
    """An alicloud.ecs.SecurityGroupRule's inputs."""
    return {"securityGroupId": "sg-bp1abc", "type": "ingress", "ipProtocol": "tcp", "portRange": port_range,
            "cidrIp": cidr, "nicType": "intranet", "policy": "accept", **extra}


def validate(policy: Any, resource_type: str, props: dict, config: dict | None = None) -> list[str]:
    """Run a resource policy the way the pack's server does, collecting its violations."""
    found: list[str] = []
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:test::qwen::{resource_type}::r", "r",
                                  OPTIONS, None, config)
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def stack_resource(resource_type: str, name: str, props: dict) -> PolicyResource:
    return PolicyResource(resource_type, props, f"urn:pulumi:test::qwen::{resource_type}::{name}", name,
                          OPTIONS, None, None, [], {})


def validate_stack(policy: Any, resources: list[PolicyResource], config: dict | None = None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    policy.validate(StackValidationArgs(resources, config), lambda message, urn=None: found.append((message, urn)))
    return found


# ---------------------------------------------------------------- no-internet-to-admin-or-ray-ports

INBOUND = rules.NO_INTERNET_TO_ADMIN_OR_RAY_PORTS


def test_nsg_open_only_to_the_operator_passes():
    props = {"networkSecurityGroupName": "nsg-gpu", "resourceGroupName": "rg-qwen-uksouth", "location": "uksouth",
             "securityRules": [nsg_rule("22", sources=[OPERATOR]), nsg_rule("8000", sources=[OPERATOR])]}
    assert validate(INBOUND, rules.AZURE_NSG, props) == []


@pytest.mark.parametrize("source", ["0.0.0.0/0", "*", "Internet", "Any", "::/0", "internet"])
def test_nsg_ssh_from_anywhere_fails(source):
    props = {"securityRules": [nsg_rule("22", source=source)]}
    [message] = validate(INBOUND, rules.AZURE_NSG, props)
    assert "SSH (22)" in message and source in message


@pytest.mark.parametrize("port, what", [("8000", "the API (8000)"), ("6379", "Ray (6379)"), ("8265", "Ray (8265)"),
                                        ("10001", "Ray (10001)"), ("52365", "Ray (52365)"),
                                        ("15000", "Ray (10002-19999)"), ("*", "SSH (22)"),
                                        ("8000-8300", "Ray (8265)")])
def test_nsg_api_and_ray_ports_from_anywhere_fail(port, what):
    [message] = validate(INBOUND, rules.AZURE_NSG, {"securityRules": [nsg_rule(port, sources=[OPERATOR, "0.0.0.0/0"])]})
    assert what in message


def test_nsg_port_ranges_list_and_configured_api_port():
    rule = nsg_rule("443", source="Internet", destinationPortRanges=["9000", "20000-30000"])
    assert validate(INBOUND, rules.AZURE_NSG, {"securityRules": [rule]}) == []  # nothing protected
    [message] = validate(INBOUND, rules.AZURE_NSG, {"securityRules": [rule]}, {"apiPorts": [9000]})
    assert "the API (9000)" in message


@pytest.mark.parametrize("change", [{"direction": "Outbound"}, {"access": "Deny"}, {"protocol": "Udp"}])
def test_nsg_rules_that_admit_nothing_inbound_over_tcp_pass(change):
    assert validate(INBOUND, rules.AZURE_NSG, {"securityRules": [nsg_rule("22", source="*", **change)]}) == []


def test_separate_azure_security_rule_resource():
    props = {"securityRuleName": "ssh", "networkSecurityGroupName": "nsg-gpu", "resourceGroupName": "rg",
             **nsg_rule("22", source="*")}
    assert validate(INBOUND, rules.AZURE_SECURITY_RULE, props)
    props["sourceAddressPrefix"] = "VirtualNetwork"
    assert validate(INBOUND, rules.AZURE_SECURITY_RULE, props) == []


def test_aliyun_rule_from_the_operator_and_inside_the_group_pass():
    assert validate(INBOUND, rules.ALIYUN_SG_RULE, sg_rule("22/22", OPERATOR)) == []
    intra_group = {"securityGroupId": "sg-bp1abc", "type": "ingress", "ipProtocol": "all", "portRange": "-1/-1",
                   "sourceSecurityGroupId": "sg-bp1abc", "nicType": "intranet", "policy": "accept"}
    assert validate(INBOUND, rules.ALIYUN_SG_RULE, intra_group) == []


@pytest.mark.parametrize("props, what", [
    (sg_rule("22/22", "0.0.0.0/0"), "SSH (22)"),
    (sg_rule("8000/8000", "0.0.0.0/0"), "the API (8000)"),
    (sg_rule("8265/8265", "0.0.0.0/0"), "Ray (8265)"),
    (sg_rule("1/65535", "0.0.0.0/0"), "Ray (6379)"),
    (sg_rule("-1/-1", "0.0.0.0/0", ipProtocol="all"), "SSH (22)"),
    ({**sg_rule("22/22", ""), "cidrIp": None, "ipv6CidrIp": "::/0"}, "SSH (22)"),
])
def test_aliyun_open_rules_fail(props, what):
    [message] = validate(INBOUND, rules.ALIYUN_SG_RULE, props)
    assert what in message


@pytest.mark.parametrize("change", [{"type": "egress"}, {"policy": "drop"}, {"ipProtocol": "udp"},
                                    {"portRange": "443/443"}])
def test_aliyun_rules_that_open_nothing_protected_pass(change):
    assert validate(INBOUND, rules.ALIYUN_SG_RULE, sg_rule("22/22", "0.0.0.0/0", **change)) == []


# ---------------------------------------------------------------- spot-vm-sets-eviction-and-max-price

SPOT = rules.SPOT_VM_SETS_EVICTION_AND_MAX_PRICE
SPOT_VM = {"vmName": "vm-qwen-nc48", "hardwareProfile": {"vmSize": "Standard_NC48ads_A100_v4"}, "priority": "Spot",
           "evictionPolicy": "Deallocate", "billingProfile": {"maxPrice": -1}}


@pytest.mark.parametrize("props", [SPOT_VM, {**SPOT_VM, "evictionPolicy": "Delete", "billingProfile": {"maxPrice": 2.5}},
                                   {"vmName": "on-demand", "priority": "Regular"}, {"vmName": "no-priority"}])
def test_spot_terms_set_or_not_spot_pass(props):
    assert validate(SPOT, rules.AZURE_VM, props) == []


@pytest.mark.parametrize("props, key", [
    ({k: v for k, v in SPOT_VM.items() if k != "evictionPolicy"}, "evictionPolicy"),
    ({k: v for k, v in SPOT_VM.items() if k != "billingProfile"}, "maxPrice"),
    ({**SPOT_VM, "billingProfile": {"maxPrice": 0}}, "maxPrice"),
    ({**SPOT_VM, "priority": "Low", "billingProfile": {}}, "maxPrice"),
])
def test_spot_without_eviction_or_price_fails(props, key):
    [message] = validate(SPOT, rules.AZURE_VM, props)
    assert key in message


def test_aliyun_price_limited_spot_needs_its_limit():
    instance = {"instanceName": "qwen-l20-gpu-0", "instanceChargeType": "PostPaid", "spotStrategy": "SpotWithPriceLimit"}
    assert validate(SPOT, rules.ALIYUN_INSTANCE, instance)
    assert validate(SPOT, rules.ALIYUN_INSTANCE, {**instance, "spotPriceLimit": 9.5}) == []
    assert validate(SPOT, rules.ALIYUN_INSTANCE, {**instance, "spotStrategy": "NoSpot"}) == []


# ---------------------------------------------------------------- container-images-pinned

IMAGES = rules.CONTAINER_IMAGES_PINNED


def step(script: str, image: str, **env: str) -> dict:
    """A remote Command's inputs with `create` rendered exactly as the program renders it."""
    return {"create": render_command("vllm-serve", "vm-qwen-nc48", script, {"IMAGE": image, **env}),
            "triggers": ["5f0c7a52-3c1e-4a59-9d61-0e3c2b7f4a11"], "addPreviousOutputInEnv": False}


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.11.0", "registry.example.cn:5000/vllm/vllm-openai:v0.11.0",
                                   "vllm/vllm-openai@sha256:" + "ab" * 32, "vllm/vllm-openai:v0.11.0@sha256:" + "cd" * 32])
@pytest.mark.parametrize("script", ["vllm_start.sh", "benchmark.sh", "node_ready.sh", "ray_start.sh",
                                    "prefetch_configure.sh"])
def test_every_real_step_with_a_pinned_image_passes(script, image):
    assert validate(IMAGES, rules.REMOTE_COMMAND, step(script, image)) == []


@pytest.mark.parametrize("image", ["vllm/vllm-openai", "vllm/vllm-openai:latest", "vllm/vllm-openai:nightly",
                                   "registry.example.cn:5000/vllm/vllm-openai", "vllm/vllm-openai@sha256:abc"])
def test_an_unpinned_image_in_a_real_step_fails(image):
    [message] = validate(IMAGES, rules.REMOTE_COMMAND, step("vllm_start.sh", image))
    assert f"'{image}'" in message and message.startswith("create: ")


def test_literal_images_in_docker_lines_are_checked():
    assert validate(IMAGES, rules.REMOTE_COMMAND, {"create": "docker run --rm -v /a:/b --gpus all ubuntu nvidia-smi"})
    assert validate(IMAGES, rules.REMOTE_COMMAND, {"create": "sudo docker pull -q nvcr.io/nvidia/cuda"})
    assert validate(IMAGES, rules.REMOTE_COMMAND, {"create": "docker run --rm ubuntu:22.04 true"}) == []
    script = "set -e\ntimeout 60 docker run --rm \\\n  --entrypoint python3 \\\n  python:3 -c 'print(1)'\n"
    [message] = validate(IMAGES, rules.REMOTE_COMMAND, {"create": f"bash -c '{script}'"})
    assert "'python:3'" in message  # a major version alone moves
    commented = "set -e\n# docker run ubuntu was the old way\ndocker run --rm ubuntu:22.04 true\n"
    assert validate(IMAGES, rules.REMOTE_COMMAND, {"create": f"bash -c '{commented}'"}) == []


@pytest.mark.parametrize("image, pinned", [("vllm/vllm-openai:v0.11.0", True), ("ubuntu:22.04", True),
                                           ("nvidia/cuda:12.8.1-base-ubuntu22.04", True), ("busybox:20261015", True),
                                           ("python:3", False), ("nvidia/cuda:cuda12", False), ("localhost:5000/x", False),
                                           ("x:LATEST", False), ("x:", False)])
def test_image_is_pinned(image, pinned):
    assert rules.image_is_pinned(image) is pinned


# ---------------------------------------------------------------- nas-access-within-vpc

NAS = rules.NAS_ACCESS_WITHIN_VPC
VPC = stack_resource(rules.ALIYUN_VPC, "cluster-vpc", {"vpcName": "qwen-l20-vpc", "cidrBlock": "172.18.0.0/16"})


def access_rule(cidr: str) -> PolicyResource:
    return stack_resource(rules.ALIYUN_NAS_ACCESS_RULE, "cluster-nas-access-vpc", {
        "accessGroupName": "qwen-l20-nas-access", "fileSystemType": "standard", "sourceCidrIp": cidr,
        "rwAccessType": "RDWR", "userAccessType": "no_squash", "priority": 1})


@pytest.mark.parametrize("cidr", ["172.18.0.0/16", "172.18.190.0/24", "172.18.190.5/32"])
def test_nas_access_inside_the_vpc_passes(cidr):
    assert validate_stack(NAS, [VPC, access_rule(cidr)]) == []


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "172.16.0.0/12", "10.0.0.0/8", "198.51.100.7/32", "not-a-cidr"])
def test_nas_access_outside_the_vpc_fails(cidr):
    rule = access_rule(cidr)
    [(message, urn)] = validate_stack(NAS, [VPC, rule])
    assert cidr in message and urn == rule.urn


def test_nas_access_without_a_vpc_in_the_stack_fails():
    [(message, _)] = validate_stack(NAS, [access_rule("172.18.0.0/16")])
    assert "no VPC in this stack" in message


# ---------------------------------------------------------------- os-disk-fits-weights-and-image

DISK = rules.OS_DISK_FITS_WEIGHTS_AND_IMAGE


def prefetch(host: str, model: str, *, on_disk: bool, image_disk_gb: int = 30) -> PolicyResource:
    env = {"IMAGE": "vllm/vllm-openai:v0.11.0", "IMAGE_DISK_GB": str(image_disk_gb),
           "PREFETCH_MODEL": "1" if on_disk else "0", "MODEL_ID": model, "MODEL_REVISION": "main",
           "MODEL_ROOT": "/var/lib/qwen/models", "MODEL_DIR": f"/var/lib/qwen/models/{model.split('/')[1]}"}
    return stack_resource(rules.REMOTE_COMMAND, f"prefetch-{host}",
                          {"create": render_command("prefetch", host, "prefetch_configure.sh", env)})


def azure_vm(disk_gb: Any) -> PolicyResource:
    os_disk = {"createOption": "FromImage", "deleteOption": "Delete", "managedDisk": {"storageAccountType": "Premium_LRS"}}
    if disk_gb is not None:
        os_disk["diskSizeGB"] = disk_gb
    return stack_resource(rules.AZURE_VM, "gpu-vm", {"vmName": "vm-qwen-nc48", "storageProfile": {"osDisk": os_disk}})


def aliyun_instance(name: str, disk_gb: int) -> PolicyResource:
    return stack_resource(rules.ALIYUN_INSTANCE, name, {"instanceName": name, "hostName": name,
                                                        "systemDiskCategory": "cloud_essd", "systemDiskSize": disk_gb})


def test_disk_that_holds_system_image_and_weights_passes():
    # 11 + 30 + 29.5 = 70.5 GB
    assert validate_stack(DISK, [azure_vm(1024), prefetch("vm-qwen-nc48", "Qwen/Qwen2.5-14B-Instruct", on_disk=True)]) == []
    assert validate_stack(DISK, [azure_vm(71), prefetch("vm-qwen-nc48", "Qwen/Qwen2.5-14B-Instruct", on_disk=True)]) == []


@pytest.mark.parametrize("disk_gb", [70, 64, None])
def test_disk_too_small_for_the_weights_fails(disk_gb):
    vm = azure_vm(disk_gb)
    [(message, urn)] = validate_stack(DISK, [vm, prefetch("vm-qwen-nc48", "Qwen/Qwen2.5-14B-Instruct", on_disk=True)])
    assert "71 GB" in message and urn == vm.urn


def test_weights_on_the_nas_count_only_the_image():
    nodes = [aliyun_instance("qwen-l20-gpu-0", 45), aliyun_instance("qwen-l20-gpu-1", 40),
             aliyun_instance("qwen-l20-downloader", 20)]  # the downloader has no prefetch step
    steps = [prefetch(f"qwen-l20-gpu-{i}", "Qwen/Qwen2.5-72B-Instruct", on_disk=False) for i in range(2)]
    [(message, urn)] = validate_stack(DISK, nodes + steps)
    assert message.startswith("qwen-l20-gpu-1: 40 GB") and urn == nodes[1].urn


def test_unknown_model_needs_its_size_in_the_policy_config():
    resources = [azure_vm(1024), prefetch("vm-qwen-nc48", "Qwen/Qwen3-32B", on_disk=True)]
    [(message, _)] = validate_stack(DISK, resources)
    assert "modelWeightsGb" in message
    assert validate_stack(DISK, resources, {"modelWeightsGb": {"Qwen/Qwen3-32B": 65.5}}) == []
    assert validate_stack(DISK, resources, {"modelWeightsGb": {"Qwen/Qwen3-32B": 1000}})


def test_pack_sizes_agree_with_the_program():
    """The pack runs in its own venv without the program: its table must follow stacks/."""
    assert rules.DEFAULT_MODEL_WEIGHTS_GB == {model: spec.weights_gb for model, spec in catalog.MODELS.items()}
    assert rules.DEFAULT_SYSTEM_GB == settings.OS_BASE_GB + settings.NVIDIA_STACK_GB + settings.DISK_HEADROOM_GB


def test_pack_lists_every_rule_as_mandatory():
    assert [p.name for p in rules.POLICIES] == [
        "no-internet-to-admin-or-ray-ports", "spot-vm-sets-eviction-and-max-price", "container-images-pinned",
        "nas-access-within-vpc", "os-disk-fits-weights-and-image"]
    assert rules.ENFORCEMENT.value == "mandatory"

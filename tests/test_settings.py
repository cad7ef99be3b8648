"""Every settings rule, on the stack files' own values with one thing broken at a time."""

import copy

import pytest
import yaml

from stacks.settings import SEED_SCENARIO, SettingsError, parse_settings
from tests.harness import ROOT, TEST_CIDR


def raw_settings(stack: str) -> dict:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in config.items() if k.startswith("qwen:")}
    raw["access"] = {"allowedCidrs": [TEST_CIDR]}
    return raw


def problems(stack: str, mutate) -> list[str]:
    raw = raw_settings(stack)
    mutate(raw)
    with pytest.raises(SettingsError) as err:
        parse_settings(stack, raw)
    return err.value.problems


def one_problem(stack: str, mutate, key: str, *fragments: str) -> str:
    found = problems(stack, mutate)
    assert len(found) == 1, found
    assert found[0].startswith(key), found[0]
    for fragment in fragments:
        assert fragment in found[0], found[0]
    return found[0]


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_stack_files_are_valid(stack):
    settings = parse_settings(stack, raw_settings(stack))
    assert settings.benchmark.seed.name == SEED_SCENARIO
    assert (settings.benchmark.seed.input_tokens, settings.benchmark.seed.output_tokens) == (10000, 800)


def test_uksouth_values():
    s = parse_settings("uksouth", raw_settings("uksouth"))
    assert s.azure.gpu.gpus == 2 and s.serving.tensor_parallel_size == 2
    assert s.azure.nvidia_driver.settings == {"updateOS": False, "installCUDA": False, "driverVersion": "12.8"}
    assert s.access.allowed_cidrs == (TEST_CIDR,)


def test_missing_allowed_cidrs_says_how_to_set_them():
    one_problem("uksouth", lambda r: r.pop("access"), "qwen:access.allowedCidrs", "is required", "pulumi config set --path")


def test_invalid_cidr():
    one_problem("uksouth", lambda r: r["azure"].update(vnetCidr="10.10.0.0/33"), "qwen:azure.vnetCidr", "not a valid IPv4 CIDR")


def test_cidr_with_host_bits():
    one_problem("uksouth", lambda r: r["azure"].update(subnetCidr="10.10.1.5/24"), "qwen:azure.subnetCidr", "host bits zero")


def test_subnet_outside_vnet():
    one_problem("uksouth", lambda r: r["azure"].update(subnetCidr="10.20.1.0/24"), "qwen:azure.subnetCidr", "not inside vnetCidr")


def test_any_source_needs_explicit_opt_in():
    one_problem("uksouth", lambda r: r.update(access={"allowedCidrs": ["0.0.0.0/0"]}),
                "qwen:access.allowedCidrs[0]", "whole internet", "allowAnySource")
    raw = raw_settings("uksouth")
    raw["access"] = {"allowedCidrs": ["0.0.0.0/0"], "allowAnySource": True}
    assert parse_settings("uksouth", raw).access.allowed_cidrs == ("0.0.0.0/0",)


def test_tensor_parallel_must_match_gpus_of_vm_size():
    one_problem("uksouth", lambda r: r["serving"].update(tensorParallelSize=4), "qwen:serving.tensorParallelSize",
                "2 GPU(s) per node", "set it to 2")


def test_pipeline_parallel_must_match_nodes():
    found = problems("aliyun-l20", lambda r: r["serving"].update(pipelineParallelSize=1))
    assert found[0].startswith("qwen:serving.pipelineParallelSize") and "2 GPU node(s)" in found[0]
    # and the 72B weights on half the GPUs no longer fit either
    assert any(p.startswith("qwen:model.maxModelLen") and "GB per GPU" in p for p in found)


def test_max_model_len_beyond_model():
    one_problem("uksouth", lambda r: r["model"].update(maxModelLen=65536), "qwen:model.maxModelLen", "32768")


def test_model_that_cannot_fit_the_gpus():
    # 72B on one A100 80 GB pair: 72.5 GB of weights per GPU > 72 GB budget
    def mutate(r):
        r["model"].update(id="Qwen/Qwen2.5-72B-Instruct", servedName="q")
    one_problem("uksouth", mutate, "qwen:model.maxModelLen", "GB per GPU")


def test_scenario_longer_than_max_model_len():
    found = problems("uksouth", lambda r: r["model"].update(maxModelLen=8192))
    assert any("seed-10k-in-800-out-c1" in p and "10800 tokens" in p for p in found), found


def test_unknown_vm_size():
    one_problem("uksouth", lambda r: r["azure"].update(vmSize="Standard_D4s_v5"), "qwen:azure.vmSize", "not in the GPU size catalog")


def test_unpinned_image():
    one_problem("uksouth", lambda r: r["serving"].update(image="vllm/vllm-openai:latest"), "qwen:serving.image", "pinned")
    one_problem("uksouth", lambda r: r["serving"].update(image="vllm/vllm-openai"), "qwen:serving.image", "pinned")


def test_mirror_image_with_registry_port_is_pinned():
    raw = raw_settings("aliyun-l20")
    raw["serving"]["image"] = "registry.example.internal:5000/vllm/vllm-openai:v0.11.0"
    assert parse_settings("aliyun-l20", raw).serving.image.endswith(":v0.11.0")


def test_seed_driver_settings_are_rejected():
    one_problem("uksouth", lambda r: r["azure"]["nvidiaDriver"].update(driverVersion="cuda_12.2"),
                "qwen:azure.nvidiaDriver.driverVersion", "12.8")


def test_unknown_key_is_named():
    one_problem("uksouth", lambda r: r["azure"].update(vmSzie="x"), "qwen:azure.vmSzie", "not a known setting")


def test_spot_price():
    one_problem("uksouth", lambda r: r["azure"].update(spotMaxPrice=0), "qwen:azure.spotMaxPrice", "-1")


def test_gpu_disk_too_small_shows_the_numbers():
    found = one_problem("aliyun-l20", lambda r: r["aliyun"].update(gpuSystemDiskGb=30), "qwen:aliyun.gpuSystemDiskGb",
                        "raise qwen:aliyun.gpuSystemDiskGb to at least 41")
    assert "image 24 extracted" in found


def test_a_bigger_image_does_not_fit_45_gb():
    one_problem("aliyun-l20", lambda r: r["serving"].update(imageExtractedGb=30.0), "qwen:aliyun.gpuSystemDiskGb", "47")


def test_aliyun_refuses_ed25519_keys():
    def mutate(r):
        r["access"]["sshPublicKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperator op@laptop"
        r["sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY-----"
    one_problem("aliyun-l20", mutate, "qwen:access.sshPublicKey", "rsa, dsa and ecdsa")


def test_public_key_without_private_key():
    one_problem("uksouth", lambda r: r["access"].update(sshPublicKey="ssh-ed25519 AAAAC3Nza operator"),
                "qwen:access.sshPublicKey", "sshPrivateKey")


def test_duplicate_and_seed_scenario_names():
    def mutate(r):
        r["benchmark"]["scenarios"] = [
            {"name": "a", "inputTokens": 10, "outputTokens": 10},
            {"name": "a", "inputTokens": 10, "outputTokens": 10},
            {"name": SEED_SCENARIO, "inputTokens": 10, "outputTokens": 10},
        ]
    found = problems("uksouth", mutate)
    assert any("'a' is used twice" in p for p in found)
    assert any("fixed seed scenario" in p for p in found)


def test_aliyun_needs_modelscope():
    one_problem("aliyun-l20", lambda r: r["model"].update(source="huggingface"), "qwen:model.source", "modelscope")


def test_all_problems_reported_at_once():
    def mutate(r):
        r.pop("access")
        r["serving"]["tensorParallelSize"] = 3
        r["azure"]["vnetCidr"] = "nope"
    found = problems("uksouth", mutate)
    assert len(found) >= 2
    with pytest.raises(SettingsError, match="nothing was created"):
        raw = raw_settings("uksouth")
        raw["cloud"] = "gcp"
        parse_settings("uksouth", raw)


def _set(section, **values):
    def mutate(raw):
        raw.setdefault(section, {}).update(values)
    return mutate


def _set_nested(section, sub, **values):
    def mutate(raw):
        raw[section].setdefault(sub, {}).update(values)
    return mutate


# (stack, mutation, the key the error names, a fragment of its fix)
RULES = [
    ("uksouth", lambda r: r.update(cloud="gcp"), "qwen:cloud", "azure"),
    ("uksouth", lambda r: r.update(extra=1), "qwen:extra", "not a known setting"),
    ("uksouth", _set("model", id="Qwen/Qwen3-8B"), "qwen:model.id", "catalog"),
    ("uksouth", _set("model", source="s3"), "qwen:model.source", "huggingface"),
    ("uksouth", _set("model", maxModelLen=100), "qwen:model.maxModelLen", "at least 256"),
    ("uksouth", _set("serving", gpuMemoryUtilization=0.99), "qwen:serving.gpuMemoryUtilization", "0.98"),
    ("uksouth", _set("serving", port=80), "qwen:serving.port", "at least 1024"),
    ("uksouth", _set("serving", privateInterface="eth 0"), "qwen:serving.privateInterface", "eth0"),
    ("uksouth", _set("serving", extraArgs=["--api-key=x"]), "qwen:serving.extraArgs[0]", "set by the program"),
    ("uksouth", _set("serving", extraArgs=[7]), "qwen:serving.extraArgs[0]", "string"),
    ("uksouth", _set("serving", tensorParallelSize="two"), "qwen:serving.tensorParallelSize", "must be int"),
    ("uksouth", _set("serving", healthTimeoutMinutes=1), "qwen:serving.healthTimeoutMinutes", "at least 5"),
    ("uksouth", _set("benchmark", timeoutMinutes=0), "qwen:benchmark.timeoutMinutes", "at least 5"),
    ("uksouth", _set("benchmark", scenarios=[{"name": "Bad Name", "inputTokens": 8, "outputTokens": 8}]),
     "qwen:benchmark.scenarios[0].name", "lowercase"),
    ("uksouth", _set("benchmark", scenarios=[{"name": "x", "outputTokens": 8}]),
     "qwen:benchmark.scenarios[0].inputTokens", "required"),
    ("uksouth", _set("benchmark", scenarios=[{"name": "x", "inputTokens": 8, "outputTokens": 8, "concurrency": 0}]),
     "qwen:benchmark.scenarios[0].concurrency", "at least 1"),
    ("uksouth", _set("access", allowedCidrs=["10.0.0.0/8", 5]), "qwen:access.allowedCidrs[1]", "CIDR string"),
    ("uksouth", _set("access", sshPublicKey="not a key"), "qwen:access.sshPublicKey", "OpenSSH public key"),
    ("uksouth", _set("azure", adminUsername="root"), "qwen:azure.adminUsername", "reserved"),
    ("uksouth", _set("azure", osDiskType="SSD"), "qwen:azure.osDiskType", "Premium_LRS"),
    ("uksouth", _set("azure", evictionPolicy="Stop"), "qwen:azure.evictionPolicy", "Deallocate"),
    ("uksouth", _set("azure", osDiskSizeGb=32), "qwen:azure.osDiskSizeGb", "at least 64"),
    ("uksouth", _set("azure", vmName="VM_Qwen"), "qwen:azure.vmName", "lowercase"),
    ("uksouth", _set("azure", nsgName="-nsg"), "qwen:azure.nsgName", "starting with a letter or digit"),
    ("uksouth", _set("azure", vnetName=None), "qwen:azure.vnetName", "is required"),
    ("uksouth", _set_nested("azure", "image", sku="22_04-lts"), "qwen:azure.image.sku", "Gen2"),
    ("uksouth", _set_nested("azure", "nvidiaDriver", typeHandlerVersion="latest"),
     "qwen:azure.nvidiaDriver.typeHandlerVersion", "1.11"),
    ("uksouth", _set_nested("azure", "nvidiaDriver", updateSettings="INSTALL"),
     "qwen:azure.nvidiaDriver.updateSettings", "not a known setting"),
    ("uksouth", lambda r: r.update(aliyun={}), "qwen:aliyun", "remove it"),
    ("aliyun-l20", _set("aliyun", namePrefix="Qwen"), "qwen:aliyun.namePrefix", "lowercase"),
    ("aliyun-l20", _set("aliyun", vswitchCidr="10.0.0.0/24"), "qwen:aliyun.vswitchCidr", "inside vpcCidr"),
    ("aliyun-l20", _set("aliyun", imageNameRegex="(["), "qwen:aliyun.imageNameRegex", "regular expression"),
    ("aliyun-l20", _set("aliyun", internetMaxBandwidthOut=500), "qwen:aliyun.internetMaxBandwidthOut", "at most 100"),
    ("aliyun-l20", _set("aliyun", gpuInstanceType="ecs.gn7i-c8g1.2xlarge"), "qwen:aliyun.gpuInstanceType", "catalog"),
    ("aliyun-l20", _set_nested("aliyun", "nas", storageType="Extreme"), "qwen:aliyun.nas.storageType", "Performance"),
    ("aliyun-l20", _set_nested("aliyun", "nas", mountDir="mnt"), "qwen:aliyun.nas.mountDir", "absolute path"),
    ("aliyun-l20", lambda r: r.update(azure={}), "qwen:azure", "remove it"),
]


@pytest.mark.parametrize("stack, mutate, key, fix", RULES, ids=[f"{r[0]}:{r[2]}" for r in RULES])
def test_each_rule_names_its_key_and_fix(stack, mutate, key, fix):
    found = problems(stack, mutate)
    matching = [p for p in found if p.startswith(key + ":") or p.startswith(key + " ")]
    assert matching, found
    assert any(fix in p for p in matching), matching


def test_tensor_parallel_must_divide_the_heads():
    # 40 attention heads: 3 does not divide them (and 3 is not the GPUs per node either)
    found = problems("uksouth", lambda r: r["serving"].update(tensorParallelSize=3))
    assert any("does not divide the 40 attention" in p for p in found), found


@pytest.mark.parametrize("arg", ["-tp=4", "--max-model-len=131072", "--max_model_len=131072", "--host=127.0.0.1",
                                 "--distributed-executor-backend=mp", "--gpu-memory-utilization=0.99"])
def test_extra_args_cannot_override_managed_flags(arg):
    one_problem("uksouth", _set("serving", extraArgs=[arg]), "qwen:serving.extraArgs[0]", "set by the program")


def test_extra_args_without_whitespace():
    one_problem("uksouth", _set("serving", extraArgs=["--max-num-seqs 64"]), "qwen:serving.extraArgs[0]", "two items")
    raw = raw_settings("uksouth")
    raw["serving"]["extraArgs"] = ["--max-num-seqs", "64", "--enable-chunked-prefill"]
    assert parse_settings("uksouth", raw).serving.extra_args == ("--max-num-seqs", "64", "--enable-chunked-prefill")


@pytest.mark.parametrize("port", [6379, 8265, 10001, 15000, 52365])
def test_api_port_must_not_collide_with_ray(port):
    one_problem("uksouth", _set("serving", port=port), "qwen:serving.port", "Ray's ports")

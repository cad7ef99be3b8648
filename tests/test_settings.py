"""Every settings rule, on the stack files' own values with one thing broken at a time."""

import copy
import typing

import pytest
import yaml

from stacks.settings import SEED_SCENARIO, SettingsError, parse_settings
from tests.harness import ROOT, TEST_CIDR


def raw_settings(stack: str) -> dict:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in config.items() if k.startswith("qwen:")}
    raw["access"] = {"allowedCidrs": [TEST_CIDR]}
    return raw


def problems(stack: str, mutate, read=None) -> list[str]:
    """The problems settings report for the stack file (read by `read`, default raw_settings) after `mutate`."""
    raw = (read or raw_settings)(stack)
    mutate(raw)
    with pytest.raises(SettingsError) as err:
        parse_settings(stack, raw)
    return err.value.problems


def one_problem(stack: str, mutate, key: str, *fragments: str, read=None) -> str:
    found = problems(stack, mutate, read)
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
    assert s.azure is not None and s.azure.gpu is not None
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
    one_problem("uksouth", lambda r: r["azure"].update(vmSize="Standard_D4s_v5"), "qwen:azure.vmSize",
                "not in the GPU size catalog")


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
    raw = raw_settings("uksouth")
    raw["cloud"] = "gcp"
    with pytest.raises(SettingsError, match="nothing was created"):
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
    ("uksouth", _set("serving", tensorParallelSize="two"), "qwen:serving.tensorParallelSize", "must be an integer"),
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
    one_problem("uksouth", _set("serving", extraArgs=["--block-size 32"]), "qwen:serving.extraArgs[0]", "two items")
    raw = raw_settings("uksouth")
    raw["serving"]["extraArgs"] = ["--block-size", "32", "--enable-chunked-prefill"]
    assert parse_settings("uksouth", raw).serving.extra_args == ("--block-size", "32", "--enable-chunked-prefill")


@pytest.mark.parametrize("port", [6379, 8265, 10001, 15000, 52365])
def test_api_port_must_not_collide_with_ray(port):
    one_problem("uksouth", _set("serving", port=port), "qwen:serving.port", "Ray's ports")


# ---------------------------------------------------------------------------- holes that used to pass validation


def _set_nas(**values):
    return _set_nested("aliyun", "nas", **values)


# (stack, mutation, the key the one problem names, a fragment of its message)
HOLES = [
    ("uksouth", _set("serving", image=""), "qwen:serving.image", "empty"),
    ("uksouth", _set("serving", image="vllm/vllm-openai:"), "qwen:serving.image", "pinned"),
    ("uksouth", _set("serving", image="vllm/vllm-openai :v0.11.0"), "qwen:serving.image", "whitespace"),
    ("uksouth", _set("serving", image="vllm/vllm-openai:LATEST"), "qwen:serving.image", "pinned"),
    ("uksouth", _set("serving", image="vllm/vllm-openai:Latest"), "qwen:serving.image", "pinned"),
    ("uksouth", _set("serving", image="vllm/vllm-openai@sha256:abc"), "qwen:serving.image", "not an image reference"),
    ("uksouth", _set("serving", proxyImage="nginx"), "qwen:serving.proxyImage", "pinned"),
    ("uksouth", _set("serving", proxyImage="nginx:latest"), "qwen:serving.proxyImage", "pinned"),
    ("uksouth", _set("serving", minDriverVersion="latest"), "qwen:serving.minDriverVersion", "such as 570"),
    ("uksouth", _set("serving", minDriverVersion=""), "qwen:serving.minDriverVersion", "such as 570"),
    ("uksouth", _set("model", servedName=""), "qwen:model.servedName", "empty"),
    ("uksouth", _set("model", revision=""), "qwen:model.revision", "empty"),
    ("uksouth", _set("model", revision="main branch"), "qwen:model.revision", "whitespace"),
    ("uksouth", _set("serving", privateInterface=""), "qwen:serving.privateInterface", "eth0"),
    ("uksouth", _set("azure", location=""), "qwen:azure.location", "Azure region"),
    ("uksouth", _set("azure", location="uk-south"), "qwen:azure.location", "Azure region"),
    ("uksouth", _set("access", allowedCidrs=["0.0.0.0/1", "128.0.0.0/1"]), "qwen:access.allowedCidrs",
     "whole internet"),
    ("uksouth", _set("access", allowedCidrs=["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/1"]), "qwen:access.allowedCidrs",
     "allowAnySource"),
    ("uksouth", _set("serving", imageExtractedGb=-30), "qwen:serving.imageExtractedGb", "more than 0"),
    ("uksouth", _set("serving", imageExtractedGb=0), "qwen:serving.imageExtractedGb", "more than 0"),
    ("uksouth", _set("serving", imageLargestLayerGb=-1), "qwen:serving.imageLargestLayerGb", "more than 0"),
    ("uksouth", _set("serving", port=443), "qwen:serving.port", "at least 1024"),
    ("aliyun-l20", _set_nas(mountDir="/"), "qwen:aliyun.nas.mountDir", "system directory"),
    ("aliyun-l20", _set_nas(mountDir="/etc"), "qwen:aliyun.nas.mountDir", "system directory"),
    ("aliyun-l20", _set_nas(mountDir="/usr/local"), "qwen:aliyun.nas.mountDir", "system directory"),
    ("aliyun-l20", _set_nas(mountDir="/var"), "qwen:aliyun.nas.mountDir", "system directory"),
    ("aliyun-l20", _set_nas(mountDir="/root"), "qwen:aliyun.nas.mountDir", "system directory"),
    ("aliyun-l20", _set_nas(mountDir="/mnt/../etc"), "qwen:aliyun.nas.mountDir", "normalized"),
    ("aliyun-l20", _set_nas(modelsSubdir="../../etc"), "qwen:aliyun.nas.modelsSubdir", "inside the NAS mount"),
    ("aliyun-l20", _set_nas(modelsSubdir="models/../../etc"), "qwen:aliyun.nas.modelsSubdir", "no '..'"),
    ("aliyun-l20", _set_nas(modelsSubdir="/etc"), "qwen:aliyun.nas.modelsSubdir", "no leading '/'"),
    ("aliyun-l20", _set_nas(modelsSubdir=""), "qwen:aliyun.nas.modelsSubdir", "relative directory"),
    ("aliyun-l20", _set_nas(modelsSubdir="."), "qwen:aliyun.nas.modelsSubdir", "relative directory"),
    ("aliyun-l20", _set("aliyun", systemDiskCategory="cloud_xyz"), "qwen:aliyun.systemDiskCategory", "cloud_essd"),
    ("aliyun-l20", _set("aliyun", modelscopeVersion=""), "qwen:aliyun.modelscopeVersion", "1.31.0"),
    ("aliyun-l20", _set("aliyun", stopDownloader="maybe"), "qwen:aliyun.stopDownloader", "true or false"),
    ("uksouth", _set_nested("azure", "nvidiaDriver", typeHandlerVersion=1.10), "qwen:azure.nvidiaDriver.typeHandlerVersion",
     "quote it"),
]


@pytest.mark.parametrize("stack, mutate, key, fragment", HOLES, ids=[f"{h[2]}:{i}" for i, h in enumerate(HOLES)])
def test_each_hole_is_one_line_naming_its_key(stack, mutate, key, fragment):
    found = one_problem(stack, mutate, key + ":", fragment)
    assert "\n" not in found


@pytest.mark.parametrize("image", ["vllm/vllm-openai:v0.11.0", "registry.example.internal:5000/vllm/vllm-openai:v0.11.0",
                                   "vllm/vllm-openai@sha256:" + "a" * 64, "nginx:1.28.0-alpine"])
def test_pinned_images_pass(image):
    raw = raw_settings("uksouth")
    raw["serving"].update(image=image, proxyImage=image)
    assert parse_settings("uksouth", raw).serving.proxy_image == image


def test_whole_internet_in_pieces_with_opt_in():
    raw = raw_settings("uksouth")
    raw["access"] = {"allowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"], "allowAnySource": True}
    assert parse_settings("uksouth", raw).access.allowed_cidrs == ("0.0.0.0/1", "128.0.0.0/1")


@pytest.mark.parametrize("category", ["cloud_essd", "cloud_ssd", "cloud_efficiency", "cloud_auto", "cloud_essd_entry", "cloud"])
def test_known_system_disk_categories(category):
    raw = raw_settings("aliyun-l20")
    raw["aliyun"]["systemDiskCategory"] = category
    aliyun = parse_settings("aliyun-l20", raw).aliyun
    assert aliyun is not None and aliyun.system_disk_category == category


@pytest.mark.parametrize("mount_dir, subdir", [("/mnt", "models"), ("/data/nas", "qwen/models"), ("/mnt/nas", "m.v2")])
def test_nas_paths_inside_their_own_directory_pass(mount_dir, subdir):
    raw = raw_settings("aliyun-l20")
    raw["aliyun"]["nas"].update(mountDir=mount_dir, modelsSubdir=subdir)
    aliyun = parse_settings("aliyun-l20", raw).aliyun
    assert aliyun is not None
    nas = aliyun.nas
    assert (nas.mount_dir, nas.models_subdir) == (mount_dir, subdir)


def test_new_settings_defaults_and_values():
    uk, ali = parse_settings("uksouth", raw_settings("uksouth")), parse_settings("aliyun-l20", raw_settings("aliyun-l20"))
    assert uk.serving.proxy_image == "nginx:1.28.0-alpine" and uk.serving.min_driver_version == "570"
    assert ali.aliyun is not None and ali.aliyun.stop_downloader is False
    raw = raw_settings("aliyun-l20")
    raw["serving"]["minDriverVersion"] = 575  # YAML reads an unquoted version as a number
    raw["aliyun"]["stopDownloader"] = True
    s = parse_settings("aliyun-l20", raw)
    assert s.serving.min_driver_version == "575" and s.aliyun is not None and s.aliyun.stop_downloader is True
    raw["serving"]["minDriverVersion"] = "570.172.08"
    assert parse_settings("aliyun-l20", raw).serving.min_driver_version == "570.172.08"


def test_benchmark_scenarios_replace_the_defaults():
    raw = raw_settings("uksouth")
    raw["benchmark"]["scenarios"] = [{"name": "only", "inputTokens": 64, "outputTokens": 64}]
    names = [s.name for s in parse_settings("uksouth", raw).benchmark.scenarios]
    assert names == [SEED_SCENARIO, "only"]
    default = parse_settings("uksouth", raw_settings("uksouth")).benchmark.scenarios
    assert [s.name for s in default] == [SEED_SCENARIO, *(f"sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192))]
    # max(8, 4 x concurrency) prompts after one unmeasured wave of warm-ups, 256 in / 256 out
    assert [(s.num_prompts, s.concurrency, s.warmups) for s in default[1:]] == [
        (8, 1, 1), (32, 8, 8), (128, 32, 32), (256, 64, 64), (512, 128, 128), (768, 192, 192)]
    assert {(s.input_tokens, s.output_tokens) for s in default[1:]} == {(256, 256)}


# ---------------------------------------------------------------------------- every qwen:* key


def test_flat_dotted_key_gives_the_path_command():
    found = one_problem("uksouth", lambda r: r.update({"benchmark.runId": "2"}), "qwen:benchmark.runId:", "flat key")
    assert "`pulumi config set --path 'qwen:benchmark.runId' 2 -s uksouth`" in found
    assert "`pulumi config rm 'qwen:benchmark.runId' -s uksouth`" in found


def test_flat_list_item_key_is_quoted():
    found = one_problem("uksouth", lambda r: r.update({"access.allowedCidrs[1]": "203.0.113.0/24"}),
                        "qwen:access.allowedCidrs[1]:", "flat key")
    assert "`pulumi config set --path 'qwen:access.allowedCidrs[1]' 203.0.113.0/24 -s uksouth`" in found


def test_flat_secret_key_keeps_its_value_out_of_the_message():
    raw = raw_settings("uksouth")
    raw["serving.image"] = "registry.example/vllm:v0.11.0-token123"
    with pytest.raises(SettingsError) as err:
        parse_settings("uksouth", raw, secret_keys=frozenset({"serving.image"}))
    assert "token123" not in str(err.value)
    assert "`pulumi config set --secret --path 'qwen:serving.image' <value> -s uksouth`" in str(err.value)


def test_unknown_top_level_key_lists_the_known_ones():
    found = one_problem("uksouth", lambda r: r.update(foo="1"), "qwen:foo:", "not a known setting")
    assert "benchmark" in found and "serving" in found


def test_snake_case_key_is_named_as_given():
    one_problem("uksouth", _set("serving", model_wait_timeout_minutes=5), "qwen:serving.model_wait_timeout_minutes:",
                "modelWaitTimeoutMinutes")


def test_missing_required_key_says_how_to_set_it():
    found = one_problem("uksouth", lambda r: r["serving"].pop("image"), "qwen:serving.image:", "is required")
    assert "`pulumi config set --path 'qwen:serving.image' vllm/vllm-openai:v0.11.0 -s uksouth`" in found


# ---------------------------------------------------------------------------- the README table


def _table_rows(model=None, prefix=""):
    """The README's settings rows, from the declarations: `qwen:<key>` | default | meaning."""
    from stacks.settings import Settings, _section_of

    rows = []
    for field in (model or Settings).model_fields.values():
        key, section = prefix + field.alias, _section_of(field.annotation)
        if section and typing.get_origin(field.annotation) is not tuple:  # a list of objects is one row
            rows += _table_rows(section, key + ".")
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = extra.get("shown") or ("(required)" if field.is_required() else
                                          f"`{str(field.default).lower() if isinstance(field.default, bool) else field.default}`")
        rows.append(f"| `qwen:{key}` | {default} | {field.description} |")
    return rows


def test_readme_settings_table_is_the_declarations():
    expected = "\n".join(["| key | default | meaning |", "|---|---|---|", *_table_rows()])
    section = (ROOT / "README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert expected in section, "README's settings table is stale; replace it with:\n" + expected


# ---------------------------------------------------------------------------- through the engine's config map (mocks)


def _created_before_refusal(monkeypatch, stack: str, **overrides) -> tuple[list[str], SettingsError]:
    """Run the whole program with `qwen:<key>` overrides; the resources registered before SettingsError."""
    from tests.harness import RecordingMonitor, run_stack

    created: list[str] = []
    original = RecordingMonitor.RegisterResource

    def record(self, request):
        created.append(request.type)
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", record)
    with pytest.raises(SettingsError) as err:
        run_stack(stack, monkeypatch, **overrides)
    return [t for t in created if t != "pulumi:pulumi:Stack"], err.value


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20"])
def test_flat_and_unknown_keys_are_refused_before_any_resource(monkeypatch, stack):
    created, err = _created_before_refusal(monkeypatch, stack, **{"benchmark.runId": "2", "foo": "1"})
    assert created == []
    assert err.problems == [
        f"qwen:benchmark.runId: is a flat key (set without --path), which nothing reads. Set what you meant with "
        f"`pulumi config set --path 'qwen:benchmark.runId' 2 -s {stack}` and remove this one with "
        f"`pulumi config rm 'qwen:benchmark.runId' -s {stack}`",
        "qwen:foo: is not a known setting (known: access, aliyun, azure, benchmark, cloud, cost, model, owned, preflight, "
        "serving, sshPrivateKey); check its spelling, or remove it",
    ]


def test_models_subdir_escaping_the_mount_is_refused_before_any_resource(monkeypatch):
    aliyun = yaml.safe_load((ROOT / "Pulumi.aliyun-l20.yaml").read_text())["config"]["qwen:aliyun"]
    aliyun["nas"]["modelsSubdir"] = "../../etc"
    created, err = _created_before_refusal(monkeypatch, "aliyun-l20", aliyun=aliyun)
    assert created == []
    assert len(err.problems) == 1 and err.problems[0].startswith("qwen:aliyun.nas.modelsSubdir: '../../etc'")


def test_settings_read_from_the_engine_config(monkeypatch):
    from stacks.settings import load_settings
    from tests.harness import run_pulumi, stack_config

    loaded: dict = {}
    config = stack_config("aliyun-l20", serving={**yaml.safe_load((ROOT / "Pulumi.aliyun-l20.yaml").read_text())[
        "config"]["qwen:serving"], "minDriverVersion": "575"})
    run_pulumi(lambda: loaded.update(s=load_settings()), stack="aliyun-l20", config=config)
    assert loaded["s"].stack == "aliyun-l20" and loaded["s"].serving.min_driver_version == "575"
    assert loaded["s"].aliyun.nas.models_subdir == "models"


def test_settings_read_from_the_language_hosts_env(monkeypatch):
    """`pulumi up` hands the program its config as the PULUMI_CONFIG JSON map (secret keys in
    PULUMI_CONFIG_SECRET_KEYS); every qwen:* key in it is read, a secret one is never shown."""
    import json

    from stacks.settings import load_settings
    from tests.harness import run_pulumi, stack_config

    config = {**stack_config("uksouth"), "qwen:serving.image": "registry.example/vllm:v0.11.0-token123"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["qwen:serving.image"]))
    errors = []

    def program():
        try:
            load_settings()
        except SettingsError as err:
            errors.append(err)

    run_pulumi(program, stack="uksouth", config={})
    assert len(errors) == 1 and len(errors[0].problems) == 1, errors
    assert "`pulumi config set --secret --path 'qwen:serving.image' <value> -s uksouth`" in errors[0].problems[0]
    assert "token123" not in str(errors[0])

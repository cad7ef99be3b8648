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

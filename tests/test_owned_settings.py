"""Settings of the owned stacks (rtx4090, ascend-300i, local): the stack files plus the two setup
commands are valid, and every rule names its key and fix, sizing included."""

from __future__ import annotations

import copy

import pytest
import yaml

from stacks.settings import SettingsError, parse_settings
from tests.harness import ROOT
from tests.test_settings import one_problem as settings_one_problem
from tests.test_settings import problems as settings_problems

OWNED_STACKS = ["rtx4090", "ascend-300i", "local"]


def raw_settings(stack: str, address: str = "192.0.2.10", key: object = "-----BEGIN OPENSSH PRIVATE KEY-----") -> dict:
    """The stack file's qwen:* values after the README's setup commands (address and key)."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in config.items() if k.startswith("qwen:")}
    for host in raw["owned"]["hosts"]:
        host.setdefault("address", address)
    if key is not None and stack != "local":
        raw["sshPrivateKey"] = key
    return raw


def problems(stack: str, mutate) -> list[str]:
    return settings_problems(stack, mutate, read=raw_settings)


def one_problem(stack: str, mutate, key: str, *fragments: str) -> str:
    return settings_one_problem(stack, mutate, key, *fragments, read=raw_settings)


@pytest.mark.parametrize("stack", OWNED_STACKS)
def test_stack_files_are_valid_after_the_setup_commands(stack):
    settings = parse_settings(stack, raw_settings(stack))
    assert settings.cloud == "owned" and settings.azure is None and settings.aliyun is None
    assert settings.access.allowed_cidrs == ()  # no firewall is made for owned machines


def test_rtx4090_values():
    s = parse_settings("rtx4090", raw_settings("rtx4090"))
    assert s.owned is not None
    assert s.owned.family.name == "nvidia" and s.owned.machine.gpus == 2
    assert s.owned.machine.accelerator.name == "RTX 4090"
    assert s.serving.tensor_parallel_size == 2 and s.serving.gpu_memory_utilization == 0.85
    assert s.owned.container_env == {"NCCL_P2P_DISABLE": "1"}
    assert s.model.id == "Qwen/Qwen2.5-14B-Instruct"


def test_ascend_values():
    s = parse_settings("ascend-300i", raw_settings("ascend-300i"))
    assert s.owned is not None
    assert s.owned.family.name == "ascend-310p" and s.owned.machine.gpus == 4
    assert s.serving.tensor_parallel_size == 4 and s.model.max_model_len == 16384
    assert s.serving.image == "quay.io/ascend/vllm-ascend:v0.10.0rc1-310p"
    seed001 = next(sc for sc in s.benchmark.scenarios if sc.name == "seed001-256-in-256-out-c192")
    assert (seed001.input_tokens, seed001.output_tokens, seed001.concurrency, seed001.num_prompts) == (256, 256, 192, 192)


def test_local_needs_no_address_user_or_key():
    s = parse_settings("local", raw_settings("local", key=None))
    assert s.owned is not None
    assert s.owned.hosts[0].local and s.owned.listen_address == "127.0.0.1"
    assert s.model.id == "Qwen/Qwen2.5-7B-Instruct"


def test_image_defaults_to_the_familys():
    raw = raw_settings("ascend-300i")
    del raw["serving"]["image"]
    assert parse_settings("ascend-300i", raw).serving.image == "quay.io/ascend/vllm-ascend:v0.10.0rc1-310p"


def test_missing_address_says_how_to_set_it():
    raw = raw_settings("rtx4090")
    del raw["owned"]["hosts"][0]["address"]
    with pytest.raises(SettingsError) as err:
        parse_settings("rtx4090", raw)
    [problem] = err.value.problems
    assert problem.startswith("qwen:owned.hosts[0].address: is required")
    assert "pulumi config set --path 'qwen:owned.hosts[0].address'" in problem and "-s rtx4090" in problem


def test_no_key_and_no_key_file(monkeypatch):
    raw = raw_settings("rtx4090", key=None)
    raw["access"] = {"sshKeyFile": "/nonexistent/qwen.pem"}
    with pytest.raises(SettingsError) as err:
        parse_settings("rtx4090", raw)
    [problem] = err.value.problems
    assert problem.startswith("qwen:sshPrivateKey:") and "/nonexistent/qwen.pem" in problem
    assert "pulumi config set --secret qwen:sshPrivateKey" in problem


def test_a_key_file_that_exists_is_enough(tmp_path):
    key = tmp_path / "id"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    raw = raw_settings("rtx4090", key=None)
    raw["access"] = {"sshKeyFile": str(key)}
    assert parse_settings("rtx4090", raw).access.ssh_key_file == str(key)


def test_a_model_that_does_not_fit_is_refused_with_the_numbers():
    def seventy_two_b(raw):
        raw["model"]["id"] = "Qwen/Qwen2.5-72B-Instruct"
    problem = one_problem("rtx4090", seventy_two_b, "qwen:model.maxModelLen", "needs", "bf16 weights",
                          "24 GB x gpuMemoryUtilization 0.85 = 20.4 GB")
    assert "per GPU" in problem


def test_14b_does_not_fit_one_4090():
    def one_gpu(raw):
        raw["model"]["id"] = "Qwen/Qwen2.5-14B-Instruct"
    one_problem("local", one_gpu, "qwen:model.maxModelLen", "bf16 weights", "20.4 GB")


def test_14b_fits_the_300i_duo_at_tp4_but_not_one_chip():
    def one_chip(raw):
        raw["owned"]["hosts"][0]["count"] = 1
        raw["serving"]["tensorParallelSize"] = 1
        raw["model"]["maxModelLen"] = 32768
    one_problem("ascend-300i", one_chip, "qwen:model.maxModelLen", "fp16 weights", "44 GB x gpuMemoryUtilization 0.5 = 22.0 GB")


def test_tensor_parallel_must_match_the_hosts_count():
    def tp2(raw):
        raw["serving"]["tensorParallelSize"] = 2
    one_problem("ascend-300i", tp2, "qwen:serving.tensorParallelSize", "qwen:owned.hosts[].count", "set it to 4")


@pytest.mark.parametrize("stack, mutate, key, fix", [
    ("rtx4090", lambda r: r["owned"]["hosts"][0].update(accelerator="GTX 1080"), "qwen:owned.hosts[0].accelerator", "RTX 4090"),
    ("rtx4090", lambda r: r["owned"]["hosts"][0].update(count=0), "qwen:owned.hosts[0].count", "at least 1"),
    ("rtx4090", lambda r: r["owned"]["hosts"][0].update(user="Bad User"), "qwen:owned.hosts[0].user", "not a Linux user name"),
    ("rtx4090", lambda r: r["owned"]["hosts"][0].pop("user"), "qwen:owned.hosts[0].user", "pulumi config set --path"),
    ("rtx4090", lambda r: r["owned"]["hosts"][0].update(address="bad address!"), "qwen:owned.hosts[0].address", "DNS name"),
    ("rtx4090", lambda r: r["owned"]["hosts"][0].update(gpus=2), "qwen:owned.hosts[0].gpus", "known"),
    ("rtx4090", lambda r: r["owned"].update(listenAddress="everywhere"), "qwen:owned.listenAddress", "0.0.0.0"),
    ("rtx4090", lambda r: r["owned"].update(modelRoot="models"), "qwen:owned.modelRoot", "absolute"),
    ("rtx4090", lambda r: r["owned"].update(extra=1), "qwen:owned.extra", "known"),
    ("rtx4090", lambda r: r["owned"].update(hosts=[]), "qwen:owned.hosts", "is required"),
    ("ascend-300i", lambda r: r["owned"].update(ncclP2pDisable=True), "qwen:owned.ncclP2pDisable", "HCCL"),
    ("ascend-300i", lambda r: r["serving"].update(extraArgs=["--dtype", "bfloat16"]), "qwen:serving.extraArgs[0]",
     "--dtype float16"),
    ("ascend-300i", lambda r: r["model"].update(source="modelscope"), "qwen:model.source", "huggingface"),
    ("rtx4090", lambda r: r.update(azure={}), "qwen:azure", "remove it"),
])
def test_each_rule_names_its_key_and_fix(stack, mutate, key, fix):
    one_problem(stack, mutate, key, fix)


def two_ascend_hosts(raw):
    first = raw["owned"]["hosts"][0]
    raw["owned"]["hosts"] = [{**first, "name": "atlas-a"}, {**first, "name": "atlas-b", "address": "192.0.2.11"}]
    raw["serving"]["pipelineParallelSize"] = 2


def test_several_hosts_need_their_private_interface():
    found = problems("ascend-300i", two_ascend_hosts)
    assert [p.split(":")[1].split(" ")[0] for p in found] == ["owned.hosts[0].privateInterface",
                                                              "owned.hosts[1].privateInterface"]


def test_several_hosts_must_match():
    def mismatch(raw):
        two_ascend_hosts(raw)
        for host in raw["owned"]["hosts"]:
            host["privateInterface"] = "eth0"
        raw["owned"]["hosts"][1]["count"] = 2
    one_problem("ascend-300i", mismatch, "qwen:owned.hosts", "same accelerator and count")


def test_local_serves_alone():
    def with_another(raw):
        raw["owned"]["hosts"].append({"name": "other", "address": "192.0.2.12", "user": "qwen", "accelerator": "RTX 4090",
                                      "count": 1, "privateInterface": "eth0"})
        raw["owned"]["hosts"][0]["privateInterface"] = "eth0"
        raw["serving"]["pipelineParallelSize"] = 2
        raw["sshPrivateKey"] = "k"
    one_problem("local", with_another, "qwen:owned.hosts", "local serves alone")

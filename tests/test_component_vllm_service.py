"""VllmService alone, on pulumi mocks: the API key on stdin only, serve then health, the models."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_random
import pytest

from components.ray_cluster import RAY_PORT
from components.remote import GpuHost
from components.vllm_service import VllmService, VllmServiceArgs
from tests.harness import CloudMocks, run_pulumi, step_env
from tests.test_remote_step import required_env

COMPONENT = "qwen:serving:VllmService"
API_KEY = "s3cret-key"
SERVED = "org/Some-Model-7B"
EXTRA = ["--enable-prefix-caching", "--max-num-seqs 64", "--chat-template '/x y.jinja'"]


class LoraHostMocks(CloudMocks):
    """A head whose vLLM also lists a LoRA adapter under /v1/models: the health step prints both."""

    def command_stdout(self, env):
        if env["QWEN_STEP"] == "vllm-health":
            return f'{{"models": ["{SERVED}", "sql-lora"]}}'
        return super().command_stdout(env)


@pytest.fixture(scope="module")
def run():
    def program():
        cluster_ready = pulumi_random.RandomId("cluster-ready", byte_length=4)
        head = GpuHost(name="gpu-head", public_ip="203.0.113.20", private_ip="10.40.0.5", user="ops",
                       private_key="k", gpu_count=4, instance_id="i-head", ready=[])
        svc = VllmService("llm", VllmServiceArgs(
            head=head, cluster_ready=cluster_ready, image="registry.example/vllm:1", model_root="/srv/models",
            model_dir="/srv/models/some-model", model_revision="v2", served_name=SERVED, port=8443, tensor_parallel_size=4,
            pipeline_parallel_size=3, max_model_len=16384, gpu_memory_utilization=0.85, private_interface="ens6",
            api_key=pulumi.Output.secret(API_KEY), extra_args=EXTRA, model_wait_timeout_minutes=5,
            health_timeout_minutes=2,
        ))
        return {"models": svc.models, "served_model": svc.served_model,
                "fingerprint": svc.fingerprint, "start_create": svc.start.create, "start_urn": svc.start.urn,
                "ready_urn": svc.ready.urn}

    return run_pulumi(program, mocks=LoraHostMocks())


def test_two_steps_children_of_the_component(run):
    component = run.one(COMPONENT)
    cmds = run.commands()
    assert set(cmds) == {"llm-serve", "llm-health"}
    for cmd in cmds.values():
        assert cmd.parent == component.urn
        assert cmd.inputs["triggers"][0] == "i-head"
        assert cmd.inputs["connection"]["value"]["host"] == "203.0.113.20"
    assert run.outputs["start_urn"] == cmds["llm-serve"].urn
    assert run.outputs["ready_urn"] == cmds["llm-health"].urn


def test_api_key_goes_only_to_stdin(run):
    serve = run.commands()["llm-serve"]
    assert "stdin" in serve.secret_inputs
    assert serve.inputs["stdin"]["value"] == API_KEY
    assert {"stdout", "stderr"} <= set(serve.additional_secret_outputs)
    for cmd in run.commands().values():
        assert API_KEY not in cmd.inputs["create"], cmd.name
        assert API_KEY not in str(cmd.inputs["triggers"]), cmd.name
    assert "stdin" not in run.commands()["llm-health"].inputs
    assert API_KEY not in str(run.outputs)


def test_serve_waits_for_the_cluster(run):
    serve = run.commands()["llm-serve"]
    assert run.named("cluster-ready").urn in serve.dependencies


def test_serve_env(run):
    env = step_env(run.commands()["llm-serve"].inputs["create"])
    assert env["QWEN_STEP"] == "vllm-serve" and env["QWEN_HOST"] == "gpu-head"
    assert env["TP"] == "4" and env["PP"] == "3"
    assert env["SERVED_NAME"] == SERVED and env["PORT"] == "8443"
    assert env["EXTRA_ARGS"] == "\n".join(EXTRA)
    assert env["EXTRA_ARGS"].split("\n") == EXTRA
    assert env["MAX_MODEL_LEN"] == "16384" and env["GPU_MEMORY_UTILIZATION"] == "0.85"
    assert env["MODEL_ROOT"] == "/srv/models" and env["MODEL_DIR"] == "/srv/models/some-model"
    assert env["NODE_IP"] == "10.40.0.5" and env["RAY_PORT"] == str(RAY_PORT)
    assert env["IMAGE"] == "registry.example/vllm:1"
    assert env["MODEL_WAIT_TIMEOUT"] == "300"
    # Ray across hosts (the default executor): the collectives' env names the private interface.
    assert env["EXECUTOR"] == "ray" and env["PRUNE_IMAGES"] == "1"
    assert env["DEVICE_ARGS"] == "--gpus\nall"
    assert env["CONTAINER_ENV"].splitlines() == ["VLLM_HOST_IP=10.40.0.5", "NCCL_SOCKET_IFNAME=ens6", "GLOO_SOCKET_IFNAME=ens6"]
    assert required_env("vllm_start.sh") <= set(env)


def test_health_after_serve_and_triggered_by_it(run):
    cmds = run.commands()
    serve, health = cmds["llm-serve"], cmds["llm-health"]
    assert serve.urn in health.dependencies
    assert not run.depends_on(serve, health)
    assert health.inputs["triggers"] == ["i-head", run.outputs["fingerprint"]]
    # the fingerprint is the serve command's digest: any change to it re-checks health
    assert run.outputs["fingerprint"] == hashlib.sha256(run.outputs["start_create"].encode()).hexdigest()[:16]
    env = step_env(health.inputs["create"])
    assert env == {"QWEN_STEP": "vllm-health", "QWEN_HOST": "gpu-head", "PORT": "8443", "SERVED_NAME": SERVED,
                   "HEALTH_TIMEOUT": "120"}
    assert required_env("vllm_health.sh") <= set(env)


def test_outputs(run):
    assert run.outputs["served_model"] == SERVED
    # the list is the health step's stdout, not the configured name
    assert run.outputs["models"] == [SERVED, "sql-lora"]


def test_no_extra_args_is_an_empty_value():
    def program():
        head = GpuHost(name="gpu-h", public_ip="203.0.113.21", private_ip="10.40.0.6", user="u", private_key="k",
                       gpu_count=1, instance_id="i-h")
        svc = VllmService("v", VllmServiceArgs(
            head=head, cluster_ready=pulumi_random.RandomId("r", byte_length=4), image="i", model_root="/m",
            model_dir="/m/d", model_revision="main", served_name="n", port=8000, tensor_parallel_size=1, pipeline_parallel_size=1,
            max_model_len=1024, gpu_memory_utilization=0.9, private_interface="eth0", api_key="plain-key"))
        return {"models": svc.models}

    run = run_pulumi(program)
    serve = run.commands()["v-serve"]
    assert step_env(serve.inputs["create"])["EXTRA_ARGS"] == ""
    assert "stdin" in serve.secret_inputs  # a plain key is made secret too
    assert "plain-key" not in serve.inputs["create"]

"""Prefetch alone, on pulumi mocks: one early step per host, after the machine only."""

import pulumi_random
import pytest

from components.prefetch import DOCKER_HUB_PROBES, Prefetch, PrefetchArgs, registry_probe_urls
from components.remote import GpuHost
from tests.harness import run_pulumi, step_env


def test_one_step_per_host_after_boot_only():
    def program():
        booted = [pulumi_random.RandomId(f"boot-{i}", byte_length=4) for i in range(2)]
        driver = pulumi_random.RandomId("driver", byte_length=4)
        hosts = [GpuHost(name=f"gpu-{i}", public_ip=f"203.0.113.{i + 1}", private_ip=f"10.0.0.{i + 1}", user="ops",
                         private_key="k", gpu_count=2, instance_id=f"i-{i}", booted=[booted[i]], ready=[driver])
                 for i in range(2)]
        Prefetch("prefetch", PrefetchArgs(hosts=hosts, image="mirror.example/vllm:1", image_disk_gb=30, prefetch_model=True,
                                          model_id="Org/Model", model_revision="abc123", model_root="/srv",
                                          model_dir="/srv/Model"))
        return {}

    run = run_pulumi(program)
    cmds = run.commands()
    assert sorted(cmds) == ["prefetch-gpu-0", "prefetch-gpu-1"]
    component = run.one("qwen:serving:Prefetch")
    driver = run.named("driver")
    for i in range(2):
        step = cmds[f"prefetch-gpu-{i}"]
        assert step.parent == component.urn
        assert run.named(f"boot-{i}").urn in step.dependencies
        assert not run.depends_on(step, driver)  # it never waits for the driver
        assert step_env(step.inputs["create"]) == {
            "QWEN_STEP": "prefetch", "QWEN_HOST": f"gpu-{i}", "IMAGE": "mirror.example/vllm:1",
            "IMAGE_DISK_GB": "30", "PREFETCH_MODEL": "1",
            "MODEL_ID": "Org/Model", "MODEL_REVISION": "abc123", "MODEL_ROOT": "/srv", "MODEL_DIR": "/srv/Model",
            "PRUNE_IMAGES": "1"}  # a cloud machine: the prefetch may make room
        assert step.inputs["triggers"] == [f"i-{i}"]


@pytest.mark.parametrize("image, urls", [
    ("vllm/vllm-openai:v0.11.0", list(DOCKER_HUB_PROBES)),
    ("ubuntu:22.04", list(DOCKER_HUB_PROBES)),
    ("docker.io/vllm/vllm-openai:v0.11.0", list(DOCKER_HUB_PROBES)),
    ("registry.cn-hangzhou.aliyuncs.com/ns/vllm-openai:v0.11.0", ["https://registry.cn-hangzhou.aliyuncs.com/v2/"]),
    ("localhost:5000/vllm:1", ["https://localhost:5000/v2/"]),
])
def test_registry_probe_urls(image, urls):
    assert registry_probe_urls(image) == urls

"""ray_start.sh (head and worker containers) and ray_wait_gpus.sh, against the docker stand-in,
which checks `ray start`'s flags against Ray 2.49.2 (the Ray of vllm/vllm-openai:v0.11.0)."""

import pytest

from tests.steps.conftest import IMAGE, assert_step_failed, nvidia_docker_env

HEAD_ENV = {"RAY_ROLE": "head", "IMAGE": IMAGE, "NODE_IP": "10.0.0.4", "HEAD_IP": "10.0.0.4", "RAY_PORT": "6379",
            "RAY_RESOURCE_ARGS": "--num-gpus=2", "MODEL_ROOT": "/mnt/models",
            **nvidia_docker_env(2, node_ip="10.0.0.4", interface="eth0")}
WORKER_ENV = {**HEAD_ENV, "RAY_ROLE": "worker", "NODE_IP": "10.0.0.5",
              **nvidia_docker_env(2, node_ip="10.0.0.5", interface="eth0")}


@pytest.fixture
def node(sandbox):
    sandbox.set_state(images={IMAGE: {"Id": "sha256:1", "RepoTags": [IMAGE]}})
    return sandbox


def start(box, env, host="gpu-1"):
    return box.run_step("ray-start", "ray_start.sh", env, host=host)


def test_head_container_runs_ray_start_with_the_settings(node):
    result = start(node, HEAD_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    c = node.container("qwen-ray")
    assert c["State"]["Running"] and c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert c["HostConfig"]["NetworkMode"] == "host" and c["HostConfig"]["IpcMode"] == "host"
    assert c["HostConfig"]["DeviceRequests"][0]["Count"] == -1  # --gpus all
    assert c["Config"]["Entrypoint"] == ["/bin/bash"]
    assert c["Config"]["Cmd"] == ["-c", "ray start --block --head --port=6379 --node-ip-address=10.0.0.4 "
                                  "--dashboard-host=127.0.0.1 --num-gpus=2 --disable-usage-stats"]
    assert {"VLLM_HOST_IP=10.0.0.4", "NCCL_SOCKET_IFNAME=eth0", "GLOO_SOCKET_IFNAME=eth0"} <= set(c["Config"]["Env"])
    mounts = {(m["Source"], m["Destination"], m["RW"], m["Propagation"]) for m in c["Mounts"]}
    # rslave: a NAS mounted after a reboot, once docker restarted the container, still reaches it
    assert mounts == {("/mnt/models", "/mnt/models", False, "rslave"), ("/var/lib/qwen/ray", "/tmp/ray", True, "rprivate")}
    assert ["exec", "qwen-ray", "ray", "status"] in node.calls("docker")


def test_a_second_run_keeps_the_running_head(node):
    assert start(node, HEAD_ENV).returncode == 0
    first = node.container("qwen-ray")["Id"]
    again = start(node, HEAD_ENV)
    assert again.returncode == 0 and "already running with these settings" in again.stderr
    assert node.container("qwen-ray")["Id"] == first
    assert len([c for c in node.calls("docker") if c[:1] == ["run"]]) == 1


@pytest.mark.parametrize("change", [{"IMAGE": "vllm/vllm-openai:v0.11.1"}, {"RAY_RESOURCE_ARGS": "--num-gpus=1"},
                                    nvidia_docker_env(2, node_ip="10.0.0.4", interface="eth1"),
                                    {"MODEL_ROOT": "/srv/models"}])
def test_a_changed_setting_replaces_the_container(node, change):
    node.set_state(images={IMAGE: {"Id": "sha256:1"}, "vllm/vllm-openai:v0.11.1": {"Id": "sha256:2"}})
    assert start(node, HEAD_ENV).returncode == 0
    first = node.container("qwen-ray")["Id"]
    assert start(node, {**HEAD_ENV, **change}).returncode == 0
    assert node.container("qwen-ray")["Id"] != first


def test_a_stopped_head_is_replaced(node):
    assert start(node, HEAD_ENV).returncode == 0
    data = node.state()
    data["containers"]["qwen-ray"]["State"].update(Status="exited", Running=False)
    node.set_state(containers=data["containers"])
    first = node.container("qwen-ray")["Id"]
    assert start(node, HEAD_ENV).returncode == 0
    assert node.container("qwen-ray")["Id"] != first and node.container("qwen-ray")["State"]["Running"]


def test_the_head_step_waits_until_ray_status_answers(node):
    node.set_state(ray={"reachable_heads": [], "extra_nodes": [], "head_answers_after_tick": 2})
    result = start(node, HEAD_ENV)
    assert result.returncode == 0, result.stderr
    assert len(node.calls("sleep")) == 2


def test_worker_joins_the_head_address(node):
    node.set_state(ray={"reachable_heads": ["10.0.0.4:6379"], "extra_nodes": []})
    result = start(node, WORKER_ENV, host="gpu-2")
    assert result.returncode == 0, result.stderr
    c = node.container("qwen-ray")
    assert c["Config"]["Cmd"][1] == ("ray start --block --address=10.0.0.4:6379 --node-ip-address=10.0.0.5 "
                                     "--num-gpus=2 --disable-usage-stats")
    assert c["State"]["Status"] == "running" and c["RestartCount"] == 0


def test_a_worker_that_cannot_reach_the_head_fails_the_step(node):
    node.set_state(ray={"reachable_heads": ["10.0.0.9:6379"], "extra_nodes": []})  # another cluster's head
    result = start(node, WORKER_ENV, host="gpu-2")
    assert_step_failed(result, "ray-start", "gpu-2", "it could not join the head at 10.0.0.4:6379")
    assert node.container("qwen-ray")["RestartCount"] > 0


def test_an_unknown_role_fails(node):
    result = start(node, {**HEAD_ENV, "RAY_ROLE": "leader"})
    assert_step_failed(result, "ray-start", "gpu-1", "RAY_ROLE must be head or worker, got 'leader'")
    assert node.container("qwen-ray") is None


def test_the_image_would_refuse_a_ray_flag_that_ray_lacks(node):
    """The stand-in rejects what Ray 2.49.2's `ray start` rejects: a typo'd flag crash-loops the container."""
    result = node.run(f"docker run -d --name r --restart unless-stopped --entrypoint /bin/bash {IMAGE} "
                      "-c 'ray start --head --dashboard-hots=127.0.0.1' "
                      "&& docker inspect -f '{{ .RestartCount }}' r && docker logs r")
    assert result.returncode == 0
    assert "unrecognized arguments: --dashboard-hots=127.0.0.1" in result.stdout


# ---- ray_wait_gpus.sh -------------------------------------------------------------------------

def head_running(box, extra_nodes=()):
    assert start(box, HEAD_ENV).returncode == 0
    box.set_state(ray={"reachable_heads": ["10.0.0.4:6379"], "extra_nodes": list(extra_nodes)})


def test_wait_gpus_waits_for_the_worker_and_prints_ray_status(node):
    head_running(node)
    node.set_state(events=[{"tick": 2, "set": ["ray", "extra_nodes"], "value": [2]}])
    result = node.run_step("ray-wait-gpus", "ray_wait_gpus.sh",
                           {"EXPECTED_GPUS": "4", "RAY_RESOURCE": "GPU", "RAY_TIMEOUT": "600"}, host="gpu-1")
    assert result.returncode == 0, result.stderr
    assert " 0.0/4.0 GPU" in result.stdout and result.stdout.count(" 1 node_") == 2
    assert len(node.calls("sleep")) == 2
    again = node.run_step("ray-wait-gpus", "ray_wait_gpus.sh",
                          {"EXPECTED_GPUS": "4", "RAY_RESOURCE": "GPU", "RAY_TIMEOUT": "600"}, host="gpu-1")
    assert again.returncode == 0 and again.stdout == result.stdout and len(node.calls("sleep")) == 2


def test_wait_gpus_times_out_showing_ray_status(node):
    head_running(node)
    result = node.run_step("ray-wait-gpus", "ray_wait_gpus.sh",
                           {"EXPECTED_GPUS": "4", "RAY_RESOURCE": "GPU", "RAY_TIMEOUT": "0"}, host="gpu-1")
    assert_step_failed(result, "ray-wait-gpus", "gpu-1", "ERROR: timed out after 0s waiting for ray status to show 4 GPU",
                       " 0.0/2.0 GPU")

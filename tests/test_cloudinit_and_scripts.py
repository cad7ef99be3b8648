"""Every cloud-init document passes the real `cloud-init schema`; every shell script passes shellcheck;
the scripts' parsing and verification logic runs on fixtures."""

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cloudinit
from components.remote import SCRIPTS_DIR as STEP_SCRIPTS
from tests.harness import FIXTURES, ROOT

DOCUMENTS = {
    "azure-gpu-node": lambda: cloudinit.gpu_node(),
    "aliyun-gpu-node": lambda: cloudinit.gpu_node(
        nvidia_driver_package="nvidia-headless-570-server", nas=cloudinit.NasMount("x.nas.aliyuncs.com", "/mnt")),
    "aliyun-downloader": lambda: cloudinit.downloader_node(
        model_id="Qwen/Qwen2.5-72B-Instruct", model_revision="master", model_dir="/mnt/models/Qwen2.5-72B-Instruct",
        modelscope_version="1.31.0", nas=cloudinit.NasMount("x.nas.aliyuncs.com", "/mnt")),
}

SHELL_SCRIPTS = sorted([*STEP_SCRIPTS.glob("*.sh"), *cloudinit.SCRIPTS_DIR.glob("*.sh"), *(ROOT / ".ci").glob("run")])


def require(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (apt-get install {tool}); .ci/run installs it"
    return path


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_cloud_config_schema(name, tmp_path):
    require("cloud-init")
    text = DOCUMENTS[name]()
    assert text.startswith("#cloud-config\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_documents_write_every_script_they_run(name):
    doc = yaml.safe_load(DOCUMENTS[name]())
    paths = {f["path"] for f in doc["write_files"]}
    assert doc["runcmd"] == [["/opt/qwen/bin/node-bootstrap.sh"]]
    assert "/opt/qwen/bin/node-bootstrap.sh" in paths
    for f in doc["write_files"]:
        for called in re.findall(r"/opt/qwen/bin/[\w.-]+", f["content"]):
            assert called in paths, f"{f['path']} calls {called}, which is not written"
    assert "apt-daily.timer" in doc["bootcmd"][0]  # no background apt while drivers install


def test_gpu_documents_start_the_prefetch_from_its_settings_file():
    for name in ("azure-gpu-node", "aliyun-gpu-node"):
        doc = yaml.safe_load(DOCUMENTS[name]())
        units = {f["path"]: f["content"] for f in doc["write_files"] if f["path"].startswith("/etc/systemd/")}
        assert "PathExists=/etc/qwen/prefetch.env" in units["/etc/systemd/system/qwen-prefetch.path"]
        assert "RemainAfterExit=yes" in units["/etc/systemd/system/qwen-prefetch.service"]
        bootstrap = next(f["content"] for f in doc["write_files"] if f["path"] == "/opt/qwen/bin/node-bootstrap.sh")
        # the prefetch may start before the driver install, never before docker
        assert bootstrap.index("enable --now docker") < bootstrap.index("qwen-prefetch.path") < bootstrap.index("install-nvidia-driver")


def test_azure_document_leaves_the_driver_to_the_extension():
    doc = yaml.safe_load(DOCUMENTS["azure-gpu-node"]())
    env = next(f for f in doc["write_files"] if f["path"] == "/etc/qwen/node.env")["content"]
    assert "INSTALL_NVIDIA_DRIVER=0" in env and "mounts" not in doc


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    require("shellcheck")
    result = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_step_scripts_bound_every_wait():
    for script in STEP_SCRIPTS.glob("*.sh"):
        text = script.read_text()
        assert "sleep infinity" not in text
        if "cloud-init status --wait" in text:
            assert "timeout " in text.split("cloud-init status --wait")[0].splitlines()[-1], script.name


def fake_docker(tmp_path: Path, ray_status: str) -> dict:
    """A PATH where `docker exec qwen-ray ray status` prints a fixture."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"#!/usr/bin/env bash\ncat {ray_status}\n")
    docker.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("fixture_name, gpus", [("ray_status_1node.txt", "2"), ("ray_status_2nodes.txt", "4")])
def test_ray_wait_gpus_script_reads_ray_status(tmp_path, fixture_name, gpus):
    body = (STEP_SCRIPTS / "ray_wait_gpus.sh").read_text()
    probe = body.split("wait_until")[0] + 'ray_gpu_total\n'
    result = subprocess.run(["bash", "-c", probe], env={**fake_docker(tmp_path, FIXTURES / fixture_name), "RAY_RESOURCE": "GPU"},
                            capture_output=True, text=True)
    assert result.stdout.strip() == gpus, result.stderr


def test_failed_step_names_step_host_and_log_tail(tmp_path):
    common = (STEP_SCRIPTS / "common.sh").read_text().replace("/var/log/qwen", str(tmp_path))
    script = common + '\necho "pulling layer 7"\nfail "the image pull broke"\n'
    result = subprocess.run(["bash", "-c", script], env={**os.environ, "QWEN_STEP": "node-ready", "QWEN_HOST": "vm-x"},
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""  # stdout is reserved for results
    assert "step 'node-ready' failed on host 'vm-x' (exit 1)" in result.stderr
    assert "pulling layer 7" in result.stderr and "ERROR: the image pull broke" in result.stderr


def test_modelscope_verification(tmp_path):
    sys.path.insert(0, str(cloudinit.SCRIPTS_DIR))
    try:
        import modelscope_fetch as fetch
    finally:
        sys.path.pop(0)
    listing = [
        {"Path": "config.json", "Size": 5, "Type": "blob"},
        {"Path": "model-00001-of-00002.safetensors", "Size": 10, "Type": "blob"},
        {"Path": "sub", "Size": 0, "Type": "tree"},
    ]
    files = fetch.expected_files(listing)
    assert files == {"config.json": 5, "model-00001-of-00002.safetensors": 10}
    (tmp_path / "config.json").write_bytes(b"12345")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"123")
    assert fetch.find_problems(str(tmp_path), files) == ["model-00001-of-00002.safetensors: 3 bytes, expected 10"]
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"1234567890")
    assert fetch.find_problems(str(tmp_path), files) == []
    summary = fetch.write_marker(str(tmp_path), "Qwen/X", "master", files)
    assert json.loads((tmp_path / fetch.MARKER).read_text()) == summary == {
        "model": "Qwen/X", "revision": "master", "files": 2, "bytes": 15}


def run_prefetch_configure(tmp_path: Path, image: str, path_unit_enabled: bool,
                           service_failed: bool = False) -> subprocess.CompletedProcess:
    """prefetch_configure.sh with /etc/qwen and /var/log/qwen moved under tmp_path and a fake systemctl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(f"#!/usr/bin/env bash\necho \"$*\" >>{tmp_path}/systemctl.calls\n"
                         f"case \"$1\" in is-enabled) {'exit 0' if path_unit_enabled else 'exit 1'};; "
                         f"is-failed) {'exit 0' if service_failed else 'exit 1'};; esac\n")
    systemctl.chmod(0o755)
    script = ((STEP_SCRIPTS / "common.sh").read_text() + (STEP_SCRIPTS / "prefetch_configure.sh").read_text())
    script = script.replace("/var/log/qwen", str(tmp_path / "log")).replace("/etc/qwen", str(tmp_path / "etc"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "prefetch", "QWEN_HOST": "h",
           "IMAGE": image, "IMAGE_DISK_GB": "30", "PREFETCH_MODEL": "1", "MODEL_ID": "Qwen/Qwen2.5-14B-Instruct", "MODEL_REVISION": "main",
           "MODEL_ROOT": "/var/lib/qwen/models", "MODEL_DIR": "/var/lib/qwen/models/Qwen2.5-14B-Instruct",
           "PRUNE_IMAGES": "1"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)


def test_prefetch_configure_writes_settings_and_restarts_only_on_change(tmp_path):
    calls = tmp_path / "systemctl.calls"
    first = run_prefetch_configure(tmp_path, "vllm/vllm-openai:v0.11.0", path_unit_enabled=False)
    assert first.returncode == 0, first.stderr
    settings = (tmp_path / "etc" / "prefetch.env").read_text()
    assert "IMAGE=vllm/vllm-openai:v0.11.0\n" in settings and "PREFETCH_MODEL=1\n" in settings
    assert "restart" not in calls.read_text()  # cloud-init's path unit will start it
    # the settings file is what prefetch.sh sources: it must parse back to the same values
    parsed = subprocess.run(["bash", "-c", f". {tmp_path}/etc/prefetch.env; echo \"$IMAGE|$MODEL_DIR\""],
                            capture_output=True, text=True).stdout.strip()
    assert parsed == "vllm/vllm-openai:v0.11.0|/var/lib/qwen/models/Qwen2.5-14B-Instruct"

    again = run_prefetch_configure(tmp_path, "vllm/vllm-openai:v0.11.0", path_unit_enabled=True)
    assert again.returncode == 0 and "unchanged" in again.stderr
    assert "restart" not in calls.read_text()

    bumped = run_prefetch_configure(tmp_path, "vllm/vllm-openai:v0.11.1", path_unit_enabled=True)
    assert bumped.returncode == 0, bumped.stderr
    log = calls.read_text()
    assert "restart --no-block qwen-prefetch.service" in log
    # a failed service and its start limit are cleared first, so the restart is not refused
    assert log.index("reset-failed qwen-prefetch.service qwen-prefetch.path") < log.index("restart --no-block")
    assert "IMAGE=vllm/vllm-openai:v0.11.1\n" in (tmp_path / "etc" / "prefetch.env").read_text()


def test_prefetch_configure_restarts_a_failed_prefetch_even_with_unchanged_settings(tmp_path):
    calls = tmp_path / "systemctl.calls"
    assert run_prefetch_configure(tmp_path, "vllm/vllm-openai:v0.11.0", path_unit_enabled=True).returncode == 0
    calls.write_text("")
    again = run_prefetch_configure(tmp_path, "vllm/vllm-openai:v0.11.0", path_unit_enabled=True, service_failed=True)
    assert again.returncode == 0, again.stderr
    assert "unchanged" not in again.stderr
    assert "restart --no-block qwen-prefetch.service" in calls.read_text()


FAKE_DOCKER_BENCH = """#!/usr/bin/env bash
# Records its arguments; on a `bench serve --save-result` run, writes the fixture as the result file.
echo "$*" >>"{calls}"
results="" name=""
while [ $# -gt 0 ]; do
  case "$1" in
    -v) case "$2" in *:/results) results="${{2%%:/results}}" ;; esac; shift ;;
    --result-filename) name="$2"; shift ;;
  esac
  shift
done
if [ -n "$name" ]; then
  cp "{fixture}" "$results/$name"
fi
"""


def run_benchmark_script(tmp_path: Path, warmups: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    require("jq")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker.calls"
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER_BENCH.format(calls=calls, fixture=FIXTURES / "vllm_bench_seed.json"))
    docker.chmod(0o755)
    script = "\n".join((STEP_SCRIPTS / name).read_text() for name in ("common.sh", "accelerator.sh", "benchmark.sh"))
    script = script.replace("/var/log/qwen", str(tmp_path / "log")).replace("/var/lib/qwen", str(tmp_path / "lib"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "benchmark-seed", "QWEN_HOST": "h",
           "IMAGE": "vllm/vllm-openai:v0.11.0", "MODEL_ROOT": "/m", "MODEL_DIR": "/m/Q", "SERVED_NAME": "Q",
           "PORT": "8000", "SCENARIO": "seed-10k-in-800-out-c1", "INPUT_LEN": "10000", "OUTPUT_LEN": "800",
           "NUM_PROMPTS": "1", "CONCURRENCY": "1", "WARMUPS": warmups, "RUN_ID": "3", "BENCH_TIMEOUT": "60",
           "DEVICE_ARGS": "--gpus\nall", "CONTAINER_ENV": ""}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_benchmark_script_prints_exactly_the_result_json_after_a_warm_up(tmp_path):
    result, calls = run_benchmark_script(tmp_path, warmups="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(fixture_text("vllm_bench_seed.json"))
    assert len(calls) == 2
    warm_up, measured = calls
    assert "--num-prompts 1 --seed 1" in warm_up and "--save-result" not in warm_up
    assert "--num-prompts 1 --seed 0" in measured and "--result-filename seed-10k-in-800-out-c1-run-3.json" in measured
    for call in calls:
        assert "--random-input-len 10000 --random-output-len 800" in call
        assert "--temperature 0 --ignore-eos" in call and "--max-concurrency 1" in call
        assert "--num-warmups" not in call  # not a flag of the pinned v0.11.0


def test_benchmark_script_without_warm_up(tmp_path):
    result, calls = run_benchmark_script(tmp_path, warmups="0")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("free_gb, prunes", [("12", True), ("300", False)])
def test_prefetch_makes_room_for_a_new_image_only_when_the_disk_is_short(tmp_path, free_gb, prunes):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "docker").write_text(
        f"#!/usr/bin/env bash\necho \"docker $*\" >>{calls}\n"
        "[ \"$1 $2\" != \"image inspect\" ] || exit 1\n")  # the new image is not there yet
    (bin_dir / "df").write_text(f"#!/usr/bin/env bash\necho Avail\necho {free_gb}G\n")
    for tool in ("docker", "df"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "prefetch.env").write_text("IMAGE=vllm/vllm-openai:v0.11.1\nIMAGE_DISK_GB=30\nPREFETCH_MODEL=0\n")
    script = (cloudinit.SCRIPTS_DIR / "prefetch.sh").read_text().replace("/etc/qwen", str(tmp_path))
    result = subprocess.run(["bash", "-c", script], env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    log = calls.read_text()
    assert "docker pull vllm/vllm-openai:v0.11.1" in log
    assert ("docker image prune -af" in log) is prunes
    assert ("docker rm -f qwen-vllm qwen-ray" in log) is prunes
    if prunes:
        assert log.index("docker image prune") < log.index("docker pull")


def test_reachability_step_names_what_does_not_answer(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a registry answering 401 is reachable; the blocked host gets no HTTP answer at all
    (bin_dir / "curl").write_text('#!/usr/bin/env bash\ncase "$*" in *blocked*) echo 000; exit 28;; *) echo 401;; esac\n')
    (bin_dir / "curl").chmod(0o755)
    (bin_dir / "sleep").write_text("#!/usr/bin/env bash\n")
    (bin_dir / "sleep").chmod(0o755)
    script = ((STEP_SCRIPTS / "common.sh").read_text() + (STEP_SCRIPTS / "reachability.sh").read_text()
              ).replace("/var/log/qwen", str(tmp_path))

    def run(urls):
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={
            **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "preflight", "QWEN_HOST": "dl",
            "URLS": "\n".join(urls), "HINT": "Use a mirror."})

    ok = run(["https://registry-1.docker.io/v2/"])
    assert ok.returncode == 0 and "HTTP 401" in ok.stderr
    bad = run(["https://registry-1.docker.io/v2/", "https://blocked.example/gpgkey"])
    assert bad.returncode == 1
    assert "not reachable from this region: https://blocked.example/gpgkey. Use a mirror." in bad.stderr


@pytest.mark.parametrize("name, limit", [("azure-gpu-node", 65535), ("aliyun-gpu-node", 32768),
                                         ("aliyun-downloader", 32768)])
def test_documents_fit_the_clouds_user_data_limits(name, limit):
    # Azure customData: 64 KiB base64-encoded; Aliyun UserData: 32 KiB (counted here after base64,
    # the stricter reading).
    import base64

    assert len(base64.b64encode(DOCUMENTS[name]().encode())) <= limit


@pytest.mark.parametrize("label, running, current", [("abc", "true", True), ("abc", "false", False),
                                                     ("old", "true", False), ("", "", False)])
def test_container_is_current_keeps_only_a_running_container_with_the_same_config(tmp_path, label, running, current):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/usr/bin/env bash\n"
        f'[ -n "{label}" ] || exit 1\n'
        f'case "$*" in *Labels*) echo "{label}";; *Running*) echo "{running}";; esac\n')
    (bin_dir / "docker").chmod(0o755)
    script = ((STEP_SCRIPTS / "common.sh").read_text().replace("/var/log/qwen", str(tmp_path))
              + '\nif container_is_current qwen-ray "$(echo abc)"; then echo current >&3; else echo replace >&3; fi\n')
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "s", "QWEN_HOST": "h"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("current" if current else "replace")


@pytest.mark.parametrize("marker_revision, downloads", [("main", False), ("v1.0", True), (None, True)])
def test_prefetch_downloads_unless_the_marker_is_of_the_requested_revision(tmp_path, marker_revision, downloads):
    require("jq")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "docker").write_text(f"#!/usr/bin/env bash\necho \"docker $*\" >>{calls}\n")  # image present
    (bin_dir / "docker").chmod(0o755)
    model_dir = tmp_path / "models" / "Q"
    model_dir.mkdir(parents=True)
    marker = model_dir / ".qwen-download-complete"
    if marker_revision:
        marker.write_text(json.dumps({"model": "Qwen/Q", "revision": marker_revision}))
    (tmp_path / "prefetch.env").write_text(
        f"IMAGE=vllm/vllm-openai:v0.11.0\nIMAGE_DISK_GB=30\nPREFETCH_MODEL=1\nMODEL_ID=Qwen/Q\nMODEL_REVISION=main\n"
        f"MODEL_ROOT={tmp_path / 'models'}\nMODEL_DIR={model_dir}\n")
    script = (cloudinit.SCRIPTS_DIR / "prefetch.sh").read_text().replace("/etc/qwen", str(tmp_path))
    result = subprocess.run(["bash", "-c", script], env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ran_download = "hf_download.py Qwen/Q main" in calls.read_text()
    assert ran_download is downloads
    if downloads:
        assert not marker.exists()  # a stale marker never stands for the requested revision

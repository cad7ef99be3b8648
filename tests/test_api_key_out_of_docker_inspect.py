"""vllm_start.sh and benchmark.sh with a docker stand-in: vLLM binds 127.0.0.1, and the API key is
in no docker argument (so in no `docker inspect` Env, Cmd or Entrypoint), yet reaches vllm's env."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from components.remote import SCRIPTS_DIR
from components.vllm_service import VLLM_LOCAL_PORT
from tests.test_cloudinit_and_scripts import require, run_benchmark_script

API_KEY = "Zq7secretKey0123456789abcdefABCDEF012345"
KEY_MOUNT = "/run/secrets/qwen-api-key"

# Every call's arguments as one JSON array per line; `inspect` finds no container.
FAKE_DOCKER = """#!{python}
import json, sys
with open("{calls}", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(1 if sys.argv[1:2] == ["inspect"] else 0)
"""


def run_vllm_start(tmp: Path, extra_args: str = "") -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    require("jq")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    calls = tmp / "docker.calls"
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(python=sys.executable, calls=calls))
    (bin_dir / "docker").chmod(0o755)
    model_dir = tmp / "models" / "M"
    model_dir.mkdir(parents=True)
    (model_dir / ".qwen-download-complete").write_text(json.dumps({"revision": "main"}))
    # an env file of an earlier version, which held the key
    (tmp / "etc" / "secrets").mkdir(parents=True)
    (tmp / "etc" / "secrets" / "vllm.env").write_text(f"VLLM_API_KEY={API_KEY}\n")
    script = (SCRIPTS_DIR / "common.sh").read_text() + (SCRIPTS_DIR / "vllm_start.sh").read_text()
    script = (script.replace("/var/log/qwen", str(tmp / "log")).replace("/etc/qwen", str(tmp / "etc"))
              .replace("/var/lib/qwen", str(tmp / "lib")))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "vllm-serve", "QWEN_HOST": "h",
           "IMAGE": "vllm/vllm-openai:v0.11.0", "MODEL_ROOT": str(tmp / "models"), "MODEL_DIR": str(model_dir),
           "MODEL_REVISION": "main", "SERVED_NAME": "org/M", "PORT": str(VLLM_LOCAL_PORT), "TP": "2", "PP": "1",
           "MAX_MODEL_LEN": "32768", "GPU_MEMORY_UTILIZATION": "0.9", "NODE_IP": "10.10.1.4", "RAY_PORT": "6379",
           "PRIVATE_INTERFACE": "eth0", "EXTRA_ARGS": extra_args, "MODEL_WAIT_TIMEOUT": "60"}
    result = subprocess.run(["bash", "-c", script], input=API_KEY + "\n", env=env, capture_output=True, text=True)
    return result, [json.loads(line) for line in calls.read_text().splitlines()]


def test_vllm_binds_localhost_and_its_container_shows_no_key(tmp_path):
    result, calls = run_vllm_start(tmp_path)
    assert result.returncode == 0, result.stderr
    run = next(c for c in calls if c[:2] == ["run", "-d"])
    image_at = run.index("vllm/vllm-openai:v0.11.0")
    options, command = run[:image_at], run[image_at + 1:]
    host_at = command.index("--host")
    assert command[host_at:host_at + 4] == ["--host", "127.0.0.1", "--port", str(VLLM_LOCAL_PORT)]
    assert "0.0.0.0" not in json.dumps(run)
    # docker inspect shows -e and --env-file values (Config.Env), the entrypoint and the command
    assert all(API_KEY not in arg for call in calls for arg in call)
    assert "--env-file" not in options
    key_file = tmp_path / "etc" / "secrets" / "api-key"
    assert f"{key_file}:{KEY_MOUNT}:ro" in options
    assert key_file.read_text() == API_KEY and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (tmp_path / "etc" / "secrets" / "vllm.env").exists()
    assert options[options.index("--entrypoint") + 1] == "sh" and command[0] == "-c" and command[2:4] == ["vllm", "serve"]

    # What the container runs: the `sh -c` program gives vllm the key in its environment.
    fake_bin = tmp_path / "container-bin"
    fake_bin.mkdir()
    (fake_bin / "vllm").write_text('#!/bin/sh\nprintf "%s|%s" "$VLLM_API_KEY" "$*"\n')
    (fake_bin / "vllm").chmod(0o755)
    program = command[1].replace(KEY_MOUNT, str(key_file))
    inside = subprocess.run(["sh", "-c", program, *command[2:]], capture_output=True, text=True,
                            env={"PATH": f"{fake_bin}:/usr/bin:/bin"})
    assert inside.returncode == 0, inside.stderr
    key, _, args = inside.stdout.partition("|")
    assert key == API_KEY and args.startswith(f"serve {tmp_path}/models/M --served-model-name org/M")


def test_vllm_entrypoint_fails_without_the_key_file(tmp_path):
    result, calls = run_vllm_start(tmp_path)
    command = next(c for c in calls if c[:2] == ["run", "-d"])
    program = command[command.index("-c") + 1].replace(KEY_MOUNT, str(tmp_path / "missing"))
    inside = subprocess.run(["sh", "-c", program, "vllm", "serve"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert inside.returncode != 0  # never starts vllm without its key


def test_benchmark_container_shows_no_key_and_measures_vllm_on_localhost(tmp_path):
    result, calls = run_benchmark_script(tmp_path, warmups="1")
    assert result.returncode == 0, result.stderr
    for call in calls:
        assert "--env-file" not in call and "OPENAI_API_KEY=" not in call.replace('OPENAI_API_KEY="$(cat', "")
        assert f"-v /etc/qwen/secrets/api-key:{KEY_MOUNT}:ro" in call
        assert (f'--entrypoint sh vllm/vllm-openai:v0.11.0 -c OPENAI_API_KEY="$(cat {KEY_MOUNT})" && export OPENAI_API_KEY '
                '&& exec vllm "$@" vllm bench serve') in call
        assert "--base-url http://127.0.0.1:8000" in call  # the PORT it is given: vLLM's own port

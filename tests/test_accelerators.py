"""The accelerator seam: each family's commands run on its tool's real output format, the docker and
Ray arguments it hands the shared scripts, and no step script naming a family's tool itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.accelerators import (
    ASCEND_310P,
    ASCEND_VERSION_INFO,
    FAMILIES,
    NVIDIA,
    AcceleratorFamily,
    family_of,
)
from components.parsers import parse_nvidia_smi_csv
from components.remote import SCRIPTS_DIR
from stacks.catalog import ACCELERATORS
from tests.harness import FIXTURES, fixture


def fake_tools(tmp_path: Path, **outputs: str) -> dict:
    """PATH with tools that print a fixture file whatever their arguments (npu-smi: by `info -m` or not)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, text in outputs.items():
        script = bin_dir / tool
        script.write_text(text)
        script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def npu_smi(tmp_path: Path) -> dict:
    return fake_tools(tmp_path, **{"npu-smi": (
        "#!/usr/bin/env bash\n"
        f'if [ "$*" = "info -m" ]; then cat {FIXTURES / "npu_smi_info_m_300i_duo.txt"}; '
        f'elif [ "$*" = "info" ]; then cat {FIXTURES / "npu_smi_info_300i_duo.txt"}; else exit 2; fi\n')})


def run(command: str, env: dict) -> str:
    result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ascend(command: str, tmp_path: Path) -> str:
    """An Ascend command with the driver's version.info moved under tmp_path."""
    version_info = tmp_path / "version.info"
    version_info.write_text("Version=24.1.rc3\nascendhal_version=7.35.23\npackage_version=24.1.rc3\n")
    return command.replace(ASCEND_VERSION_INFO, str(version_info))


def test_ascend_count_and_inventory_read_npu_smi(tmp_path):
    env = npu_smi(tmp_path)
    assert run(ASCEND_310P.count_command, env).strip() == "4"  # the Mcu rows are not chips
    inventory = run(ascend(ASCEND_310P.inventory_command, tmp_path), env)
    assert inventory == fixture("npu_inventory_310p3.csv")
    assert parse_nvidia_smi_csv(inventory)[1] == {"index": 1, "name": "Ascend 310P3", "memoryMiB": 43693, "driver": "24.1.rc3"}
    assert run(ascend(ASCEND_310P.driver_version_command, tmp_path), env).strip() == "24.1.rc3"


def test_nvidia_count_and_inventory_read_nvidia_smi(tmp_path):
    env = fake_tools(tmp_path, **{"nvidia-smi": (
        "#!/usr/bin/env bash\n"
        'case "$*" in\n'
        f'  *index,name*) cat {FIXTURES / "nvidia_smi_rtx4090.csv"} ;;\n'
        '  *query-gpu=name*) printf "NVIDIA GeForce RTX 4090\\nNVIDIA GeForce RTX 4090\\n" ;;\n'
        '  *driver_version*) printf "570.172.08\\n570.172.08\\n" ;;\n'
        "  *) exit 2 ;;\nesac\n")})
    assert run(NVIDIA.count_command, env).strip() == "2"
    assert parse_nvidia_smi_csv(run(NVIDIA.inventory_command, env))[0]["name"] == "NVIDIA GeForce RTX 4090"
    assert run(NVIDIA.driver_version_command, env).strip() == "570.172.08"


def test_ascend_containers_get_the_chips_and_the_driver_files_without_privileged():
    args = ASCEND_310P.device_args(4)
    devices = [args[i + 1] for i, a in enumerate(args) if a == "--device"]
    assert devices == ["/dev/davinci0", "/dev/davinci1", "/dev/davinci2", "/dev/davinci3",
                       "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    mounts = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert "/usr/local/Ascend/driver/lib64:/usr/local/Ascend/driver/lib64:ro" in mounts
    assert "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro" in mounts
    assert "--privileged" not in args
    assert ASCEND_310P.device_env(4) == {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3",
                                         "PYTORCH_NPU_ALLOC_CONF": "max_split_size_mb:256"}
    assert NVIDIA.device_args(2) == ("--gpus", "all") and NVIDIA.device_env(2) == {}


def test_ray_resources_and_collectives_per_family():
    assert NVIDIA.ray_resource == "GPU" and NVIDIA.ray_resource_args(2) == ("--num-gpus=2",)
    assert ASCEND_310P.ray_resource == "NPU" and ASCEND_310P.ray_resource_args(4) == ('--resources={"NPU": 4}',)
    assert NVIDIA.communication_env("eth1", "10.0.0.5") == {
        "VLLM_HOST_IP": "10.0.0.5", "NCCL_SOCKET_IFNAME": "eth1", "GLOO_SOCKET_IFNAME": "eth1"}
    hccl = ASCEND_310P.communication_env("eth1", "10.0.0.5")
    assert hccl["HCCL_IF_IP"] == "10.0.0.5" and hccl["TP_SOCKET_IFNAME"] == "eth1" and hccl["GLOO_SOCKET_IFNAME"] == "eth1"
    assert hccl["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"] == "1"
    assert not any(key.startswith("NCCL_") for key in hccl)


def test_310p_serve_flags():
    flags = ASCEND_310P.serve_flags
    assert flags[:3] == ("--dtype", "float16", "--enforce-eager")
    assert flags[3:] == ("--compilation-config", '{"custom_ops":["none","+rms_norm","+rotary_embedding"]}')
    assert NVIDIA.serve_flags == ()
    assert ASCEND_310P.default_image.startswith("quay.io/ascend/vllm-ascend:") and ASCEND_310P.default_image.endswith("-310p")
    assert NVIDIA.default_image == "vllm/vllm-openai:v0.11.0"


def test_every_model_has_one_family_and_catalog_numbers():
    for family in FAMILIES.values():
        for model in family.models:
            assert family_of(model) is family
            assert model in ACCELERATORS, model  # memory and bandwidth for sizing
            assert family.weight_dtype in ACCELERATORS[model].weight_dtypes
    with pytest.raises(KeyError):
        family_of("MXC500")


@pytest.mark.parametrize("family", FAMILIES.values(), ids=lambda f: f.name)
def test_every_entry_is_complete(family: AcceleratorFamily):
    for name in ("count_command", "inventory_command", "driver_version_command", "min_driver_version", "driver_hint",
                 "runtime_check_command", "runtime_hint", "ray_resource", "default_image"):
        assert getattr(family, name), name
    assert family.device_args(1) and family.ray_resource_args(1)


def test_step_scripts_name_no_family_tool():
    """One set of scripts: a family's tools and docker flags come from its catalog entry only."""
    for script in SCRIPTS_DIR.glob("*.sh"):
        text = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
        for word in ("nvidia-smi", "npu-smi", "--gpus", "--num-gpus", "NCCL_", "HCCL_", "davinci"):
            assert word not in text, f"{script.name} names {word}"


def test_container_probe_patterns_count_one_line_per_device():
    import re

    npu_list = fixture("npu_smi_info_m_300i_duo.txt").splitlines()
    assert sum(bool(re.search(ASCEND_310P.container_probe_pattern, line)) for line in npu_list) == 4  # no header, no Mcu
    gpu_list = ["GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-5b1e7c1a)", "GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-9d2f)"]
    assert sum(bool(re.search(NVIDIA.container_probe_pattern, line)) for line in gpu_list) == 2
    assert ASCEND_310P.container_probe[0] == "npu-smi" and "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro" in \
        ASCEND_310P.device_args(4)  # the probe's tool is mounted into the container


def test_host_setup_env_record_matches_the_scripts_env_line():
    import re
    from dataclasses import fields

    from components.host_setup import HostSetupEnv
    from components.remote import read_script
    from tests.test_remote_step import required_env

    found = re.search(r"^# Env: (.*)$", read_script("host_setup.sh"), re.M)
    assert found is not None
    header = found.group(1)
    names = [name.strip(" .") for name in header.split(",")]
    assert [f.name for f in fields(HostSetupEnv)] == names
    assert required_env("host_setup.sh") <= set(names) | {"QWEN_STEP", "QWEN_HOST"}

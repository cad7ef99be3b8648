"""Cloud-init documents for the nodes, built from data with pyyaml.

Every document is a ``#cloud-config`` that:
- masks apt's timers and unattended-upgrades first thing (bootcmd), so no background apt run can
  take the dpkg lock while a GPU driver is being installed (the Azure extension's known failure);
- installs its packages through cloud-init, then runs ``node-bootstrap.sh`` once;
- writes its scripts from ``cloudinit/scripts`` and its parameters to ``/etc/qwen/node.env``.
It describes the machine only: what it serves (image, model) reaches it through the serving
layer's prefetch step, so a new image or model never changes the document, which would replace
the machine. No secret is ever part of a cloud-init document (Azure keeps customData in the VM model).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

SCRIPTS_DIR = Path(__file__).parent / "scripts"
BIN_DIR = "/opt/qwen/bin"
NVIDIA_CONTAINER_TOOLKIT_VERSION = "1.17.8-1"
NVIDIA_CONTAINER_TOOLKIT_REPO = "https://nvidia.github.io/libnvidia-container"

# Aliyun's recommended NFS v3 options, plus _netdev (wait for the network) and nofail (a NAS
# hiccup must not stop the boot; mount-nas.sh retries until the mount target answers).
NFS_OPTIONS = "vers=3,nolock,proto=tcp,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail"

APT_BACKGROUND_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service",
                        "apt-daily-upgrade.service", "unattended-upgrades.service")

PREFETCH_UNIT = """[Unit]
Description=qwen: pull the serving image and prefetch the model weights
Wants=network-online.target
After=network-online.target docker.service
# Retried on failure, but a persistent failure ends in the failed state the steps report
# (and reset: see restart_prefetch in components/scripts/common.sh).
StartLimitIntervalSec=2h
StartLimitBurst=10

[Service]
Type=oneshot
# Stays active after success, so the path unit does not start it again and again.
RemainAfterExit=yes
ExecStart=/opt/qwen/bin/prefetch.sh
Restart=on-failure
RestartSec=60
"""

# Starts the prefetch once its settings exist: at first boot, whichever of cloud-init and the
# prefetch step comes first, and after every reboot (an eviction and `az vm start`).
PREFETCH_PATH_UNIT = """[Unit]
Description=qwen: start the prefetch when /etc/qwen/prefetch.env exists

[Path]
PathExists=/etc/qwen/prefetch.env
Unit=qwen-prefetch.service

[Install]
WantedBy=multi-user.target
"""

MODEL_DOWNLOAD_UNIT = """[Unit]
Description=qwen: download the model into the NAS and verify every file
Wants=network-online.target
After=network-online.target remote-fs.target
# Resumes after transient failures; a persistent one (bad version, hub error) ends in the failed
# state, which the model-download step reports instead of waiting out its timeout.
StartLimitIntervalSec=6h
StartLimitBurst=8

[Service]
Type=oneshot
ExecStart=/opt/qwen/bin/modelscope-download.sh
Restart=on-failure
RestartSec=60

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class NasMount:
    """An NFS export to mount: ``domain:/`` on ``mount_dir``."""

    domain: str
    mount_dir: str


def _script(name: str, path: str | None = None) -> dict:
    return {
        "path": path or f"{BIN_DIR}/{name.replace('_', '-')}",
        "permissions": "0755",
        "owner": "root:root",
        "content": (SCRIPTS_DIR / name).read_text(),
    }


def _env_file(env: Mapping[str, str]) -> dict:
    lines = [f"{key}={shlex.quote(str(value))}" for key, value in sorted(env.items())]
    return {"path": "/etc/qwen/node.env", "permissions": "0644", "owner": "root:root", "content": "\n".join(lines) + "\n"}


def _unit(name: str, content: str) -> dict:
    return {"path": f"/etc/systemd/system/{name}", "permissions": "0644", "owner": "root:root", "content": content}


def _document(packages: list[str], write_files: list[dict], nas: NasMount | None) -> str:
    doc: dict = {
        "bootcmd": [["systemctl", "mask", "--now", *APT_BACKGROUND_UNITS]],
        "package_update": True,
        "package_upgrade": False,
        "packages": packages,
        "write_files": write_files,
        "runcmd": [[f"{BIN_DIR}/node-bootstrap.sh"]],
    }
    if nas is not None:
        doc["mounts"] = [[f"{nas.domain}:/", nas.mount_dir, "nfs", NFS_OPTIONS, "0", "0"]]
    return "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


def gpu_node(*, nvidia_driver_package: str | None = None, nas: NasMount | None = None,
             toolkit_repo: str = NVIDIA_CONTAINER_TOOLKIT_REPO) -> str:
    """A GPU node: docker, the NVIDIA container toolkit (from ``toolkit_repo``, NVIDIA's apt
    repository or a mirror of it) and the prefetch service; with ``nvidia_driver_package`` the
    driver too (Aliyun; on Azure the extension installs it after cloud-init's apt work); with
    ``nas`` the NAS that holds the weights, mounted."""
    env = {
        "NVIDIA_CONTAINER_TOOLKIT_VERSION": NVIDIA_CONTAINER_TOOLKIT_VERSION,
        "NVIDIA_CONTAINER_TOOLKIT_REPO": toolkit_repo.rstrip("/"),
        "INSTALL_NVIDIA_DRIVER": "1" if nvidia_driver_package else "0",
    }
    packages = ["docker.io", "jq", "curl", "ca-certificates", "gnupg"]
    if nvidia_driver_package:
        env["NVIDIA_DRIVER_PACKAGE"] = nvidia_driver_package
        packages.append("build-essential")
    if nas is not None:
        env["NAS_MOUNT_DIR"] = nas.mount_dir
        packages.append("nfs-common")
    files = [
        _env_file(env),
        _script("node_bootstrap.sh"),
        _script("install_container_toolkit.sh"),
        *prefetch_scripts(),
        # Written on every GPU node so the bootstrap is one script; node.env decides what runs.
        _script("install_nvidia_driver.sh"),
        _script("mount_nas.sh"),
        *prefetch_units(),
    ]
    return _document(packages, files, nas)


def prefetch_scripts() -> list[dict]:
    """The scripts qwen-prefetch.service runs (write_files entries: path, permissions, owner, content)."""
    return [_script("prefetch.sh"), _script("hf_download.py", f"{BIN_DIR}/hf_download.py")]


def prefetch_units() -> list[dict]:
    """qwen-prefetch.service and the path unit that starts it once its settings exist."""
    return [_unit("qwen-prefetch.service", PREFETCH_UNIT), _unit("qwen-prefetch.path", PREFETCH_PATH_UNIT)]


# The unit a node enables at bootstrap; it starts qwen-prefetch.service when the settings arrive.
PREFETCH_TRIGGER_UNIT = "qwen-prefetch.path"


def owned_node_files() -> list[dict]:
    """What a GPU node's cloud-init installs for the serving layer, for a machine without cloud-init:
    the host-setup step (components/host_setup.py) installs exactly these files. Machine setup
    (docker, the container toolkit, the driver) is checked there, never installed."""
    return [*prefetch_scripts(), *prefetch_units()]


def downloader_node(*, model_id: str, model_revision: str, model_dir: str, modelscope_version: str, nas: NasMount) -> str:
    """The cheap CPU node that downloads the weights into the NAS with ModelScope and verifies them."""
    env = {
        "MODEL_ID": model_id,
        "MODEL_REVISION": model_revision,
        "MODEL_DIR": model_dir,
        "MODELSCOPE_VERSION": modelscope_version,
        "NAS_MOUNT_DIR": nas.mount_dir,
    }
    files = [
        _env_file(env),
        _script("downloader_bootstrap.sh", f"{BIN_DIR}/node-bootstrap.sh"),
        _script("mount_nas.sh"),
        _script("modelscope_download.sh"),
        _script("modelscope_fetch.py", f"{BIN_DIR}/modelscope_fetch.py"),
        _unit("qwen-model-download.service", MODEL_DOWNLOAD_UNIT),
    ]
    return _document(["python3-venv", "python3-pip", "nfs-common", "jq"], files, nas)

"""A sandbox host for running the step scripts unmodified: a private mount namespace (and an empty
network namespace) whose /etc, /var, /opt, /mnt and /usr are overlays with their writable layer under a pytest tmp dir (the
machine's real paths are never written), and the stand-ins of tests/standins first on PATH.

Steps run exactly as components/remote.py renders them (`sudo -n env ... bash -c <common.sh +
script> <step>`), through the sudo stand-in; cloud-init's files are written from the real
cloud-init documents. Tests read what a run left behind through `Sandbox.path`.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from components.remote import render_command

STANDINS = Path(__file__).parent / "standins"
OVERLAID = ("/etc", "/var", "/opt", "/mnt", "/usr")


class Sandbox:
    def __init__(self, root: Path, host: str = "vm-qwen-test") -> None:
        self.root = root
        self.host = host
        self.state_dir = root / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for top in OVERLAID:
            (root / "upper" / top.strip("/")).mkdir(parents=True, exist_ok=True)
            (root / "work" / top.strip("/")).mkdir(parents=True, exist_ok=True)

    # ---- files -------------------------------------------------------------------------------
    def path(self, path: str) -> Path:
        """Where the sandbox's file `path` lives on this machine (only paths under OVERLAID)."""
        assert path.startswith(OVERLAID), path
        return self.root / "upper" / path.lstrip("/")

    def exists(self, path: str) -> bool:
        p = self.path(path)
        return p.exists() and not stat.S_ISCHR(p.stat().st_mode)  # a char device is overlayfs' whiteout

    def read(self, path: str) -> str:
        return self.path(path).read_text()

    def mode(self, path: str) -> int:
        return stat.S_IMODE(self.path(path).stat().st_mode)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        p = self.path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)

    def install_cloud_config(self, document: str) -> None:
        """What cloud-init's write_files and mounts modules do with a document."""
        doc = yaml.safe_load(document)
        for f in doc["write_files"]:
            self.write(f["path"], f["content"], int(f["permissions"], 8))
        for source, target, fstype, options, dump, passno in doc.get("mounts", []):
            self.write("/etc/fstab", f"{source} {target} {fstype} {options} {dump} {passno}\n")

    # ---- stand-in state ----------------------------------------------------------------------
    def state(self) -> dict:
        path = self.state_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def set_state(self, **values) -> None:
        """Set top-level keys of the stand-ins' state (each replaced whole; unset ones keep the
        stand-ins' defaults, see tests/standins/lib/standin.py)."""
        data = self.state()
        data.update(values)
        (self.state_dir / "state.json").write_text(json.dumps(data))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        path = self.state_dir / "calls.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r["argv"] for r in rows if tool is None or r["tool"] == tool]

    def all_calls_text(self) -> str:
        path = self.state_dir / "calls.jsonl"
        return path.read_text() if path.exists() else ""

    def container(self, name: str) -> dict | None:
        containers: dict[str, dict] = self.state().get("containers", {})
        return containers.get(name)

    # ---- running -----------------------------------------------------------------------------
    def run(self, command: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command inside the sandbox as root."""
        mounts = "; ".join(
            f"/bin/mount -t overlay overlay -o lowerdir={top},upperdir={self.root}/upper{top},workdir={self.root}/work{top} {top}"
            for top in OVERLAID)
        env = {"PATH": f"{STANDINS / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "QWEN_STANDIN_STATE": str(self.state_dir), "HOME": "/root", "LANG": "C.UTF-8"}
        return subprocess.run(
            # --net: a network namespace of its own (a loopback that is down), so no stand-in and no
            # script can reach a network, whatever it runs
            ["unshare", "--mount", "--net", "--propagation", "private", "--", "/bin/bash", "-c",
             f'set -e; {mounts}; cd /; exec /bin/bash -c "$0"', command],
            input=stdin, capture_output=True, text=True, env=env, timeout=timeout)

    def run_step(self, step: str, script: str, env: Mapping[str, str], stdin: str | None = None,
                 host: str | None = None) -> subprocess.CompletedProcess:
        """A remote step, as the remote Command runs it: the rendered command through sudo."""
        return self.run(render_command(step, host or self.host, script, env), stdin=stdin)

    def run_file(self, path: str, *args: str) -> subprocess.CompletedProcess:
        """A script cloud-init (or a unit) runs: the file already in the sandbox, as root."""
        return self.run(" ".join([path, *args]))

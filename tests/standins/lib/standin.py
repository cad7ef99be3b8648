"""Shared state of the stand-in tools: one JSON document per sandbox, locked for each call.

The stand-ins are plain executables, so a test and a real-engine host can both use them: the state
lives in $QWEN_STANDIN_STATE (a directory), or in /var/lib/qwen-standins when that is unset (the
sandbox's own /var). Every call is appended to calls.jsonl (tool, argv) so tests can assert on what
a script ran, and check that no secret ever reached a command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

STANDINS_DIR = Path(__file__).resolve().parent.parent
FLAGS = STANDINS_DIR / "flags.json"

DEFAULT_STATE: dict = {
    "tick": 0,            # advanced by the sleep stand-in; "events" fire when it reaches their tick
    "events": [],         # [{"tick": n, "set": [key, ...path], "value": v}] or {"tick": n, "write": path, "text": t}
    "cloud_init": {"status": "done", "on_wait": "finish", "errors": []},
    "driver": {"loaded": True, "version": "570.172.08"},
    "gpus": [{"name": "NVIDIA A100 80GB PCIe", "memory_mib": 81920}] * 2,
    "npus": [],
    "docker": {"daemon": "running", "runtimes": ["io.containerd.runc.v2", "runc", "nvidia"]},
    "containers": {},
    "images": {},
    "registry": {"reachable": True, "images": ["vllm/vllm-openai:v0.11.0"]},
    "ray": {"reachable_heads": [], "extra_nodes": [], "head_answers_after_tick": 0},
    "vllm": {"load_ticks": 0, "crash": False, "bench_failed_requests": 0},
    "units": {},
    "http": {},           # "scheme://host[:port]" -> {"paths": {"/p": {"status": 200, "body": ""}}, "default_status": 404}
    "mounts": {},         # mount point -> source
    "nas": {"reachable": True},
    "disk_free_gb": {},   # path prefix -> GB available; default 100
    "apt": {"installed": {}, "updated_sources": [], "archive": {}},
    "pypi": {"reachable": True, "modelscope": ["1.31.0"]},
    "venvs": {},
    "hub": {},            # model id -> revision -> {"sha": s, "files": {path: size}, "truncate": [path]}
}


def state_dir() -> Path:
    return Path(os.environ.get("QWEN_STANDIN_STATE") or "/var/lib/qwen-standins")


def _path(name: str) -> Path:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def merged_defaults(data: dict) -> dict:
    out: dict[str, Any] = json.loads(json.dumps(DEFAULT_STATE))
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def state(write: bool = True):
    """The state document, locked; written back on exit when write is true."""
    with open(_path("state.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = _path("state.json")
        data = merged_defaults(json.loads(path.read_text()) if path.exists() else {})
        yield data
        if write:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(path)


def read_state() -> dict:
    """The state without taking the lock (writes replace the file atomically): for readers that may
    run while another stand-in holds the lock, such as a script run inside the docker stand-in."""
    path = _path("state.json")
    return merged_defaults(json.loads(path.read_text()) if path.exists() else {})


def record(tool: str, argv: list[str]) -> None:
    """Append one call to calls.jsonl (the argv a process listing would show)."""
    with open(_path("calls.jsonl"), "a") as calls:
        calls.write(json.dumps({"tool": tool, "argv": argv}) + "\n")


def die(message: str, code: int = 1) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(code)


def flags(table: str) -> dict[str, dict]:
    tables: dict[str, dict[str, dict]] = json.loads(FLAGS.read_text())
    return tables[table]


def fire_events(data: dict) -> None:
    """Apply the events whose tick has come (a GPU appears, a unit finishes, a file is written)."""
    pending = []
    for event in data["events"]:
        if event["tick"] > data["tick"]:
            pending.append(event)
            continue
        if "set" in event:
            target = data
            *parents, last = event["set"]
            for key in parents:
                target = target.setdefault(key, {})
            target[last] = event["value"]
        if "write" in event:
            Path(event["write"]).parent.mkdir(parents=True, exist_ok=True)
            Path(event["write"]).write_text(event["text"])
    data["events"] = pending


def parse_args(argv: list[str], table: dict[str, dict], tool: str, allow_equals: bool = True,
               positional_ok: bool = True) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Split argv into (flag, value) pairs and positionals, rejecting flags the real tool does not know.

    table: flag -> {"value": bool, "choices": [...]}. Accepts --flag=value and --flag value, and
    underscores in long flags when the tool does (vLLM's FlexibleArgumentParser does).
    """
    pairs: list[tuple[str, str | None]] = []
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-" and not _is_number(arg):
            name, _, inline = arg.partition("=") if allow_equals else (arg, "", "")
            spec = table.get(name)
            if spec is None:
                die(f"{tool}: error: unrecognized arguments: {arg}", 2)
            if spec["value"]:
                if inline or "=" in arg:
                    value = inline
                else:
                    i += 1
                    if i >= len(argv):
                        die(f"{tool}: error: argument {name}: expected one argument", 2)
                    value = argv[i]
                if "choices" in spec and value not in spec["choices"]:
                    die(f"{tool}: error: argument {name}: invalid choice: '{value}'", 2)
                pairs.append((name, value))
            else:
                if "=" in arg:
                    die(f"{tool}: error: argument {name}: ignored explicit argument '{inline}'", 2)
                pairs.append((name, None))
        else:
            if not positional_ok:
                die(f"{tool}: error: unrecognized arguments: {arg}", 2)
            positionals.append(arg)
        i += 1
    return pairs, positionals


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False

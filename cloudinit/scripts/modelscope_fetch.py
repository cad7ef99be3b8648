"""Fetch a ModelScope model into a fixed directory and verify it against the hub's file list.

Usage:
  modelscope_fetch.py download MODEL_ID REVISION LOCAL_DIR   (resumable: present files are skipped)
  modelscope_fetch.py verify   MODEL_ID REVISION LOCAL_DIR   (sizes of every file, then the marker)

The marker ``LOCAL_DIR/.qwen-download-complete`` is written only when every listed file is
present with the listed size; the GPU nodes are not created until it exists.
"""

from __future__ import annotations

import json
import os
import sys

MARKER = ".qwen-download-complete"


def expected_files(listing: list[dict]) -> dict[str, int]:
    """Map relative path -> size in bytes for every file (not directory) of a ModelScope listing."""
    files = {}
    for entry in listing:
        if entry.get("Type", "blob") != "blob":
            continue
        files[entry["Path"]] = int(entry["Size"])
    return files


def find_problems(local_dir: str, files: dict[str, int]) -> list[str]:
    """Files missing from local_dir or with a size other than the hub's."""
    problems = []
    for path, size in sorted(files.items()):
        full = os.path.join(local_dir, path)
        if not os.path.isfile(full):
            problems.append(f"{path}: missing")
        elif os.path.getsize(full) != size:
            problems.append(f"{path}: {os.path.getsize(full)} bytes, expected {size}")
    return problems


def write_marker(local_dir: str, model_id: str, revision: str, files: dict[str, int]) -> dict:
    summary = {"model": model_id, "revision": revision, "files": len(files), "bytes": sum(files.values())}
    with open(os.path.join(local_dir, MARKER), "w") as marker:
        json.dump(summary, marker)
    return summary


def main(argv: list[str]) -> int:
    action, model_id, revision, local_dir = argv
    if action == "download":
        from modelscope import snapshot_download

        snapshot_download(model_id, revision=revision, local_dir=local_dir)
        return 0
    from modelscope.hub.api import HubApi

    files = expected_files(HubApi().get_model_files(model_id, revision=revision, recursive=True))
    if not files:
        print(f"the hub lists no files for {model_id}@{revision}", file=sys.stderr)
        return 1
    problems = find_problems(local_dir, files)
    if problems:
        print(f"{len(problems)} file(s) incomplete:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(json.dumps(write_marker(local_dir, model_id, revision, files)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

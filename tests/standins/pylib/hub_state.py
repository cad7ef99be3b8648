"""The model hub behind the Hugging Face and ModelScope stand-ins: models, revisions and their files
from the stand-ins' shared state (state["hub"][model_id][revision] = {"sha", "files": {path: size},
"truncate": [paths a download leaves short], "error": message})."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import standin  # noqa: E402


def revision_of(model_id: str, revision: str, not_found: type, revision_not_found: type) -> dict:
    models = standin.read_state()["hub"]
    if model_id not in models:
        raise not_found(f"404 Client Error. Repository Not Found for url: {model_id}")
    if revision not in models[model_id]:
        raise revision_not_found(f"404 Client Error. Revision Not Found for url: {model_id}@{revision}")
    entry: dict = models[model_id][revision]
    return entry


def content(path: str, size: int) -> bytes:
    seed = hashlib.sha256(path.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def download(client: str, model_id: str, revision: str, entry: dict, local_dir: str) -> None:
    """Write every file of the revision into local_dir, skipping files already complete (resume)."""
    if entry.get("error"):
        raise OSError(entry["error"])
    for rel, size in sorted(entry["files"].items()):
        target = os.path.join(local_dir, rel)
        if os.path.isfile(target) and os.path.getsize(target) == size:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        data = content(rel, size)
        if rel in entry.get("truncate", []):
            data = data[: size // 2]
        with open(target, "wb") as out:
            out.write(data)
        standin.record(client, ["download", model_id, revision, rel])

"""modelscope.hub.api stand-in: HubApi.get_model_files with modelscope 1.31's signature and entry
keys (Name, Path, Type blob|tree, Size, Sha256, Revision)."""

from __future__ import annotations

import hashlib
import os

import hub_state

from modelscope.hub.errors import NotExistError


class HubApi:
    def __init__(self, endpoint=None, timeout=None, max_retries=None) -> None:
        pass

    def get_model_files(self, model_id: str, revision: str = "master", root=None, recursive: bool = False,
                        use_cookies: bool = False, headers: dict | None = None, endpoint=None) -> list:
        entry = hub_state.revision_of(model_id, revision, NotExistError, NotExistError)
        files, dirs = [], set()
        for path, size in sorted(entry["files"].items()):
            parent = os.path.dirname(path)
            if parent:
                dirs.add(parent)
            if not recursive and parent:
                continue
            files.append({"Name": os.path.basename(path), "Path": path, "Type": "blob", "Size": size,
                          "Sha256": hashlib.sha256(hub_state.content(path, size)).hexdigest(), "Revision": revision})
        return [{"Name": os.path.basename(d), "Path": d, "Type": "tree", "Size": 0, "Revision": revision}
                for d in sorted(dirs)] + files

"""ModelScope client stand-in: `snapshot_download` with the signature of modelscope 1.31, answered
from the stand-ins' hub state (files written into local_dir, complete ones skipped)."""

from __future__ import annotations

import hub_state

from modelscope.hub.errors import NotExistError


def snapshot_download(model_id: str | None = None, revision: str | None = None, cache_dir=None, user_agent=None,
                      local_files_only: bool = False, cookies=None, ignore_file_pattern=None,
                      allow_file_pattern=None, local_dir: str | None = None, allow_patterns=None,
                      ignore_patterns=None, max_workers: int = 8, repo_id: str | None = None,
                      repo_type: str | None = "model",
                      enable_file_lock=None, progress_callbacks=None) -> str:
    model_id = model_id or repo_id
    if model_id is None:
        raise ValueError("snapshot_download needs model_id or repo_id")
    revision = revision or "master"
    if local_dir is None:
        raise ValueError("the stand-in models downloads into local_dir only")
    entry = hub_state.revision_of(model_id, revision, NotExistError, NotExistError)
    hub_state.download("modelscope", model_id, revision, entry, local_dir)
    return local_dir

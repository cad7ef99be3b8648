"""Hugging Face Hub client stand-in: the two calls hf_download.py makes, with the signatures of
huggingface_hub 0.35 (keyword-only arguments after repo_id), answered from the stand-ins' hub state."""

from __future__ import annotations

from dataclasses import dataclass

import hub_state


class RepositoryNotFoundError(Exception):
    pass


class RevisionNotFoundError(Exception):
    pass


@dataclass
class RepoSibling:
    rfilename: str
    size: int | None = None
    blob_id: str | None = None
    lfs: dict | None = None


@dataclass
class ModelInfo:
    id: str
    sha: str | None
    siblings: list


def snapshot_download(repo_id: str, *, repo_type: str | None = None, revision: str | None = None,
                      cache_dir=None, local_dir: str | None = None, library_name=None, library_version=None,
                      user_agent=None, proxies=None, etag_timeout: float = 10, force_download: bool = False,
                      token=None, local_files_only: bool = False, allow_patterns=None, ignore_patterns=None,
                      max_workers: int = 8, tqdm_class=None, headers=None, endpoint=None,
                      local_dir_use_symlinks="auto", resume_download=None) -> str:
    if local_dir is None:
        raise ValueError("the stand-in models downloads into local_dir only")
    revision = revision or "main"
    entry = hub_state.revision_of(repo_id, revision, RepositoryNotFoundError, RevisionNotFoundError)
    hub_state.download("huggingface_hub", repo_id, revision, entry, local_dir)
    return str(local_dir)


class HfApi:
    def __init__(self, endpoint: str | None = None, token=None, library_name=None, library_version=None,
                 user_agent=None, headers=None) -> None:
        pass

    def model_info(self, repo_id: str, *, revision: str | None = None, timeout: float | None = None,
                   securityStatus: bool | None = None, files_metadata: bool = False, expand=None,  # noqa: N803 (hub API)
                   token=None) -> ModelInfo:
        revision = revision or "main"
        entry = hub_state.revision_of(repo_id, revision, RepositoryNotFoundError, RevisionNotFoundError)
        siblings = [RepoSibling(rfilename=path, size=size if files_metadata else None)
                    for path, size in sorted(entry["files"].items())]
        return ModelInfo(id=repo_id, sha=entry.get("sha", "0" * 40), siblings=siblings)

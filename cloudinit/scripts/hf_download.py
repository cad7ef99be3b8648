"""Download a Hugging Face model snapshot into a fixed directory, then write the completion marker.

Usage: hf_download.py MODEL_ID REVISION LOCAL_DIR. Runs inside the serving image, which ships
huggingface_hub; a second run resumes and skips files already present.
"""

import json
import os
import sys

from huggingface_hub import HfApi, snapshot_download


def main() -> None:
    model_id, revision, local_dir = sys.argv[1:4]
    snapshot_download(repo_id=model_id, revision=revision, local_dir=local_dir)
    info = HfApi().model_info(model_id, revision=revision, files_metadata=True)
    missing = []
    total = 0
    for sibling in info.siblings:
        path = os.path.join(local_dir, sibling.rfilename)
        if not os.path.isfile(path) or (sibling.size is not None and os.path.getsize(path) != sibling.size):
            missing.append(sibling.rfilename)
        else:
            total += os.path.getsize(path)
    if missing:
        sys.exit(f"incomplete download, missing or short: {', '.join(missing)}")
    # "revision" is the one asked for: the serve step waits for a marker of the revision it serves.
    summary = {"model": model_id, "revision": revision, "commit": info.sha, "files": len(info.siblings), "bytes": total}
    with open(os.path.join(local_dir, ".qwen-download-complete"), "w") as marker:
        json.dump(summary, marker)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

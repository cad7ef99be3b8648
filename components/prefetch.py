"""Prefetch: hands each host what it will serve, so the image pull and the weights download start
as soon as the machine answers SSH, before its GPU driver is ready.

Each host's step writes /etc/qwen/prefetch.env; the node's qwen-prefetch service (installed by
cloud-init, see cloudinit/) does the pull and download, resumes after a reboot and writes the
weights' completion marker that the serve step waits for. A new image or model re-runs the step
on the running machine instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.remote import GpuHost, remote_step


@dataclass
class PrefetchArgs:
    """hosts: the GPU hosts. image: the serving image to pull; image_disk_gb: the disk its pull needs
    (extracted + largest layer), below which the old images are removed first. prefetch_model: also download the
    weights (from Hugging Face, to model_dir on the host's disk); False when they are already in a
    shared store. model_id / model_revision: what to download. model_root / model_dir: where."""

    hosts: Sequence[GpuHost]
    image: str
    image_disk_gb: int
    prefetch_model: bool
    model_id: str
    model_revision: str
    model_root: str
    model_dir: str


# A Docker Hub pull needs its registry, its token service and its blob CDN: any can be blocked.
DOCKER_HUB_PROBES = ("https://registry-1.docker.io/v2/", "https://auth.docker.io/token",
                     "https://production.cloudflare.docker.com/")


def registry_probe_urls(image: str) -> list[str]:
    """URLs a pull of `image` needs (Docker Hub's for `vllm/vllm-openai:tag`), to check from a
    region that they can be reached at all."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost") and first not in ("docker.io", "index.docker.io"):
        return [f"https://{first}/v2/"]
    return list(DOCKER_HUB_PROBES)


class Prefetch(pulumi.ComponentResource):
    """Outputs: ``steps`` ({host name: its prefetch step}), for the steps that follow to depend on."""

    def __init__(self, name: str, args: PrefetchArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:serving:Prefetch", name, None, opts)
        self.steps = {
            host.name: remote_step(
                f"{name}-{host.name}", step="prefetch", host=host, script="prefetch_configure.sh",
                env={
                    "IMAGE": args.image,
                    "IMAGE_DISK_GB": str(args.image_disk_gb),
                    "PREFETCH_MODEL": "1" if args.prefetch_model else "0",
                    "MODEL_ID": args.model_id,
                    "MODEL_REVISION": args.model_revision,
                    "MODEL_ROOT": args.model_root,
                    "MODEL_DIR": args.model_dir,
                    "PRUNE_IMAGES": "0" if host.owned else "1",
                },
                parent=self,
                depends_on=list(host.booted),
            )
            for host in args.hosts
        }
        self.register_outputs({})

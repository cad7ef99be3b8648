"""Capacity, quota and restriction checks that run after the settings are validated and before the
first resource is registered, in `pulumi preview` as in `pulumi up` (issue 11).

``run`` returns the settings resolved for the chosen placement (Azure: the candidate's location,
size, priority, zone and tensor-parallel size) and the ``placement`` output, or raises
``PreflightError`` with one line per problem.
"""

from __future__ import annotations

from stacks.preflight.errors import PreflightError  # noqa: F401 (re-exported)
from stacks.settings import Settings


def run(settings: Settings) -> tuple[Settings, dict | None]:
    if settings.cloud == "azure":
        from stacks.preflight import azure

        resolved, placement = azure.place(settings)
        return resolved, placement.as_output()
    if settings.cloud == "aliyun":
        from stacks.preflight import aliyun

        aliyun.check(settings)
        return settings, None
    if settings.cloud == "owned":
        return settings, None  # nothing is bought: the host-setup step checks the machines themselves
    raise ValueError(f"no preflight for cloud {settings.cloud!r}")

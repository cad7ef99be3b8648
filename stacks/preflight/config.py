"""The preflight's settings as pure functions over plain config values: `qwen:azure.candidates` and
`qwen:preflight`.

Kept apart from stacks/settings.py so that its rewrite can call these functions as they are; each
returns its value and a list of one-line problems naming the `qwen:` key and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

PRIORITIES = ("Spot", "Regular")
CANDIDATE_KEYS = ("location", "vmSize", "priority", "zone")
_KEY = "qwen:azure.candidates"


@dataclass(frozen=True)
class Candidate:
    """One place the Azure VM may go. A change of any field replaces the VM."""

    location: str  # Azure region name as the API spells it, e.g. uksouth
    vm_size: str  # a size of stacks/catalog.py GPU_SIZES, e.g. Standard_NC48ads_A100_v4
    priority: str = "Spot"  # Spot (evictable, low-priority quota) or Regular (on-demand, family quota)
    zone: Optional[str] = None  # availability zone "1".."3"; None lets Azure place the VM in the region

    def label(self) -> str:
        zone = f" zone {self.zone}" if self.zone else ""
        return f"{self.vm_size} {self.priority} in {self.location}{zone}"

    def same_place(self, other: "Candidate") -> bool:
        """Azure compares locations and sizes without case; priorities are one of two words."""
        return (self.location.lower() == other.location.lower() and self.vm_size.lower() == other.vm_size.lower()
                and self.priority == other.priority and (self.zone or None) == (other.zone or None))

    def as_output(self) -> dict:
        return {"location": self.location, "vmSize": self.vm_size, "priority": self.priority, "zone": self.zone}


@dataclass(frozen=True)
class PreflightSettings:
    enabled: bool = True  # False: no cloud API is asked (air-gapped previews); the preview says so


def parse_candidates(raw: Any) -> tuple[tuple[Candidate, ...], list[str]]:
    """`qwen:azure.candidates`: a list of {location, vmSize, priority, zone}, tried in order."""
    problems: list[str] = []
    if raw is None:
        return (), problems
    if not isinstance(raw, list) or not raw:
        return (), [f"{_KEY}: must be a non-empty list of {{location, vmSize, priority}} objects, got {raw!r}"]
    candidates: list[Candidate] = []
    for i, item in enumerate(raw):
        key = f"{_KEY}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{key}: must be an object {{location, vmSize, priority}}, got {item!r}")
            continue
        for name in sorted(set(item) - set(CANDIDATE_KEYS)):
            problems.append(f"{key}.{name}: is not a known setting (known: {', '.join(CANDIDATE_KEYS)}); check its spelling")
        location, vm_size = item.get("location"), item.get("vmSize")
        priority, zone = item.get("priority", "Spot"), item.get("zone")
        if not isinstance(location, str) or not re.fullmatch(r"[a-z][a-z0-9]{2,40}", location):
            problems.append(f"{key}.location: must be an Azure region name such as uksouth, got {location!r}")
        if not isinstance(vm_size, str) or not vm_size.startswith("Standard_"):
            problems.append(f"{key}.vmSize: must be an Azure size such as Standard_NC48ads_A100_v4, got {vm_size!r}")
        if priority not in PRIORITIES:
            problems.append(f"{key}.priority: must be Spot or Regular, got {priority!r}")
        if isinstance(zone, int) and not isinstance(zone, bool):
            zone = str(zone)
        if zone is not None and not (isinstance(zone, str) and re.fullmatch(r"[1-9]", zone)):
            problems.append(f"{key}.zone: must be an availability zone such as \"1\", or unset, got {zone!r}")
        if not problems or all(not p.startswith(key) for p in problems):
            candidates.append(Candidate(location, vm_size, priority, zone))
    for i, c in enumerate(candidates):
        if any(c.same_place(d) for d in candidates[:i]):
            problems.append(f"{_KEY}: {c.label()} is listed twice; remove the second entry")
    return tuple(candidates), problems


def parse_preflight(raw: Any) -> tuple[PreflightSettings, list[str]]:
    """`qwen:preflight`: {enabled}."""
    if raw is None:
        return PreflightSettings(), []
    if not isinstance(raw, Mapping):
        return PreflightSettings(), [f"qwen:preflight: must be an object such as {{enabled: false}}, got {raw!r}"]
    problems = [f"qwen:preflight.{name}: is not a known setting (known: enabled); check its spelling"
                for name in sorted(set(raw) - {"enabled"})]
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"qwen:preflight.enabled: must be true or false, got {enabled!r}")
        enabled = True
    return PreflightSettings(enabled), problems

"""Azure preflight: before any resource exists, ask Azure whether each candidate size is offered to
this subscription in its region (and zone), boots the image's Hyper-V generation and fits the
regional vCPU quota, then place the VM on the first candidate that passes, or keep the place the
stack's VM already has.

Everything Azure answers comes through a client with the methods of azure-mgmt-compute's
``ComputeManagementClient`` (``resource_skus.list``, ``usage.list``, ``virtual_machines.get``);
``connect`` builds the real one, tests hand in a fake that returns the SDK's own model objects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from stacks import settings as settings_module
from stacks.catalog import GPU_SIZES
from stacks.preflight.errors import PreflightError
from stacks.settings import AzureCandidate as Candidate
from stacks.settings import AzureSettings, Settings

# Azure portal "My quotas" page (Compute provider; filter by region and quota name there).
QUOTA_PAGE = "https://portal.azure.com/#view/Microsoft_Azure_Capacity/QuotaMenuBlade/~/myQuotas"
SPOT_QUOTA = "lowPriorityCores"  # "Total Regional Low-priority vCPUs": all Spot VMs of a region, any family
REGIONAL_QUOTA = "cores"  # "Total Regional vCPUs": all on-demand VMs of a region, besides the family's quota
OFFLINE_FIX = "or turn the preflight off for an offline preview: `pulumi config set --path qwen:preflight.enabled false`"


@dataclass(frozen=True)
class Skipped:
    index: int  # position in the candidate list, from 0
    candidate: Candidate
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    """Where the VM goes and why; exported as the stack output ``placement``."""

    index: int  # position in the candidate list, from 0
    candidate: Candidate
    tensor_parallel_size: int  # the GPUs of the size, unless qwen:serving.tensorParallelSize pins it
    reason: str
    checked: bool  # False when qwen:preflight.enabled is false: Azure was not asked
    skipped: tuple[Skipped, ...] = ()

    def as_output(self) -> dict:
        return {
            **self.candidate.as_output(), "candidate": self.index, "tensorParallelSize": self.tensor_parallel_size,
            "reason": self.reason, "checked": self.checked,
            "skipped": [{"candidate": s.index, **s.candidate.as_output(), "problems": list(s.problems)} for s in self.skipped],
        }


# ---------------------------------------------------------------------------- reading Azure's answers


def _text(value: Any) -> str | None:
    """The plain string of an SDK enum member (ResourceSkuRestrictionsReasonCode.NOT_AVAILABLE_FOR_SUBSCRIPTION -> ...)."""
    return None if value is None else str(getattr(value, "value", value))


def capability(sku: Any, name: str) -> str | None:
    for cap in sku.capabilities or []:
        if cap.name == name:
            value: str | None = cap.value
            return value
    return None


def find_sku(skus: Iterable[Any], candidate: Candidate) -> Any | None:
    """The virtualMachines SKU of the candidate's size in its location, or None when it is not offered there."""
    for sku in skus:
        if (sku.resource_type == "virtualMachines" and (sku.name or "").lower() == candidate.vm_size.lower()
                and candidate.location.lower() in [loc.lower() for loc in sku.locations or []]):
            return sku
    return None


def image_generation(image_sku: str) -> str:
    """Hyper-V generation of a marketplace image from its SKU name: Canonical marks Gen2 images
    (22_04-lts-gen2) and leaves Gen1 ones unmarked (22_04-lts)."""
    return "V2" if "gen2" in image_sku.lower() else "V1"


def sku_problems(candidate: Candidate, sku: Any | None, image_sku: str) -> list[str]:
    """Offered in the region and zone, not restricted for this subscription, the image's generation, Spot-capable."""
    label, loc, size = candidate.label(), candidate.location.lower(), candidate.vm_size
    if sku is None:
        return [f"{label}: the size is not offered in {loc}; pick another location or size "
                f"(`az vm list-skus -l {loc} --size {size} --all -o table`)"]
    problems = []
    offered_zones = sorted({z for info in sku.location_info or [] if (info.location or "").lower() == loc
                            for z in info.zones or []})
    restricted_zones: set[str] = set()
    for restriction in sku.restrictions or []:
        kind, reason = _text(restriction.type), _text(restriction.reason_code)
        info = restriction.restriction_info
        if kind == "Location":
            places = [p.lower() for p in ((info.locations if info else None) or restriction.values_property or [])]
            if loc in places:
                problems.append(f"{label}: the size is restricted for this subscription in {loc} (reasonCode {reason}); "
                                "ask Azure support to enable it, or use another candidate")
        elif kind == "Zone":
            restricted_zones.update((info.zones if info else None) or [])
    if candidate.zone:
        if candidate.zone not in offered_zones:
            problems.append(f"{label}: the size is not offered in zone {candidate.zone} of {loc} (zones: "
                            f"{', '.join(offered_zones) or 'none'}); pick one of them or leave zone unset")
        elif candidate.zone in restricted_zones:
            free = [z for z in offered_zones if z not in restricted_zones]
            problems.append(f"{label}: zone {candidate.zone} is restricted for this subscription (restricted zones: "
                            f"{', '.join(sorted(restricted_zones))}); use zone {' or '.join(free)} or leave zone unset"
                            if free else
                            f"{label}: zone {candidate.zone} is restricted for this subscription (restricted zones: "
                            f"{', '.join(sorted(restricted_zones))}); leave zone unset or ask Azure support")
    generations = capability(sku, "HyperVGenerations") or "V1"  # absent: Gen1 only
    generation = image_generation(image_sku)
    if generation not in generations.split(","):
        problems.append(f"{label}: the size boots Hyper-V {generations} images but qwen:azure.image.sku '{image_sku}' is "
                        f"{generation}; use a {'Gen2' if 'V2' in generations else 'Gen1'} image such as "
                        f"{'22_04-lts-gen2' if 'V2' in generations else '22_04-lts'}")
    if candidate.priority == "Spot" and capability(sku, "LowPriorityCapable") == "False":
        problems.append(f"{label}: the size cannot run as Spot (LowPriorityCapable False); use priority Regular")
    return problems


def quota_names(priority: str, sku: Any) -> list[str]:
    """Spot draws on the regional low-priority quota; on-demand on the family's and the regional vCPU quota."""
    return [SPOT_QUOTA] if priority == "Spot" else [sku.family or "", REGIONAL_QUOTA]


def quota_problems(candidate: Candidate, sku: Any, usages: Iterable[Any], subscription_id: str,
                   released: Mapping[str, int] | None = None) -> list[str]:
    """Each quota the candidate draws on must have its vCPUs free; ``released``: vCPUs per quota name
    (lowercase) that the stack's current VM gives back when it is replaced first."""
    vcpus = int(capability(sku, "vCPUs") or 0)
    rows = {(u.name.value or "").lower(): u for u in usages if u.name is not None}
    problems = []
    for name in quota_names(candidate.priority, sku):
        row = rows.get(name.lower())
        if row is None:
            continue  # the region reports no such quota: nothing limits it
        free = row.limit - row.current_value + (released or {}).get(name.lower(), 0)
        if free < vcpus:
            title = row.name.localized_value or name
            problems.append(
                f"{candidate.label()}: quota '{title}' ({name}) has {free} of {row.limit} vCPUs free "
                f"({row.current_value} in use, deallocated VMs included), the size needs {vcpus}; request a limit of at "
                f"least {row.current_value + vcpus} for {candidate.location} at {QUOTA_PAGE} (subscription {subscription_id}), "
                "or use another candidate")
    return problems


class AzureAnswers:
    """The SKU list and usages of each location, asked once per run."""

    def __init__(self, client: Any, subscription_id: str):
        self.client = client
        self.subscription_id = subscription_id
        self._skus: dict[str, list] = {}
        self._usages: dict[str, list] = {}
        self.released: dict[str, dict[str, int]] = {}  # location -> quota name -> vCPUs of the VM being moved

    def skus(self, location: str) -> list:
        if location not in self._skus:
            self._skus[location] = list(self.client.resource_skus.list(filter=f"location eq '{location}'"))
        return self._skus[location]

    def usages(self, location: str) -> list:
        if location not in self._usages:
            self._usages[location] = list(self.client.usage.list(location))
        return self._usages[location]

    def problems(self, candidate: Candidate, image_sku: str) -> list[str]:
        sku = find_sku(self.skus(candidate.location.lower()), candidate)
        problems = sku_problems(candidate, sku, image_sku)
        if sku is not None:
            location = candidate.location.lower()
            problems += quota_problems(candidate, sku, self.usages(location), self.subscription_id,
                                       self.released.get(location))
        return problems

    def release(self, vm: Candidate) -> None:
        """Count the stack's VM as gone: it is deleted before its replacement is created."""
        sku = find_sku(self.skus(vm.location.lower()), vm)
        if sku is not None:
            vcpus = int(capability(sku, "vCPUs") or 0)
            self.released[vm.location.lower()] = {name.lower(): vcpus for name in quota_names(vm.priority, sku)}

    def existing_vm(self, resource_group: str, vm_name: str) -> Candidate | None:
        """The place of the stack's VM if Azure has it (in any state, a Failed one included)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            vm = self.client.virtual_machines.get(resource_group, vm_name)
        except ResourceNotFoundError:  # no VM, or not even its resource group
            return None
        zones = vm.zones or []
        # An absent priority is Regular; Azure's "Low" is the retired name of Spot.
        priority = {"Spot": "Spot", "Low": "Spot"}.get(_text(vm.priority) or "Regular", "Regular")
        return candidate_at(vm.location, vm.hardware_profile.vm_size, priority, zones[0] if zones else None)


# ---------------------------------------------------------------------------- credentials


def find_subscription_id(provider_config: str | None, env: Mapping[str, str], azure_config_dir: Path) -> str | None:
    """The subscription the azure-native provider will create the VM in: its config, its environment
    variables, then the Azure CLI's default subscription (what `az account show` prints, read from the
    CLI's profile file; azure-identity gives a token, never a subscription)."""
    for value in (provider_config, env.get("ARM_SUBSCRIPTION_ID"), env.get("AZURE_SUBSCRIPTION_ID")):
        if value:
            return value
    profile = azure_config_dir / "azureProfile.json"
    if not profile.is_file():
        return None
    try:
        data = json.loads(profile.read_text(encoding="utf-8-sig"))  # the CLI writes it with a BOM
    except (OSError, ValueError):
        return None
    return next((s.get("id") for s in data.get("subscriptions", []) if s.get("isDefault")), None)


def subscription_id() -> str | None:
    config_dir = Path(os.environ.get("AZURE_CONFIG_DIR", Path.home() / ".azure"))
    return find_subscription_id(pulumi.Config("azure-native").get("subscriptionId"), os.environ, config_dir)


def connect(subscription: str) -> Any:
    """A ComputeManagementClient with the user's own login (az login, environment, managed identity),
    the same sources the azure-native provider reads."""
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(DefaultAzureCredential(exclude_interactive_browser_credential=True), subscription)


# ---------------------------------------------------------------------------- placement


def _azure(settings: Settings) -> AzureSettings:
    az = settings.azure
    assert az is not None, "settings put every Azure stack's qwen:azure section in place"
    return az


def _tensor_parallel_size(resolved: Settings) -> int:
    tensor_parallel_size = resolved.serving.tensor_parallel_size
    assert tensor_parallel_size is not None, "sized_for sets it on every candidate: the pinned one or the size's GPUs"
    return tensor_parallel_size


def sized_for(settings: Settings, candidate: Candidate) -> tuple[Settings, list[str]]:
    """The settings as they would be on this candidate (a configured one: its size is in the catalog),
    and why the model would not fit its GPUs."""
    serving, az = settings.serving, _azure(settings)
    resolved = settings.model_copy(update={
        "azure": az.model_copy(update={"location": candidate.location, "vm_size": candidate.vm_size,
                                       "priority": candidate.priority, "zone": candidate.zone}),
        "serving": serving.model_copy(update={
            "tensor_parallel_size": serving.tensor_parallel_size or GPU_SIZES[candidate.vm_size].gpus}),
    })
    # The same tensor-parallel and GPU-memory rules that validate a single vmSize.
    return resolved, [f"{candidate.label()}: {p}" for p in settings_module._check_layout(resolved)]


def candidate_at(location: str, vm_size: str, priority: str, zone: str | None) -> Candidate:
    """A place from values already validated or reported by Azure or the last outputs (a size outside
    the catalog included): built without validation, then only compared and labelled."""
    return Candidate.model_construct(location=location, vm_size=vm_size, priority=priority, zone=zone)


def previous_placement(outputs: Mapping[str, Any]) -> Candidate | None:
    """The place recorded in the stack's last ``placement`` output, if any."""
    value = outputs.get("placement") if outputs else None
    if not isinstance(value, Mapping) or not value.get("location") or not value.get("vmSize"):
        return None
    return candidate_at(value["location"], value["vmSize"], value.get("priority") or "Spot", value.get("zone"))


def read_own_outputs() -> Mapping[str, Any]:
    """The outputs of this stack's last update, through the engine's built-in `readStackOutputs`
    invoke (what StackReference uses). Synchronous, answered in preview and under mocks, and empty
    for a stack that was never deployed."""
    # "organization" is the DIY (file) backend's organization; mocks set none.
    name = f"{pulumi.get_organization() or 'organization'}/{pulumi.get_project()}/{pulumi.get_stack()}"
    result = pulumi.runtime.invoke("pulumi:pulumi:readStackOutputs", {"name": name}).value or {}
    return result.get("outputs") or {}


def candidates_of(azure: AzureSettings) -> tuple[Candidate, ...]:
    """`qwen:azure.candidates`, or the one candidate that `location`, `vmSize`, `priority` and `zone` describe."""
    if azure.candidates:
        return azure.candidates
    assert azure.location is not None and azure.vm_size is not None, "settings require location and vmSize without candidates"
    return (candidate_at(azure.location, azure.vm_size, azure.priority, azure.zone),)


def _setting_to_change(settings: Settings) -> str:
    return ("qwen:azure.candidates" if _azure(settings).candidates
            else "qwen:azure.vmSize / qwen:azure.location (or list alternatives in qwen:azure.candidates)")


def _suggestions(answers: AzureAnswers, settings: Settings, tried: Sequence[Candidate], image_sku: str) -> list[str]:
    """Catalog sizes that pass every check in the locations already asked (no further calls), each
    at the tensor-parallel size of its GPUs."""
    unpinned = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"tensor_parallel_size": None})})
    found = []
    for location in dict.fromkeys(c.location for c in tried):
        for priority in dict.fromkeys(c.priority for c in tried if c.location == location):
            for size in (k for k in GPU_SIZES if k.startswith("Standard_")):
                candidate = candidate_at(location, size, priority, None)
                if any(candidate.same_place(t) for t in tried):
                    continue
                _, problems = sized_for(unpinned, candidate)
                if not problems and not answers.problems(candidate, image_sku):
                    found.append(f"{{location: {location}, vmSize: {size}, priority: {priority}}} "
                                 f"(tensor parallel {GPU_SIZES[size].gpus})")
    return found


def place(settings: Settings, make_client: Callable[[str], Any] | None = None,
          own_outputs: Callable[[], Mapping[str, Any]] | None = None) -> tuple[Settings, Placement]:
    """Choose the VM's place among the candidates; return the settings resolved for it and the reason.

    The place is decided only while the stack has no VM: once Azure has the VM, its place is kept
    as long as it is still a candidate (checks of capacity and quota are moot then: the VM holds
    them). Removing it from the candidates is the explicit way to move the VM, which replaces it."""
    az, stack = _azure(settings), settings.stack
    candidates = candidates_of(az)
    image_sku = az.image.sku
    sized = [sized_for(settings, c) for c in candidates]
    enabled = settings.preflight.enabled
    answers: AzureAnswers | None = None
    try:
        if enabled:
            subscription = subscription_id()
            if not subscription:
                raise PreflightError(stack, [
                    "no Azure subscription to check: set `pulumi config set azure-native:subscriptionId <id>` (or "
                    f"ARM_SUBSCRIPTION_ID), or `az login` and `az account set -s <id>`; {OFFLINE_FIX}"])
            answers = AzureAnswers((make_client or connect)(subscription), subscription)
            kept, kept_source = answers.existing_vm(az.resource_group_name, az.vm_name), "the stack's VM"
        else:
            try:
                previous = (own_outputs or read_own_outputs)()
            except Exception as err:  # noqa: BLE001 - an engine without a backend answers with a plain Exception
                pulumi.log.warn(f"could not read this stack's last outputs ({err}); the placement is not kept: if the "
                                "VM is elsewhere, this run shows it replaced")
                previous = {}
            kept, kept_source = previous_placement(previous), "the last placement output"
        if kept is not None:
            index = next((i for i, c in enumerate(candidates) if c.same_place(kept)), None)
            if index is not None:
                resolved, problems = sized[index]
                if problems:
                    raise PreflightError(stack, problems + [
                        f"{kept_source} is {kept.label()}; to move it (replaces the VM), remove or change this entry "
                        f"of {_setting_to_change(settings)}"])
                reason = (f"kept: {kept_source} is {kept.label()}; remove it from {_setting_to_change(settings)} to move "
                          "the VM (replaces it)")
                return resolved, Placement(index, candidates[index], _tensor_parallel_size(resolved), reason, enabled)
            pulumi.log.warn(f"{kept_source} is {kept.label()}, which is no longer among the candidates: the VM moves to "
                            "the first candidate that passes, which replaces it")
            if answers is not None:
                answers.release(kept)
        skipped: list[Skipped] = []
        for index, (candidate, (resolved, problems)) in enumerate(zip(candidates, sized, strict=True)):
            if not problems and answers is not None:
                problems = answers.problems(candidate, image_sku)
            if not problems:
                if answers is not None:
                    reason = "the first candidate that passed the preflight" if index else "passed the preflight"
                else:
                    reason = ("the first candidate the model fits; not checked with Azure (qwen:preflight.enabled is false): "
                              "restrictions and quotas are unknown")
                    pulumi.log.warn(f"qwen:preflight.enabled is false: {candidate.label()} was NOT checked for "
                                    "restrictions or quota; `pulumi up` may fail at the VM")
                return resolved, Placement(index, candidate, _tensor_parallel_size(resolved), reason,
                                           answers is not None, tuple(skipped))
            skipped.append(Skipped(index, candidate, tuple(problems)))
        lines = [p for s in skipped for p in s.problems]
        suggestions = _suggestions(answers, settings, candidates, image_sku) if answers is not None else []
        if suggestions:
            pinned = settings.serving.tensor_parallel_size is not None
            lines.append(f"these pass the same checks: {'; '.join(suggestions)}; add one to qwen:azure.candidates"
                         + (" and unset qwen:serving.tensorParallelSize" if pinned else ""))
        lines.append(f"no candidate passed: change {_setting_to_change(settings)}")
        raise PreflightError(stack, lines)
    except PreflightError:
        raise
    except Exception as err:  # an Azure SDK error: no login, no access, no network
        from azure.core.exceptions import AzureError

        if not isinstance(err, AzureError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PreflightError(stack, [
            f"could not ask Azure ({type(err).__name__}: {first}); run `az login` (the login the azure-native provider "
            f"uses) and check access to the subscription, {OFFLINE_FIX}"]) from err

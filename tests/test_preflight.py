"""The capacity and quota preflight (issue 11): Azure answers in the SDK's own model classes from
REST-shaped fixtures, Aliyun answers through Pulumi mocks; never a network."""

import copy
import json
from typing import Any

import pulumi
import pytest
import yaml
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.compute.models import ResourceSku, Usage, VirtualMachine

from stacks.preflight import PreflightError
from stacks.preflight import azure as preflight_azure
from stacks.preflight.azure import candidates_of, find_sku, find_subscription_id, quota_problems, sku_problems
from stacks.settings import AzureCandidate, SettingsError, parse_settings
from tests.azure_fakes import (
    TEST_SUBSCRIPTION,
    FakeComputeClient,
    recorded_skus,
    recorded_usages,
    restrict,
    set_usage,
    vm_answer,
)
from tests.azure_fakes import _VirtualMachines as VirtualMachinesFake
from tests.harness import ROOT, TEST_CIDR, CloudMocks, PreviewMocks, run_stack

NC48, H100 = "Standard_NC48ads_A100_v4", "Standard_NC40ads_H100_v5"


def at(location, vm_size, priority="Spot", zone=None) -> AzureCandidate:
    """A candidate as `qwen:azure.candidates` declares it."""
    return AzureCandidate.model_validate({"location": location, "vmSize": vm_size, "priority": priority, "zone": zone})


SPOT_UK = at("uksouth", NC48)


def skus(location="uksouth", data=None):
    return [ResourceSku(s) for s in (data or recorded_skus())[location]]


def usages(location="uksouth", data=None):
    return [Usage(u) for u in (data or recorded_usages())[location]]


# ---------------------------------------------------------------------------- single checks


def test_recorded_answers_pass():
    sku = find_sku(skus(), SPOT_UK)
    assert sku is not None and sku.family == "standardNCADSA100v4Family"
    assert sku_problems(SPOT_UK, sku, "22_04-lts-gen2") == []
    assert quota_problems(SPOT_UK, sku, usages(), TEST_SUBSCRIPTION) == []


def test_size_not_offered_in_the_region():
    candidate = at("westeurope", H100, "Spot")
    assert find_sku(skus("westeurope"), candidate) is None
    [problem] = sku_problems(candidate, None, "22_04-lts-gen2")
    assert problem.startswith(f"{H100} Spot in westeurope: the size is not offered in westeurope")
    assert f"az vm list-skus -l westeurope --size {H100} --all" in problem


def test_size_restricted_for_the_subscription():
    data = restrict(recorded_skus(), "uksouth", NC48)
    [problem] = sku_problems(SPOT_UK, find_sku(skus(data=data), SPOT_UK), "22_04-lts-gen2")
    assert "restricted for this subscription in uksouth (reasonCode NotAvailableForSubscription)" in problem


def test_zone_restriction_applies_to_that_zone_only():
    data = restrict(recorded_skus(), "uksouth", NC48, kind="Zone", zones=["2"])
    sku = find_sku(skus(data=data), SPOT_UK)
    [problem] = sku_problems(at("uksouth", NC48, "Spot", "2"), sku, "22_04-lts-gen2")
    assert "zone 2 is restricted for this subscription (restricted zones: 2); use zone 1 or 3" in problem
    assert sku_problems(at("uksouth", NC48, "Spot", "1"), sku, "22_04-lts-gen2") == []
    assert sku_problems(SPOT_UK, sku, "22_04-lts-gen2") == []  # regional placement: Azure picks a free zone


def test_zone_the_size_is_not_offered_in():
    [problem] = sku_problems(at("uksouth", NC48, "Spot", "4"), find_sku(skus(), SPOT_UK), "22_04-lts-gen2")
    assert "not offered in zone 4 of uksouth (zones: 1, 2, 3)" in problem


def test_image_generation_must_match_the_size():
    [problem] = sku_problems(SPOT_UK, find_sku(skus(), SPOT_UK), "22_04-lts")
    assert "boots Hyper-V V2 images but qwen:azure.image.sku '22_04-lts' is V1" in problem


def test_spot_quota_too_small():
    data = set_usage(recorded_usages(), "uksouth", "lowPriorityCores", current=0, limit=24)
    [problem] = quota_problems(SPOT_UK, find_sku(skus(), SPOT_UK), usages(data=data), TEST_SUBSCRIPTION)
    assert "quota 'Total Regional Low-priority vCPUs' (lowPriorityCores) has 24 of 24 vCPUs free" in problem
    assert "the size needs 48; request a limit of at least 48 for uksouth" in problem
    assert preflight_azure.QUOTA_PAGE in problem and TEST_SUBSCRIPTION in problem


def test_on_demand_needs_the_family_and_the_regional_quota():
    regular = at("uksouth", H100, "Regular")
    sku = find_sku(skus(), regular)
    [problem] = quota_problems(regular, sku, usages(), TEST_SUBSCRIPTION)
    assert "'Standard NCadsH100v5 Family vCPUs' (standardNCadsH100v5Family) has 0 of 0 vCPUs free" in problem
    data = set_usage(set_usage(recorded_usages(), "uksouth", "standardNCadsH100v5Family", 0, 40), "uksouth", "cores", 70, 100)
    [problem] = quota_problems(regular, sku, usages(data=data), TEST_SUBSCRIPTION)
    assert "'Total Regional vCPUs' (cores) has 30 of 100 vCPUs free" in problem
    # Spot does not draw on either
    assert quota_problems(at("uksouth", H100, "Spot"), sku, usages(data=data), TEST_SUBSCRIPTION) == []


# ---------------------------------------------------------------------------- settings


def uksouth_raw(**azure_changes) -> dict:
    config = yaml.safe_load((ROOT / "Pulumi.uksouth.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: copy.deepcopy(v) for k, v in config.items() if k.startswith("qwen:")}
    raw["access"] = {"allowedCidrs": [TEST_CIDR]}
    raw["azure"].update(azure_changes)
    return raw


def candidates_raw(candidates) -> dict:
    """The uksouth stack with candidates instead of location, vmSize and tensorParallelSize."""
    raw = uksouth_raw(candidates=candidates)
    del raw["azure"]["location"], raw["azure"]["vmSize"], raw["serving"]["tensorParallelSize"]
    return raw


def problems_of(raw) -> list[str]:
    with pytest.raises(SettingsError) as err:
        parse_settings("uksouth", raw)
    return err.value.problems


def test_candidates_are_parsed_and_checked():
    settings = parse_settings("uksouth", candidates_raw([
        {"location": "uksouth", "vmSize": NC48, "priority": "Spot"},
        {"location": "westeurope", "vmSize": NC48},
        {"location": "uksouth", "vmSize": H100, "priority": "Regular", "zone": 2},
    ]))
    assert settings.azure is not None
    assert settings.azure.candidates == (SPOT_UK, at("westeurope", NC48), at("uksouth", H100, "Regular", "2"))
    assert settings.azure.gpu is None and settings.serving.tensor_parallel_size is None
    problems = problems_of(candidates_raw([{"location": "UK South", "vmSize": "NC48", "priority": "spot", "size": 1}]))
    assert sorted(p.split(": ", 1)[0] for p in problems) == [
        f"qwen:azure.candidates[0].{key}" for key in ("location", "priority", "size", "vmSize")]
    assert any("'UK South' is not an Azure region name such as uksouth" in p for p in problems)
    assert any("'NC48' is not in the GPU size catalog" in p for p in problems)
    twice = [{"location": "uksouth", "vmSize": NC48}, {"location": "uksouth", "vmSize": NC48}]
    assert problems_of(candidates_raw(twice)) == [
        f"qwen:azure.candidates: {NC48} Spot in uksouth is listed twice; remove the second entry"]
    assert problems_of(candidates_raw([])) == [
        "qwen:azure.candidates: is empty; list at least one {location, vmSize}, or remove it"]
    raw = candidates_raw([{"location": "uksouth", "vmSize": NC48}])
    raw["preflight"] = {"enabled": "maybe"}
    assert problems_of(raw) == ["qwen:preflight.enabled: must be true or false, got 'maybe'"]


def test_candidates_replace_the_place_keys_in_settings():
    raw = uksouth_raw(candidates=[{"location": "uksouth", "vmSize": NC48}], priority="Regular", zone="1")
    assert problems_of(raw) == [
        f"qwen:azure.{key}: is decided by qwen:azure.candidates; remove it (or remove candidates)"
        for key in ("location", "vmSize", "priority", "zone")]
    settings = parse_settings("uksouth", candidates_raw([{"location": "uksouth", "vmSize": NC48}]))
    assert settings.azure is not None
    assert settings.azure.candidates == (SPOT_UK,) and settings.serving.tensor_parallel_size is None
    assert settings.preflight.enabled is True


def test_without_candidates_the_place_keys_are_the_one_candidate():
    raw = uksouth_raw(priority="Regular", zone=1)
    azure = parse_settings("uksouth", raw).azure
    assert azure is not None and candidates_of(azure) == (at("uksouth", NC48, "Regular", "1"),)
    del raw["azure"]["location"]
    assert problems_of(raw) == [
        "qwen:azure.location: is required; set it with `pulumi config set --path 'qwen:azure.location' uksouth -s uksouth`"]
    raw["azure"]["location"] = "uksouth"
    del raw["serving"]["tensorParallelSize"]
    assert problems_of(raw) == [
        "qwen:serving.tensorParallelSize: is required; set it with "
        "`pulumi config set --path 'qwen:serving.tensorParallelSize' 2 -s uksouth`"]


def test_subscription_comes_from_the_provider_then_the_cli_profile(tmp_path):
    profile = {"installationId": "x", "subscriptions": [
        {"id": "11111111-0000-0000-0000-000000000000", "name": "other", "state": "Enabled", "isDefault": False},
        {"id": "22222222-0000-0000-0000-000000000000", "name": "dev", "state": "Enabled", "isDefault": True}]}
    (tmp_path / "azureProfile.json").write_text(json.dumps(profile), encoding="utf-8-sig")  # the CLI writes a BOM
    assert find_subscription_id(None, {}, tmp_path) == "22222222-0000-0000-0000-000000000000"
    assert find_subscription_id(None, {"AZURE_SUBSCRIPTION_ID": "a"}, tmp_path) == "a"
    assert find_subscription_id(None, {"AZURE_SUBSCRIPTION_ID": "a", "ARM_SUBSCRIPTION_ID": "b"}, tmp_path) == "b"
    assert find_subscription_id("c", {"ARM_SUBSCRIPTION_ID": "b"}, tmp_path) == "c"
    assert find_subscription_id(None, {}, tmp_path / "none") is None


# ---------------------------------------------------------------------------- the program under mocks

CANDIDATES = [
    {"location": "uksouth", "vmSize": NC48, "priority": "Spot"},
    {"location": "westeurope", "vmSize": NC48, "priority": "Spot"},
    {"location": "uksouth", "vmSize": H100, "priority": "Spot"},
]


def candidate_overrides(candidates=CANDIDATES) -> dict:
    raw = candidates_raw(candidates)
    return {"azure": raw["azure"], "serving": raw["serving"]}


@pytest.fixture
def warnings(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: seen.append(message))
    return seen


def test_first_candidate_failing_second_chosen(monkeypatch):
    client = FakeComputeClient(usages=set_usage(recorded_usages(), "uksouth", "lowPriorityCores", 0, 24))
    run = run_stack("uksouth", monkeypatch, azure_client=client, **candidate_overrides())
    placement = run.outputs["placement"]
    assert placement["location"] == "westeurope" and placement["vmSize"] == NC48 and placement["candidate"] == 1
    assert placement["reason"] == "the first candidate that passed the preflight" and placement["checked"] is True
    [skipped] = placement["skipped"]
    assert skipped["candidate"] == 0 and skipped["location"] == "uksouth"
    assert "has 24 of 24 vCPUs free" in skipped["problems"][0]
    assert run.one("azure-native:resources:ResourceGroup").inputs["location"] == "westeurope"
    vm = run.one("azure-native:compute:VirtualMachine")
    assert vm.inputs["location"] == "westeurope" and vm.inputs["priority"] == "Spot"
    assert ("virtual_machines.get", "rg-qwen-uksouth", "vm-qwen-nc48") in client.calls
    assert ("resource_skus.list", "westeurope") in client.calls


def test_fallback_to_one_h100_sets_tensor_parallel_one(monkeypatch):
    data = restrict(restrict(recorded_skus(), "uksouth", NC48), "westeurope", NC48, reason="QuotaId")
    run = run_stack("uksouth", monkeypatch, azure_client=FakeComputeClient(skus=data), **candidate_overrides())
    placement = run.outputs["placement"]
    assert (placement["vmSize"], placement["tensorParallelSize"], placement["candidate"]) == (H100, 1, 2)
    assert [s["candidate"] for s in placement["skipped"]] == [0, 1]
    assert "reasonCode QuotaId" in placement["skipped"][1]["problems"][0]
    assert run.one("azure-native:compute:VirtualMachine").inputs["hardwareProfile"]["vmSize"] == H100
    assert "TP=1" in run.commands()["vllm-serve"].inputs["create"]


def test_a_candidate_the_model_does_not_fit_is_skipped(monkeypatch):
    overrides = candidate_overrides([{"location": "uksouth", "vmSize": H100}, {"location": "uksouth", "vmSize": NC48}])
    overrides["serving"]["tensorParallelSize"] = 2  # pinned: a one-GPU size cannot take it
    run = run_stack("uksouth", monkeypatch, **overrides)
    placement = run.outputs["placement"]
    assert placement["vmSize"] == NC48
    assert "tensorParallelSize: 2 does not match the 1 GPU(s)" in placement["skipped"][0]["problems"][0]


def test_regular_candidate_in_a_zone_builds_an_on_demand_zonal_vm(monkeypatch):
    usages = set_usage(recorded_usages(), "uksouth", "standardNCadsH100v5Family", 0, 40)
    overrides = candidate_overrides([{"location": "uksouth", "vmSize": H100, "priority": "Regular", "zone": "1"}])
    run = run_stack("uksouth", monkeypatch, azure_client=FakeComputeClient(usages=usages), **overrides)
    vm = run.one("azure-native:compute:VirtualMachine")
    assert vm.inputs["priority"] == "Regular" and vm.inputs["zones"] == ["1"]
    assert "evictionPolicy" not in vm.inputs and "billingProfile" not in vm.inputs
    assert {"priority", "zones", "hardwareProfile.vmSize"} <= set(vm.replace_on_changes)
    assert run.outputs["placement"]["zone"] == "1"


def test_placement_kept_once_the_vm_exists(monkeypatch):
    # Our own VM holds the Spot quota now: checking it again would move the VM away.
    client = FakeComputeClient(usages=set_usage(recorded_usages(), "uksouth", "lowPriorityCores", 48, 48),
                               vms={("rg-qwen-uksouth", "vm-qwen-nc48"): vm_answer("uksouth", NC48, "Spot")})
    run = run_stack("uksouth", monkeypatch, azure_client=client, **candidate_overrides())
    placement = run.outputs["placement"]
    assert (placement["location"], placement["candidate"], placement["skipped"]) == ("uksouth", 0, [])
    assert placement["reason"].startswith(f"kept: the stack's VM is {NC48} Spot in uksouth")
    assert not [c for c in client.calls if c[0] == "usage.list"]


def test_vm_no_longer_among_the_candidates_moves(monkeypatch, warnings):
    client = FakeComputeClient(vms={("rg-qwen-uksouth", "vm-qwen-nc48"): vm_answer("uksouth", NC48, None)})  # Regular
    run = run_stack("uksouth", monkeypatch, azure_client=client, **candidate_overrides())
    assert run.outputs["placement"]["candidate"] == 0 and run.outputs["placement"]["priority"] == "Spot"
    assert any("Regular in uksouth, which is no longer among the candidates" in w for w in warnings)


def test_moving_vm_gives_its_quota_back(monkeypatch, warnings):
    # NC48 Spot holds all 48 low-priority vCPUs; a move to NC24 Spot in the same region deletes it first.
    client = FakeComputeClient(usages=set_usage(recorded_usages(), "uksouth", "lowPriorityCores", 48, 48),
                               vms={("rg-qwen-uksouth", "vm-qwen-nc48"): vm_answer("uksouth", NC48, "Spot")})
    overrides = candidate_overrides([{"location": "uksouth", "vmSize": "Standard_NC24ads_A100_v4"}])
    run = run_stack("uksouth", monkeypatch, azure_client=client, **overrides)
    assert run.outputs["placement"]["vmSize"] == "Standard_NC24ads_A100_v4" and run.outputs["placement"]["skipped"] == []


class NoAzure:
    def __getattr__(self, name):
        raise AssertionError(f"the preflight asked Azure ({name}) although it is off")


class PreviousOutputsMocks(CloudMocks):
    """The engine's built-in readStackOutputs, answering with the stack's last outputs."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def call(self, args):
        if args.token == "pulumi:pulumi:readStackOutputs":
            self.invokes.append((args.token, dict(args.args)))
            return {"name": args.args["name"], "outputs": self.outputs, "secretOutputNames": []}
        return super().call(args)


def test_preflight_off_asks_nothing_and_says_so(monkeypatch, warnings):
    run = run_stack("uksouth", monkeypatch, azure_client=NoAzure(), preflight={"enabled": False}, **candidate_overrides())
    placement = run.outputs["placement"]
    assert placement["candidate"] == 0 and placement["checked"] is False
    assert any("qwen:preflight.enabled is false" in w and "NOT checked" in w for w in warnings)


def test_preflight_off_keeps_the_last_placement(monkeypatch, warnings):
    previous = {"placement": {"location": "westeurope", "vmSize": NC48, "priority": "Spot", "zone": None}}
    mocks = PreviousOutputsMocks(previous)
    run = run_stack("uksouth", monkeypatch, mocks=mocks, azure_client=NoAzure(), preflight={"enabled": False},
                    **candidate_overrides())
    assert run.outputs["placement"]["location"] == "westeurope"
    assert run.outputs["placement"]["reason"].startswith("kept: the last placement output")
    read = [a for t, a in mocks.invokes if t == "pulumi:pulumi:readStackOutputs"]
    assert read == [{"name": "organization/qwen-serving/uksouth"}]


def test_preview_with_a_restricted_size_fails_before_any_resource(monkeypatch):
    registered: list[str] = []
    from pulumi.runtime import mocks as pulumi_mocks

    original = pulumi_mocks.MockMonitor.RegisterResource

    def recording(self, request):
        registered.append(request.type)
        return original(self, request)

    monkeypatch.setattr(pulumi_mocks.MockMonitor, "RegisterResource", recording)
    client = FakeComputeClient(skus=restrict(recorded_skus(), "uksouth", NC48))
    with pytest.raises(PreflightError) as err:
        run_stack("uksouth", monkeypatch, mocks=PreviewMocks(), preview=True, azure_client=client)
    assert registered == []
    problems = err.value.problems
    assert "restricted for this subscription in uksouth" in problems[0]
    # another size passes the same checks there: say so, and name the setting to change
    assert problems[1] == (
        "these pass the same checks: {location: uksouth, vmSize: Standard_NC24ads_A100_v4, priority: Spot} (tensor "
        "parallel 1); {location: uksouth, vmSize: Standard_NC40ads_H100_v5, priority: Spot} (tensor parallel 1); "
        "add one to qwen:azure.candidates and unset qwen:serving.tensorParallelSize")
    assert problems[-1] == ("no candidate passed: change qwen:azure.vmSize / qwen:azure.location "
                            "(or list alternatives in qwen:azure.candidates)")


def test_no_azure_login_is_one_line_with_the_fix(monkeypatch):
    class LoggedOutVirtualMachines(VirtualMachinesFake):
        def get(self, resource_group_name: str, vm_name: str, *, expand: str | None = None, **kwargs: Any) -> VirtualMachine:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials.")

    class Unauthenticated(FakeComputeClient):
        def __init__(self):
            super().__init__()
            self.virtual_machines = LoggedOutVirtualMachines(self)

    with pytest.raises(PreflightError) as err:
        run_stack("uksouth", monkeypatch, azure_client=Unauthenticated())
    [problem] = err.value.problems
    assert problem.startswith("could not ask Azure (ClientAuthenticationError: DefaultAzureCredential failed")
    assert "`az login`" in problem and "qwen:preflight.enabled false" in problem


# ---------------------------------------------------------------------------- Aliyun


class AliyunMocks(CloudMocks):
    def __init__(self, quotas=None, **kwargs):
        super().__init__(**kwargs)
        self.quotas = quotas or []

    def call(self, args):
        if args.token == "alicloud:quotas/getQuotas:getQuotas":
            self.invokes.append((args.token, dict(args.args)))
            return {"id": "ecs", "ids": [q["id"] for q in self.quotas], "names": [q["quotaName"] for q in self.quotas],
                    "productCode": "ecs", "quotas": self.quotas}
        return super().call(args)


def gn8is_quota(total, usage):
    """One row of the getQuotas answer (field names of the provider's GetQuotasQuotaResult)."""
    return {"id": "ecs:q_gn8is-vcpu", "quotaActionCode": "q_gn8is-vcpu", "quotaName": "gn8is postpaid vCPU quota",
            "quotaDescription": "Maximum vCPUs of pay-as-you-go ecs.gn8is instances in the region", "quotaType": "CommonQuota",
            "quotaUnit": "vCPU", "totalQuota": total, "totalUsage": usage, "consumable": True, "adjustable": True,
            "applicableRanges": [], "applicableType": "continuous", "unadjustableDetail": ""}


def test_aliyun_sold_nowhere_names_regions_to_try(monkeypatch):
    mocks = CloudMocks(zones_by_type={"ecs.e-c1m2.large": ["cn-hangzhou-h"]})
    with pytest.raises(PreflightError) as err:
        run_stack("aliyun-l20", monkeypatch, mocks=mocks)
    [problem] = err.value.problems
    assert problem.startswith(
        "alicloud:region: ecs.gn8is-2x.8xlarge is sold for a vSwitch in no zone of cn-hangzhou; try cn-shanghai")
    assert "pulumi config set alicloud:region" in problem


def test_aliyun_nas_offered_in_no_gpu_zone(monkeypatch):
    mocks = CloudMocks(nas_offers={"cn-hangzhou-h": [("Performance", "nfs")]})  # GPU zones: j, k
    with pytest.raises(PreflightError) as err:
        run_stack("aliyun-l20", monkeypatch, mocks=mocks)
    [problem] = err.value.problems
    assert problem.startswith("alicloud:region cn-hangzhou: no zone of this region sells ecs.gn8is-2x.8xlarge")
    assert "Performance NFS file system (offered in: cn-hangzhou-h)" in problem
    assert problem.endswith("the keys: qwen:aliyun.downloaderInstanceType, qwen:aliyun.nas.storageType")


def test_aliyun_quota_too_small(monkeypatch):
    with pytest.raises(PreflightError) as err:
        run_stack("aliyun-l20", monkeypatch, mocks=AliyunMocks([gn8is_quota(40.0, 8.0)]))
    [problem] = err.value.problems
    assert "quota 'gn8is postpaid vCPU quota' (q_gn8is-vcpu) has 32 of 40 vCPUs free; 2 x ecs.gn8is-2x.8xlarge need 64" in problem
    assert "request at least 72" in problem


def test_aliyun_quota_with_room_passes(monkeypatch):
    mocks = AliyunMocks([gn8is_quota(128.0, 0.0)])
    run = run_stack("aliyun-l20", monkeypatch, mocks=mocks)
    [(_, args)] = [i for i in mocks.invokes if i[0] == "alicloud:quotas/getQuotas:getQuotas"]
    assert args["productCode"] == "ecs" and args["dimensions"] == [{"key": "regionId", "value": "cn-hangzhou"}]
    assert "placement" not in run.outputs


def test_aliyun_preflight_off(monkeypatch, warnings):
    mocks = AliyunMocks([gn8is_quota(40.0, 8.0)])
    run_stack("aliyun-l20", monkeypatch, mocks=mocks, preflight={"enabled": False})
    assert not [i for i in mocks.invokes if i[0] == "alicloud:quotas/getQuotas:getQuotas"]
    assert any("qwen:preflight.enabled is false" in w for w in warnings)


def test_the_fake_client_has_the_real_clients_signatures():
    import inspect

    real = preflight_azure.connect(TEST_SUBSCRIPTION)  # builds the client and credential; no request is sent
    assert type(real).__name__ == "ComputeManagementClient"
    fake = FakeComputeClient()
    for group, method in (("resource_skus", "list"), ("usage", "list"), ("virtual_machines", "get")):
        real_params = inspect.signature(getattr(getattr(real, group), method)).parameters
        fake_params = inspect.signature(getattr(getattr(fake, group), method)).parameters
        for name, param in real_params.items():
            if param.kind is not param.VAR_KEYWORD:
                assert name in fake_params and fake_params[name].kind == param.kind, (group, method, name)


def test_a_forgotten_fake_cannot_reach_azure():
    # tests/conftest.py refuses every connection beyond loopback, so a test without run_stack's fake fails here
    import socket

    with pytest.raises(ConnectionRefusedError, match="tests never reach the network"):
        socket.create_connection(("management.azure.com", 443), timeout=1)

"""The whole program for stack `uksouth` as configured in Pulumi.uksouth.yaml, under mocks."""

import base64
import json
from itertools import pairwise

import pytest
import yaml

from stacks.outputs import CONTRACT
from tests.harness import ROOT, TEST_CIDR, contract_outputs, fixture, run_stack, step_env


@pytest.fixture(scope="module")
def run():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("uksouth", mp)
    finally:
        mp.undo()


def test_network_is_the_seed_network(run):
    rg = run.one("azure-native:resources:ResourceGroup")
    assert rg.inputs["resourceGroupName"] == "rg-qwen-uksouth" and rg.inputs["location"] == "uksouth"
    vnet = run.one("azure-native:network:VirtualNetwork")
    assert vnet.inputs["virtualNetworkName"] == "vnet-qwen"
    assert vnet.inputs["addressSpace"]["addressPrefixes"] == ["10.10.0.0/16"]
    assert "subnets" not in vnet.inputs  # the subnet is a separate resource only
    subnet = run.one("azure-native:network:Subnet")
    assert subnet.inputs["subnetName"] == "snet-gpu" and subnet.inputs["addressPrefix"] == "10.10.1.0/24"
    nsg = run.one("azure-native:network:NetworkSecurityGroup")
    assert nsg.inputs["networkSecurityGroupName"] == "nsg-gpu"
    pip = run.one("azure-native:network:PublicIPAddress")
    assert pip.inputs["publicIpAddressName"] == "pip-gpu"
    assert pip.inputs["sku"]["name"] == "Standard" and pip.inputs["publicIPAllocationMethod"] == "Static"
    nic = run.one("azure-native:network:NetworkInterface")
    assert nic.inputs["networkInterfaceName"] == "nic-gpu" and nic.inputs["enableAcceleratedNetworking"] is True
    assert nic.inputs["networkSecurityGroup"]["id"] == "gpu-nsg-id"
    ipcfg = nic.inputs["ipConfigurations"][0]
    assert ipcfg["subnet"]["id"] == "gpu-subnet-id" and ipcfg["publicIPAddress"]["id"] == "gpu-pip-id"
    assert not run.of_type("azure-native:network:SecurityRule")  # never both inline and separate


def test_vm_is_the_seed_spot_vm(run):
    vm = run.one("azure-native:compute:VirtualMachine")
    i = vm.inputs
    assert i["vmName"] == "vm-qwen-nc48" and i["hardwareProfile"]["vmSize"] == "Standard_NC48ads_A100_v4"
    assert i["priority"] == "Spot" and i["evictionPolicy"] == "Deallocate" and i["billingProfile"]["maxPrice"] == -1
    assert i["storageProfile"]["imageReference"] == {
        "publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest"}
    disk = i["storageProfile"]["osDisk"]
    assert disk["diskSizeGB"] == 1024 and disk["managedDisk"]["storageAccountType"] == "Premium_LRS"
    assert disk["deleteOption"] == "Delete"
    os_profile = i["osProfile"]
    assert os_profile["adminUsername"] == "azureuser"
    assert os_profile["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert os_profile["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"].startswith("ssh-rsa ")
    assert "adminPassword" not in os_profile
    assert i["securityProfile"]["uefiSettings"] == {"secureBootEnabled": False, "vTpmEnabled": False}
    assert i["networkProfile"]["networkInterfaces"][0]["id"] == "gpu-nic-id"


def test_named_resources_replace_safely(run):
    vm = run.one("azure-native:compute:VirtualMachine")
    assert vm.delete_before_replace
    assert "osProfile.customData" in vm.ignore_changes  # GET VM never returns it: no refresh diff
    assert "storageProfile.imageReference" in vm.replace_on_changes
    for typ in ("NetworkInterface", "PublicIPAddress", "VirtualNetwork", "Subnet", "NetworkSecurityGroup"):
        assert run.one(f"azure-native:network:{typ}").delete_before_replace, typ


def test_custom_data_is_a_cloud_config_without_secrets(run):
    vm = run.one("azure-native:compute:VirtualMachine")
    text = base64.b64decode(vm.inputs["osProfile"]["customData"]).decode()
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["bootcmd"][0][:3] == ["systemctl", "mask", "--now"]
    assert "kkkk" not in text  # the (mocked) API key
    env = next(f for f in doc["write_files"] if f["path"] == "/etc/qwen/node.env")["content"]
    assert "INSTALL_NVIDIA_DRIVER=0" in env  # the extension installs the driver
    assert "vllm/vllm-openai" not in text  # what it serves comes from the prefetch step


def test_prefetch_starts_early_and_downloads_the_weights_to_the_os_disk(run):
    cmds = run.commands()
    prefetch = cmds["prefetch-vm-qwen-nc48"]
    vm = run.one("azure-native:compute:VirtualMachine")
    ext = run.one("azure-native:compute:VirtualMachineExtension")
    assert vm.urn in prefetch.dependencies  # not after the driver: the pull overlaps its install
    assert not run.depends_on(prefetch, ext)
    for flag in ("IMAGE=vllm/vllm-openai:v0.11.0", "PREFETCH_MODEL=1", "MODEL_ID=Qwen/Qwen2.5-14B-Instruct",
                 "MODEL_DIR=/var/lib/qwen/models/Qwen2.5-14B-Instruct"):
        assert flag in prefetch.inputs["create"]
    assert run.depends_on(cmds["ray-vm-qwen-nc48-node-ready"], prefetch)


def test_driver_extension_settings_are_real_ones(run):
    ext = run.one("azure-native:compute:VirtualMachineExtension")
    assert ext.inputs["publisher"] == "Microsoft.HpcCompute" and ext.inputs["type"] == "NvidiaGpuDriverLinux"
    assert ext.inputs["typeHandlerVersion"] == "1.11"
    assert set(ext.inputs["settings"]) <= {"updateOS", "driverVersion", "installCUDA"}
    assert ext.inputs["settings"]["driverVersion"] == "12.8"
    assert ext.inputs["vmName"] == "vm-qwen-nc48" and ext.inputs["resourceGroupName"] == "rg-qwen-uksouth"
    # destroy of an evicted VM must not try to delete the extension on its own
    assert ext.deleted_with == run.one("azure-native:compute:VirtualMachine").urn


def test_everything_is_in_the_seed_resource_group(run):
    rg = run.one("azure-native:resources:ResourceGroup")
    for r in run.resources:
        if r.type.startswith("azure-native:") and r.type != "azure-native:resources:ResourceGroup":
            assert r.inputs["resourceGroupName"] == "rg-qwen-uksouth", r.name
            assert rg.urn in r.dependencies, r.name


def test_nothing_is_open_to_the_internet(run):
    rules = run.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]
    assert sorted(r["destinationPortRange"] for r in rules) == ["22", "8000"]
    for rule in rules:
        assert rule["direction"] == "Inbound" and rule["access"] == "Allow"
        assert rule["sourceAddressPrefixes"] == [TEST_CIDR]
        assert "sourceAddressPrefix" not in rule
    # One VM: vLLM's mp executor and no Ray at all, so no Ray port or dashboard on the machine.
    assert not [name for name in run.commands() if name.startswith("ray-") and not name.endswith("-node-ready")]
    assert step_env(run.commands()["vllm-serve"].inputs["create"])["EXECUTOR"] == "mp"


def test_bootstrap_order(run):
    cmds = run.commands()
    ext = run.one("azure-native:compute:VirtualMachineExtension")
    cloud_init = cmds["gpu-cloud-init"]
    assert run.depends_on(ext, cloud_init), "the driver extension must wait for cloud-init's apt"
    chain = ["ray-vm-qwen-nc48-node-ready", "vllm-serve", "vllm-health",
             "proxy-start", "proxy-smoke", "bench-seed-10k-in-800-out-c1",
             *(f"bench-sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192))]
    assert run.depends_on(cmds[chain[0]], ext)
    for earlier, later in pairwise(chain):
        assert run.depends_on(cmds[later], cmds[earlier]), f"{later} must come after {earlier}"


def test_secrets_never_in_plain_text(run):
    serve = run.commands()["vllm-serve"]
    assert "stdin" in serve.secret_inputs
    assert serve.inputs["logging"] == "none"
    assert {"stdout", "stderr"} <= set(serve.additional_secret_outputs)
    for cmd in run.commands().values():
        assert "kkkk" not in cmd.inputs["create"], cmd.name
    assert run.outputs["apiKey"] == "k" * 40
    # exported as secrets: `pulumi stack output` hides them, state encrypts them
    assert run.secret_outputs == {"apiKey", "sshPrivateKey"}


def test_every_step_targets_the_vm_over_ssh_with_retries(run):
    for cmd in run.commands().values():
        assert "connection" in cmd.secret_inputs  # it carries the private key
        conn = cmd.inputs["connection"]["value"]
        assert conn["host"] == "51.142.202.62" and conn["user"] == "azureuser"
        assert conn["dialErrorLimit"] >= 60
        assert cmd.inputs["triggers"][0] == "5f0c7a52-3c1e-4a59-9d61-0e3c2b7f4a11"  # a new VM re-runs the steps
        assert cmd.inputs["addPreviousOutputInEnv"] is False


def test_serving_waits_for_the_weights_of_the_configured_revision(run):
    serve = run.commands()["vllm-serve"].inputs["create"]
    assert "MODEL_REVISION=main" in serve and "MODEL_DIR=/var/lib/qwen/models/Qwen2.5-14B-Instruct" in serve


def test_benchmark_scenarios(run):
    seed = run.commands()["bench-seed-10k-in-800-out-c1"].inputs["create"]
    for flag in ("INPUT_LEN=10000", "OUTPUT_LEN=800", "NUM_PROMPTS=1", "CONCURRENCY=1", "WARMUPS=1", "RUN_ID=1"):
        assert flag in seed
    assert "--temperature 0 --ignore-eos" in seed and "--save-result" in seed
    assert run.commands()["bench-seed-10k-in-800-out-c1"].inputs["triggers"][1] == "1"


def test_outputs_contract(run):
    assert list(run.outputs) == contract_outputs(ssh_key_generated=True, azure=True)
    o = run.outputs
    assert o["placement"] == {
        "location": "uksouth", "vmSize": "Standard_NC48ads_A100_v4", "priority": "Spot", "zone": None, "candidate": 0,
        "tensorParallelSize": 2, "reason": "passed the preflight", "checked": True, "skipped": []}
    assert o["endpoint"] == "https://51.142.202.62:8000/v1"
    assert o["servedModel"] == "Qwen/Qwen2.5-14B-Instruct"
    assert o["publicIp"] == "51.142.202.62"
    assert o["sshCommand"] == "ssh -i ~/.ssh/qwen-uksouth.pem azureuser@51.142.202.62"
    assert o["nodes"] == [{"name": "vm-qwen-nc48", "publicIp": "51.142.202.62", "privateIp": "10.10.1.4", "gpus": [
        {"index": 0, "name": "NVIDIA A100 80GB PCIe", "memoryMiB": 81920, "driver": "570.172.08"},
        {"index": 1, "name": "NVIDIA A100 80GB PCIe", "memoryMiB": 81920, "driver": "570.172.08"}]}]
    seed = json.loads(fixture("vllm_bench_seed.json"))
    assert o["tokensPerSecond"] == seed["output_throughput"]
    assert list(o["benchmark"]) == ["seed-10k-in-800-out-c1", *(f"sweep-256-in-256-out-c{c}" for c in (1, 8, 32, 64, 128, 192))]
    assert o["benchmark"]["seed-10k-in-800-out-c1"]["median_ttft_ms"] == seed["median_ttft_ms"]


def test_given_ssh_key_is_used_and_not_exported(monkeypatch):
    from tests.harness import stack_config  # noqa: F401  (documents where the overrides go)

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey operator@laptop"
    run = run_stack("uksouth", monkeypatch, access={"allowedCidrs": [TEST_CIDR], "sshPublicKey": key},
                    sshPrivateKey="-----BEGIN OPENSSH PRIVATE KEY-----\noperator\n-----END OPENSSH PRIVATE KEY-----\n")
    assert sorted(r.name for r in run.of_type("tls:index/privateKey:PrivateKey")) == ["proxy-ca-key", "proxy-server-key"]
    vm = run.one("azure-native:compute:VirtualMachine")
    assert vm.inputs["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == key
    assert list(run.outputs) == contract_outputs(ssh_key_generated=False, azure=True)


def test_run_id_re_runs_only_the_benchmarks(run, monkeypatch):
    """A new runId changes every benchmark Command's triggers and nothing else of any resource."""
    rerun = run_stack("uksouth", monkeypatch, benchmark={"runId": "7"})
    before, after = run.commands(), rerun.commands()
    assert set(before) == set(after)
    benches = {name for name in after if name.startswith("bench-")}
    assert len(benches) == 7  # the seed scenario and the six sweep points
    for name in after:
        if name in benches:
            assert before[name].inputs["triggers"] != after[name].inputs["triggers"], name
            assert "7" in after[name].inputs["triggers"] and "7" not in before[name].inputs["triggers"], name
        else:
            assert before[name].inputs == after[name].inputs, name
    others = lambda r: {x.name: x.inputs for x in r.resources  # noqa: E731
                        if x.type not in ("command:remote:Command", "pulumi:pulumi:Stack")}
    assert others(run) == others(rerun)


def test_readme_documents_the_contract():
    from tests.harness import ROOT

    readme = (ROOT / "README.md").read_text()
    for name in CONTRACT:
        assert f"| `{name}` |" in readme, name
    assert "bash .ci/run" in readme and "pulumi up -s uksouth" in readme


def test_bad_settings_stop_before_any_resource(monkeypatch):
    from stacks.settings import SettingsError
    from tests.harness import CloudMocks, RecordingMonitor

    created = []
    original = RecordingMonitor.RegisterResource

    def record(self, request):
        created.append(request.type)
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", record)
    with pytest.raises(SettingsError, match="qwen:serving.tensorParallelSize"):
        run_stack("uksouth", monkeypatch, mocks=CloudMocks(),
                  serving={"image": "vllm/vllm-openai:v0.11.0", "tensorParallelSize": 8})
    assert [t for t in created if t != "pulumi:pulumi:Stack"] == []


def test_a_new_serving_image_re_checks_health_and_re_runs_benchmarks(run, monkeypatch):
    serving = yaml.safe_load((ROOT / "Pulumi.uksouth.yaml").read_text())["config"]["qwen:serving"]
    changed = run_stack("uksouth", monkeypatch, serving={**serving, "image": "vllm/vllm-openai:v0.11.1"})
    before, after = run.commands(), changed.commands()
    for name in ("vllm-health", "bench-seed-10k-in-800-out-c1"):
        assert before[name].inputs["triggers"] != after[name].inputs["triggers"], name
    assert before["gpu-cloud-init"].inputs["triggers"] == after["gpu-cloud-init"].inputs["triggers"]
    # the machine is kept: same cloud-config, so the same replacement trigger
    vm_before = run.one("azure-native:compute:VirtualMachine").inputs["osProfile"]["customData"]
    assert changed.one("azure-native:compute:VirtualMachine").inputs["osProfile"]["customData"] == vm_before
    assert before["prefetch-vm-qwen-nc48"].inputs["create"] != after["prefetch-vm-qwen-nc48"].inputs["create"]


def test_served_only_through_the_tls_proxy(run):
    from tests.test_component_tls_proxy import assert_served_through_the_proxy

    assert_served_through_the_proxy(run, "51.142.202.62", "10.10.1.4", "k" * 40)

"""What an operator relies on around a deployment: reaching the hosts after a failed first `up`
(the README's commands on a `pulumi stack export` document), stopping the Aliyun downloader,
the CI bootstrap, and the README's promise of one `pulumi up`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

from stacks.settings import SettingsError, parse_settings
from tests.harness import ROOT, TEST_CIDR, Run, run_stack
from tests.test_cloudinit_and_scripts import require

README = (ROOT / "README.md").read_text()

# apitype.SecretV1 as `pulumi stack export` writes it (sdk/go/common/apitype/core.go): the secret
# signature, and the value JSON-encoded in `plaintext` with --show-secrets, else in `ciphertext`.
SECRET_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _engine_urn(run: Run, reg) -> str:
    """The URN the engine gives: every ancestor's type (from the root Stack) joined by `$`."""
    by_urn = run.monitor.registrations
    types, parent = [reg.type], reg.parent
    while parent in by_urn:
        types.insert(0, by_urn[parent].type)
        parent = by_urn[parent].parent
    return f"urn:pulumi:{run_stack_name(reg.urn)}::qwen-serving::" + "$".join(["pulumi:pulumi:Stack", *types]) + f"::{reg.name}"


def run_stack_name(urn: str) -> str:
    return urn.split("::")[0].split(":")[-1]


def stack_export(run: Run, show_secrets: bool) -> dict:
    """The document `pulumi stack export [--show-secrets]` prints for the state a failed first update
    leaves: every registered resource with its outputs, and a root Stack without outputs."""

    def secret(value) -> dict:
        encoded = json.dumps(value)
        return {SECRET_KEY: SECRET_SIG, **({"plaintext": encoded} if show_secrets else {"ciphertext": "v1:bm90IHRoZSB2YWx1ZQ=="})}

    stack = run_stack_name(run.resources[0].urn)
    resources = [{"urn": f"urn:pulumi:{stack}::qwen-serving::pulumi:pulumi:Stack::qwen-serving-{stack}",
                  "custom": False, "type": "pulumi:pulumi:Stack", "outputs": {}}]
    for reg in run.resources:
        outputs = {k: secret(v) if k in reg.additional_secret_outputs else v for k, v in reg.state.items()}
        entry = {"urn": _engine_urn(run, reg), "custom": reg.custom, "type": reg.type, "outputs": outputs,
                 "parent": _engine_urn(run, run.monitor.registrations[reg.parent]) if reg.parent in run.monitor.registrations
                 else resources[0]["urn"]}
        if reg.custom:
            entry["id"] = reg.id
        resources.append(entry)
    return {"version": 3, "deployment": {"manifest": {"time": "2026-11-30T10:00:00Z", "magic": "x", "version": "v3.272.0"},
                                         "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:x"}},
                                         "resources": resources}}


def jq(program: str, document: dict, ok: bool = True) -> str:
    require("jq")
    ran = subprocess.run(["jq", "-r", program], input=json.dumps(document), capture_output=True, text=True)
    assert (ran.returncode == 0) is ok, ran.stderr
    return ran.stdout if ok else ran.stderr


def readme_state_block() -> str:
    """The README's shell block that reads the state of a failed first `up`."""
    blocks = re.findall(r"^ *```bash\n(.*?)^ *```", README, flags=re.M | re.S)
    found = [b for b in blocks if "pulumi stack export" in b]
    assert len(found) == 1
    block: str = found[0]
    return block


@pytest.mark.parametrize("stack, user, head_ip", [("uksouth", "azureuser", "51.142.202.62"), ("aliyun-l20", "root", None)])
def test_readme_reads_key_addresses_and_api_key_from_the_state_of_a_failed_first_up(stack, user, head_ip, monkeypatch,
                                                                                      tmp_path):
    run = run_stack(stack, monkeypatch)
    key = run.named("ssh-key").state["privateKeyOpenssh"]
    api_key = run.one("random:index/randomPassword:RandomPassword").state["result"]
    if head_ip is None:
        head_ip = run.named("cluster-gpu-0").state["publicIp"]
    # The README's block, run as is, with a `pulumi` stand-in that prints this state's export.
    require("jq")
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    bin_dir.mkdir()
    (home / ".ssh").mkdir(parents=True)
    for show in (True, False):
        (tmp_path / f"export-{show}.json").write_text(json.dumps(stack_export(run, show)))
    (bin_dir / "pulumi").write_text(
        "#!/usr/bin/env bash\n"
        f'case "$*" in "stack export --show-secrets -s "*) cat {tmp_path}/export-True.json ;;\n'
        f'  "stack export -s "*) cat {tmp_path}/export-False.json ;; *) exit 2 ;; esac\n')
    (bin_dir / "pulumi").chmod(0o755)
    ran = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_state_block()], capture_output=True, text=True,
                         env={**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert ran.returncode == 0, ran.stderr
    key_file, api_key_file = home / ".ssh" / "qwen-uksouth.pem", home / ".qwen-uksouth-api-key"
    assert key_file.read_text() == key  # byte for byte, so ssh reads it
    assert api_key_file.read_text().strip() == api_key
    assert oct(key_file.stat().st_mode & 0o777) == oct(api_key_file.stat().st_mode & 0o777) == "0o600"
    assert head_ip in ran.stdout.split() and key not in ran.stdout and api_key not in ran.stdout
    # A secret is read only with --show-secrets: without it, jq says what is missing.
    for line in readme_state_block().splitlines():
        if "error(" in line:
            program = shlex.split(line.split(" | ", 1)[1])[2]
            assert "add --show-secrets" in jq(program, stack_export(run, False), ok=False)
    assert f"`{user}` on {'Azure' if user == 'azureuser' else 'Aliyun'}" in README


# ---------------------------------------------------------------------------- stopping the downloader


def raw_config(stack: str) -> dict:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("qwen:")}
    raw["access"] = {"allowedCidrs": [TEST_CIDR]}
    return raw


def test_stop_downloader_setting():
    raw = raw_config("aliyun-l20")
    aliyun = parse_settings("aliyun-l20", raw).aliyun
    assert aliyun is not None and aliyun.stop_downloader is False
    raw["aliyun"]["stopDownloader"] = True
    aliyun = parse_settings("aliyun-l20", raw).aliyun
    assert aliyun is not None and aliyun.stop_downloader is True
    raw["aliyun"]["stopDownloader"] = "maybe"
    with pytest.raises(SettingsError) as err:
        parse_settings("aliyun-l20", raw)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith("qwen:aliyun.stopDownloader: ")


def test_readme_flow_stops_the_downloader_after_the_first_up():
    assert ("pulumi config set --path qwen:aliyun.stopDownloader true -s aliyun-l20 && pulumi up -s aliyun-l20"
            in README)


def test_stack_with_the_downloader_stopped(monkeypatch):
    aliyun = raw_config("aliyun-l20")["aliyun"]
    run = run_stack("aliyun-l20", monkeypatch, aliyun={**aliyun, "stopDownloader": True})
    downloader = run.named("cluster-downloader")
    assert downloader.inputs["status"] == "Stopped" and downloader.inputs["stoppedMode"] == "StopCharging"
    assert "userData" in downloader.ignore_changes
    for step in ("cluster-model-download", "cluster-preflight"):
        assert sorted(run.named(step).ignore_changes) == ["connection", "create"]
    assert run.outputs["tokensPerSecond"] > 0  # the mocks' last download holds the stack's model
    nodes = {node["name"]: node for node in run.outputs["nodes"]}
    assert nodes["qwen-l20-downloader"]["publicIp"] == "" and nodes["qwen-l20-gpu-0"]["publicIp"]


def test_stack_refuses_another_revision_while_the_downloader_is_stopped(monkeypatch):
    raw = raw_config("aliyun-l20")
    with pytest.raises(Exception, match="qwen:aliyun.stopDownloader is true, but the NAS holds"):
        run_stack("aliyun-l20", monkeypatch, aliyun={**raw["aliyun"], "stopDownloader": True},
                  model={**raw["model"], "revision": "v2"})


# ---------------------------------------------------------------------------- CI bootstrap and README


def test_ci_installs_python3_venv_when_venv_cannot_work(tmp_path):
    """.ci/run's install part, with every tool present but python3 without ensurepip."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stand_ins = {"cloud-init": "", "shellcheck": "", "jq": "", "nginx": "", "curl": "", "openssl": "",
                 "python3": '[ "$*" != "-c import ensurepip" ] || exit 1',
                 "apt-get": f'echo "apt-get $*" >>{calls}', "sudo": '"$@"', "id": "echo 0"}
    for tool, body in stand_ins.items():
        (bin_dir / tool).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    script = (ROOT / ".ci" / "run").read_text()
    install_part = (script[:script.index("\ninstall_actionlint()")].replace('cd "$(dirname "$0")/.."', "")
                    + "\ninstall_debian_packages\n")
    ran = subprocess.run(["bash", "-c", install_part], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    install = calls.read_text().splitlines()[-1]
    assert install.startswith("apt-get install") and "python3-venv" in install.split()


def test_readme_intro_says_how_many_setup_steps_precede_the_one_pulumi_up():
    intro = README.split("\n## ", 1)[0]
    setup = README.split("### One-time setup for `pulumi up`", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^(\d+)\. ", setup, flags=re.M)
    assert steps == [str(i) for i in range(1, len(steps) + 1)] and len(steps) == 5
    words = {3: "three", 4: "four", 5: "five", 6: "six"}
    assert f"one `pulumi up` per stack after {words[len(steps)]} one-time setup steps" in " ".join(intro.split())

"""The GitHub workflows (.github/workflows): valid for actionlint, every action pinned to a commit,
and the jobs the platform relies on: credential-free checks on every pull request, a preview of
each stack with the policy pack, and `up` on manual dispatch only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
# The stacks that rent real clouds (other stack files, such as test tiers', are not previewed).
STACKS = ["aliyun-l20", "aliyun-l20-fp8", "uksouth"]
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())  # keys: str, and True (below)
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def actionlint() -> str:
    found = shutil.which("actionlint") or str(ROOT / "venv" / "bin" / "actionlint")
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: bash .ci/run installs it")
        pytest.skip("actionlint is not installed here: bash .ci/run installs it")
    return found


def test_cloud_stacks_exist():
    for stack in STACKS:
        assert (ROOT / f"Pulumi.{stack}.yaml").exists(), stack


def test_actionlint_accepts_the_workflows():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert [Path(f).name for f in files] == ["pr.yml", "up.yml"]
    result = subprocess.run([actionlint(), "-no-color", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_refuses_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ matrix.nothing }}\n")
    result = subprocess.run([actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "matrix" in result.stdout


@pytest.mark.parametrize("name", ["pr.yml", "up.yml"])
def test_every_action_is_pinned_to_a_commit_with_its_version(name):
    text = (WORKFLOWS / name).read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for ref, comment in uses:
        assert PINNED.match(ref), f"{ref} is not pinned to a commit SHA"
        assert re.match(r"\s*# v\d+\.\d+\.\d+$", comment), f"{ref}: say which version the SHA is (# vX.Y.Z)"


def test_pr_checks_run_for_every_pull_request_without_credentials():
    pr = load("pr.yml")
    assert set(pr["on"]) == {"pull_request"}
    checks = pr["jobs"]["checks"]
    text = yaml.safe_dump(checks)
    assert "secrets." not in text and "id-token" not in text  # works for forks
    runs = [s.get("run", "") for s in checks["steps"]]
    ci_run = (ROOT / ".ci" / "run").read_text()
    for command in ("venv/bin/ruff check", "venv/bin/mypy"):
        assert command in runs and command in ci_run.splitlines(), command  # the same checks as .ci/run
    assert "bash .ci/run install" in runs and '"${1:-}" = install' in ci_run
    tests = [r for r in runs if "pytest" in r]
    assert any("tests/test_policy_rules.py" in r and "tests/test_policy_pack.py" in r for r in tests)
    assert any("--ignore-glob='tests/test_policy_*.py'" in r for r in tests)


def test_pr_previews_every_stack_with_the_policy_pack():
    pr = load("pr.yml")
    preview = pr["jobs"]["preview"]
    assert preview["needs"] == "checks"
    assert sorted(m["stack"] for m in preview["strategy"]["matrix"]["include"]) == STACKS
    assert preview["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    assert preview["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert preview["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    [pulumi] = steps_using(preview, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["comment-on-pr"] is True and pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    [login] = steps_using(preview, "azure/login")
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}  # OIDC: no client secret
    assert pulumi["env"]["ARM_USE_OIDC"] == "${{ matrix.cloud == 'azure' }}"
    for key in ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_REGION"):
        assert f"secrets.{key}" in pulumi["env"][key]


def test_pr_preview_without_secrets_says_so_and_passes():
    preview = load("pr.yml")["jobs"]["preview"]
    gate = preview["steps"][0]
    assert gate["id"] == "creds" and "$GITHUB_STEP_SUMMARY" in gate["run"] and "exit 1" not in gate["run"]
    for step in preview["steps"][1:]:
        assert step["if"].startswith("steps.creds.outputs.ready == 'true'"), step.get("name", step.get("uses"))
    # The gate itself decides in bash: run it as the runner would, with and without credentials.
    for env, ready in (({"HAS_STATE": "false", "HAS_AZURE": "false", "HAS_ALIYUN": "false"}, "false"),
                       ({"HAS_STATE": "true", "HAS_AZURE": "true", "HAS_ALIYUN": "false"}, "true")):
        summary, output = gate_run(gate["run"], {"CLOUD": "azure", **env})
        assert f"ready={ready}" in output
        assert ("skipped" in summary) is (ready == "false")


def gate_run(script: str, env: dict[str, str]) -> tuple[str, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        summary, output = Path(tmp) / "summary", Path(tmp) / "output"
        script = script.replace("${{ matrix.stack }}", "uksouth")
        subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True, timeout=30,
                       env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output), **env})
        return (summary.read_text() if summary.exists() else ""), output.read_text()


def test_up_runs_on_manual_dispatch_only():
    up = load("up.yml")
    assert set(up["on"]) == {"workflow_dispatch"}
    stack = up["on"]["workflow_dispatch"]["inputs"]["stack"]
    assert stack["type"] == "choice" and sorted(stack["options"]) == STACKS
    job = up["jobs"]["up"]
    [pulumi] = steps_using(job, "pulumi/actions")
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["stack-name"] == "${{ inputs.stack }}"
    assert up["concurrency"]["cancel-in-progress"] is False


def test_workflows_pin_the_pulumi_cli_of_the_sdk():
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert sdk
    for name, job in (("pr.yml", "preview"), ("up.yml", "up")):
        [pulumi] = steps_using(load(name)["jobs"][job], "pulumi/actions")
        assert pulumi["with"]["pulumi-version"] == sdk.group(1)

"""The outputs contract (stacks/outputs.py): every stack exports exactly it, with the declared types
and secrecy, and the README's table is the one generated from it."""

from __future__ import annotations

import dataclasses
import re

import pulumi
import pytest

from stacks.outputs import CONTRACT, CONTRACT_OUTPUTS, CONTRACT_VERSION, StackOutputs
from tests.harness import ROOT, contract_outputs, run_pulumi, run_stack
from tools import contract_table

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@pytest.fixture(scope="module", params=["uksouth", "aliyun-l20"])
def stack_run(request):
    mp = pytest.MonkeyPatch()
    try:
        yield request.param, run_stack(request.param, mp)
    finally:
        mp.undo()


def test_every_stack_exports_exactly_the_contract(stack_run):
    stack, run = stack_run
    assert run.exported == contract_outputs(ssh_key_generated=True, azure=stack == "uksouth")
    assert run.outputs["contractVersion"] == CONTRACT_VERSION


def test_exported_values_have_the_declared_types(stack_run):
    _, run = stack_run
    for name, value in run.outputs.items():
        if name in CONTRACT:
            wanted = CONTRACT[name].python_type
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if wanted is float else isinstance(value, wanted)
            assert ok, f"{name}: {type(value).__name__}, the contract says {wanted.__name__}"


def test_secret_outputs_are_exported_as_secrets():
    values = StackOutputs(endpoint="http://203.0.113.9:8000/v1", served_model="m", api_key="k" * 40,
                          public_ip="203.0.113.9", ssh_command="ssh x", nodes=[], tokens_per_second=1.5,
                          benchmark={}, ca_certificate="-----BEGIN CERTIFICATE-----\n", roofline_tokens_per_second=3.0,
                          efficiency=0.5, cost_per_million_tokens=185.19, generated_ssh_private_key="key")
    exported: list[str] = []

    def program():
        exports = values.as_exports()
        exported.extend(exports)
        return {name: pulumi.Output.from_input(pulumi.Output.from_input(value).is_secret()) for name, value in exports.items()}

    secret = run_pulumi(program).outputs
    assert exported == [*CONTRACT, "sshPrivateKey"]  # with every field given, nothing is left out
    assert {name for name, is_secret in secret.items() if is_secret} == {
        spec.name for spec in CONTRACT_OUTPUTS if spec.secret} | {"sshPrivateKey"}
    assert [spec.name for spec in CONTRACT_OUTPUTS if spec.secret] == ["apiKey"]


def test_declarations_are_complete_and_consistent():
    assert SEMVER.match(CONTRACT_VERSION)
    assert len(CONTRACT) == len(CONTRACT_OUTPUTS)
    assert {"contractVersion", "caCertificate", "apiKey"} <= set(CONTRACT)
    fields = [f.name for f in dataclasses.fields(StackOutputs)]
    attributes = [spec.attribute for spec in CONTRACT_OUTPUTS if spec.attribute]
    assert sorted(fields) == sorted([*attributes, "generated_ssh_private_key", "placement"])
    for spec in CONTRACT_OUTPUTS:
        assert re.fullmatch(r"[a-z][A-Za-z]*", spec.name) and spec.description and spec.example, spec.name
        assert spec.python_type in (str, float, list, dict), spec.name


def test_readme_table_is_generated_from_the_contract():
    readme = (ROOT / "README.md").read_text()
    assert contract_table.replace_table(readme) == readme, "run: python -m tools.contract_table --write"
    for spec in CONTRACT_OUTPUTS:
        assert f"| `{spec.name}` |" in readme


def test_contract_table_check_fails_on_a_stale_readme(tmp_path, monkeypatch, capsys):
    stale = (ROOT / "README.md").read_text().replace("| `servedModel` | string |", "| `servedModel` | number |")
    monkeypatch.setattr(contract_table, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(stale)
    assert contract_table.main(["--check"]) == 1
    assert contract_table.main(["--write"]) == 0
    assert contract_table.main(["--check"]) == 0


def test_an_optional_output_without_a_value_is_absent_not_null():
    from stacks.outputs import OPTIONAL_OUTPUTS

    assert OPTIONAL_OUTPUTS == {"costPerMillionTokens"}
    values = StackOutputs(endpoint="https://203.0.113.9:8000/v1", served_model="m", api_key="k", public_ip="203.0.113.9",
                          ssh_command="ssh x", nodes=[], tokens_per_second=1.5, benchmark={}, ca_certificate="pem",
                          roofline_tokens_per_second=3.0, efficiency=0.5)
    assert list(values.as_exports()) == [name for name in CONTRACT if name != "costPerMillionTokens"]

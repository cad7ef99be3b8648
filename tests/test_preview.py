"""`pulumi preview` (PR checks) must never need a machine: nothing the program does before `up`
reads what a host would answer, so it works while a Spot VM is evicted."""

import pytest

import components.parsers as parsers
from tests.harness import PreviewMocks, contract_outputs, run_stack


@pytest.mark.parametrize("stack", ["uksouth", "aliyun-l20", "aliyun-l20-fp8"])
def test_preview_registers_everything_without_host_output(stack, monkeypatch):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("a parser of host output ran during preview")

    for name in ("parse_nvidia_smi_csv", "parse_ray_status", "parse_benchmark_result"):
        monkeypatch.setattr(parsers, name, must_not_run)
    import components.benchmark
    import components.ray_cluster

    monkeypatch.setattr(components.ray_cluster, "parse_nvidia_smi_csv", must_not_run)
    monkeypatch.setattr(components.ray_cluster, "parse_ray_status", must_not_run)
    monkeypatch.setattr(components.benchmark, "parse_benchmark_result", must_not_run)

    run = run_stack(stack, monkeypatch, mocks=PreviewMocks(), preview=True)
    commands = run.commands()
    assert any(name.startswith("bench-seed-") for name in commands)
    assert {"vllm-serve", "vllm-health"} <= set(commands)
    # Ray only across several hosts (aliyun-l20); one VM serves with the mp executor.
    assert ({"ray-head", "ray-gpus"} <= set(commands)) == (stack == "aliyun-l20")
    # every contract output is registered, their values simply unknown until `up`
    assert run.exported == contract_outputs(ssh_key_generated=True, azure=stack == "uksouth")
    assert run.outputs == {}  # nothing resolvable: preview saw no host

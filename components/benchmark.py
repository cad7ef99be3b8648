"""Benchmark: `vllm bench serve` scenarios against a running service, each its own remote Command.

The Command's stdout is exactly the result JSON, parsed here into the stack's `benchmark` output.
Scenarios run one after another (never concurrently, which would skew each other). They re-run
when ``run_id`` changes or the serve command changes, and never touch the machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.accelerators import container_env, device_args
from components.parsers import parse_benchmark_result
from components.remote import GpuHost, remote_step


@dataclass(frozen=True)
class Scenario:
    """One `vllm bench serve` run on the random dataset: prompt and output lengths in tokens,
    how many prompts, how many in flight at once, and unmeasured warm-up requests first."""

    name: str
    input_tokens: int
    output_tokens: int
    num_prompts: int
    concurrency: int
    warmups: int


@dataclass
class BenchmarkArgs:
    """head: host to run from (the vLLM host, so the network is not measured). service_ready: the
    step after which the service answers (and nothing else runs on it). service_fingerprint:
    changes with the serve command (a change re-runs the benchmarks). image, model_root, model_dir:
    for the tokenizer. served_name, port: the model and vLLM's port on 127.0.0.1. scenarios: what to
    run, the headline scenario among them. headline: its name. run_id: change it to re-run.
    timeout_minutes: per scenario."""

    head: GpuHost
    service_ready: pulumi.Resource
    service_fingerprint: pulumi.Input[str]
    image: str
    model_root: str
    model_dir: str
    served_name: str
    port: int
    scenarios: Sequence[Scenario]
    headline: str
    run_id: str
    timeout_minutes: int = 60


class Benchmark(pulumi.ComponentResource):
    """Outputs: ``results`` ({scenario name: metrics}), ``tokens_per_second`` (the headline
    scenario's output_throughput), ``steps`` (the Commands, in run order)."""

    def __init__(self, name: str, args: BenchmarkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:serving:Benchmark", name, None, opts)
        if args.headline not in [s.name for s in args.scenarios]:
            raise ValueError(f"Benchmark: headline scenario {args.headline!r} is not among the scenarios")
        previous: pulumi.Resource = args.service_ready
        self.steps = []
        metrics = {}
        for scenario in args.scenarios:
            step = remote_step(
                f"{name}-{scenario.name}", step=f"benchmark-{scenario.name}", host=args.head, script="benchmark.sh",
                env={
                    "IMAGE": args.image,
                    "MODEL_ROOT": args.model_root,
                    "MODEL_DIR": args.model_dir,
                    "SERVED_NAME": args.served_name,
                    "PORT": str(args.port),
                    "SCENARIO": scenario.name,
                    "INPUT_LEN": str(scenario.input_tokens),
                    "OUTPUT_LEN": str(scenario.output_tokens),
                    "NUM_PROMPTS": str(scenario.num_prompts),
                    "CONCURRENCY": str(scenario.concurrency),
                    "WARMUPS": str(scenario.warmups),
                    "RUN_ID": args.run_id,
                    "BENCH_TIMEOUT": str(args.timeout_minutes * 60),
                    "DEVICE_ARGS": device_args(args.head.accelerator, args.head.gpu_count),
                    "CONTAINER_ENV": container_env(args.head.accelerator, args.head.gpu_count, {}),
                },
                triggers=[args.run_id, args.service_fingerprint],
                parent=self,
                depends_on=[previous],
            )
            self.steps.append(step)
            metrics[scenario.name] = step.stdout.apply(parse_benchmark_result)
            previous = step
        self.results = pulumi.Output.all(**metrics)
        self.tokens_per_second = metrics[args.headline].apply(lambda m: float(m["output_throughput"]))
        self.register_outputs({"results": self.results, "tokens_per_second": self.tokens_per_second})

"""The stack outputs contract: the outputs every stack exports for other teams (StackReference),
declared once with their types, secrecy, meaning and an example, under a semantic version.

``StackOutputs.as_exports`` derives the exports from ``CONTRACT``; ``export_outputs`` is the one
place that calls ``pulumi.export``; ``python -m tools.contract_table`` writes the README's table
from the same declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

# major: an output removed, renamed or retyped (consumers must change); minor: an output added;
# patch: a description or example changed. 1.1.0: rooflineTokensPerSecond, efficiency, costPerMillionTokens.
# 1.1.1: publicIp, sshCommand and nodes described for owned machines (either accelerator family).
CONTRACT_VERSION = "1.1.1"


@dataclass(frozen=True)
class OutputSpec:
    """One output of the contract."""

    name: str  # the exported name (camelCase)
    json_type: str  # the JSON shape consumers read, as the README shows it
    python_type: type  # the Python type of the resolved value: str, float, list or dict
    secret: bool  # exported as a secret: read it with `--show-secrets` or `require_output`
    description: str
    example: str
    attribute: str | None  # the StackOutputs field it comes from; None for contractVersion
    optional: bool = False  # exported only when the setting it needs is set: absent (not null) otherwise


CONTRACT_OUTPUTS: tuple[OutputSpec, ...] = (
    OutputSpec("endpoint", "string", str, False,
               "OpenAI-compatible base URL of the service (HTTPS, its certificate signed by `caCertificate`)",
               "https://51.142.202.62:8000/v1", "endpoint"),
    OutputSpec("servedModel", "string", str, False, "model name to send in requests",
               "Qwen/Qwen2.5-14B-Instruct", "served_model"),
    OutputSpec("apiKey", "string", str, True, "bearer token, required on every path but `/health`",
               "`pulumi stack output apiKey --show-secrets`", "api_key"),
    OutputSpec("caCertificate", "string", str, False,
               "PEM of the CA certificate that signs the endpoint's TLS certificate: trust it to verify `endpoint`",
               "`-----BEGIN CERTIFICATE-----\\nMIIB...\\n-----END CERTIFICATE-----\\n`", "ca_certificate"),
    OutputSpec("publicIp", "string", str, False, "public IP of the node that serves the API (the Ray head); on owned "
               "machines the head's address (127.0.0.1 for the local machine)",
               "51.142.202.62", "public_ip"),
    OutputSpec("sshCommand", "string", str, False, "SSH command for that node (empty for the local machine)",
               "ssh -i ~/.ssh/qwen-uksouth.pem azureuser@51.142.202.62", "ssh_command"),
    OutputSpec("nodes", "list of `{name, publicIp, privateIp, gpus}`", list, False,
               "every machine of the stack; `gpus` one per accelerator in nvidia-smi's shape whatever the family "
               "(`index`, `name`, `memoryMiB`, `driver`; an Ascend chip: its logic ID, `Ascend 310P3`, its memory, the "
               "HDK driver), empty for the downloader",
               '[{"name": "vm-qwen-nc48", "publicIp": "51.142.202.62", "privateIp": "10.10.1.4", "gpus": [{"index": 0, '
               '"name": "NVIDIA A100 80GB PCIe", "memoryMiB": 81920, "driver": "570.172.08"}, ...]}]', "nodes"),
    OutputSpec("tokensPerSecond", "number", float, False,
               "`output_throughput` of the seed scenario (10,000 tokens in, 800 out, 1 request, concurrency 1, "
               "temperature 0, EOS ignored, after a warm-up): the figure to compare with the seed's 16.61",
               "64.45", "tokens_per_second"),
    OutputSpec("benchmark", "map: scenario name -> metrics", dict, False,
               "every scenario's metrics: `duration`, `completed`, token totals, `request_throughput`, "
               "`output_throughput`, `total_token_throughput`, mean/median/p99 of `ttft`, `tpot`, `itl`, `e2el` in ms, "
               "`max_concurrency`; the seed scenario first, then the sweep `sweep-256-in-256-out-c{1,8,32,64,128,192}`",
               '{"seed-10k-in-800-out-c1": {"output_throughput": 64.45, "median_ttft_ms": 718.2, ...}, ...}', "benchmark"),
    OutputSpec("rooflineTokensPerSecond", "number", float, False,
               "the seed scenario's batch-1 limit on this stack's model, layout, weight and KV cache formats and GPUs "
               "(README: Performance model)", "119.37", "roofline_tokens_per_second"),
    OutputSpec("efficiency", "number", float, False,
               "`tokensPerSecond` / `rooflineTokensPerSecond`, a fraction to 0.001", "0.54", "efficiency"),
    OutputSpec("costPerMillionTokens", "number, only when `qwen:cost.hourlyUsd` is set (absent otherwise)", float,
               False, "USD per million output tokens at `tokensPerSecond` and your own hourly price", "15.52",
               "cost_per_million_tokens", optional=True),
    OutputSpec("contractVersion", "string (semver)", str, False,
               "version of this contract: a new major means an output was removed, renamed or retyped",
               CONTRACT_VERSION, None),
)
CONTRACT: dict[str, OutputSpec] = {spec.name: spec for spec in CONTRACT_OUTPUTS}
OPTIONAL_OUTPUTS = frozenset(spec.name for spec in CONTRACT_OUTPUTS if spec.optional)

# Exported besides the contract, only when the program generated the SSH key (not for consumers).
SSH_PRIVATE_KEY_OUTPUT = "sshPrivateKey"
# Exported besides the contract by Azure stacks: where the preflight placed the VM and why the candidates
# before it were skipped (issue 11).
PLACEMENT_OUTPUT = "placement"


@dataclass
class StackOutputs:
    """What a stack's composition hands to the contract; the fields are ``CONTRACT``'s attributes."""

    endpoint: pulumi.Input[str]
    served_model: pulumi.Input[str]
    api_key: pulumi.Input[str]
    public_ip: pulumi.Input[str]
    ssh_command: pulumi.Input[str]
    nodes: pulumi.Input[list]
    tokens_per_second: pulumi.Input[float]
    benchmark: pulumi.Input[dict]
    ca_certificate: pulumi.Input[str]
    roofline_tokens_per_second: pulumi.Input[float]
    efficiency: pulumi.Input[float]
    cost_per_million_tokens: pulumi.Input[float] | None = None  # None: no hourly price set, the output is left out
    generated_ssh_private_key: pulumi.Input[str] | None = None
    placement: dict[str, Any] | None = None  # Azure: the preflight's placement (PLACEMENT_OUTPUT)

    def as_exports(self) -> dict[str, Any]:
        """Name -> value in the contract's order (secrets wrapped; an optional output without a value left
        out), then sshPrivateKey when generated and placement on Azure."""
        exports: dict[str, Any] = {}
        for spec in CONTRACT_OUTPUTS:
            value = CONTRACT_VERSION if spec.attribute is None else getattr(self, spec.attribute)
            if spec.optional and value is None:
                continue
            exports[spec.name] = pulumi.Output.secret(value) if spec.secret else value
        if self.generated_ssh_private_key is not None:
            exports[SSH_PRIVATE_KEY_OUTPUT] = pulumi.Output.secret(self.generated_ssh_private_key)
        if self.placement is not None:
            exports[PLACEMENT_OUTPUT] = self.placement
        return exports


def export_outputs(outputs: StackOutputs) -> None:
    for name, value in outputs.as_exports().items():
        pulumi.export(name, value)

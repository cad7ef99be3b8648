"""The stack outputs contract: the same names on every stack, read by other teams via StackReference.

Defined here only; ``export_outputs`` is the one place that calls ``pulumi.export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi

# name -> (type, meaning, example). README's outputs table is checked against this in the tests.
CONTRACT: dict[str, tuple[str, str, str]] = {
    "endpoint": ("string", "OpenAI-compatible base URL of the service (HTTPS, certificate signed by caCertificate)",
                 "https://51.142.202.62:8000/v1"),
    "servedModel": ("string", "model name to send in requests", "Qwen/Qwen2.5-14B-Instruct"),
    "apiKey": ("string, secret", "bearer token for every path but /health", "(secret)"),
    "caCertificate": ("string", "PEM certificate of the CA that signed the endpoint's certificate: clients verify with it",
                      "-----BEGIN CERTIFICATE-----\nMIIB..."),
    "publicIp": ("string", "public IP of the node that serves the API (the Ray head)", "51.142.202.62"),
    "sshCommand": ("string", "SSH command for that node", "ssh -i ~/.ssh/qwen-uksouth.pem azureuser@51.142.202.62"),
    "nodes": ("list of {name, publicIp, privateIp, gpus}", "every machine of the stack; gpus as nvidia-smi reports them",
              '[{"name": "vm-qwen-nc48", "publicIp": "51.142.202.62", "privateIp": "10.10.1.4", "gpus": [{"index": 0, "name": "NVIDIA A100 80GB PCIe", "memoryMiB": 81920, "driver": "570.172.08"}, ...]}]'),
    "tokensPerSecond": ("number", "output tokens/s of the seed scenario (10,000 in, 800 out, 1 request): compare with the seed's 16.61",
                        "64.46"),
    "benchmark": ("map of scenario name -> metrics", "every scenario's `vllm bench serve` metrics (throughputs, TTFT/TPOT/ITL/E2EL ms)",
                  '{"seed-10k-in-800-out-c1": {"output_throughput": 64.46, "median_ttft_ms": 812.4, ...}, ...}'),
    "rooflineTokensPerSecond": ("number", "the seed scenario's batch-1 limit on this layout (README: Performance model)",
                                "119.37"),
    "efficiency": ("number", "tokensPerSecond / rooflineTokensPerSecond", "0.54"),
    "costPerMillionTokens": ("number, only when qwen:cost.hourlyUsd is set",
                             "USD per million output tokens at tokensPerSecond and your hourly price", "15.52"),
}
# Exported only when the setting they need is set (a missing output reads as "not configured").
OPTIONAL_OUTPUTS = frozenset({"costPerMillionTokens"})

@dataclass
class StackOutputs:
    endpoint: pulumi.Input[str]
    served_model: pulumi.Input[str]
    api_key: pulumi.Input[str]
    ca_certificate: pulumi.Input[str]
    public_ip: pulumi.Input[str]
    ssh_command: pulumi.Input[str]
    nodes: pulumi.Input[list]
    tokens_per_second: pulumi.Input[float]
    benchmark: pulumi.Input[dict]
    roofline_tokens_per_second: pulumi.Input[float]
    efficiency: pulumi.Input[float]
    cost_per_million_tokens: Optional[pulumi.Input[float]] = None
    generated_ssh_private_key: Optional[pulumi.Input[str]] = None

    def as_exports(self) -> dict[str, Any]:
        exports = {
            "endpoint": self.endpoint,
            "servedModel": self.served_model,
            "apiKey": pulumi.Output.secret(self.api_key),
            "caCertificate": self.ca_certificate,
            "publicIp": self.public_ip,
            "sshCommand": self.ssh_command,
            "nodes": self.nodes,
            "tokensPerSecond": self.tokens_per_second,
            "benchmark": self.benchmark,
            "rooflineTokensPerSecond": self.roofline_tokens_per_second,
            "efficiency": self.efficiency,
            "costPerMillionTokens": self.cost_per_million_tokens,
        }
        assert list(exports) == list(CONTRACT), "StackOutputs.as_exports and CONTRACT disagree"
        exports = {k: v for k, v in exports.items() if not (k in OPTIONAL_OUTPUTS and v is None)}
        if self.generated_ssh_private_key is not None:
            exports["sshPrivateKey"] = pulumi.Output.secret(self.generated_ssh_private_key)
        return exports


def export_outputs(outputs: StackOutputs) -> None:
    for name, value in outputs.as_exports().items():
        pulumi.export(name, value)

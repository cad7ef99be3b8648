"""The program: settings -> the stack's composition -> the outputs contract."""

from __future__ import annotations

import dataclasses
import importlib

import pulumi

from stacks import preflight
from stacks.outputs import StackOutputs, export_outputs
from stacks.performance import layout_advice_message
from stacks.settings import Settings, load_settings

# Each cloud's composition is imported only when used: an Azure stack never loads the Aliyun SDK.
BUILDERS = {"azure": "stacks.azure_spot", "aliyun": "stacks.aliyun_cluster", "owned": "stacks.owned"}


def build(settings: Settings) -> StackOutputs:
    outputs: StackOutputs = importlib.import_module(BUILDERS[settings.cloud]).build(settings)
    return outputs


def log_layout_advice(settings: Settings) -> None:
    """Print the layouts that fit the configured model and machine size (1 or 2 machines on Aliyun, the one VM
    on Azure), this stack's marked: in preview too, before any resource."""
    node_counts = range(1, max(2, settings.gpu_nodes) + 1) if settings.cloud == "aliyun" else (1,)
    pulumi.log.info(layout_advice_message(settings.model.id, settings.machine, node_counts,
                                          settings.serving.gpu_memory_utilization, settings.layout, settings.gpu_nodes))


def main() -> None:
    # Settings are validated completely before the first resource is registered; then the preflight
    # asks the cloud whether it can take them (and places the Azure VM), still before any resource, and the
    # layouts that fit are printed.
    settings, placement = preflight.run(load_settings())
    log_layout_advice(settings)
    export_outputs(dataclasses.replace(build(settings), placement=placement))

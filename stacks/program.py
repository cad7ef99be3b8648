"""The program: settings -> the stack's composition -> the outputs contract."""

from __future__ import annotations

import dataclasses
import importlib

from stacks import preflight
from stacks.outputs import StackOutputs, export_outputs
from stacks.settings import Settings, load_settings

# Each cloud's composition is imported only when used: an Azure stack never loads the Aliyun SDK.
BUILDERS = {"azure": "stacks.azure_spot", "aliyun": "stacks.aliyun_cluster", "owned": "stacks.owned"}


def build(settings: Settings) -> StackOutputs:
    outputs: StackOutputs = importlib.import_module(BUILDERS[settings.cloud]).build(settings)
    return outputs


def main() -> None:
    # Settings are validated completely before the first resource is registered; then the preflight
    # asks the cloud whether it can take them (and places the Azure VM), still before any resource.
    settings, placement = preflight.run(load_settings())
    export_outputs(dataclasses.replace(build(settings), placement=placement))

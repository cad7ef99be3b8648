"""The program: settings -> the stack's composition -> the outputs contract."""

from __future__ import annotations

import importlib

import pulumi

from stacks.outputs import StackOutputs, export_outputs
from stacks.performance import layout_advice_message
from stacks.settings import Settings, load_settings

# Each cloud's composition is imported only when used: an Azure stack never loads the Aliyun SDK.
BUILDERS = {"azure": "stacks.azure_spot", "aliyun": "stacks.aliyun_cluster"}


def build(settings: Settings) -> StackOutputs:
    return importlib.import_module(BUILDERS[settings.cloud]).build(settings)


def main() -> None:
    # Settings are validated completely before the first resource is registered.
    settings = load_settings()
    pulumi.log.info(layout_advice_message(settings))
    export_outputs(build(settings))

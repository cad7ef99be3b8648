"""The policy pack `qwen-serving` as the engine runs it: `pulumi preview --policy-pack policy`."""

from pulumi_policy import PolicyPack

# Run as a script by the engine, from this directory: rules.py is a sibling module.
from rules import ENFORCEMENT, POLICIES  # type: ignore[import-not-found]

PolicyPack(name="qwen-serving", enforcement_level=ENFORCEMENT, policies=POLICIES)

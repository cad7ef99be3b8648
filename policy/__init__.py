"""The qwen-serving policy pack (run by the engine from this directory; tests import policy.rules)."""

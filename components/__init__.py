"""Pulumi components of the qwen serving product (type tokens ``qwen:<area>:<Name>``)."""

"""Stacks: settings, the per-cloud compositions of components, and the outputs contract."""

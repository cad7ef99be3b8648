"""The preflight's one error: what the cloud cannot take, one line per problem, before any resource."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


class PreflightError(pulumi.RunError):
    """The cloud cannot take this deployment as configured; nothing was created."""

    def __init__(self, stack: str, problems: Sequence[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"stack '{stack}': the preflight found {len(self.problems)} problem(s); nothing was created:\n{lines}")

"""Commands run as `python -m tools.<name>` on the operator's or developer's machine: layout advice,
benchmark reports, the outputs contract table."""

"""Command-line tools that run on the operator's machine: layout advice and benchmark reports."""

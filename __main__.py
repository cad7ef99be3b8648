"""Entry point of `pulumi up -s <stack>`: see stacks/program.py."""

from stacks.program import main

main()

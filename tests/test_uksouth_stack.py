import json

import pytest

from stacks.outputs import CONTRACT
from tests.harness import TEST_CIDR, fixture, run_stack


@pytest.fixture(scope="module")
def run():
    mp = pytest.MonkeyPatch()
    try:
        yield run_stack("uksouth", mp)
    finally:
        mp.undo()


def test_smoke(run):
    print(sorted({r.type for r in run.resources}))
    print(run.outputs.keys())

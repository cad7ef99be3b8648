"""reachability.sh: every URL must give some HTTP answer (a 401 counts); a silent one fails the step."""

from tests.steps.conftest import assert_step_failed

REGISTRY = "https://registry-1.docker.io/v2/"
TOOLKIT = "https://nvidia.github.io/libnvidia-container/gpgkey"


def check(box, urls):
    return box.run_step("preflight", "reachability.sh", {"URLS": "\n".join(urls) + "\n\n", "HINT": "Use a mirror."}, host="dl")


def test_answers_of_any_status_pass(sandbox):
    sandbox.set_state(http={"https://registry-1.docker.io": {"default_status": 401},
                            "https://nvidia.github.io": {"default_status": 200}})
    result = check(sandbox, [REGISTRY, TOOLKIT])
    assert result.returncode == 0, result.stderr
    assert f"reachable: {REGISTRY} (HTTP 401)" in result.stderr and f"reachable: {TOOLKIT} (HTTP 200)" in result.stderr
    assert result.stdout == "" and sandbox.calls("sleep") == []


def test_a_silent_url_is_retried_then_named(sandbox):
    sandbox.set_state(http={"https://registry-1.docker.io": {"default_status": 401},
                            "https://nvidia.github.io": {"blocked": True}})
    result = check(sandbox, [REGISTRY, TOOLKIT])
    assert_step_failed(result, "preflight", "dl", f"ERROR: not reachable from this region: {TOOLKIT}. Use a mirror.")
    assert [c[-1] for c in sandbox.calls("curl")] == [REGISTRY, TOOLKIT, TOOLKIT, TOOLKIT]
    assert len(sandbox.calls("sleep")) == 3


def test_a_url_that_answers_on_the_second_try_passes(sandbox):
    sandbox.set_state(http={"https://nvidia.github.io": {"blocked": True}},
                      events=[{"tick": 1, "set": ["http", "https://nvidia.github.io"], "value": {"default_status": 200}}])
    result = check(sandbox, [TOOLKIT])
    assert result.returncode == 0, result.stderr
    assert len(sandbox.calls("curl")) == 2


def test_an_unresolvable_host_fails(sandbox):
    result = check(sandbox, ["https://mirror.invalid/v2/"])
    assert_step_failed(result, "preflight", "dl", "not reachable from this region: https://mirror.invalid/v2/")

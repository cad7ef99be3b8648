"""wait_cloud_init.sh: waits for cloud-init and the bootstrap marker, and reports how it failed."""

from tests.steps.conftest import assert_step_failed

ENV = {"CLOUD_INIT_TIMEOUT": "60"}
MARKER = "/var/lib/qwen/bootstrap-done"


def test_waits_for_cloud_init_which_writes_the_marker_when_it_ends(sandbox):
    sandbox.set_state(cloud_init={"status": "running", "on_wait": "finish", "on_finish_write": [MARKER]})
    result = sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "cloud-init finished" in result.stderr
    assert sandbox.state()["cloud_init"]["status"] == "done"
    assert "cloud-init finished" in sandbox.read("/var/log/qwen/wait-cloud-init.log")
    # a second run changes nothing and succeeds again
    before = sandbox.state()
    again = sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", ENV)
    assert again.returncode == 0 and sandbox.state() == before


def test_recoverable_errors_with_the_marker_pass(sandbox):
    sandbox.set_state(cloud_init={"status": "degraded done", "errors": ["W: deprecated key"]})
    sandbox.write(MARKER, "")
    assert sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", ENV).returncode == 0


def test_cloud_init_error_fails_with_its_output_log(sandbox):
    sandbox.set_state(cloud_init={"status": "error", "errors": ["runcmd failed"]})
    sandbox.write(MARKER, "")
    sandbox.write("/var/log/cloud-init-output.log", "E: Unable to locate package docker.io\n")
    result = sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", ENV, host="vm-7")
    assert_step_failed(result, "wait-cloud-init", "vm-7", "ERROR: cloud-init failed (cloud-init status exit 1)",
                       "E: Unable to locate package docker.io")


def test_a_boot_that_never_ends_times_out(sandbox):
    sandbox.set_state(cloud_init={"status": "running", "on_wait": "hang"})
    result = sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", {"CLOUD_INIT_TIMEOUT": "0.3"})
    assert_step_failed(result, "wait-cloud-init", sandbox.host, "ERROR: cloud-init did not finish within 0.3s")


def test_done_without_the_bootstrap_marker_fails(sandbox):
    result = sandbox.run_step("wait-cloud-init", "wait_cloud_init.sh", ENV)
    assert_step_failed(result, "wait-cloud-init", sandbox.host, "no /var/lib/qwen/bootstrap-done")

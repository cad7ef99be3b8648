"""SshKey alone, on pulumi mocks: a generated RSA key, or the operator's own key passed through."""

from __future__ import annotations

import pulumi
import pytest

from components.ssh_key import SshKey, SshKeyArgs
from tests.harness import CloudMocks, run_pulumi

TLS_KEY = "tls:index/privateKey:PrivateKey"
COMPONENT = "qwen:access:SshKey"
GIVEN_PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey operator@laptop"
GIVEN_PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\noperator\n-----END OPENSSH PRIVATE KEY-----\n"


def _mock_state(typ: str) -> dict:
    """What CloudMocks answers for a resource type (so the expectations are not copied by hand)."""
    _, state = CloudMocks().new_resource(pulumi.runtime.MockResourceArgs(
        typ=typ, name="probe", inputs={}, provider="", resource_id="", custom=True))
    return dict(state)


def _program(args: SshKeyArgs, captured: dict):
    def program():
        key = SshKey("access", args)
        captured["key"] = key
        return {"public_key": key.public_key, "private_key": key.private_key,
                "private_is_secret": pulumi.Output.from_input(key.private_key.is_secret())}
    return program


@pytest.fixture(scope="module")
def generated():
    captured: dict = {}
    run = run_pulumi(_program(SshKeyArgs(), captured))
    return run, captured["key"]


def test_generated_key_is_an_rsa_tls_child_of_the_component(generated):
    run, key = generated
    component = run.one(COMPONENT)
    tls = run.one(TLS_KEY)
    assert tls.parent == component.urn
    assert tls.name == "access-key"
    assert tls.inputs["algorithm"] == "RSA" and tls.inputs["rsaBits"] == 4096  # Aliyun imports no ed25519
    assert key.generated is True


def test_generated_key_outputs_come_from_the_tls_resource(generated):
    run, _ = generated
    mock = _mock_state(TLS_KEY)
    assert run.outputs["private_key"] == mock["privateKeyOpenssh"]
    assert run.outputs["public_key"] == mock["publicKeyOpenssh"].strip()  # no trailing newline in authorized_keys
    assert not run.outputs["public_key"].endswith("\n")
    assert run.outputs["private_is_secret"] is True


def test_given_key_is_passed_through_without_a_tls_resource():
    captured: dict = {}
    run = run_pulumi(_program(SshKeyArgs(public_key=GIVEN_PUBLIC, private_key=GIVEN_PRIVATE), captured))
    assert not run.of_type(TLS_KEY)
    assert run.one(COMPONENT).name == "access"
    assert captured["key"].generated is False
    assert run.outputs["public_key"] == GIVEN_PUBLIC
    assert run.outputs["private_key"] == GIVEN_PRIVATE
    assert run.outputs["private_is_secret"] is True  # a plain private key becomes a secret


def test_given_public_key_without_private_key_raises():
    with pytest.raises(ValueError, match="private_key"):
        run_pulumi(_program(SshKeyArgs(public_key=GIVEN_PUBLIC), {}))

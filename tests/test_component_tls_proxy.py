"""TlsProxy alone, on pulumi mocks: the certificate chain and its SANs, the secrets on stdin only,
start then smoke, the https endpoint and the CA certificate."""

from __future__ import annotations

import re
from dataclasses import fields

import pulumi
import pulumi_random
import pytest

from components.remote import GpuHost, read_script
from components.tls_proxy import (
    CONTAINER_CONF_DIR,
    FORWARDED_PATHS,
    ProxySmokeEnv,
    ProxyStartEnv,
    TlsProxy,
    TlsProxyArgs,
    nginx_config,
)
from tests.harness import run_pulumi, step_env
from tests.test_remote_step import required_env

COMPONENT = "qwen:serving:TlsProxy"
API_KEY = "Zq7secretKey0123456789abcdefABCDEF012345"
PUBLIC_IP = "203.0.113.40"
PRIVATE_IP = "10.60.0.7"


@pytest.fixture(scope="module")
def run():
    def program():
        ready = pulumi_random.RandomId("vllm-ready", byte_length=4)
        head = GpuHost(name="gpu-head", public_ip=PUBLIC_IP, private_ip=PRIVATE_IP, user="ops", private_key="k",
                       gpu_count=2, instance_id="i-head")
        proxy = TlsProxy("gate", TlsProxyArgs(
            head=head, service_ready=ready, service_fingerprint="fp-1", image="nginx:1.28.0-alpine", port=8443,
            upstream_port=8001, api_key=pulumi.Output.secret(API_KEY), served_name="org/M"))
        return {"endpoint": proxy.endpoint, "ca": proxy.ca_certificate, "smoke": proxy.smoke,
                "start_create": proxy.start.create}

    return run_pulumi(program)


def test_children_named_after_the_component(run):
    component = run.one(COMPONENT)
    children = {r.name: r.type for r in run.resources if r.parent == component.urn}
    assert children == {
        "gate-ca-key": "tls:index/privateKey:PrivateKey",
        "gate-ca": "tls:index/selfSignedCert:SelfSignedCert",
        "gate-server-key": "tls:index/privateKey:PrivateKey",
        "gate-server-csr": "tls:index/certRequest:CertRequest",
        "gate-server-cert": "tls:index/locallySignedCert:LocallySignedCert",
        "gate-start": "command:remote:Command",
        "gate-smoke": "command:remote:Command",
    }


def test_a_ca_signs_a_server_certificate_for_the_public_and_private_ip(run):
    ca = run.named("gate-ca")
    assert ca.inputs["isCaCertificate"] is True and "cert_signing" in ca.inputs["allowedUses"]
    # private keys stay secrets wherever they are an input
    assert "privateKeyPem" in ca.secret_inputs and "mock-gate-ca-key" in ca.inputs["privateKeyPem"]["value"]
    csr = run.named("gate-server-csr")
    assert csr.inputs["ipAddresses"] == [PUBLIC_IP, PRIVATE_IP]
    assert "privateKeyPem" in csr.secret_inputs and "mock-gate-server-key" in csr.inputs["privateKeyPem"]["value"]
    cert = run.named("gate-server-cert")
    assert "server_auth" in cert.inputs["allowedUses"] and not cert.inputs.get("isCaCertificate")
    assert "caPrivateKeyPem" in cert.secret_inputs and "mock-gate-ca-key" in cert.inputs["caPrivateKeyPem"]["value"]
    assert "mock-gate-ca\n" in cert.inputs["caCertPem"]
    assert "mock-gate-server-csr" in cert.inputs["certRequestPem"]
    assert cert.inputs["earlyRenewalHours"] < cert.inputs["validityPeriodHours"]


def test_api_key_and_server_key_travel_only_on_stdin(run):
    cmds = run.commands()
    start = cmds["gate-start"]
    assert "stdin" in start.secret_inputs and start.inputs["logging"] == "none"
    assert {"stdout", "stderr"} <= set(start.additional_secret_outputs)
    api_key_line, server_key = start.inputs["stdin"]["value"].split("\n", 1)
    assert api_key_line == API_KEY and "mock-gate-server-key" in server_key
    for cmd in cmds.values():
        assert API_KEY not in cmd.inputs["create"], cmd.name
        assert "mock-gate-server-key" not in cmd.inputs["create"] and "mock-gate-ca-key" not in cmd.inputs["create"], cmd.name
        assert API_KEY not in str(cmd.inputs["triggers"]), cmd.name
    assert "stdin" not in cmds["gate-smoke"].inputs
    assert API_KEY not in str(run.outputs)


def test_start_env_carries_the_config_and_the_public_certificate(run):
    env = step_env(run.commands()["gate-start"].inputs["create"])
    assert env["IMAGE"] == "nginx:1.28.0-alpine" and env["PORT"] == "8443"
    assert env["CONF_MOUNT"] == CONTAINER_CONF_DIR
    assert env["NGINX_CONF"] == nginx_config(8443, 8001)
    assert "mock-gate-server-cert" in env["SERVER_CERT"]
    assert required_env("proxy_start.sh") <= set(env)


def test_start_after_vllm_then_smoke(run):
    cmds = run.commands()
    start, smoke = cmds["gate-start"], cmds["gate-smoke"]
    assert run.named("vllm-ready").urn in start.dependencies
    assert start.urn in smoke.dependencies
    env = step_env(smoke.inputs["create"])
    assert env["PUBLIC_IP"] == PUBLIC_IP and env["PORT"] == "8443" and env["SERVED_NAME"] == "org/M"
    assert env["PRIVATE_IP"] == PRIVATE_IP and env["UPSTREAM_PORT"] == "8001"
    assert "mock-gate-ca\n" in env["CA_CERT"]
    assert required_env("proxy_smoke.sh") <= set(env)
    # re-checked when vLLM's serve command or the proxy's start command changes
    assert smoke.inputs["triggers"][:2] == ["i-head", "fp-1"] and len(smoke.inputs["triggers"]) == 3


def test_outputs(run):
    assert run.outputs["endpoint"] == f"https://{PUBLIC_IP}:8443/v1"
    assert run.outputs["ca"] == "-----BEGIN CERTIFICATE-----\nmock-gate-ca\n-----END CERTIFICATE-----\n"
    assert run.outputs["smoke"]["status"] == 200 and run.outputs["smoke"]["withoutKey"]["/invocations"] == 401


@pytest.mark.parametrize("record, script", [(ProxyStartEnv, "proxy_start.sh"), (ProxySmokeEnv, "proxy_smoke.sh")])
def test_env_records_match_the_scripts_env_lines(record, script):
    env_line = re.search(r"^# Env: (.*)$", read_script(script), re.M)
    assert env_line is not None, f"{script} has no `# Env:` header"
    header = env_line.group(1)
    assert [f.name for f in fields(record)] == [name.strip(" .") for name in header.split(",")]


def test_config_checks_the_key_on_every_location_but_health():
    conf = nginx_config(8000, 8001)
    locations = dict(re.findall(r"location (= \S+|/) \{(.*?)\n        \}", conf, re.S))
    assert set(locations) == {"= /health", *(f"= {p}" for p in FORWARDED_PATHS), "/"}
    for where, body in locations.items():
        needs_key = "if ($qwen_key_ok = 0) { return 401" in body
        assert needs_key is (where != "= /health"), where
    assert "listen 0.0.0.0:8000 ssl;" in conf and "proxy_buffering off;" in conf
    assert "return 404" in locations["/"] and "proxy_pass" not in locations["/"]


def assert_served_through_the_proxy(run, public_ip: str, private_ip: str, api_key: str) -> None:
    """For a whole stack's run: vLLM binds 127.0.0.1 on its own port; the proxy requires the key on
    every path but /health; the endpoint is https; the CA certificate is an output; the server key
    and the API key travel only on stdin; the certificate's SANs hold the public IP."""
    from components.vllm_service import VLLM_LOCAL_PORT

    cmds = run.commands()
    serve = cmds["vllm-serve"].inputs["create"]
    assert '--host 127.0.0.1 --port "$PORT"' in serve and "--host 0.0.0.0" not in serve
    assert step_env(serve)["PORT"] == str(VLLM_LOCAL_PORT)
    assert step_env(cmds["vllm-health"].inputs["create"])["PORT"] == str(VLLM_LOCAL_PORT)
    for name, cmd in cmds.items():
        if name.startswith("bench-"):
            assert step_env(cmd.inputs["create"])["PORT"] == str(VLLM_LOCAL_PORT), name
    start = cmds["proxy-start"]
    conf = step_env(start.inputs["create"])["NGINX_CONF"]
    assert conf == nginx_config(8000, VLLM_LOCAL_PORT)
    locations = dict(re.findall(r"location (= \S+|/) \{(.*?)\n        \}", conf, re.S))
    assert set(locations) == {"= /health", *(f"= {p}" for p in FORWARDED_PATHS), "/"}
    for where, body in locations.items():
        assert ("if ($qwen_key_ok = 0) { return 401" in body) is (where != "= /health"), where
    assert run.outputs["endpoint"] == f"https://{public_ip}:8000/v1"
    ca = run.named("proxy-ca")
    assert ca.inputs["isCaCertificate"] is True
    assert run.outputs["caCertificate"] == "-----BEGIN CERTIFICATE-----\nmock-proxy-ca\n-----END CERTIFICATE-----\n"
    assert run.named("proxy-server-csr").inputs["ipAddresses"] == [public_ip, private_ip]
    assert "stdin" in start.secret_inputs and start.inputs["logging"] == "none"
    key_line, server_key = start.inputs["stdin"]["value"].split("\n", 1)
    assert key_line == api_key and "mock-proxy-server-key" in server_key
    for name, cmd in cmds.items():
        assert api_key not in cmd.inputs["create"] and "mock-proxy-server-key" not in cmd.inputs["create"], name
        if name not in ("vllm-serve", "proxy-start"):
            assert "stdin" not in cmd.inputs, name
    assert run.depends_on(cmds["proxy-smoke"], cmds["vllm-health"])
    assert run.depends_on(cmds["bench-seed-10k-in-800-out-c1"], cmds["proxy-smoke"])

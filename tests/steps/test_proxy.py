"""proxy_start.sh in the sandbox: the docker stand-in runs this machine's real `nginx -t` on the
mounted, generated config (the program's own nginx_config) before it replaces the proxy. The smoke
step runs against the real nginx in tests/test_proxy_nginx.py."""

import pytest

from components.tls_proxy import CONTAINER_CONF_DIR, nginx_config
from tests.steps.conftest import IMAGE, assert_step_failed
from tests.test_proxy_nginx import make_certificates

KEY = "Zq7secretKey0123456789abcdefABCDEF012345"
PROXY_IMAGE = "nginx:1.28.0-alpine"
CONF_DIR = "/etc/qwen/secrets/proxy"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_certificates(d)
    return {"crt": (d / "server.crt").read_text(), "key": (d / "server.key").read_text()}


@pytest.fixture
def head(sandbox):
    sandbox.set_state(registry={"reachable": True, "images": [IMAGE, PROXY_IMAGE]})
    return sandbox


def start(box, certs, key=KEY, server_key=None, **changes):
    env = {"IMAGE": PROXY_IMAGE, "PORT": "8000", "NGINX_CONF": nginx_config(8000, 8001), "CONF_MOUNT": CONTAINER_CONF_DIR,
           "SERVER_CERT": certs["crt"], **changes}
    stdin = f"{key}\n{certs['key'] if server_key is None else server_key}"
    return box.run_step("proxy-start", "proxy_start.sh", env, stdin=stdin, host="vm-qwen-nc48")


def test_start_checks_the_config_with_nginx_then_runs_the_proxy(head, certs):
    result = start(head, certs)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "started the TLS proxy (nginx:1.28.0-alpine) on port 8000" in result.stderr
    c = head.container("qwen-proxy")
    assert c["Config"]["Entrypoint"] == ["nginx"] and c["Config"]["Cmd"] == ["-c", f"{CONTAINER_CONF_DIR}/nginx.conf"]
    assert c["HostConfig"]["NetworkMode"] == "host" and c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert [(m["Source"], m["Destination"], m["RW"]) for m in c["Mounts"]] == [(CONF_DIR, CONTAINER_CONF_DIR, False)]
    assert c["State"]["Running"] and c["process"]["kind"] == "nginx"
    runs = [call for call in head.calls("docker") if call[:1] == ["run"]]
    assert runs[0][:2] == ["run", "--rm"] and runs[0][-3:] == ["-t", "-c", f"{CONTAINER_CONF_DIR}/nginx.conf"]
    assert "syntax is ok" in head.read("/var/log/qwen/proxy-start.log")  # the real nginx -t said so
    assert head.mode(CONF_DIR) == 0o700
    for name in ("nginx.conf", "api-key.map", "server.crt", "server.key"):
        assert head.mode(f"{CONF_DIR}/{name}") == 0o600, name
    assert head.read(f"{CONF_DIR}/api-key.map") == f'"~^Bearer {KEY}$" 1;\n'
    assert head.read("/etc/qwen/secrets/proxy-auth-header") == f"Authorization: Bearer {KEY}\n"
    assert KEY not in head.all_calls_text() and certs["key"].splitlines()[1] not in head.all_calls_text()


def test_a_second_start_keeps_the_proxy(head, certs):
    assert start(head, certs).returncode == 0
    first = head.container("qwen-proxy")["Id"]
    again = start(head, certs)
    assert again.returncode == 0 and "the TLS proxy already runs with this configuration" in again.stderr
    assert head.container("qwen-proxy")["Id"] == first
    assert len([call for call in head.calls("docker") if call[:1] == ["run"]]) == 2


@pytest.mark.parametrize("change", [{"key": "Other0123456789abcdefXYZ"}, {"PORT": "8443", "NGINX_CONF": nginx_config(8443, 8001)},
                                    {"IMAGE": "nginx:1.28.1-alpine"}])
def test_a_changed_key_config_or_image_replaces_the_proxy(head, certs, change):
    head.set_state(registry={"reachable": True, "images": [IMAGE, PROXY_IMAGE, "nginx:1.28.1-alpine"]})
    assert start(head, certs).returncode == 0
    first = head.container("qwen-proxy")["Id"]
    assert start(head, certs, **change).returncode == 0
    assert head.container("qwen-proxy")["Id"] != first


def test_a_config_nginx_refuses_keeps_the_running_proxy(head, certs):
    assert start(head, certs).returncode == 0
    first = head.container("qwen-proxy")["Id"]
    broken = nginx_config(8000, 8001).replace("ssl_certificate_key", "ssl_certificate_keyy")
    result = start(head, certs, NGINX_CONF=broken)
    assert_step_failed(result, "proxy-start", "vm-qwen-nc48", "ERROR: nginx refused the generated configuration",
                       'unknown directive "ssl_certificate_keyy"')
    assert head.container("qwen-proxy")["Id"] == first and head.container("qwen-proxy")["State"]["Running"]


def test_a_server_key_that_does_not_match_the_certificate_is_refused(head, certs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    make_certificates(other)
    result = start(head, certs, server_key=(other / "server.key").read_text())
    assert_step_failed(result, "proxy-start", "vm-qwen-nc48", "ERROR: nginx refused the generated configuration",
                       "key values mismatch")
    assert head.container("qwen-proxy") is None


@pytest.mark.parametrize("key, server_key, message", [
    ("sk-with-dashes-0123456789", None, "no API key (16 or more letters and digits)"),
    (KEY, "", "no server private key (PEM)")])
def test_bad_stdin_fails_before_any_file(head, certs, key, server_key, message):
    result = start(head, certs, key=key, server_key=server_key)
    assert_step_failed(result, "proxy-start", "vm-qwen-nc48", message)
    assert not head.exists(CONF_DIR) and head.container("qwen-proxy") is None


def test_an_image_that_cannot_be_pulled_fails(head, certs):
    head.set_state(registry={"reachable": False, "images": []})
    result = start(head, certs)
    assert_step_failed(result, "proxy-start", "vm-qwen-nc48", "ERROR: could not pull nginx:1.28.0-alpine in 10 minutes",
                       "qwen:serving.proxyImage")
    assert head.container("qwen-proxy") is None

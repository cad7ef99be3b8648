"""The proxy for real: proxy_start.sh writes its files from stdin (docker is a stand-in that runs
`nginx -t` for real), then the real nginx runs the generated config on 127.0.0.1 in front of a stub
vLLM, with a certificate chain made by openssl, and the smoke step runs against it with curl."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.remote import SCRIPTS_DIR
from components.tls_proxy import FORWARDED_PATHS, nginx_config
from tests.test_cloudinit_and_scripts import require

API_KEY = "Zq7secretKey0123456789abcdefABCDEF012345"
PUBLIC_IP = "203.0.113.9"  # in the certificate, and not on this machine: curl connects to 127.0.0.1
PRIVATE_IP = "10.0.0.4"
# Paths vLLM 0.11.0 serves besides the forwarded ones; its own key check covers none of them.
UNFORWARDED = ["/invocations", "/tokenize", "/pooling", "/score", "/rerank", "/v1/embeddings", "/scale_elastic_ep",
               "/docs", "/metrics", "/", "/healthz", "/health/x"]


class UpstreamServer(ThreadingHTTPServer):
    """The stub vLLM's server: what reached it, and the event that releases a held stream."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, StubVllm)
        self.seen: list[tuple[str, str, str | None]] = []
        self.release = threading.Event()
        self.released_in_time: list[bool] = []


class StubVllm(BaseHTTPRequestHandler):
    """Answers every path with 200 and records what reached it; streams chat completions as SSE."""

    protocol_version = "HTTP/1.1"
    server: UpstreamServer

    def log_message(self, *args):
        pass

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path == "/v1/chat/completions" and json.loads(body or b"{}").get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b'data: {"choices": [{"delta": {"content": "ready"}}]}\n\n')
            if self.headers.get("X-Test-Hold"):
                # The rest only after the client saw the first event (or 3 s): a buffering proxy fails.
                self.server.released_in_time.append(self.server.release.wait(3))
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
            return
        payload = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    do_GET = do_POST = _answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_certificates(d: Path) -> None:
    """An ECDSA P-256 CA and a server certificate for the public and private IP, as the program makes."""
    openssl = require("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *a: subprocess.run([openssl, *a], cwd=d, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=qwen-serving API")
    (d / "ext.cnf").write_text(f"subjectAltName=IP:{PUBLIC_IP},IP:{PRIVATE_IP}\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-out", "server.crt", "-extfile", "ext.cnf")


FAKE_DOCKER = """#!/usr/bin/env bash
# Records its arguments; `docker run --rm ... nginx -t -c FILE` runs the real `nginx -t`.
echo "$*" >>"{calls}"
case "$1" in
  inspect) exit 1 ;;  # no proxy container yet
  image) exit 0 ;;  # the image is present
  run)
    if [[ " $* " == *" --rm "* ]]; then
      exec {nginx} -e stderr -t -c "${{@: -1}}"
    fi ;;
esac
"""


def run_proxy_start(tmp: Path, stdin: str, conf: str, port: int, nginx: str) -> subprocess.CompletedProcess:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(calls=tmp / "docker.calls", nginx=nginx))
    (bin_dir / "docker").chmod(0o755)
    script = (SCRIPTS_DIR / "common.sh").read_text() + (SCRIPTS_DIR / "proxy_start.sh").read_text()
    script = script.replace("/var/log/qwen", str(tmp / "log")).replace("/etc/qwen", str(tmp / "etc"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "QWEN_STEP": "proxy-start", "QWEN_HOST": "h",
           "IMAGE": "nginx:1.28.0-alpine", "PORT": str(port), "NGINX_CONF": conf,
           # The test's nginx runs on this machine: the config directory is where it is "mounted".
           "CONF_MOUNT": str(tmp / "etc" / "secrets" / "proxy"), "SERVER_CERT": (tmp / "certs" / "server.crt").read_text()}
    return subprocess.run(["bash", "-c", script], input=stdin, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    # Debian installs nginx in /usr/sbin, which is not on a normal user's PATH.
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin") or require("nginx")
    require("curl")
    tmp = tmp_path_factory.mktemp("proxy")
    (tmp / "certs").mkdir()
    make_certificates(tmp / "certs")
    upstream = UpstreamServer(("127.0.0.1", 0))
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    run_dir = tmp / "run"
    run_dir.mkdir()
    conf_dir = tmp / "etc" / "secrets" / "proxy"
    # As root, nginx's workers drop to a user: nobody, with its own group.
    user = None
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"
    conf = nginx_config(port, upstream.server_address[1], conf_dir=str(conf_dir), listen_address="127.0.0.1",
                        run_dir=str(run_dir), user=user)
    stdin = API_KEY + "\n" + (tmp / "certs" / "server.key").read_text()
    started = run_proxy_start(tmp, stdin, conf, port, nginx)
    assert started.returncode == 0, started.stderr
    process = subprocess.Popen([nginx, "-e", "stderr", "-c", str(conf_dir / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None  # piped
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.02)
    try:
        yield {"tmp": tmp, "port": port, "upstream": upstream, "started": started, "conf_dir": conf_dir}
    finally:
        process.terminate()
        process.wait(10)
        upstream.shutdown()


def curl(proxy, path: str, *args: str, key: str | None = None) -> tuple[int, str]:
    """One HTTPS request as a client: the certificate verified for the public IP against the CA."""
    port = proxy["port"]
    headers = ["-H", f"Authorization: {key}"] if key else []
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(proxy["tmp"] / "certs" / "ca.crt"),
         "--connect-to", f"{PUBLIC_IP}:{port}:127.0.0.1:{port}", "-w", "\n%{http_code}", *headers, *args,
         f"https://{PUBLIC_IP}:{port}{path}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def forwarded(proxy) -> list[str]:
    return [path for _, path, _ in proxy["upstream"].seen]


BEARER = f"Bearer {API_KEY}"


def test_health_answers_without_the_key(proxy):
    assert curl(proxy, "/health")[0] == 200
    assert "/health" in forwarded(proxy)


@pytest.mark.parametrize("path", FORWARDED_PATHS)
def test_openai_routes_need_the_key_and_are_forwarded_with_it(proxy, path):
    before = len(proxy["upstream"].seen)
    assert curl(proxy, path)[0] == 401
    assert curl(proxy, path, key=f"Bearer {API_KEY[:-1]}")[0] == 401
    assert len(proxy["upstream"].seen) == before  # a refused request never reaches vLLM
    code, body = curl(proxy, path, key=BEARER)
    assert code == 200 and json.loads(body) == {"path": path}
    # vLLM gets the key too: its own check stays a second line of defence
    assert proxy["upstream"].seen[-1][1:] == (path, BEARER)


@pytest.mark.parametrize("path", UNFORWARDED)
def test_every_other_path_is_401_without_the_key_and_404_with_it(proxy, path):
    before = len(proxy["upstream"].seen)
    assert curl(proxy, path)[0] == 401
    assert curl(proxy, path, "-X", "POST", "-d", "{}")[0] == 401
    assert curl(proxy, path, key=BEARER)[0] == 404
    assert len(proxy["upstream"].seen) == before


@pytest.mark.parametrize("header", [f"bearer {API_KEY}", f"Bearer {API_KEY.swapcase()}", f"Bearer {API_KEY}x",
                                    f"Bearer  {API_KEY}", f"Basic {API_KEY}", API_KEY, "Bearer "])
def test_only_the_exact_key_passes(proxy, header):
    assert curl(proxy, "/v1/models", key=header)[0] == 401


@pytest.mark.parametrize("raw", ["/v1/models/../../invocations", "/v1//models/../../metrics", "/v1/%2e%2e/invocations",
                                 "/v1/models%2F..%2F..%2Finvocations"])
def test_path_tricks_never_reach_an_unforwarded_route(proxy, raw):
    before = len(proxy["upstream"].seen)
    code, _ = curl(proxy, raw, "--path-as-is", key=BEARER)
    assert code in (400, 404)
    assert len(proxy["upstream"].seen) == before


def test_vllm_receives_the_normalized_path_only(proxy):
    code, body = curl(proxy, "/v1//chat/%63ompletions?x=1", "--path-as-is", key=BEARER)
    assert code == 200
    assert proxy["upstream"].seen[-1][1] == "/v1/chat/completions?x=1"


def test_tokens_stream_through_without_buffering(proxy):
    port = proxy["port"]
    upstream = proxy["upstream"]
    client = subprocess.Popen(
        ["curl", "-sS", "-N", "--max-time", "10", "--cacert", str(proxy["tmp"] / "certs" / "ca.crt"),
         "--connect-to", f"{PUBLIC_IP}:{port}:127.0.0.1:{port}", "-H", f"Authorization: {BEARER}",
         "-H", "X-Test-Hold: 1", "-H", "Content-Type: application/json", "-d", '{"stream": true}',
         f"https://{PUBLIC_IP}:{port}/v1/chat/completions"], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None  # piped
    first = client.stdout.readline()
    upstream.release.set()
    rest = client.stdout.read()
    client.wait(10)
    assert first.startswith("data: ") and "ready" in first
    assert "data: [DONE]" in rest
    # the first event reached the client while vLLM was still generating
    assert upstream.released_in_time == [True]


def test_certificate_is_refused_for_another_name(proxy):
    port = proxy["port"]
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", str(proxy["tmp"] / "certs" / "ca.crt"),
                          f"https://127.0.0.1:{port}/health"], capture_output=True, text=True)
    assert out.returncode == 60  # 127.0.0.1 is not in the certificate: TLS verification fails


def test_start_step_writes_root_only_files_and_keeps_the_key_off_docker(proxy):
    conf_dir, tmp = proxy["conf_dir"], proxy["tmp"]
    assert stat.S_IMODE(conf_dir.stat().st_mode) == 0o700
    for name in ("nginx.conf", "api-key.map", "server.key", "server.crt"):
        assert stat.S_IMODE((conf_dir / name).stat().st_mode) == 0o600, name
    assert (conf_dir / "api-key.map").read_text() == f'"~^Bearer {API_KEY}$" 1;\n'
    assert API_KEY not in (conf_dir / "nginx.conf").read_text()
    header = tmp / "etc" / "secrets" / "proxy-auth-header"
    assert stat.S_IMODE(header.stat().st_mode) == 0o600 and header.read_text() == f"Authorization: {BEARER}\n"
    calls = (tmp / "docker.calls").read_text()
    assert API_KEY not in calls and "PRIVATE KEY" not in calls
    run_line = next(line for line in calls.splitlines() if line.startswith("run -d"))
    assert "--restart unless-stopped --network host" in run_line
    assert f"-v {conf_dir}:{conf_dir}:ro" in run_line  # mounted read-only
    assert run_line.endswith(f"--entrypoint nginx nginx:1.28.0-alpine -c {conf_dir}/nginx.conf")
    # the real `nginx -t` accepted the configuration before the container was replaced
    assert calls.index("run --rm") < calls.index("rm -f qwen-proxy") < calls.index("run -d")
    assert proxy["started"].stdout == ""  # nothing on stdout, no secret in the log
    log = (tmp / "log" / "proxy-start.log").read_text()
    assert API_KEY not in log and "PRIVATE KEY" not in log


@pytest.mark.parametrize("stdin, message", [("short\n-----BEGIN PRIVATE KEY-----\n", "no API key"),
                                            (f"{API_KEY}\n", "no server private key"),
                                            ('abc"; } x {\n-----BEGIN PRIVATE KEY-----\n', "no API key")])
def test_start_step_refuses_bad_stdin(proxy, tmp_path, stdin, message):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "server.crt").write_text("cert")
    result = run_proxy_start(tmp_path, stdin, "conf", 8443, "nginx")
    assert result.returncode == 1 and message in result.stderr


def this_hosts_address() -> str:
    """A non-loopback address of this machine (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        address: str = s.getsockname()[0]
        return address


def run_smoke(proxy, tmp: Path, upstream_port: int, public_ip: str = PUBLIC_IP, wait: int = 120):
    require("jq")
    script = (SCRIPTS_DIR / "common.sh").read_text() + (SCRIPTS_DIR / "proxy_smoke.sh").read_text()
    script = (script.replace("/var/log/qwen", str(tmp / "log")).replace("/etc/qwen", str(tmp / "etc"))
              .replace("/var/lib/qwen", str(tmp / "lib")).replace("wait_until 120", f"wait_until {wait}"))
    env = {**os.environ, "QWEN_STEP": "proxy-smoke", "QWEN_HOST": "h", "PORT": str(proxy["port"]),
           "PUBLIC_IP": public_ip, "CONNECT_IP": "127.0.0.1", "PRIVATE_IP": this_hosts_address(),
           "UPSTREAM_PORT": str(upstream_port),
           "CA_CERT": (proxy["tmp"] / "certs" / "ca.crt").read_text(), "SERVED_NAME": "org/M"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)


def test_smoke_step_against_the_real_proxy(proxy):
    tmp = proxy["tmp"]
    result = run_smoke(proxy, tmp, proxy["upstream"].server_address[1])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == 200 and 0 < out["seconds"] < 10
    assert out["withoutKey"] == {"/health": 200, "/v1/models": 401, "/v1/chat/completions": 401, "/invocations": 401,
                                 "/metrics": 401, "/tokenize": 401}
    method, path, auth = proxy["upstream"].seen[-1]
    assert (method, path, auth) == ("POST", "/v1/chat/completions", BEARER)
    assert API_KEY not in result.stderr and API_KEY not in (tmp / "log" / "proxy-smoke.log").read_text()


def secret_header(tmp: Path) -> None:
    (tmp / "etc" / "secrets").mkdir(parents=True)
    (tmp / "etc" / "secrets" / "proxy-auth-header").write_text(f"Authorization: {BEARER}\n")


def test_smoke_step_fails_when_the_certificate_does_not_verify(proxy, tmp_path):
    secret_header(tmp_path)
    # the certificate is valid for PUBLIC_IP and PRIVATE_IP, not for their neighbour
    result = run_smoke(proxy, tmp_path, proxy["upstream"].server_address[1], public_ip="10.0.0.5", wait=0)
    assert result.returncode == 1 and "timed out after 0s waiting for the TLS proxy" in result.stderr
    assert "certificate" in result.stderr  # curl's verification error, from this run's log


def test_smoke_step_fails_when_vllm_listens_on_every_interface(proxy, tmp_path):
    secret_header(tmp_path)
    exposed = UpstreamServer(("0.0.0.0", 0))
    threading.Thread(target=exposed.serve_forever, daemon=True).start()
    try:
        result = run_smoke(proxy, tmp_path, exposed.server_address[1])
    finally:
        exposed.shutdown()
    assert result.returncode == 1
    address = f"{this_hosts_address()}:{exposed.server_address[1]}"
    assert f"vLLM answers on {address}; it must listen on 127.0.0.1 only" in result.stderr


def test_smoke_step_fails_when_the_proxy_lets_a_request_without_the_key_through(proxy, tmp_path):
    """A second real nginx with the program's config minus its key checks (a proxy that forgot them)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin") or require("nginx")
    conf_dir, run_dir, port = tmp_path / "open", tmp_path / "run", free_port()
    conf_dir.mkdir()
    run_dir.mkdir()
    for name in ("server.crt", "server.key"):
        shutil.copy(proxy["conf_dir"] / name, conf_dir / name)
    shutil.copy(proxy["conf_dir"] / "api-key.map", conf_dir / "api-key.map")
    user = None
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = f"nobody {grp.getgrgid(nobody.pw_gid).gr_name}"
    conf = nginx_config(port, proxy["upstream"].server_address[1], conf_dir=str(conf_dir), listen_address="127.0.0.1",
                        run_dir=str(run_dir), user=user)
    assert "if ($qwen_key_ok = 0)" in conf
    (conf_dir / "nginx.conf").write_text(conf.replace("if ($qwen_key_ok = 0)", "if ($qwen_key_ok = 2)"))
    process = subprocess.Popen([nginx, "-e", "stderr", "-c", str(conf_dir / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secret_header(tmp_path)
    try:
        result = run_smoke({**proxy, "port": port}, tmp_path, proxy["upstream"].server_address[1], wait=10)
    finally:
        process.terminate()
        process.wait(10)
    assert result.returncode == 1
    assert "ERROR: /v1/models answered HTTP 200 without the API key; expected 401" in result.stderr

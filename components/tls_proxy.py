"""TlsProxy: the only public door to vLLM, an nginx container on the head that terminates TLS and
checks the API key on every path but /health, with a certificate this program issues.

vLLM 0.11.0 checks the key only under /v1 and serves /invocations (completions and chat),
/tokenize, /metrics and more without it, so vLLM listens on 127.0.0.1 and this proxy forwards
only the OpenAI routes. The CA certificate is public (clients pin it); the server's private key
and the API key reach the host on stdin only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.remote import GpuHost, Removal, remote_step

# The routes vLLM serves for a chat model that the OpenAI clients call: the model list, text
# completions and chat completions. Everything else vLLM answers (/invocations, /tokenize,
# /detokenize, /pooling, /score, /rerank, /v1/embeddings, /metrics, /docs, /load,
# /scale_elastic_ep, ...) is either unprotected by vLLM's own key check or not an OpenAI route
# this service offers, so the proxy answers 404 for it (401 without the key).
FORWARDED_PATHS = ("/v1/models", "/v1/completions", "/v1/chat/completions")
# vLLM's readiness probe; load balancers and the operator's monitoring call it without a key.
PUBLIC_PATHS = ("/health",)
# Where the proxy's files are mounted in its container (read-only).
CONTAINER_CONF_DIR = "/etc/nginx/qwen"

# Server certificate: one year, re-issued by any `pulumi up` in its last 30 days (then the proxy
# restarts with it). The CA lives ten years, so clients keep the CA certificate they pinned.
SERVER_CERT_HOURS = 365 * 24
SERVER_CERT_RENEWAL_HOURS = 30 * 24
CA_CERT_HOURS = 10 * 365 * 24


def nginx_config(port: int, upstream_port: int, conf_dir: str = CONTAINER_CONF_DIR, listen_address: str = "0.0.0.0",
                 run_dir: str = "/tmp", user: str | None = "nginx") -> str:
    """The proxy's complete nginx.conf. The API key is not in it: the `map` includes
    ``api-key.map`` (one root-only line the start step writes from stdin). conf_dir, run_dir,
    listen_address and user are parameters so that the tests run this same config in a real nginx."""
    upstream = f"http://127.0.0.1:{upstream_port}"

    def location(path: str, needs_key: bool) -> str:
        check = "            if ($qwen_key_ok = 0) { return 401 '{\"error\": \"Unauthorized\"}'; }\n" if needs_key else ""
        # proxy_pass with a URI: vLLM receives exactly this path (normalized by nginx), never a
        # raw variant of it that its own router might read differently.
        return f"        location = {path} {{\n{check}            proxy_pass {upstream}{path};\n        }}\n"

    locations = "".join([*(location(p, False) for p in PUBLIC_PATHS), *(location(p, True) for p in FORWARDED_PATHS)])
    user_line = f"user {user};\n" if user else ""
    return f"""# Written by qwen-serving (components/tls_proxy.py); a `pulumi up` rewrites it.
{user_line}worker_processes auto;
daemon off;
pid {run_dir}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log /dev/stdout;
    server_tokens off;
    default_type application/json;
    # Temporary files under run_dir: the config needs no writable nginx prefix.
    client_body_temp_path {run_dir}/client_body;
    proxy_temp_path {run_dir}/proxy;
    fastcgi_temp_path {run_dir}/fastcgi;
    uwsgi_temp_path {run_dir}/uwsgi;
    scgi_temp_path {run_dir}/scgi;

    # 1 when the request carries exactly `Authorization: Bearer <key>`. A case-sensitive regex:
    # plain map strings would match the key ignoring case.
    map $http_authorization $qwen_key_ok {{
        default 0;
        include {conf_dir}/api-key.map;
    }}

    server {{
        listen {listen_address}:{port} ssl;
        ssl_certificate {conf_dir}/server.crt;
        ssl_certificate_key {conf_dir}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:qwen_tls:10m;

        # A 32k-token prompt is about 130 KB of JSON; batched /v1/completions prompts add up.
        client_max_body_size 16m;
        client_body_buffer_size 1m;
        # Tokens stream as they are generated (no buffering), and a long prefill or a long
        # non-streamed answer may keep the upstream silent for minutes.
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;

{locations}
        location / {{
            if ($qwen_key_ok = 0) {{ return 401 '{{"error": "Unauthorized"}}'; }}
            return 404 '{{"error": "Not Found"}}';
        }}
    }}
}}
"""


@dataclass(frozen=True)
class ProxyStartEnv:
    """The proxy_start.sh step's inputs (its `# Env:` line); stdin carries the API key line, then
    the server's private key (PEM)."""

    IMAGE: str  # the pinned proxy image
    PORT: str  # the public API port
    NGINX_CONF: str  # nginx_config() for the container's paths
    CONF_MOUNT: str  # where the config directory is mounted in the container
    SERVER_CERT: pulumi.Input[str]  # PEM, public


@dataclass(frozen=True)
class ProxySmokeEnv:
    """The proxy_smoke.sh step's inputs (its `# Env:` line)."""

    PORT: str  # the public API port
    PUBLIC_IP: pulumi.Input[str]  # the address (or name) clients use, which the certificate must be valid for
    CONNECT_IP: str  # where the proxy listens on the head: 127.0.0.1 unless it listens on one address
    PRIVATE_IP: pulumi.Input[str]  # where vLLM must not answer
    UPSTREAM_PORT: str  # vLLM's port on 127.0.0.1
    CA_CERT: pulumi.Input[str]  # PEM of the CA that signed the server certificate
    SERVED_NAME: str  # the model the measured request asks


@dataclass
class TlsProxyArgs:
    head: GpuHost  # the host vLLM runs on; the proxy runs beside it (host network)
    service_ready: pulumi.Resource  # vLLM's health step: the proxy starts once vLLM answers
    service_fingerprint: pulumi.Input[str]  # changes with the serve command; re-runs the smoke check
    image: str  # pinned proxy image (qwen:serving.proxyImage); a new one restarts the proxy
    port: int  # public API port: TLS on listen_address
    upstream_port: int  # vLLM's port on 127.0.0.1
    api_key: pulumi.Input[str]  # secret; reaches the host on stdin only
    served_name: str  # the model name the smoke request sends
    listen_address: str = "0.0.0.0"  # where nginx listens on the head (owned machines: qwen:owned.listenAddress)
    api_host: str | None = None  # the address or DNS name clients use; None: the head's public IP


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _both(address: str, private_ip: pulumi.Input[str]) -> pulumi.Output[Sequence[str]]:
    """The address clients use and the private IP, once each (on one machine they can be the same)."""
    return pulumi.Output.from_input(private_ip).apply(lambda private: sorted({address, private}))


class TlsProxy(pulumi.ComponentResource):
    """Outputs: ``endpoint`` (https://PUBLIC_IP:PORT/v1), ``ca_certificate`` (PEM of the CA that
    signed the server certificate), ``smoke`` (the smoke check's result: status and seconds of one
    chat request through the proxy, and what each path answered without the key), ``start`` (the
    start step) and ``ready`` (the smoke step)."""

    endpoint: pulumi.Output[str]
    ca_certificate: pulumi.Output[str]
    smoke: pulumi.Output[dict]

    def __init__(self, name: str, args: TlsProxyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("qwen:serving:TlsProxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # ECDSA P-256: what every TLS client verifies, and small keys and certificates.
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca", private_key_pem=ca_key.private_key_pem, is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"qwen-serving {pulumi.get_stack()} CA",
                                                  organization="qwen-serving"),
            validity_period_hours=CA_CERT_HOURS, allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child)
        server_key = tls.PrivateKey(f"{name}-server-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        # Clients reach the head by its public IP (or the address or name an owned machine is
        # reached by); hosts in the private network by its private IP.
        ip_addresses: pulumi.Input[Sequence[pulumi.Input[str]]]
        dns_names: list[str] | None = None
        api_host = args.api_host
        if api_host is None:
            ip_addresses = [args.head.public_ip, args.head.private_ip]
        elif _is_ip(api_host):
            ip_addresses = _both(api_host, args.head.private_ip)
        else:
            ip_addresses, dns_names = [args.head.private_ip], [api_host]
        request = tls.CertRequest(
            f"{name}-server-csr", private_key_pem=server_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name="qwen-serving API", organization="qwen-serving"),
            ip_addresses=ip_addresses, dns_names=dns_names, opts=child)
        server_cert = tls.LocallySignedCert(
            f"{name}-server-cert", cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem, ca_cert_pem=ca.cert_pem,
            validity_period_hours=SERVER_CERT_HOURS, early_renewal_hours=SERVER_CERT_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "server_auth"], opts=child)  # ECDSA: no key_encipherment

        start_env = ProxyStartEnv(IMAGE=args.image, PORT=str(args.port),
                                  NGINX_CONF=nginx_config(args.port, args.upstream_port, listen_address=args.listen_address),
                                  CONF_MOUNT=CONTAINER_CONF_DIR, SERVER_CERT=server_cert.cert_pem)
        self.start = remote_step(
            f"{name}-start", step="proxy-start", host=args.head, script="proxy_start.sh",
            env=dict(vars(start_env)),
            stdin=pulumi.Output.all(args.api_key, server_key.private_key_pem).apply(lambda v: f"{v[0]}\n{v[1]}"),
            parent=self, depends_on=[args.service_ready], removes=Removal(containers=("qwen-proxy",)),
        )
        # Changes whenever the start command does (image, config, certificate); remote_step always sets it.
        start_fingerprint = self.start.create.apply(lambda create: hashlib.sha256((create or "").encode()).hexdigest()[:16])
        client_host: pulumi.Input[str] = args.api_host if args.api_host is not None else args.head.public_ip
        connect_ip = "127.0.0.1" if args.listen_address in ("0.0.0.0", "127.0.0.1") else args.listen_address
        smoke_env = ProxySmokeEnv(PORT=str(args.port), PUBLIC_IP=client_host, CONNECT_IP=connect_ip,
                                  PRIVATE_IP=args.head.private_ip,
                                  UPSTREAM_PORT=str(args.upstream_port), CA_CERT=ca.cert_pem, SERVED_NAME=args.served_name)
        self.ready = remote_step(
            f"{name}-smoke", step="proxy-smoke", host=args.head, script="proxy_smoke.sh", env=dict(vars(smoke_env)),
            # Re-checked whenever vLLM or the proxy changes.
            triggers=[args.service_fingerprint, start_fingerprint],
            parent=self, depends_on=[self.start],
        )
        self.endpoint = pulumi.Output.concat("https://", client_host, ":", str(args.port), "/v1")
        self.ca_certificate = ca.cert_pem
        self.smoke = self.ready.stdout.apply(json.loads)
        self.register_outputs({"endpoint": self.endpoint, "ca_certificate": self.ca_certificate, "smoke": self.smoke})

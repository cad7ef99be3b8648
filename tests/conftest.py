"""Test-wide guard: no test reaches a machine beyond this one (a cloud API, a model hub, a registry).

The Azure preflight talks to Azure through real SDK clients; tests hand in a fake client (tests/harness.py
run_stack), and this guard turns a forgotten one into a clear failure instead of a call to Azure.
Loopback stays open for the local stand-ins (nginx, HTTP servers) some tests start.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

LOCAL_NAMES = ("localhost", "")


def _is_local(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host).lower() in LOCAL_NAMES


def _refuse(where: object) -> OSError:
    return ConnectionRefusedError(f"tests never reach the network: {where!r} refused (tests/conftest.py)")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(real):
        def call(sock, address):
            # a UDP connect sends nothing (tests use one to learn this host's address)
            if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type != socket.SOCK_DGRAM
                    and not _is_local(address[0])):
                raise _refuse(address)
            return real(sock, address)
        return call

    def resolve(host, *args, **kwargs):
        if host is not None and not _is_local(host.decode() if isinstance(host, bytes) else host):
            raise _refuse(host)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", resolve)

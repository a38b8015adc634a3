"""Block every network connection except loopback, for tests and their subprocesses.

Imported by tests/conftest.py, and at start-up by any subprocess run with this folder on
PYTHONPATH (`sitecustomize` is imported automatically), so a hidden download fails loudly.
"""

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkBlocked(OSError):
    pass


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host is None or str(host).lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        if not _is_loopback(address[0]):
            raise NetworkBlocked(f"tests may not reach the network: connection to {address!r} blocked")


def install():
    if getattr(socket, "_tokdeck_netguard", False):
        return
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        _check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _check(self, address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        _check(self, args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise NetworkBlocked(f"tests may not reach the network: name lookup of {host!r} blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket._tokdeck_netguard = True


install()

"""A userspace IP-in-IP datapath (RFC 2003) for kernels without the ipip module.

Runs inside a node's namespace: owns a TUN device, reads the pod packets the kernel
routes into it, wraps each in an outer IPv4 header with protocol 4 (the kernel adds
that header: the raw socket is opened for protocol 4) and sends it to the node that
owns the destination's pod block; protocol-4 packets arriving on the raw socket lose
their outer header and go back into the TUN device. On the wire the packets are the
ones the kernel's ipip device would send.

    python -m testbed.podnet.ipip_userspace --dev tunl0 --peer 10.244.1.0/24=192.168.10.11 ...
"""
from __future__ import annotations

import argparse
import fcntl
import ipaddress
import os
import select
import socket
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class PeerTable:
    """Pod block -> node address, by longest prefix (few entries: a linear scan)."""

    def __init__(self, peers: list[tuple[str, str]]):
        self.entries = sorted(((ipaddress.ip_network(b), a) for b, a in peers), key=lambda e: -e[0].prefixlen)
        self.cache: dict[bytes, str | None] = {}

    def lookup(self, dst: bytes) -> str | None:
        hit = self.cache.get(dst, "")
        if hit != "":
            return hit
        ip = ipaddress.IPv4Address(dst)
        found = next((a for net, a in self.entries if ip in net), None)
        self.cache[dst] = found
        return found


def serve(dev: str, peers: list[tuple[str, str]]) -> None:
    tun = open_tun(dev)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    table = PeerTable(peers)
    rawfd = raw.fileno()
    poller = select.epoll()
    poller.register(tun, select.EPOLLIN)
    poller.register(rawfd, select.EPOLLIN)
    read, write, sendto, recv = os.read, os.write, raw.sendto, raw.recv
    os.set_blocking(tun, False)
    raw.setblocking(False)
    while True:
        for fd, _ in poller.poll():
            if fd == tun:
                while True:  # drain: fewer wake-ups under load
                    try:
                        pkt = read(tun, 65535)
                    except BlockingIOError:
                        break
                    peer = table.lookup(pkt[16:20])
                    if peer:
                        try:
                            sendto(pkt, (peer, 0))
                        except (BlockingIOError, OSError):
                            pass  # a full queue drops, as a link would
            else:
                while True:
                    try:
                        pkt = recv(65535)
                    except BlockingIOError:
                        break
                    inner = pkt[(pkt[0] & 0x0F) * 4:]
                    if inner:
                        try:
                            write(tun, inner)
                        except OSError:
                            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", default="tunl0")
    ap.add_argument("--peer", action="append", default=[], help="POD_BLOCK=NODE_IP")
    args = ap.parse_args()
    serve(args.dev, [tuple(p.split("=", 1)) for p in args.peer])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The built-in echo server: one process answers for every pod of a lab.

Each pod's listening sockets are made inside the pod's network namespace (the main
thread enters it for the moment the socket is made; a socket stays in the namespace
it was born in), then one asyncio loop serves them all. Over HTTP any path gets
``{"pod", "namespace", "podIP", "node", "client", "path", "host"}``; over UDP any
datagram gets the same JSON.

Control: JSON lines on stdin, replies on stdout.
  {"op": "add", "id", "pod", "namespace", "podIP", "node", "netns", "ports": [{"port", "protocol"}]}
  {"op": "remove", "id"}
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import socket
import sys

CLONE_NEWNET = 0x40000000
REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/\d\.\d\r?$")
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def make_sockets(netns: str, ports: list[dict]) -> list[socket.socket]:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    socks: list[socket.socket] = []
    try:
        _setns(target)
        try:
            for p in ports:
                udp = p.get("protocol", "TCP") == "UDP"
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", int(p["port"])))
                if not udp:
                    s.listen(1024)
                s.setblocking(False)
                socks.append(s)
        finally:
            _setns(own)
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        os.close(own)
        os.close(target)
    return socks


def answer(ident: dict, client: tuple, path: str, host: str) -> bytes:
    return json.dumps({**ident, "client": f"{client[0]}:{client[1]}", "path": path, "host": host}).encode()


class HttpEcho(asyncio.Protocol):
    def __init__(self, ident: dict):
        self.ident = ident
        self.buf = b""
        self.pending: tuple[str, str, bool] | None = None  # (path, host, close) of a request being read
        self.body_left = 0  # bytes of its body still to come (bodies are read and ignored)

    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("", 0)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.pending:
                taken = min(self.body_left, len(self.buf))
                self.buf, self.body_left = self.buf[taken:], self.body_left - taken
                if self.body_left:
                    return  # the body comes in pieces: answer once it is all here
                path, host, close = self.pending
                self.pending = None
                if self._respond(path, host, close):
                    return
            if not self.buf:
                return
            line, nl, _ = self.buf.partition(b"\n")
            if (nl or len(self.buf) > 8192) and not REQUEST_LINE.match(line):
                self._raw()  # not HTTP: answer the JSON once and close
                return
            if b"\r\n\r\n" not in self.buf:
                return  # wait for the rest of the request head
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            close = headers.get("connection", "").lower() == "close" or parts[2] == "HTTP/1.0"
            self.pending = (parts[1], headers.get("host", ""), close)
            self.body_left = int(headers.get("content-length", "0") or 0)

    def _respond(self, path: str, host: str, close: bool) -> bool:
        """Answer one request; True if the connection is now closed."""
        body = answer(self.ident, self.peer, path, host) + b"\n"
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n%s\r\n" % (len(body), b"Connection: close\r\n" if close else b"")
                             + body)
        if close:
            self.transport.close()
        return close

    def eof_received(self) -> bool:
        if self.buf:  # a client that sent a few bytes without a newline and half-closed
            self._raw()
        return False

    def _raw(self) -> None:
        self.transport.write(answer(self.ident, self.peer, "", "") + b"\n")
        self.transport.close()
        self.buf = b""


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, ident: dict):
        self.ident = ident

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(answer(self.ident, addr, "", "") + b"\n", addr)


class EchoDaemon:
    def __init__(self) -> None:
        self.pods: dict[str, list] = {}  # id -> servers and transports

    async def add(self, req: dict) -> None:
        loop = asyncio.get_running_loop()
        ident = {"pod": req["pod"], "namespace": req["namespace"], "podIP": req["podIP"], "node": req["node"]}
        handles = []
        try:
            for s in make_sockets(req["netns"], req["ports"]):
                if s.type == socket.SOCK_DGRAM:
                    transport, _ = await loop.create_datagram_endpoint(lambda: UdpEcho(ident), sock=s)
                    handles.append(transport)
                else:
                    handles.append(await loop.create_server(lambda: HttpEcho(ident), sock=s))
        except BaseException:
            for h in handles:
                h.close()
            raise
        self.remove(req["id"])
        self.pods[req["id"]] = handles

    def remove(self, ident: str) -> None:
        for h in self.pods.pop(ident, []):
            h.close()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            req = json.loads(line)
            reply = {"id": req.get("id"), "ok": True}
            try:
                if req["op"] == "add":
                    await self.add(req)
                elif req["op"] == "remove":
                    self.remove(req["id"])
                else:
                    raise ValueError(f"unknown op {req['op']!r}")
            except Exception as e:  # reported to the lab, which owns the pod
                reply = {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def main() -> int:
    asyncio.run(EchoDaemon().serve())
    return 0

"""The lab's handle on the echo process: start it, add and remove pods, stop it."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

from testbed.netns import DIE_WITH_PARENT


class EchoError(RuntimeError):
    pass


class EchoServer:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.proc = subprocess.Popen([*DIE_WITH_PARENT, sys.executable, "-m", "testbed.echo"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def _request(self, req: dict) -> dict:
        with self._lock:
            assert self.proc and self.proc.stdin and self.proc.stdout
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise EchoError("the echo server exited")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise EchoError(reply.get("error", "unknown error"))
        return reply

    def add(self, pod_id: str, pod: str, namespace: str, pod_ip: str, node: str, netns_path: str,
            ports: list[dict]) -> None:
        self._request({"op": "add", "id": pod_id, "pod": pod, "namespace": namespace, "podIP": pod_ip,
                       "node": node, "netns": netns_path, "ports": ports})

    def remove(self, pod_id: str) -> None:
        self._request({"op": "remove", "id": pod_id})

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

"""The background lab process: owns one Lab and serves its control socket.

    python -m testbed.labd --name LAB --topology FILE [--network B] [--proxy M] [--manifest F ...] --ready-fd N

It tells the `up` that started it on --ready-fd whether the lab came up ("ok" or the
error as JSON), then serves JSON-line requests on /run/testbed/LAB/lab.sock (root
only) until `down` or SIGTERM, and tears the lab down on the way out.

Requests, one JSON line per connection, answered by one JSON line {"result": ...} or
{"error": message, "exit_code": N}:
  {"op": "apply"|"delete", "text": YAML, "source": FILE}    kubectl-like lines
  {"op": "get", "kind", "name", "namespace", "all_namespaces"}
  {"op": "status"}   {"op": "info"}   {"op": "host_ip", "name"}
  {"op": "wait", "timeout": S}      until every pod is Ready
  {"op": "down"}                    tear down and exit
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import traceback

from testbed.errors import TestbedError
from testbed.runtime import state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="testbed.labd")
    ap.add_argument("--name", required=True)
    ap.add_argument("--topology", required=True)
    ap.add_argument("--network")
    ap.add_argument("--proxy")
    ap.add_argument("--manifest", action="append", default=[])
    ap.add_argument("--ready-fd", type=int)
    args = ap.parse_args(argv)

    from testbed.lab import Lab

    ready = os.fdopen(args.ready_fd, "w") if args.ready_fd else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        lab = Lab.start(args.topology, name=args.name, network=args.network, proxy=args.proxy,
                        manifests=tuple(args.manifest))
    except BaseException as e:
        code = e.exit_code if isinstance(e, TestbedError) else 1
        if not isinstance(e, TestbedError):
            traceback.print_exc()
        _tell(ready, {"error": str(e), "exit_code": code})
        return code
    sock = state.lab_dir(args.name) / "lab.sock"
    server = _server(str(sock), lab, stop)
    st = state.read_state(args.name) or {}
    st["socket"] = str(sock)
    state.write_state(args.name, st)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _tell(ready, {"ok": True, "name": args.name})
    stop.wait()
    server.shutdown()
    lab.stop()
    return 0


def _tell(ready, msg: dict) -> None:
    """Tell the `up` that started us how it went; it may be gone already (Ctrl-C)."""
    if ready is None:
        return
    try:
        ready.write(json.dumps(msg) + "\n")
        ready.close()
    except OSError:
        pass


def _server(path: str, lab, stop: threading.Event) -> socketserver.ThreadingUnixStreamServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            if not line:
                return
            try:
                req = json.loads(line)
                reply = {"result": dispatch(lab, req, stop)}
            except TestbedError as e:
                reply = {"error": str(e), "exit_code": e.exit_code}
            except TimeoutError as e:
                reply = {"error": str(e), "exit_code": 1}
            except Exception as e:  # shown to the user; the lab goes on
                traceback.print_exc()
                reply = {"error": f"{type(e).__name__}: {e}", "exit_code": 1}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    old = os.umask(0o177)  # the socket is root's alone
    try:
        server = socketserver.ThreadingUnixStreamServer(path, Handler)
    finally:
        os.umask(old)
    server.daemon_threads = True
    return server


def dispatch(lab, req: dict, stop: threading.Event):
    op = req.get("op")
    if op == "apply":
        return lab.apply_text(req["text"], req.get("source", "-"))
    if op == "delete":
        return lab.delete_text(req["text"], req.get("source", "-"))
    if op == "get":
        return lab.get(req["kind"], req.get("name"), req.get("namespace") or "default",
                       bool(req.get("all_namespaces")))
    if op == "host_ip":
        return lab.host_ip(req["name"])
    if op == "info":
        return lab.info()
    if op in ("wait", "wait_pods_ready"):
        return lab.wait_pods_ready(float(req.get("timeout", 30)))
    if op == "status":
        pods = lab.get("pods", all_namespaces=True)
        ready = sum(any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in p.get("status", {}).get("conditions", [])) for p in pods)
        return {**lab.info(), "pid": os.getpid(), "pods": len(pods), "ready": ready}
    if op in ("down", "stop"):
        stop.set()
        return "stopping"
    raise ValueError(f"unknown op {op!r}")


if __name__ == "__main__":
    sys.exit(main())

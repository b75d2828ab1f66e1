"""healthCheckNodePort: what a cloud load balancer asks each node (kube-proxy's answer).

200 with ``{"service": {...}, "localEndpoints": N}`` where the node has local endpoints
for the Service, 503 where it has none. The listening socket is made inside the node's
namespace; a thread of the lab serves it.
"""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testbed.netns import Namespace


class HealthServer:
    def __init__(self, ns: Namespace, port: int, namespace: str, name: str):
        self.state = {"namespace": namespace, "name": name, "local": 0}
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = json.dumps({"service": {"namespace": state["namespace"], "name": state["name"]},
                                   "localEndpoints": state["local"], "serviceProxyHealthy": True}).encode()
                self.send_response(200 if state["local"] else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", port), Handler, bind_and_activate=False)
        self.server.socket.close()
        with ns.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(64)
        self.server.socket = sock
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"health-{port}", daemon=True)
        self.thread.start()

    def set_local(self, count: int) -> None:
        self.state["local"] = count

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

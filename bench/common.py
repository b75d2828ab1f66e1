"""Helpers shared by the benchmarks: generated topologies, memory, timing, tables."""
from __future__ import annotations

import time
from contextlib import contextmanager

from testbed.topo.load import parse_topology
from testbed.topo.model import Topology


def flat_topology(nodes: int, network: str = "routed", proxy: str = "nftables", name: str = "bench") -> Topology:
    """``nodes`` Kubernetes nodes and one outside client on one /16 segment."""
    data = {
        "name": name,
        "cluster": {"network": network, "proxyMode": proxy},
        "segments": [{"name": "lan", "cidr": "172.31.0.0/16"}],
        "nodes": [{"name": f"node{i + 1}", "segment": "lan"} for i in range(nodes)],
        "hosts": [{"name": "client", "segment": "lan"}],
    }
    return parse_topology(data, "<bench>")


def deployments(count: int, replicas: int, port: int = 8000, prefix: str = "web") -> str:
    """``count`` Deployments of ``replicas`` echo pods, each with a ClusterIP Service."""
    docs = []
    for i in range(count):
        name = f"{prefix}{i}"
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: echo
        ports: [{{containerPort: {port}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: {port}}}]
""")
    return "---\n".join(docs)


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


@contextmanager
def timed(into: dict, key: str):
    t = time.perf_counter()
    yield
    into[key] = time.perf_counter() - t

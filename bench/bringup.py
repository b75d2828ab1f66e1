"""Bring-up and teardown of whole labs, beside bare Mininet building the same hosts.

    sudo .venv/bin/python bench/bringup.py [--sizes 3x30,20x200,50x500]

For each size: seconds until every pod is Ready and answers on its port from a node,
teardown seconds, memory (MemAvailable drop: processes and kernel objects alike, per
idle pod), and bare Mininet (Host = bash in mnexec, Link = veth, all in namespaces)
building and stopping the same hosts and links. Bars (DESIGN.md section 4): 3/30 <= 3 s;
50/500 <= 2x bare Mininet to build and <= bare Mininet to stop; <= 5 MiB per idle pod.
"""
from __future__ import annotations

import argparse
import gc
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import deployments, flat_topology, mem_available_kib, timed  # noqa: E402
from testbed.lab import Lab  # noqa: E402

console = Console(width=150)


def reachable(lab: Lab, node: str, targets: list[tuple[str, int]], timeout: float = 10) -> int:
    """Connect to every (ip, port) from inside ``node``; returns how many answered."""
    sel = selectors.DefaultSelector()
    with lab.ns(node).entered():
        socks = [socket.socket() for _ in targets]
    pending = {}
    for s, addr in zip(socks, targets):
        s.setblocking(False)
        s.connect_ex(addr)
        sel.register(s, selectors.EVENT_WRITE)
        pending[s] = addr
    ok = 0
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                ok += 1
            sel.unregister(s)
            pending.pop(s)
    for s in socks:
        s.close()
    return ok


def bench_lab(nodes: int, pods: int, services: int = 10) -> dict:
    r: dict = {}
    gc.collect()
    before = mem_available_kib()
    topo = flat_topology(nodes, name=f"bench{nodes}")
    t0 = time.perf_counter()
    lab = Lab.start(topo)
    r["nodes_up"] = time.perf_counter() - t0
    mem_nodes = mem_available_kib()
    try:
        lab.apply_text(deployments(services, pods // services), "<bench>")
        lab.wait_pods_ready(timeout=300)
        ips = [(p["status"]["podIP"], 8000) for p in lab.get("pods", all_namespaces=True)]
        r["reachable"] = reachable(lab, "node1", ips)
        r["ready"] = time.perf_counter() - t0
        after = mem_available_kib()
        r["mem_total_mib"] = (before - after) / 1024
        r["mib_per_pod"] = (mem_nodes - after) / 1024 / pods
    finally:
        with timed(r, "down"):
            lab.stop()
    return r


def bench_mininet(nodes: int, pods: int) -> dict:
    """Bare Mininet: one bash host per node and pod, a switch host with a bridge, veth links."""
    from mininet.net import Mininet
    from mininet.node import Host

    r: dict = {}
    t0 = time.perf_counter()
    net = Mininet(build=False, controller=None, autoSetMacs=False)
    sw = net.addHost("sw", ip=None)
    hosts = []
    for i in range(nodes):
        n = net.addHost(f"n{i}", ip=None)
        net.addLink(n, sw)
        hosts.append(n)
    for j in range(pods):
        p = net.addHost(f"p{j}", ip=None)
        net.addLink(p, hosts[j % nodes])
    net.build()
    r["build"] = time.perf_counter() - t0
    with timed(r, "stop"):
        net.stop()
    assert isinstance(sw, Host)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3x30,20x200,50x500")
    args = ap.parse_args()
    table = Table(title="bring-up: testbed vs bare Mininet (one run, ratios beside the bars)")
    for col in ("nodes/pods", "ready s", "reachable", "down s", "MiB total", "MiB/pod",
                "mininet build s", "mininet stop s", "build ratio", "stop ratio"):
        table.add_column(col, justify="right")
    for size in args.sizes.split(","):
        nodes, pods = (int(x) for x in size.split("x"))
        with console.status(f"testbed {nodes} nodes / {pods} pods ..."):
            lab = bench_lab(nodes, pods)
        with console.status(f"bare Mininet {nodes + pods + 1} hosts ..."):
            mn = bench_mininet(nodes, pods)
        table.add_row(f"{nodes}/{pods}", f"{lab['ready']:.2f}", f"{lab['reachable']}/{pods}", f"{lab['down']:.2f}",
                      f"{lab['mem_total_mib']:.0f}", f"{lab['mib_per_pod']:.2f}", f"{mn['build']:.2f}",
                      f"{mn['stop']:.2f}", f"{lab['ready'] / mn['build']:.2f}", f"{lab['down'] / mn['stop']:.2f}")
    console.print(table)
    console.print("Bars: 3/30 ready <= 3 s; 50/500 build ratio <= 2.0 and stop ratio <= 1.0; MiB/pod <= 5.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pod-to-pod throughput and latency per backend, beside two namespaces on one veth.

    sudo .venv/bin/python bench/podnet.py [--seconds 3] [--rounds 5] [--backends routed,vxlan,ipip,bgp]

Pods sit on two nodes of one segment; iperf3 runs pod to pod. The baseline is two bare
namespaces joined by one veth pair (the limit on this machine). Also: seconds from the
start of BIRD until every one of 10 nodes has every other node's pod route.
Bars (DESIGN.md section 4): routed/bgp >= 0.85, vxlan >= 0.8, kernel ipip >= 0.8.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import flat_topology  # noqa: E402
from testbed.lab import Lab  # noqa: E402
from testbed.runtime.hosts import LabHost  # noqa: E402

console = Console(width=150)
BARS = {"routed": 0.85, "bgp": 0.85, "vxlan": 0.8, "ipip": 0.8}


def iperf(server_ns, client_ns, server_ip: str, seconds: int) -> float:
    """Gbit/s received; a fresh one-shot server per attempt (a run can end without a
    result when the client races the server's start-up, so that attempt is retried)."""
    last = ""
    for _ in range(20):
        srv = subprocess.Popen(server_ns.argv(["iperf3", "-s", "-1", "-p", "5201"]), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                r = client_ns.run(["iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds), "-J"],
                                  check=False, timeout=seconds + 30)
                last = f"{r.stdout[-300:]} {r.stderr}"
                if r.returncode == 0:
                    break
                time.sleep(0.1)
            try:
                return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
            except (ValueError, KeyError):
                time.sleep(0.2)
        finally:
            srv.kill()
            srv.wait()
    raise RuntimeError(f"iperf3 failed: {last}")


def median(run, times: int = 3) -> float:
    """The middle of three runs: this machine is shared and noisy."""
    return sorted(run() for _ in range(times))[times // 2]


def rtt(ns, ip: str) -> float:
    out = ns.run(["ping", "-c", "20", "-i", "0.05", "-q", ip], check=False).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


class VethPair:
    """The limit on this machine: two namespaces joined by one veth pair."""

    def __init__(self) -> None:
        self.a, self.b = LabHost("veth-a"), LabHost("veth-b")
        ipr = self.a.ns.ipr()
        ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.b.ns.net_path})
        for h, ip in ((self.a, "10.99.0.1"), (self.b, "10.99.0.2")):
            r = h.ns.ipr()
            idx = r.link_lookup(ifname="eth0")[0]
            r.link("set", index=1, state="up")
            r.link("set", index=idx, state="up")
            r.addr("add", index=idx, address=ip, prefixlen=24)

    def iperf(self, seconds: int) -> float:
        return iperf(self.b.ns, self.a.ns, "10.99.0.2", seconds)

    def rtt(self) -> float:
        return rtt(self.a.ns, "10.99.0.2")

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


PODS = """
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {nodeName: node1, containers: [{name: c, command: [sleep, infinity]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {nodeName: node2, containers: [{name: c, command: [sleep, infinity]}]}
"""


def backend(network: str, seconds: int, rounds: int, veth: VethPair) -> dict:
    """Alternate veth and pod-to-pod runs, so both see the same load on this shared machine;
    the figure is the median of the per-round ratios."""
    with Lab.start(flat_topology(2, network=network, name=f"bench-{network}")) as lab:
        lab.apply_text(PODS, "<bench>")
        lab.wait_pods_ready(30)
        b_ip = lab.get("pod", "b")["status"]["podIP"]
        a_ns, b_ns = lab.pod_ns("default", "a"), lab.pod_ns("default", "b")
        pairs = []
        for _ in range(rounds):
            base = veth.iperf(seconds)
            pairs.append((iperf(b_ns, a_ns, b_ip, seconds), base))
        ratios = sorted(p / b for p, b in pairs)
        return {"gbps": sorted(p for p, _ in pairs)[rounds // 2], "ratio": ratios[rounds // 2],
                "spread": (ratios[0], ratios[-1]), "rtt": rtt(a_ns, b_ip), "how": lab.backend.describe()}


def bgp_convergence(nodes: int = 10) -> float:
    with Lab.start(flat_topology(nodes, network="bgp", name="bench-bgp10")) as lab:
        return lab.backend.converged_after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="paired veth/backend runs per backend")
    ap.add_argument("--backends", default="routed,vxlan,ipip,bgp")
    args = ap.parse_args()
    veth = VethPair()
    table = Table(title=f"pod to pod across two nodes (iperf3 {args.seconds} s; {args.rounds} rounds, each "
                        "backend run paired with a veth run; medians, and the spread of the ratios)")
    for col in ("backend", "Gbit/s", "ratio to veth", "ratio spread", "bar", "ping ms", "datapath"):
        table.add_column(col, justify="right")
    try:
        with console.status("veth baseline ..."):
            base = sorted(veth.iperf(args.seconds) for _ in range(3))[1]
            table.add_row("veth (limit)", f"{base:.2f}", "1.00", "", "", f"{veth.rtt():.3f}",
                          "two namespaces, one veth")
        for network in args.backends.split(","):
            with console.status(f"{network} ..."):
                r = backend(network, args.seconds, args.rounds, veth)
            bar = BARS.get(network)
            if network == "ipip" and "userspace" in r["how"]:
                bar = None  # the bar is for the kernel path
            verdict = "" if bar is None else (f">= {bar} ok" if r["ratio"] >= bar else f">= {bar} MISSED")
            table.add_row(network, f"{r['gbps']:.2f}", f"{r['ratio']:.2f}",
                          f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f}", verdict, f"{r['rtt']:.3f}", r["how"])
    finally:
        veth.stop()
    console.print(table)
    with console.status("BGP convergence, 10 nodes ..."):
        secs = bgp_convergence()
    console.print(f"BGP: every node has every pod route {secs:.2f} s after BIRD started (10 nodes, bar <= 3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The service proxy at scale, nftables and iptables side by side (one run).

    sudo .venv/bin/python bench/proxy.py [--sizes 1000,5000,10000] [--modes nftables,iptables]

In bare namespaces (a node and a pod joined by a veth) a ProxyAgent is fed N Services
of 5 endpoints each. Measured: time to program one more Service with N present, a
full sync of the largest N, TCP connection setup from the node to a Service with 10
and with N Services present, and iperf3 through a ClusterIP against the pod IP.
Bars (DESIGN.md section 4, nftables): add one at 10,000 <= 100 ms; full sync <= 5 s;
setup latency at 10,000 within 1.2x of at 10; ClusterIP throughput >= 0.95 of direct.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from testbed.proxy.agent import ProxyAgent  # noqa: E402
from testbed.runtime.hosts import LabHost  # noqa: E402
from testbed.topo.model import Host, Interface  # noqa: E402

console = Console(width=150)
POD_IP, NODE_IP = "10.250.0.2", "10.250.0.1"
SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")


def service(i: int, endpoints: list[str], port: int = 80, target: int = 8000, ns: str = "bench") -> tuple[dict, dict]:
    name = f"s{i}"
    ip = str(SERVICE_NET.network_address + 16 + i)
    svc = {"kind": "Service", "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
           "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"port": port, "protocol": "TCP"}]},
           "status": {}}
    sl = {"kind": "EndpointSlice", "metadata": {"name": f"{name}-x", "namespace": ns, "resourceVersion": "1",
                                                "labels": {"kubernetes.io/service-name": name}},
          "ports": [{"name": "", "port": target, "protocol": "TCP"}],
          "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "n" if a == POD_IP else "elsewhere"}
                        for a in endpoints]}
    return svc, sl


def fake_endpoints(i: int) -> list[str]:
    base = ipaddress.ip_address("10.200.0.0") + i * 5
    return [str(base + k) for k in range(5)]


class Bench:
    def __init__(self) -> None:
        self.node, self.pod = LabHost("bench-node"), LabHost("bench-pod")
        ipr = self.node.ns.ipr()
        ipr.link("add", ifname="veth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": self.pod.ns.net_path})
        for h, name, ip in ((self.node, "veth0", NODE_IP), (self.pod, "eth0", POD_IP)):
            r = h.ns.ipr()
            idx = r.link_lookup(ifname=name)[0]
            r.link("set", index=1, state="up")
            r.link("set", index=idx, state="up")
            r.addr("add", index=idx, address=ip, prefixlen=24)
        self.pod.ns.ipr().route("add", dst="0.0.0.0/0", gateway=NODE_IP)
        self.node.ns.ipr().route("add", dst=str(SERVICE_NET), gateway=POD_IP)  # cluster IPs need a route
        with self.pod.ns.entered():
            self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((POD_IP, 8000))
        self.listener.listen(4096)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.close()

    def agent(self, mode: str) -> ProxyAgent:
        host = Host("n", "node", [Interface("veth0", "lan", NODE_IP, 24, "")])
        return ProxyAgent(host, self.node.ns, mode)

    def connect_ms(self, ip: str, count: int = 200, batches: int = 5) -> float:
        """Median per-connect time over batches, after a warm-up: the first connects also
        pay for ARP and cache misses, which would be charged to whichever size runs first."""
        def batch(n: int) -> float:
            with self.node.ns.entered():
                socks = [socket.socket() for _ in range(n)]
            t = time.perf_counter()
            for s in socks:
                s.connect((ip, 80))
                s.close()
            return (time.perf_counter() - t) / n * 1000
        batch(20)
        return sorted(batch(count) for _ in range(batches))[batches // 2]

    def iperf(self, ip: str, port: int) -> float:
        srv = subprocess.Popen(self.pod.ns.argv(["iperf3", "-s", "-1", "-p", "5201"]), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                r = self.node.ns.run(["iperf3", "-c", ip, "-p", str(port), "-t", "3", "-J"], check=False, timeout=40)
                end = json.loads(r.stdout or "{}").get("end", {}) if r.returncode == 0 else {}
                if "sum_received" in end:
                    return end["sum_received"]["bits_per_second"] / 1e9
                time.sleep(0.1)
            raise RuntimeError(r.stderr)
        finally:
            srv.kill()
            srv.wait()

    def stop(self) -> None:
        self.listener.close()
        self.node.stop()
        self.pod.stop()


def run_mode(bench: Bench, mode: str, sizes: list[int]) -> dict:
    r: dict = {"add": {}}
    agent = bench.agent(mode)
    # the measured Service sorts last, so iptables walks every other Service first
    target_svc, target_slice = service(0, [POD_IP], ns="zzz")
    try:
        services, slices = [target_svc], [target_slice]
        agent.sync(services, slices)
        for n in sorted(sizes):
            for i in range(len(services), n):
                s, sl = service(i, fake_endpoints(i))
                services.append(s)
                slices.append(sl)
            t = time.perf_counter()
            agent.sync(services, slices)
            r.setdefault("sync_to", {})[n] = time.perf_counter() - t
            extra, extra_slice = service(n + 1, fake_endpoints(n + 1))
            t = time.perf_counter()
            agent.sync(services + [extra], slices + [extra_slice])
            r["add"][n] = time.perf_counter() - t
            agent.sync(services, slices)  # and remove it again
        r["connect_big"] = bench.connect_ms(target_svc["spec"]["clusterIP"])
        # a fresh agent (full sync of everything at once) for the largest size
        agent.stop()
        agent = bench.agent(mode)
        t = time.perf_counter()
        agent.sync(services, slices)
        r["full_sync"] = time.perf_counter() - t
        agent.stop()
        agent = bench.agent(mode)
        agent.sync(services[:10], slices[:10])
        r["connect_10"] = bench.connect_ms(target_svc["spec"]["clusterIP"])
    finally:
        agent.stop()
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--modes", default="nftables,iptables")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    bench = Bench()
    results = {}
    try:
        for mode in args.modes.split(","):
            with console.status(f"{mode}: {max(sizes)} Services ..."):
                results[mode] = run_mode(bench, mode, sizes)
        with console.status("iperf3: ClusterIP vs pod IP ..."):
            agent = bench.agent("nftables")
            svc, sl = service(0, [POD_IP], port=5202, target=5201)
            agent.sync([svc], [sl])
            # interleaved, median of three: this machine is shared and noisy
            runs = [(bench.iperf(svc["spec"]["clusterIP"], 5202), bench.iperf(POD_IP, 5201)) for _ in range(3)]
            via = sorted(r[0] for r in runs)[1]
            direct = sorted(r[1] for r in runs)[1]
            agent.stop()
    finally:
        bench.stop()
    table = Table(title="service proxy at scale (one run; 5 endpoints per Service)")
    table.add_column("measure")
    for mode in results:
        table.add_column(mode, justify="right")
    table.add_column("bar (nftables)")
    for n in sizes:
        table.add_row(f"add one Service with {n:,} present (ms)",
                      *[f"{results[m]['add'][n] * 1000:.1f}" for m in results], "<= 100 ms at 10,000")
    table.add_row(f"full sync of {max(sizes):,} Services (s)", *[f"{results[m]['full_sync']:.2f}" for m in results],
                  "<= 5 s")
    table.add_row("TCP connect, 10 Services (ms)", *[f"{results[m]['connect_10']:.3f}" for m in results], "")
    table.add_row(f"TCP connect, {max(sizes):,} Services (ms)", *[f"{results[m]['connect_big']:.3f}" for m in results],
                  "")
    table.add_row("connect ratio", *[f"{results[m]['connect_big'] / results[m]['connect_10']:.2f}" for m in results],
                  "<= 1.2")
    console.print(table)
    console.print(f"iperf3 node -> pod (median of 3): through the ClusterIP {via:.2f} Gbit/s, to the pod IP {direct:.2f} Gbit/s, "
                  f"ratio {via / direct:.2f} (bar >= 0.95)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

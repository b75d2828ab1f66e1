"""Every pod network with real packets: transfers, captures, MTU, reachability, SNAT."""
import json
import subprocess
import time
from pathlib import Path

import pytest
from scapy.all import IP, UDP, rdpcap  # noqa: F401
from scapy.layers.vxlan import VXLAN

from testbed.lab import Lab

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {nodeName: node1, containers: [{name: c, ports: [{containerPort: 8000}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  nodeName: node4
  containers:
  - {name: c, ports: [{containerPort: 8000}]}
  - {name: iperf, command: [iperf3, -s, -p, "5201"], ports: [{containerPort: 5201}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 8000}]}]}
"""

WHO = ("import http.server as h\n"
       "class W(h.BaseHTTPRequestHandler):\n"
       "    def do_GET(self):\n"
       "        self.send_response(200); self.end_headers(); self.wfile.write(self.client_address[0].encode())\n"
       "    def log_message(self, *a): pass\n"
       "h.HTTPServer(('0.0.0.0', 9000), W).serve_forever()\n")


def start(network: str, **cluster) -> Lab:
    from testbed.topo.load import load_topology

    topo = load_topology(ROOT / "topologies" / "two-racks.yaml")
    topo.cluster.network = network
    for key, value in cluster.items():
        obj, _, attr = key.rpartition("__")
        setattr(getattr(topo.cluster, obj) if obj else topo.cluster, attr, value)
    lab = Lab.start(topo, name=f"pn-{network}")
    lab.apply_text(PODS, "pods.yaml")
    lab.wait_pods_ready(20)
    return lab


def ip_of(lab, pod):
    return lab.get("pod", pod)["status"]["podIP"]


def capture(lab, node, action, count=6, filt="ip"):
    """Run ``action`` while tcpdump listens on the node's underlay; returns the packets."""
    out = lab.run_dir / f"{node}.pcap"
    proc = subprocess.Popen(lab.ns(node).argv(["tcpdump", "-i", "eth0", "-U", "-c", str(count), "-w", str(out), filt]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        action()
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return rdpcap(str(out)) if out.exists() else []


@pytest.fixture(scope="module", params=["routed", "vxlan", "ipip", "bgp"])
def lab(request):
    lab = start(request.param)
    yield lab
    lab.stop()


def test_ping_and_a_10mb_transfer_across_racks(lab):
    b = ip_of(lab, "b")
    assert lab.exec("pod/a", ["ping", "-c", "2", "-W", "2", b]).returncode == 0
    r = lab.exec("pod/a", ["iperf3", "-c", b, "-n", "10M", "-J"], timeout=60)
    assert r.returncode == 0, r.stdout[-500:] + r.stderr
    end = json.loads(r.stdout)["end"]
    # iperf3 ends on the sender's word: bytes still in flight are not in sum_received yet
    assert end["sum_sent"]["bytes"] >= 10 * 1024 * 1024 and end["sum_received"]["bytes"] > 0


def test_the_underlay_carries_the_expected_encapsulation(lab):
    b = ip_of(lab, "b")
    network = lab.topology.cluster.network
    pkts = capture(lab, "node1", lambda: lab.exec("pod/a", ["ping", "-c", "3", "-i", "0.2", b]),
                   filt="udp port 4789 or ip proto 4 or icmp")
    assert pkts, "nothing captured"
    outer = pkts[0][IP]
    if network == "vxlan":
        assert outer[UDP].dport == 4789 and pkts[0][VXLAN].vni == lab.topology.cluster.vxlan.vni
        assert outer.src == lab.host_ip("node1") and outer.dst == lab.host_ip("node4")
    elif network == "ipip":
        assert outer.proto == 4 and outer.dst == lab.host_ip("node4")
        assert outer.payload.dst == b
    else:
        assert outer.proto == 1 and outer.dst == b  # plain pod addresses on the wire


def test_df_ping_at_the_pod_mtu_passes_and_one_byte_more_fails(lab):
    b = ip_of(lab, "b")
    mtu = lab.backend.pod_mtu(lab.topology.hosts["node1"])
    ok = lab.exec("pod/a", ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(mtu - 28), b])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    big = lab.exec("pod/a", ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(mtu - 27), b])
    assert big.returncode != 0
    text = (big.stdout + big.stderr).lower()
    assert "message too long" in text or "frag needed" in text or "mtu" in text


def test_outside_server_sees_node_or_pod_address(lab):
    server = subprocess.Popen(lab.ns("client").argv(["python3", "-c", WHO]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://{lab.host_ip('client')}:9000/"
        deadline = time.monotonic() + 5
        while True:
            r = lab.exec("pod/a", ["curl", "-s", "-m", "2", url])
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr
        nat = lab.topology.cluster.masquerade_outgoing
        assert r.stdout == (lab.host_ip("node1") if nat else ip_of(lab, "a"))
    finally:
        server.kill()
        server.wait()


def test_outside_hosts_reach_pods_only_where_blocks_are_routed(lab):
    r = lab.exec("host/client", ["curl", "-s", "-m", "2", f"http://{ip_of(lab, 'b')}:8000/"])
    network = lab.topology.cluster.network
    if network in ("bgp", "routed"):  # announced to the routers (bgp tor) or routed by them
        assert r.returncode == 0 and json.loads(r.stdout)["client"].startswith(lab.host_ip("client") + ":")
    else:
        assert r.returncode != 0  # overlays keep pod addresses inside the cluster


def test_bgp_sessions_are_established(lab):
    if lab.topology.cluster.network != "bgp":
        pytest.skip("only bgp runs BIRD")
    for host, bird in lab.backend.birds.items():
        table = bird.birdc("show", "protocols")
        sessions = [line for line in table.splitlines() if " BGP " in line]
        assert sessions and all("Established" in line for line in sessions), (host, table)


def test_ipip_cross_subnet_encapsulates_only_between_subnets():
    lab = start("ipip", ipip__mode="CrossSubnet")
    try:
        c, b = ip_of(lab, "c"), ip_of(lab, "b")
        same = capture(lab, "node1", lambda: lab.exec("pod/a", ["ping", "-c", "3", "-i", "0.2", c]),
                       filt="ip proto 4 or icmp")
        assert same and all(p[IP].proto == 1 and p[IP].dst in (c, ip_of(lab, "a")) for p in same)
        other = capture(lab, "node1", lambda: lab.exec("pod/a", ["ping", "-c", "3", "-i", "0.2", b]),
                        filt="ip proto 4 or icmp")
        assert other and all(p[IP].proto == 4 for p in other)
    finally:
        lab.stop()


@pytest.mark.parametrize("topology,mode,reflectors", [("flat", "mesh", []), ("flat", "reflectors", ["node1"])])
def test_bgp_mesh_and_reflectors_carry_pod_traffic(topology, mode, reflectors):
    from testbed.topo.load import load_topology

    topo = load_topology(ROOT / "topologies" / f"{topology}.yaml")
    topo.cluster.network = "bgp"
    topo.cluster.bgp.mode = mode
    topo.cluster.bgp.reflectors = reflectors
    topo.cluster.bgp.bfd = mode == "reflectors"
    with Lab.start(topo, name=f"bgp-{mode}") as lab:
        lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 8000}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {nodeName: node3, containers: [{name: c, ports: [{containerPort: 8000}]}]}
""", "pods.yaml")
        lab.wait_pods_ready(20)
        r = lab.exec("pod/a", ["curl", "-s", "-m", "3", f"http://{ip_of(lab, 'b')}:8000/"])
        assert r.returncode == 0 and json.loads(r.stdout)["pod"] == "b"
        for host, bird in lab.backend.birds.items():
            sessions = [line for line in bird.birdc("show", "protocols").splitlines() if " BGP " in line]
            assert sessions and all("Established" in line for line in sessions), (host, sessions)
        if mode == "reflectors":
            assert "rr client" in lab.backend.birds["node1"].conf.read_text()
            bfd = lab.backend.birds["node1"].birdc("show", "bfd", "sessions")
            assert "Up" in bfd, bfd

"""The runtime layer with real namespaces: underlay, pod wiring, death of a lab."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from testbed import podnet
from testbed.runtime.network import Underlay
from testbed.runtime.pods import host_veth_name, spawn_pod, wire_pod
from testbed.topo.load import load_topology, parse_topology

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_racks():
    topo = load_topology(ROOT / "topologies" / "two-racks.yaml")
    topo.cluster.network = "routed"
    topo.cluster.nat_outgoing = False
    underlay = Underlay(topo)
    underlay.build()
    yield topo, underlay
    underlay.stop()


def ping(ns, ip) -> bool:
    return ns.run(["ping", "-c1", "-W2", ip], check=False).returncode == 0


def test_underlay_routes_between_racks_and_outside(two_racks):
    topo, u = two_racks
    assert ping(u.hosts["node1"].ns, topo.hosts["node4"].ip)
    assert ping(u.hosts["client"].ns, topo.hosts["node2"].ip)
    links = json.loads(u.hosts["node1"].ns.run(["ip", "-j", "link"]).stdout)
    assert [link["ifname"] for link in links] == ["lo", "eth0"]


def wait_for_capture(cap: subprocess.Popen) -> None:
    """Return once tcpdump says it is listening (on stderr, after a line about verbosity)."""
    for _ in range(3):
        line = cap.stderr.readline()
        if "listening on" in line:
            return
    raise AssertionError(f"tcpdump did not start: {line}")


def test_segment_switches_macvlan_and_bridge():
    """A macvlan segment and a bridge segment carry ARP and IP alike; host interfaces are
    macvlans on the one and veths on the other, and the bridge skips br_netfilter."""
    topo = parse_topology({
        "name": "sw",
        "segments": [{"name": "lan", "cidr": "10.1.0.0/24"},
                     {"name": "wan", "cidr": "10.2.0.0/24", "switch": "bridge"}],
        "routers": [{"name": "r", "interfaces": [{"segment": "lan"}, {"segment": "wan"}]}],
        "nodes": [{"name": "n1", "segment": "lan"}, {"name": "n2", "segment": "lan"}],
        "hosts": [{"name": "h", "segment": "wan"}],
    }, "<test>")
    u = Underlay(topo)
    u.build()
    try:
        # the macvlan parent in the switch's namespace sees frames between two hosts
        cap = subprocess.Popen(u.switches["lan"].ns.argv(["tcpdump", "-n", "-l", "-i", "seg0", "-c", "1", "icmp"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_capture(cap)
        assert ping(u.hosts["n1"].ns, topo.hosts["n2"].ip)
        out, _ = cap.communicate(timeout=5)
        assert f"{topo.hosts['n1'].ip} > {topo.hosts['n2'].ip}: ICMP echo request" in out
        assert ping(u.hosts["n1"].ns, topo.hosts["h"].ip)
        kinds = {name: json.loads(u.hosts[name].ns.run(["ip", "-d", "-j", "link", "show", "eth0"]).stdout)[0]
                 ["linkinfo"] for name in ("n1", "h")}
        assert kinds["n1"]["info_kind"] == "macvlan" and kinds["n1"]["info_data"]["mode"] == "bridge"
        assert kinds["h"]["info_kind"] == "veth"
        switch = u.switches["wan"].ns
        assert "br0" in switch.run(["ip", "-br", "link"]).stdout
        key = "net.bridge.bridge-nf-call-iptables"
        if switch.has_sysctl(key):
            assert switch.read_sysctl(key) == "0"
    finally:
        u.stop()


def test_pods_on_different_racks_reach_each_other(two_racks, tmp_path):
    topo, u = two_racks
    backend = podnet.create("routed", topo, lambda n: u.hosts[n].ns)
    backend.start()
    (tmp_path / "resolv.conf").write_text("nameserver 10.96.0.10\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    a, b = (spawn_pod("default", n, n, tmp_path / "resolv.conf", tmp_path / "hosts") for n in ("a", "b"))
    try:
        wire_pod(u.hosts["node1"], a, host_veth_name("default", "a"), "10.244.0.2", 1500)
        wire_pod(u.hosts["node4"], b, host_veth_name("default", "b"), "10.244.3.2", 1500)
        assert ping(a.ns, "10.244.3.2")
        routes = u.hosts["node1"].ns.run(["ip", "route"]).stdout
        assert f"10.244.0.2 dev {host_veth_name('default', 'a')}" in routes
        addrs = json.loads(a.ns.run(["ip", "-j", "addr", "show", "eth0"]).stdout)
        assert addrs[0]["addr_info"][0]["local"] == "10.244.0.2"
        assert addrs[0]["addr_info"][0]["prefixlen"] == 32
    finally:
        a.stop()
        b.stop()


def test_namespaces_die_with_the_lab_process(tmp_path):
    """SIGKILL the process that built a lab: every holder it started goes with it."""
    script = tmp_path / "lab.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from testbed.runtime.network import Underlay
        from testbed.topo.load import load_topology, parse_topology
        u = Underlay(load_topology({str(ROOT / 'topologies' / 'flat.yaml')!r}))
        u.build()
        print(json.dumps([h.pid for h in u.all_hosts().values()]), flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = json.loads(proc.stdout.readline())
    assert pids and all(os.path.exists(f"/proc/{p}") for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_pods_get_their_own_resolv_conf_and_hosts():
    from testbed.lab import Lab

    with Lab.start(ROOT / "topologies" / "flat.yaml", name="podfiles") as lab:
        lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec: {containers: [{name: c, command: [sleep, infinity]}]}
""", "p.yaml")
        lab.wait_pods_ready(10)
        resolv = lab.exec("pod/p", ["cat", "/etc/resolv.conf"]).stdout
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
        assert "options ndots:5" in resolv
        assert lab.get("pod", "p")["status"]["podIP"] in lab.exec("pod/p", ["cat", "/etc/hosts"]).stdout
        assert lab.exec("pod/p", ["hostname"]).stdout.strip() == "p"
    assert "ndots:5" not in Path("/etc/resolv.conf").read_text()  # the machine's own file is untouched
    assert subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip() != "p"


def test_pod_processes_follow_restart_policy():
    from testbed.lab import Lab

    with Lab.start(ROOT / "topologies" / "flat.yaml", name="restarts") as lab:
        lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: once}
spec: {restartPolicy: Never, containers: [{name: c, command: [sh, -c, "exit 3"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec: {restartPolicy: OnFailure, containers: [{name: c, command: ["true"]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: crashy}
spec: {containers: [{name: c, command: [sh, -c, "exit 1"]}]}
""", "p.yaml")
        deadline = time.monotonic() + 10
        while True:
            phases = {p["metadata"]["name"]: p["status"].get("phase") for p in lab.get("pods")}
            crashy = lab.get("pod", "crashy")["status"].get("containerStatuses", [{}])[0]
            if (phases["once"], phases["done"]) == ("Failed", "Succeeded") and crashy.get("restartCount", 0) >= 1:
                break
            assert time.monotonic() < deadline, (phases, crashy)
            time.sleep(0.1)
        # back-off: one restart in the first seconds, not one per tick
        time.sleep(1)
        crashy = lab.get("pod", "crashy")["status"]["containerStatuses"][0]
        assert crashy["restartCount"] == 1 and crashy["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}

"""Pod-network backends as data: BIRD configs and planned kernel changes, golden-tested."""
from pathlib import Path

import pytest

from testbed import podnet
from testbed.topo.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


def topology(name, network, **bgp):
    topo = load_topology(ROOT / "topologies" / f"{name}.yaml")
    topo.cluster.network = network
    for k, v in bgp.items():
        setattr(topo.cluster.bgp, k, v)
    return topo


@pytest.mark.parametrize("topo,mode,host,extra", [
    ("flat", "mesh", "node1", {}),
    ("two-racks", "tor", "node1", {}),
    ("two-racks", "tor", "tor1", {}),
    ("two-racks", "tor", "core", {}),
    ("two-racks", "reflectors", "core", {"reflectors": ["core"]}),
    ("two-racks", "reflectors", "node3", {"reflectors": ["core"], "bfd": True}),
])
def test_bird_configs(topo, mode, host, extra, golden):
    t = topology(topo, "bgp", mode=mode, **extra)
    backend = podnet.create("bgp", t, ns_of=None)
    text = backend.config(t.hosts[host]).render()
    golden(GOLDEN / "bird" / f"{topo}-{mode}-{host}.conf", text)


def test_tor_mode_sessions_follow_the_racks():
    t = topology("two-racks", "bgp", mode="tor")
    backend = podnet.create("bgp", t, ns_of=None)
    peers = {h: sorted(p.name for p in backend.config(t.hosts[h]).peers) for h in ("node1", "tor1", "core")}
    assert peers["node1"] == ["peer_tor1"]
    assert peers["tor1"] == ["peer_core", "peer_node1", "peer_node2", "peer_tor2"]
    assert peers["core"] == ["peer_tor1", "peer_tor2"]


def plan_text(backend, topo) -> str:
    lines = []
    for node in topo.nodes:
        for remote in topo.nodes:
            if remote.name != node.name:
                lines += [f"{node.name}: {s}" for s in backend.plan_remote(node, remote)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("network,mode", [("vxlan", None), ("ipip", "Always"), ("ipip", "CrossSubnet"),
                                          ("routed", None)])
def test_planned_kernel_changes(network, mode, golden):
    t = topology("two-racks", network)
    if mode:
        t.cluster.ipip.mode = mode
    backend = podnet.create(network, t, ns_of=None)
    golden(GOLDEN / "podnet" / f"two-racks-{network}{'-' + mode if mode else ''}.txt", plan_text(backend, t))


def test_vxlan_programs_neighbour_then_fdb_then_route():
    t = topology("flat", "vxlan")
    backend = podnet.create("vxlan", t, ns_of=None)
    kinds = [s.kind for s in backend.plan_remote(t.hosts["node1"], t.hosts["node2"])]
    assert kinds == ["neigh", "fdb", "route"]


def test_mtu_per_backend():
    t = topology("flat", "vxlan")
    node = t.hosts["node1"]
    assert podnet.create("vxlan", t, None).pod_mtu(node) == 1450
    assert podnet.create("ipip", t, None).pod_mtu(node) == 1480
    assert podnet.create("bgp", t, None).pod_mtu(node) == 1500

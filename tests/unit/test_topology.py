"""Topology files: shipped ones resolve to the golden plan; bad ones name file and field."""
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from testbed.errors import InvalidError
from testbed.topo.load import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "topo"


def resolved(topo) -> str:
    data = dataclasses.asdict(topo)
    data.pop("source")
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("name", ["flat", "two-racks"])
def test_shipped_topologies_match_golden(name, golden):
    text = resolved(load_topology(ROOT / "topologies" / f"{name}.yaml"))
    golden(GOLDEN / f"{name}.json", text)


def test_flat_has_the_contract_host_names():
    topo = load_topology(ROOT / "topologies" / "flat.yaml")
    assert [h.name for h in topo.nodes] == ["node1", "node2", "node3"]
    assert {h.name for h in topo.outside_hosts} == {"client", "remote"}
    assert [h.name for h in topo.routers] == ["router"]
    assert topo.hosts["client"].iface.segment == topo.hosts["node1"].iface.segment
    assert topo.hosts["remote"].iface.segment != topo.hosts["node1"].iface.segment


def test_two_racks_routes_between_racks():
    topo = load_topology(ROOT / "topologies" / "two-racks.yaml")
    tor1 = topo.hosts["tor1"]
    assert {(r.dst, r.via) for r in tor1.routes} == {("10.10.2.0/24", "10.10.0.12"), ("198.51.100.0/24", "10.10.0.1")}
    assert topo.hosts["node3"].gateway == "10.10.2.1"
    assert topo.cluster.masquerade_outgoing is False  # pod blocks are announced to the routers


def test_pod_blocks_are_distinct_and_inside_the_pod_cidr():
    topo = load_topology(ROOT / "topologies" / "flat.yaml")
    blocks = [n.pod_cidr for n in topo.nodes]
    assert blocks == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]


BASE = {
    "name": "t",
    "segments": [{"name": "lan", "cidr": "10.0.0.0/24"}],
    "nodes": [{"name": "node1", "segment": "lan"}],
}


def bad(patch: dict) -> str:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data.update(patch)
    with pytest.raises(InvalidError) as e:
        parse_topology(data, "topo.yaml")
    assert e.value.exit_code == 2
    return str(e.value)


def test_unknown_segment_names_the_field():
    msg = bad({"nodes": [{"name": "node1", "segment": "lan2"}]})
    assert msg == 'topo.yaml: The Topology "t" is invalid: nodes[0].segment: Not found: "lan2"'


def test_bad_cidr():
    msg = bad({"segments": [{"name": "lan", "cidr": "10.0.0/24"}]})
    assert 'segments[0].cidr: Invalid value: "10.0.0/24"' in msg


def test_duplicate_host_name():
    msg = bad({"nodes": [{"name": "node1", "segment": "lan"}, {"name": "node1", "segment": "lan"}]})
    assert 'nodes[1].name: Duplicate value: "node1"' in msg


def test_unknown_field_and_bad_network():
    msg = bad({"cluster": {"network": "flannel", "colour": 1}})
    assert 'cluster.network: Unsupported value: "flannel": supported values: "routed", "vxlan", "ipip", "bgp"' in msg
    assert "cluster.colour: Unsupported value" in msg


def test_unknown_switch_kind():
    msg = bad({"segments": [{"name": "lan", "cidr": "10.0.0.0/24", "switch": "hub"}]})
    assert 'segments[0].switch: Unsupported value: "hub": supported values: "macvlan", "bridge"' in msg
    assert "Not found" not in msg  # the segment is still known to the hosts on it


def test_address_outside_segment():
    msg = bad({"nodes": [{"name": "node1", "segment": "lan", "address": "10.0.1.5"}]})
    assert 'nodes[0].address: Invalid value: "10.0.1.5": must be a host address in 10.0.0.0/24' in msg


def test_tor_mode_needs_as_numbers():
    msg = bad({"cluster": {"network": "bgp", "bgp": {"mode": "tor"}}})
    assert "asNumber: Required value" in msg


@pytest.mark.parametrize("name", ["flat", "two-racks"])
def test_topology_drawing_matches_golden(name, golden):
    from testbed.topo.draw import to_dot

    text = to_dot(load_topology(ROOT / "topologies" / f"{name}.yaml"))
    golden(GOLDEN / f"{name}.dot", text)

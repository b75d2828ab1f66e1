"""The nftables ruleset builder against golden text, and its incremental deltas."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.proxy import nftables
from testbed.proxy.model import service_ports

GOLDEN = Path(__file__).parent / "golden" / "proxy"


def svc(name, spec, ingress=None):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"sessionAffinity": "None", "internalTrafficPolicy": "Cluster", **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": i} for i in ingress or []]}}}


def eps(name, port, endpoints, port_name="", proto="TCP"):
    return {"metadata": {"name": f"{name}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": port_name, "port": port, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                          for ip, node, ready in endpoints]}


SERVICES = [
    (svc("web", {"type": "ClusterIP", "clusterIP": "10.96.0.20",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]}),
     [eps("web", 8080, [("10.244.0.2", "node1", True), ("10.244.1.2", "node2", True),
                        ("10.244.2.2", "node3", False)], "http"),
      eps("web", 5353, [("10.244.0.2", "node1", True)], "dns", "UDP")]),
    (svc("np", {"type": "NodePort", "clusterIP": "10.96.0.21", "externalTrafficPolicy": "Cluster",
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
     [eps("np", 8000, [("10.244.1.3", "node2", True)])]),
    (svc("lb", {"type": "LoadBalancer", "clusterIP": "10.96.0.22", "externalTrafficPolicy": "Local",
                "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]}, ingress=["203.0.113.10"]),
     [eps("lb", 8443, [("10.244.1.4", "node2", True)])]),
    (svc("empty", {"type": "ClusterIP", "clusterIP": "10.96.0.23", "ports": [{"port": 80, "protocol": "TCP"}]}), []),
    (svc("headless", {"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]}),
     [eps("headless", 80, [("10.244.0.9", "node1", True)])]),
    (svc("ext", {"type": "ExternalName", "externalName": "db.example.com"}), []),
]


def ruleset() -> str:
    elems = {n: set() for n in nftables.SETS}
    for service, slices in SERVICES:
        for sp in service_ports(service, slices, "node1", ["192.168.10.10"]):
            for n, items in nftables.elements(sp).items():
                elems[n] |= items
    return nftables.full_ruleset(elems)


def test_ruleset_matches_golden(golden):
    text = ruleset()
    golden(GOLDEN / "node1.nft", text)


def test_policies_shape_the_frontends():
    by_name = {sp.name: sp for service, slices in SERVICES
               for sp in service_ports(service, slices, "node1", ["192.168.10.10"])}
    web = by_name["default/web:http"]
    (fe,) = web.frontends
    assert web.frontends[fe] == [("10.244.0.2", 8080), ("10.244.1.2", 8080)]  # not-ready one left out
    np = by_name["default/np"]
    assert {f.ip for f in np.masquerade} == {"192.168.10.10"}  # Cluster policy: SNAT external traffic
    lb = by_name["default/lb"]
    assert {f.ip for f in lb.drop} == {"192.168.10.10", "203.0.113.10"}  # Local policy, no local endpoint
    assert {f.ip for f in by_name["default/empty"].reject} == {"10.96.0.23"}
    assert "default/headless" not in by_name and "default/ext" not in by_name


def test_endpoints_are_numbered_behind_a_pick_chain_per_count():
    (service, slices) = SERVICES[0]
    sp = service_ports(service, slices, "node1", [])[0]
    elems = nftables.elements(sp)
    (dispatch,) = elems["dispatch"]
    assert dispatch.endswith(": jump pick_2")
    assert sorted(e.split(" : ")[0].split(" . ")[3] for e in elems["endpoints"]) == ["0", "1"]
    assert nftables.chains_needed(elems) == {"pick_2"}
    assert nftables.chain_definition("pick_2").endswith("pick_2 meta mark set numgen random mod 2")
    assert nftables.chain_definition("pick_7_affinity_masq").endswith("meta mark set jhash ip saddr mod 7 offset 0x80000000")


def test_masquerading_frontends_number_their_endpoints_above_the_masquerade_bit():
    sp = next(sp for service, slices in SERVICES for sp in service_ports(service, slices, "node1", ["192.168.10.10"])
              if sp.name == "default/np")
    elems = nftables.elements(sp)
    assert '192.168.10.10 . tcp . 30080 comment "default/np" : jump pick_1_masq' in elems["dispatch"]
    assert "192.168.10.10 . tcp . 30080 . 2147483648 : 10.244.1.3 . 8000" in elems["endpoints"]
    assert "10.96.0.21 . tcp . 80 . 0 : 10.244.1.3 . 8000" in elems["endpoints"]


def test_delta_makes_new_pick_chains_first():
    text = nftables.delta({"dispatch": {'10.96.0.1 . tcp . 80 : jump pick_3'}}, {}, {"pick_3"})
    assert text.index("add chain ip testbed-proxy pick_3") < text.index("add element ip testbed-proxy dispatch")


def test_delta_deletes_keys_only():
    text = nftables.delta({}, {"dispatch": {'10.96.0.1 . tcp . 80 comment "x" : jump pick_1'}})
    assert text == "delete element ip testbed-proxy dispatch { 10.96.0.1 . tcp . 80 }\n"


@pytest.mark.root
def test_golden_ruleset_loads_in_nft():
    if not shutil.which("nft"):
        pytest.skip("nft not installed")
    proc = subprocess.run(["unshare", "--net", "nft", "-c", "-f", str(GOLDEN / "node1.nft")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_iptables_ruleset_matches_golden(golden):
    from testbed.proxy import iptables

    ports = [sp for service, slices in SERVICES for sp in service_ports(service, slices, "node1", ["192.168.10.10"])]
    text = iptables.ruleset(ports)
    golden(GOLDEN / "node1.iptables", text)
    assert "--mode random --probability 0.50000000000" in text  # two ready endpoints of web:http


@pytest.mark.root
def test_golden_iptables_loads():
    if not shutil.which("iptables-restore"):
        pytest.skip("iptables not installed")
    proc = subprocess.run(["unshare", "--net", "iptables-restore", "--test", str(GOLDEN / "node1.iptables")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

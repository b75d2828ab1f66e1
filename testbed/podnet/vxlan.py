"""`vxlan`, flannel style: one VXLAN device per node, learning off, everything static.

For each remote node: a permanent neighbour entry (the remote's gateway address, the
.0 of its pod block, to its VTEP MAC), an FDB entry (that MAC to the remote's underlay
address) and an onlink route for the remote block, in that order, rolled back if one
fails. VTEP MACs derive from node names, so nothing has to be looked up.
"""
from __future__ import annotations

import hashlib
import ipaddress

from testbed.podnet import steps
from testbed.podnet.base import Backend, register
from testbed.topo.model import Host


def vtep_mac(node: str) -> str:
    digest = hashlib.sha256(f"vtep/{node}".encode()).digest()
    return "0a:" + ":".join(f"{b:02x}" for b in digest[:5])


def gateway(block: str) -> str:
    return str(ipaddress.ip_network(block).network_address)


@register
class Vxlan(Backend):
    name = "vxlan"
    encapsulation_overhead = 50

    @property
    def dev(self) -> str:
        return f"vxlan.{self.topology.cluster.vxlan.vni}"

    def describe(self) -> str:
        v = self.topology.cluster.vxlan
        return f"vxlan (VNI {v.vni}, UDP {v.port})"

    def plan_remote(self, node: Host, remote: Host) -> list[steps.Step]:
        gw, mac = gateway(remote.pod_cidr), vtep_mac(remote.name)
        return [steps.Step("neigh", self.dev, gw, lladdr=mac),
                steps.Step("fdb", self.dev, remote.ip, lladdr=mac),
                steps.Step("route", self.dev, remote.pod_cidr, via=gw, onlink=True)]

    def setup_node(self, node: Host) -> None:
        ns = self.ns_of(node.name)
        ipr = ns.ipr()
        v = self.topology.cluster.vxlan
        underlay = ipr.link_lookup(ifname=node.iface.name)[0]
        ipr.link("add", ifname=self.dev, kind="vxlan", vxlan_id=v.vni, vxlan_local=node.ip, vxlan_port=v.port,
                 vxlan_learning=0, vxlan_link=underlay, address=vtep_mac(node.name))
        idx = ipr.link_lookup(ifname=self.dev)[0]
        ipr.link("set", index=idx, mtu=self.pod_mtu(node), state="up")
        ipr.addr("add", index=idx, address=gateway(node.pod_cidr), prefixlen=32)
        self.nat_outgoing(node)


"""Build the underlay of a topology: segment switches, routers, nodes, outside hosts.

Every L2 segment is a Linux bridge inside a namespace of its own (a Mininet host used
as a switch), so the machine's root namespace never sees an interface. Each host
interface is a veth pair created inside the segment's namespace with its far end
moved straight into the host: names never meet in a shared namespace, so two labs
cannot collide.
"""
from __future__ import annotations

from testbed.runtime.hosts import LabHost
from testbed.topo.model import Host, Topology

FORWARDING = {
    "net.ipv4.ip_forward": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}


class Underlay:
    def __init__(self, topology: Topology):
        self.topology = topology
        self.switches: dict[str, LabHost] = {}  # segment name -> switch host
        self.hosts: dict[str, LabHost] = {}  # topology host name -> host

    def build(self) -> None:
        for seg in self.topology.segments:
            self.switches[seg] = LabHost(f"sw-{seg}")
        for name in self.topology.hosts:
            self.hosts[name] = LabHost(name)
        for seg in self.topology.segments.values():
            self._make_bridge(self.switches[seg.name], seg.mtu)
        port = 0
        for host in self.topology.hosts.values():
            for ifc in host.interfaces:
                port += 1
                self._attach(host, ifc, f"p{port}")
        for host in self.topology.hosts.values():
            self._configure(host)

    def _make_bridge(self, switch: LabHost, mtu: int) -> None:
        ipr = switch.ns.ipr()
        ipr.link("set", index=1, state="up")
        ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
        br = ipr.link_lookup(ifname="br0")[0]
        ipr.link("set", index=br, mtu=mtu, state="up")

    def _attach(self, host: Host, ifc, port: str) -> None:
        switch = self.switches[ifc.segment].ns.ipr()
        target = self.hosts[host.name]
        switch.link("add", ifname=port, kind="veth",
                    peer={"ifname": ifc.name, "address": ifc.mac, "net_ns_fd": target.ns.net_path})
        idx = switch.link_lookup(ifname=port)[0]
        br = switch.link_lookup(ifname="br0")[0]
        switch.link("set", index=idx, master=br, mtu=ifc.mtu, state="up")

    def _configure(self, host: Host) -> None:
        h = self.hosts[host.name]
        ipr = h.ns.ipr()
        ipr.link("set", index=1, state="up")
        for ifc in host.interfaces:
            idx = ipr.link_lookup(ifname=ifc.name)[0]
            ipr.link("set", index=idx, mtu=ifc.mtu, state="up")
            ipr.addr("add", index=idx, address=ifc.address, prefixlen=ifc.prefixlen)
        for route in host.routes:
            if route.dst == "default":
                ipr.route("add", dst="0.0.0.0/0", gateway=route.via)
            else:
                ipr.route("add", dst=route.dst, gateway=route.via)
        if host.role in ("node", "router"):
            h.ns.sysctl(FORWARDING)

    def all_hosts(self) -> dict[str, LabHost]:
        return {**{f"sw-{k}": v for k, v in self.switches.items()}, **self.hosts}

    def stop(self) -> None:
        for h in list(self.hosts.values()) + list(self.switches.values()):
            h.stop()

"""Build the underlay of a topology: segment switches, routers, nodes, outside hosts.

Every L2 segment lives in a namespace of its own (a Mininet host used as a switch), so
the machine's root namespace never sees an interface. A segment is one of two switches:

- ``macvlan`` (default): the segment's namespace holds a veth pair as the parent; each
  host interface is a macvlan in bridge mode on that parent, created straight inside
  the host. A frame between two hosts takes one hop (through the parent, where tcpdump
  sees it) instead of three (veth, bridge, veth), which is what pod-to-pod throughput is
  made of here.
- ``bridge``: a Linux bridge; each host interface is a veth pair whose near end is a
  bridge port. Slower, but the bridge learns any MAC (virtual MACs such as VRRP's).

Names are made inside their own namespaces and never meet, so two labs cannot collide.
"""
from __future__ import annotations

import errno

from pyroute2.netlink.exceptions import NetlinkError

from testbed.errors import MachineError
from testbed.runtime.hosts import LabHost
from testbed.topo.model import Host, Interface, Segment, Topology

FORWARDING = {
    "net.ipv4.ip_forward": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
}
# A switch runs no firewall: where br_netfilter is loaded, keep it off bridged frames.
NO_BRIDGE_NETFILTER = {f"net.bridge.bridge-nf-call-{t}": 0 for t in ("iptables", "ip6tables", "arptables")}
PARENT = "seg0"  # the macvlan parent inside a segment's namespace (one end of a veth pair)


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
            self._make_switch(self.switches[seg.name], seg)
        port = 0
        for host in self.topology.hosts.values():
            for ifc in host.interfaces:
                port += 1
                self._attach(host, ifc, f"p{port}")
        for host in self.topology.hosts.values():
            self._configure(host)

    def _make_switch(self, switch: LabHost, seg: Segment) -> None:
        ipr = switch.ns.ipr()
        ipr.link("set", index=1, state="up")
        if seg.switch == "bridge":
            ipr.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
            switch.ns.sysctl({k: v for k, v in NO_BRIDGE_NETFILTER.items() if switch.ns.has_sysctl(k)})
            names = ["br0"]
        else:
            ipr.link("add", ifname=PARENT, kind="veth", peer={"ifname": f"{PARENT}-end"})
            names = [f"{PARENT}-end", PARENT]
        for name in names:
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], mtu=seg.mtu, state="up")

    def _attach(self, host: Host, ifc: Interface, port: str) -> None:
        switch = self.switches[ifc.segment].ns.ipr()
        target = self.hosts[host.name].ns.net_path
        if self.topology.segments[ifc.segment].switch == "bridge":
            switch.link("add", ifname=port, kind="veth",
                        peer={"ifname": ifc.name, "address": ifc.mac, "net_ns_fd": target})
            idx = switch.link_lookup(ifname=port)[0]
            br = switch.link_lookup(ifname="br0")[0]
            switch.link("set", index=idx, master=br, mtu=ifc.mtu, state="up")
        else:
            # made straight inside the host: the name never exists in the switch's namespace
            try:
                switch.link("add", ifname=ifc.name, kind="macvlan", link=switch.link_lookup(ifname=PARENT)[0],
                            macvlan_mode="bridge", address=ifc.mac, net_ns_fd=target)
            except NetlinkError as e:
                if e.code != errno.EOPNOTSUPP:
                    raise
                raise MachineError(f"this kernel has no macvlan support (segment {ifc.segment}): load it with "
                                   "`sudo modprobe macvlan` or give the segment `switch: bridge`") from e

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

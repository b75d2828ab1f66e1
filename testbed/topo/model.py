"""A topology resolved into typed objects: every address and name is decided here.

The loader (topo/load.py) validates the YAML and fills these in; the runtime builds
them, the pod-network backends and the proxy read them. Nothing here does I/O.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

NETWORKS = ("routed", "vxlan", "ipip", "bgp")
PROXY_MODES = ("nftables", "iptables")
IPIP_MODES = ("Always", "CrossSubnet")
BGP_MODES = ("mesh", "reflectors", "tor")
SWITCHES = ("macvlan", "bridge")


@dataclass
class VxlanSettings:
    vni: int = 1
    port: int = 4789


@dataclass
class IpipSettings:
    mode: str = "Always"  # Always | CrossSubnet


@dataclass
class BgpSettings:
    mode: str = "mesh"  # mesh (iBGP full mesh) | reflectors | tor (peer with top-of-rack routers)
    asn: int = 64512  # the cluster's AS in mesh and reflectors modes
    reflectors: list[str] = field(default_factory=list)  # node or router names
    bfd: bool = False


@dataclass
class ClusterSettings:
    domain: str = "cluster.local"
    pod_cidr: str = "10.244.0.0/16"
    node_mask: int = 24  # size of each node's pod block
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    network: str = "routed"
    proxy_mode: str = "nftables"
    nat_outgoing: bool | None = None  # None: on, except where pod blocks are announced to routers (bgp tor)
    vxlan: VxlanSettings = field(default_factory=VxlanSettings)
    ipip: IpipSettings = field(default_factory=IpipSettings)
    bgp: BgpSettings = field(default_factory=BgpSettings)

    @property
    def masquerade_outgoing(self) -> bool:
        if self.nat_outgoing is not None:
            return self.nat_outgoing
        return not (self.network == "bgp" and self.bgp.mode == "tor")


@dataclass
class Segment:
    """One L2 segment: a switch (macvlan or bridge) in a namespace of its own."""

    name: str
    cidr: str
    mtu: int = 1500
    switch: str = "macvlan"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)


@dataclass
class Interface:
    """One underlay interface of a host: ``name`` inside the host, on ``segment``."""

    name: str  # eth0, eth1 ...
    segment: str
    address: str  # e.g. 192.168.10.11
    prefixlen: int
    mac: str
    mtu: int = 1500

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @property
    def subnet(self) -> str:
        return str(ipaddress.ip_interface(self.cidr).network)


@dataclass
class Route:
    dst: str  # CIDR or "default"
    via: str


@dataclass
class Host:
    """Anything that is a namespace on the underlay: a node, a router or an outside host."""

    name: str
    role: str  # "node" | "router" | "host"
    interfaces: list[Interface] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)  # static underlay routes
    asn: int | None = None  # BGP AS (routers; nodes in "tor" mode)
    labels: dict[str, str] = field(default_factory=dict)  # nodes only
    pod_cidr: str | None = None  # nodes only
    rack: str | None = None  # informational: the segment a node sits on

    @property
    def ip(self) -> str:
        """The primary underlay address (first interface)."""
        return self.interfaces[0].address

    @property
    def iface(self) -> Interface:
        return self.interfaces[0]

    @property
    def gateway(self) -> str | None:
        for r in self.routes:
            if r.dst == "default":
                return r.via
        return None


@dataclass
class Topology:
    name: str
    source: str  # file it came from ("<inline>" for scenario-embedded topologies)
    cluster: ClusterSettings
    segments: dict[str, Segment]
    hosts: dict[str, Host]  # nodes, routers and outside hosts, in file order

    def of_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == role]

    @property
    def nodes(self) -> list[Host]:
        return self.of_role("node")

    @property
    def routers(self) -> list[Host]:
        return self.of_role("router")

    @property
    def outside_hosts(self) -> list[Host]:
        return self.of_role("host")

    def on_segment(self, segment: str) -> list[tuple[Host, Interface]]:
        return [(h, i) for h in self.hosts.values() for i in h.interfaces if i.segment == segment]

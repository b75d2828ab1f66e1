"""`bgp`, Calico style: BIRD on every node announces its pod block; no encapsulation.

Modes: ``mesh`` (iBGP full mesh in one AS), ``reflectors`` (named nodes or routers
reflect for everyone else) and ``tor`` (each node peers eBGP with the router of its
rack; routers run BIRD and peer with each other, so outside hosts learn pod blocks).
Configs are rendered whole from the topology (daemons/bird.py) and checked with
``bird -p`` before BIRD starts.
"""
from __future__ import annotations

import ipaddress
import time

from testbed.daemons.bird import Bird, BirdConfig, Peer
from testbed.podnet.base import Backend, register
from testbed.topo.model import Host


def _proto_name(host: str) -> str:
    return "peer_" + host.replace("-", "_")


@register
class Bgp(Backend):
    name = "bgp"

    def __init__(self, topology, ns_of, run_dir=None):
        super().__init__(topology, ns_of, run_dir)
        self.birds: dict[str, Bird] = {}
        self.converged_after: float | None = None

    def describe(self) -> str:
        b = self.topology.cluster.bgp
        return f"bgp ({b.mode}{', BFD' if b.bfd else ''})"

    # ---- pure: who runs BIRD, with which peers ------------------------------------------

    def speakers(self) -> list[Host]:
        b = self.topology.cluster.bgp
        nodes = self.topology.nodes
        if b.mode == "tor":
            return nodes + self.topology.routers
        if b.mode == "reflectors":
            return nodes + [h for h in self.topology.routers if h.name in b.reflectors]
        return nodes

    def config(self, host: Host) -> BirdConfig:
        b = self.topology.cluster.bgp
        asn = host.asn if b.mode == "tor" else b.asn
        cfg = BirdConfig(host=host.name, role=host.role, mode=b.mode, router_id=host.ip, asn=asn,
                         pod_supernet=self.topology.cluster.pod_cidr,
                         pod_cidr=host.pod_cidr if host.role == "node" else None, bfd=b.bfd,
                         allow_local_as=(b.mode == "tor" and host.role == "node"))
        for peer, address, rr_client in self._peers(host):
            peer_asn = peer.asn if b.mode == "tor" else b.asn
            cfg.peers.append(Peer(_proto_name(peer.name), address, peer_asn, f"{peer.role} {peer.name}",
                                  rr_client=rr_client, local=self._local_address(host, address)))
        return cfg

    def _peers(self, host: Host) -> list[tuple[Host, str, bool]]:
        b = self.topology.cluster.bgp
        speakers = [h for h in self.speakers() if h.name != host.name]
        if b.mode == "mesh":
            return [(p, p.ip, False) for p in speakers]
        if b.mode == "reflectors":
            rr = set(b.reflectors)
            if host.name in rr:  # reflectors: every other speaker, non-reflectors as clients
                return [(p, self._address_towards(host, p), p.name not in rr) for p in speakers]
            return [(p, self._address_towards(host, p), False) for p in speakers if p.name in rr]
        # tor: neighbours are the speakers that share a segment, nodes never peer with nodes
        out = []
        mine = {i.segment for i in host.interfaces}
        for p in speakers:
            if host.role == "node" and p.role == "node":
                continue
            shared = [i for i in p.interfaces if i.segment in mine]
            if shared:
                out.append((p, shared[0].address, False))
        return out

    @staticmethod
    def _local_address(host: Host, peer_address: str) -> str:
        """Our address on the peer's subnet, else the primary one (routed towards it)."""
        for i in host.interfaces:
            if ipaddress.ip_address(peer_address) in ipaddress.ip_network(i.subnet):
                return i.address
        return host.ip

    def _address_towards(self, host: Host, peer: Host) -> str:
        """The peer's address on a segment the two share, else its primary address."""
        mine = {i.segment for i in host.interfaces}
        return next((i.address for i in peer.interfaces if i.segment in mine), peer.ip)

    # ---- kernel and processes -----------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        for node in self.topology.nodes:
            self.setup_node(node)
        for router in self.speakers():
            if router.role == "router":
                self._start_bird(router)
        self.wait_converged()
        self.converged_after = time.monotonic() - t0

    def _start_bird(self, host: Host) -> None:
        bird = Bird(host.name, self.config(host).render(), self.run_dir)
        bird.start(self.ns_of(host.name))
        self.birds[host.name] = bird

    def setup_node(self, node: Host) -> None:
        self.nat_outgoing(node)
        self._start_bird(node)

    def wait_converged(self, timeout: float = 30) -> None:
        """Return once every node has a route for every other node's pod block."""
        deadline = time.monotonic() + timeout
        pending = {n.name for n in self.topology.nodes}
        while pending:
            for node in self.topology.nodes:
                if node.name in pending and self._has_all_routes(node):
                    pending.discard(node.name)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"BGP did not converge in {timeout} s on {', '.join(sorted(pending))}; "
                                   f"see {self.run_dir / 'bird'}")
            time.sleep(0.05)

    def _has_all_routes(self, node: Host) -> bool:
        ipr = self.ns_of(node.name).ipr()
        have = {f"{r.get_attr('RTA_DST')}/{r['dst_len']}" for r in ipr.get_routes(family=2) if r.get_attr("RTA_DST")}
        want = {str(ipaddress.ip_network(n.pod_cidr)) for n in self.topology.nodes if n.name != node.name}
        return want <= have


    def stop(self) -> None:
        for bird in self.birds.values():
            bird.stop()

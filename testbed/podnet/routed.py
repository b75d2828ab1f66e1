"""`routed`: native routing without encapsulation, like flannel's host-gw.

A node routes each remote pod block to the remote node's underlay address when they
share a segment. Blocks of nodes on other segments go to the node's gateway, and every
router gets a static route per pod block (as a cloud VPC route table would), so pods
on different racks reach each other too.
"""
from __future__ import annotations

from testbed.podnet import steps
from testbed.podnet.base import Backend, register
from testbed.topo.load import next_hop
from testbed.topo.model import Host


@register
class Routed(Backend):
    name = "routed"

    def plan_remote(self, node: Host, remote: Host) -> list[steps.Step]:
        """A route to ``remote``'s pods on its own subnet; other subnets go by the gateway."""
        if remote.iface.subnet == node.iface.subnet:
            return [steps.Step("route", node.iface.name, remote.pod_cidr, via=remote.ip)]
        return []

    def plan_router(self, router: Host) -> list[tuple[str, str]]:
        routes = []
        on = {i.subnet for i in router.interfaces}
        for node in self.topology.nodes:
            via = node.ip if node.iface.subnet in on else next_hop(router, node.iface.subnet)
            if via:
                routes.append((node.pod_cidr, via))
        return routes

    def start(self) -> None:
        super().start()
        for router in self.topology.routers:
            ipr = self.ns_of(router.name).ipr()
            for dst, via in self.plan_router(router):
                ipr.route("replace", dst=dst, gateway=via)

    def setup_node(self, node: Host) -> None:
        self.nat_outgoing(node)


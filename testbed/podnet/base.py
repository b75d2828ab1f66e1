"""The pod-network backend interface (flannel's backend idea: small, registered by name).

A backend gets the whole resolved topology (every node's underlay address, pod block,
segment and AS) and the namespaces of the hosts, and programs one node at a time.
The runtime has already wired each node's underlay interface and each pod's veth with a
/32 route on the node (Calico style); a backend only makes pod blocks of *other* nodes
reachable (and, for BGP, routers too).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar

from testbed.netns import Namespace
from testbed.podnet import steps
from testbed.topo.model import Host, Topology

NamespaceOf = Callable[[str], Namespace]  # host name -> its namespace

_REGISTRY: dict[str, type["Backend"]] = {}


def register(cls: type["Backend"]) -> type["Backend"]:
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, topology: Topology, ns_of: NamespaceOf, run_dir: Path | None = None) -> "Backend":
    from testbed import podnet  # noqa: F401  (imports register every backend)

    return _REGISTRY[name](topology, ns_of, run_dir)


class Backend(ABC):
    name: ClassVar[str]
    encapsulation_overhead: ClassVar[int] = 0

    def __init__(self, topology: Topology, ns_of: NamespaceOf, run_dir: Path | None = None):
        self.topology = topology
        self.ns_of = ns_of
        self.run_dir = run_dir or Path("/run/testbed/_backend")  # where daemons keep configs and sockets

    def pod_mtu(self, node: Host) -> int:
        return node.iface.mtu - self.encapsulation_overhead

    def describe(self) -> str:
        """One line for reports and `get nodes -o wide`, e.g. 'ipip (userspace, Always)'."""
        return self.name

    def start(self) -> None:
        """Once, after every node's underlay is up: set up every node and its remotes.
        The default calls setup_node then add_remote for each pair."""
        nodes = self.topology.nodes
        for node in nodes:
            self.setup_node(node)
        for node in nodes:
            for remote in nodes:
                if remote.name != node.name:
                    self.add_remote(node, remote)

    @abstractmethod
    def setup_node(self, node: Host) -> None:
        """Create this node's devices (VXLAN/ipip device, BIRD ...)."""

    def plan_remote(self, node: Host, remote: Host) -> list[steps.Step]:
        """The kernel changes on ``node`` that make ``remote``'s pod block reachable (pure)."""
        return []

    def add_remote(self, node: Host, remote: Host) -> None:
        steps.apply(self.ns_of(node.name).ipr(), self.plan_remote(node, remote))

    def remove_remote(self, node: Host, remote: Host) -> None:
        steps.undo(self.ns_of(node.name).ipr(), self.plan_remote(node, remote))

    def nat_outgoing(self, node: Host) -> None:
        """Masquerade pod traffic leaving the cluster, where the topology wants it."""
        if self.topology.cluster.masquerade_outgoing:
            from testbed.podnet.natout import enable_nat_outgoing

            enable_nat_outgoing(self.topology, node, self.ns_of(node.name))

    def teardown_node(self, node: Host) -> None:
        """Stop what setup_node started (processes). Devices go with the namespace."""

    def stop(self) -> None:
        for node in self.topology.nodes:
            self.teardown_node(node)

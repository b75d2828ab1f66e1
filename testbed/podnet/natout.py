"""natOutgoing: pod traffic leaving the cluster's address ranges leaves as the node.

Like Calico's IP pool setting: a masquerade rule for pod sources whose destination is
neither a pod nor a Service address, in a table of its own in the node namespace.
"""
from __future__ import annotations

from testbed.netns import Namespace
from testbed.topo.model import Host, Topology

TABLE = "testbed-nat-outgoing"


def ruleset(topology: Topology) -> str:
    c = topology.cluster
    return f"""table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat + 10; policy accept;
\t\tip saddr {c.pod_cidr} ip daddr != {{ {c.pod_cidr}, {c.service_cidr} }} masquerade
\t}}
}}
"""


def enable_nat_outgoing(topology: Topology, node: Host, ns: Namespace) -> None:
    ns.nft(ruleset(topology))

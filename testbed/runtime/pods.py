"""Wire a pod to its node the way a CNI plugin does (Calico style).

The pod gets ``eth0`` with its IP as a /32, a default route via 169.254.1.1 and a
permanent neighbour entry for it with the MAC every host-side veth carries; the node
gets ``cali<hash>`` and a /32 route to the pod. No bridge, no ARP for the gateway, and
the node's routing table shows every local pod.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from testbed.runtime.hosts import LabHost

GATEWAY = "169.254.1.1"
HOST_SIDE_MAC = "ee:ee:ee:ee:ee:ee"


def host_veth_name(namespace: str, name: str) -> str:
    return "cali" + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


def spawn_pod(namespace: str, name: str, hostname: str, resolv: Path, hosts: Path) -> LabHost:
    """Start the pod's namespace holder (hostname and its own resolv.conf and hosts);
    wire it later with wire_pod, so a batch of holders starts while earlier ones are wired."""
    return LabHost(f"pod/{namespace}/{name}", hostname=hostname, resolv=resolv, hosts=hosts)


def wire_pod(node: LabHost, pod: LabHost, veth: str, pod_ip: str, mtu: int) -> None:
    nipr = node.ns.ipr()
    nipr.link("add", ifname=veth, kind="veth", address=HOST_SIDE_MAC,
              peer={"ifname": "eth0", "net_ns_fd": pod.ns.net_path})
    idx = nipr.link_lookup(ifname=veth)[0]
    nipr.link("set", index=idx, mtu=mtu, state="up")
    nipr.route("replace", dst=f"{pod_ip}/32", oif=idx, scope="link")

    pipr = pod.ns.ipr()
    pipr.link("set", index=1, state="up")
    eth0 = pipr.link_lookup(ifname="eth0")[0]
    pipr.link("set", index=eth0, mtu=mtu, state="up")
    pipr.addr("add", index=eth0, address=pod_ip, prefixlen=32)
    pipr.route("add", dst=f"{GATEWAY}/32", oif=eth0, scope="link")
    pipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth0)
    pipr.neigh("add", dst=GATEWAY, lladdr=HOST_SIDE_MAC, ifindex=eth0, state="permanent")
    pod.ns.close_netlink()  # a pod needs no more netlink; 500 open sockets would cost fds

"""`ipip`, Calico style: IP-in-IP between nodes, modes Always and CrossSubnet.

With CrossSubnet, nodes on the same subnet route natively and only traffic to other
subnets is encapsulated. The kernel's ipip device (tunl0) is used where the kernel has
it; elsewhere a userspace datapath (TUN device + raw protocol-4 socket, see
ipip_userspace.py) puts the same RFC 2003 packets on the wire. describe() says which.
"""
from __future__ import annotations

import ipaddress
import subprocess
import sys
import time

from testbed.netns import DIE_WITH_PARENT
from testbed.podnet import steps
from testbed.podnet.base import Backend, register
from testbed.topo.model import Host

DEV = "tunl0"


@register
class Ipip(Backend):
    name = "ipip"
    encapsulation_overhead = 20

    def __init__(self, topology, ns_of, run_dir=None):
        super().__init__(topology, ns_of, run_dir)
        self.kernel: bool | None = None
        self.datapaths: dict[str, subprocess.Popen] = {}

    def describe(self) -> str:
        how = "kernel" if self.kernel else "userspace" if self.kernel is False else "?"
        return f"ipip ({how}, {self.topology.cluster.ipip.mode})"

    def encapsulates(self, node: Host, remote: Host) -> bool:
        return self.topology.cluster.ipip.mode == "Always" or node.iface.subnet != remote.iface.subnet

    def plan_remote(self, node: Host, remote: Host) -> list[steps.Step]:
        if self.encapsulates(node, remote):
            return [steps.Step("route", DEV, remote.pod_cidr, via=remote.ip, onlink=True)]
        return [steps.Step("route", node.iface.name, remote.pod_cidr, via=remote.ip)]

    def start(self) -> None:
        self.kernel = self._kernel_has_ipip(self.topology.nodes[0])
        super().start()

    def _kernel_has_ipip(self, node: Host) -> bool:
        ipr = self.ns_of(node.name).ipr()
        if ipr.link_lookup(ifname=DEV):
            return True
        try:  # asking for an ipip device loads the module, which makes tunl0 in every namespace
            ipr.link("add", ifname="ipip-probe", kind="ipip")
            ipr.link("del", index=ipr.link_lookup(ifname="ipip-probe")[0])
        except Exception:
            return False
        return bool(ipr.link_lookup(ifname=DEV))

    def setup_node(self, node: Host) -> None:
        ns = self.ns_of(node.name)
        ipr = ns.ipr()
        if not self.kernel:
            peers = [f"{r.pod_cidr}={r.ip}" for r in self.topology.nodes if r.name != node.name]
            argv = [sys.executable, "-m", "testbed.podnet.ipip_userspace", "--dev", DEV]
            for p in peers:
                argv += ["--peer", p]
            self.datapaths[node.name] = subprocess.Popen(DIE_WITH_PARENT + ns.argv(argv, mount=False),
                                                         stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 10
            while not ipr.link_lookup(ifname=DEV):
                if self.datapaths[node.name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name}: the userspace ipip datapath did not start")
                time.sleep(0.01)
        idx = ipr.link_lookup(ifname=DEV)[0]
        ipr.link("set", index=idx, mtu=self.pod_mtu(node), state="up")
        ipr.addr("add", index=idx, address=str(ipaddress.ip_network(node.pod_cidr).network_address), prefixlen=32)
        self.nat_outgoing(node)


    def teardown_node(self, node: Host) -> None:
        proc = self.datapaths.pop(node.name, None)
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()

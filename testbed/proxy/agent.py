"""The proxy agent of one node: Services and EndpointSlices in, one nft transaction out.

Per sync it rebuilds only the Services whose object or slices changed, turns their
elements into a delta against what the kernel holds, and sends it as one atomic
``nft -f``. The first sync loads the whole table.
"""
from __future__ import annotations

import shutil
from collections import Counter

from testbed.netns import Namespace
from testbed.proxy import iptables, nftables
from testbed.proxy.health import HealthServer
from testbed.proxy.model import service_ports
from testbed.topo.model import Host

SERVICE_LABEL = "kubernetes.io/service-name"


class ProxyAgent:
    def __init__(self, node: Host, ns: Namespace, mode: str):
        self.mode = mode
        self.node = node
        self.ns = ns
        self.own_ips = [i.address for i in node.interfaces]
        self._seen: dict[tuple[str, str], tuple] = {}  # service -> versions it was built from
        self._elems: dict[tuple[str, str], dict[str, set[str]]] = {}  # service -> its elements
        self._count: dict[str, Counter] = {name: Counter() for name in nftables.SETS}
        self._loaded = False
        self.syncs = 0
        self.health: dict[int, HealthServer] = {}  # healthCheckNodePort -> its server
        self._ports: dict[tuple[str, str], list] = {}  # service -> its ServicePorts (iptables mode)
        self._affinity: dict[tuple[str, str], int] = {}
        self._chains: set[str] = set()  # pick chains made so far (nftables mode)

    def sync(self, services: list[dict], slices: list[dict]) -> None:
        by_service: dict[tuple[str, str], list[dict]] = {}
        for s in slices:
            name = s["metadata"].get("labels", {}).get(SERVICE_LABEL)
            if name:
                by_service.setdefault((s["metadata"].get("namespace", "default"), name), []).append(s)
        added = {n: set() for n in nftables.SETS}
        removed = {n: set() for n in nftables.SETS}
        current = set()
        for svc in services:
            key = (svc["metadata"].get("namespace", "default"), svc["metadata"]["name"])
            current.add(key)
            mine = by_service.get(key, [])
            version = (svc["metadata"].get("resourceVersion"),
                       tuple(sorted(s["metadata"].get("resourceVersion", "") for s in mine)))
            if self._seen.get(key) == version:
                continue  # unchanged Services cost nothing
            self._seen[key] = version
            new = {n: set() for n in nftables.SETS}
            self._ports[key] = service_ports(svc, mine, self.node.name, self.own_ips)
            self._affinity[key] = (svc["spec"].get("sessionAffinityConfig") or {}).get("clientIP", {}).get(
                "timeoutSeconds", 10800)
            for sp in self._ports[key]:
                for n, items in nftables.elements(sp).items():
                    new[n] |= items
                if sp.health_port:
                    self._health(sp.health_port, key, sp.local_endpoints)
            self._replace(key, new, added, removed)
        wanted_ports = {s["spec"].get("healthCheckNodePort") for s in services
                        if s["spec"].get("externalTrafficPolicy") == "Local"}
        for port in [p for p in self.health if p not in wanted_ports]:
            self.health.pop(port).stop()
        for key in [k for k in self._ports if k not in current]:
            self._ports.pop(key)
        for key in [k for k in self._elems if k not in current]:
            self._seen.pop(key, None)
            self._replace(key, {n: set() for n in nftables.SETS}, added, removed)
        changed = any(added.values()) or any(removed.values())
        if self.mode == "iptables":
            if self._loaded and not changed:
                return
            ports = [sp for key in sorted(self._ports) for sp in self._ports[key]]
            seconds = {sp.name: self._affinity[key] for key in self._ports for sp in self._ports[key]}
            self.ns.run(["iptables-restore"], input=iptables.ruleset(ports, seconds), mount=False)
            self._loaded = True
        elif not self._loaded:
            everything = {n: set(c) for n, c in self._count.items()}
            self.ns.nft(nftables.full_ruleset(everything))
            self._chains = nftables.chains_needed(everything)
            self._loaded = True
        elif changed:
            new_chains = nftables.chains_needed(added) - self._chains
            self.ns.nft(nftables.delta(added, removed, new_chains))
            self._chains |= new_chains
        else:
            return
        self.syncs += 1
        self._flush_udp(removed)

    def _replace(self, key, new: dict[str, set[str]], added: dict, removed: dict) -> None:
        old = self._elems.get(key, {n: set() for n in nftables.SETS})
        for n in nftables.SETS:
            for e in new[n] - old[n]:
                self._count[n][e] += 1
                if self._count[n][e] == 1:
                    if e in removed[n]:
                        removed[n].discard(e)
                    else:
                        added[n].add(e)
            for e in old[n] - new[n]:
                self._count[n][e] -= 1
                if self._count[n][e] == 0:
                    del self._count[n][e]
                    if e in added[n]:
                        added[n].discard(e)
                    else:
                        removed[n].add(e)
        if any(new.values()):
            self._elems[key] = new
        else:
            self._elems.pop(key, None)

    def _health(self, port: int, key: tuple[str, str], local: int) -> None:
        if port not in self.health:
            self.health[port] = HealthServer(self.ns, port, *key)
        self.health[port].set_local(local)

    def _flush_udp(self, removed: dict[str, set[str]]) -> None:
        """UDP has no connection end: forget conntrack entries of changed UDP frontends,
        so clients of a gone endpoint move on at their next datagram."""
        if not shutil.which("conntrack"):
            return
        stale = set()
        for name in ("endpoints", "no_endpoints"):
            for e in removed[name]:
                ip, proto, port = e.split(" . ")[:3]
                if proto == "udp":
                    stale.add((ip, port.split()[0]))
        for ip, port in sorted(stale):
            self.ns.run(["conntrack", "-D", "-p", "udp", "--orig-dst", ip, "--orig-port-dst", port],
                        check=False, mount=False)

    def stop(self) -> None:
        for server in self.health.values():
            server.stop()
        self.health.clear()
        if self._loaded and self.mode == "iptables":
            self.ns.run(["iptables-restore"], input="*nat\nCOMMIT\n*filter\nCOMMIT\n", check=False, mount=False)
        elif self._loaded:
            self.ns.run(["nft", "delete", "table", "ip", nftables.TABLE], check=False, mount=False)
        self._loaded = False

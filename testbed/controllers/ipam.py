"""Cluster IPs and node ports: who holds what, and the next free one.

Pure: it reads the Services in the store and hands out numbers; it knows nothing of
NAT or announcing (MetalLB's controller/speaker split).
"""
from __future__ import annotations

import ipaddress

from testbed.errors import FieldError, Raw, invalid

DYNAMIC_OFFSET = 16  # the first addresses of the range stay free for fixed ones (DNS at .10)


class ServiceAllocator:
    def __init__(self, service_cidr: str, node_ports: tuple[int, int]):
        self.net = ipaddress.ip_network(service_cidr)
        self.lo, self.hi = node_ports

    def in_use(self, services: list[dict], skip: tuple[str, str] | None = None) -> tuple[set[str], set[int]]:
        ips, ports = set(), set()
        for s in services:
            if skip and (s["metadata"].get("namespace"), s["metadata"]["name"]) == skip:
                continue
            spec = s.get("spec", {})
            if spec.get("clusterIP") not in (None, "", "None"):
                ips.add(spec["clusterIP"])
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    ports.add(p["nodePort"])
            if spec.get("healthCheckNodePort"):
                ports.add(spec["healthCheckNodePort"])
        return ips, ports

    def allocate(self, svc: dict, old: dict | None, services: list[dict]) -> list[FieldError]:
        """Fill in spec.clusterIP, nodePorts and healthCheckNodePort; keep what ``old`` had."""
        spec = svc["spec"]
        if spec.get("type") == "ExternalName":
            return []
        md = svc["metadata"]
        ips, ports = self.in_use(services, skip=(md.get("namespace"), md["name"]))
        errs: list[FieldError] = []
        old_spec = (old or {}).get("spec", {})
        want = spec.get("clusterIP")
        if old and old_spec.get("clusterIP") and want not in (None, "") and want != old_spec["clusterIP"]:
            errs.append(invalid("spec.clusterIP", want, "field is immutable"))
        elif want in (None, ""):
            spec["clusterIP"] = old_spec.get("clusterIP") or self._next_ip(ips)
        elif want != "None":
            if ipaddress.ip_address(want) not in self.net:
                errs.append(invalid("spec.clusterIPs", Raw(f'[]string{{"{want}"}}'),
                                    f"failed to allocate IP {want}: provided IP is not in the valid range. "
                                    f"The range of valid IPs is {self.net}"))
            elif want in ips:
                errs.append(invalid("spec.clusterIPs", Raw(f'[]string{{"{want}"}}'),
                                    f"failed to allocate IP {want}: provided IP is already allocated"))
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            spec["clusterIPs"] = [spec["clusterIP"]]
        external = spec.get("type") in ("NodePort", "LoadBalancer")
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in old_spec.get("ports") or []}
        for i, p in enumerate(spec.get("ports") or []):
            if not external:
                p.pop("nodePort", None)
                continue
            np = p.get("nodePort")
            if not np:
                np = old_ports.get((p["port"], p["protocol"])) or self._next_port(ports)
                p["nodePort"] = np
            elif not self.lo <= np <= self.hi:
                errs.append(invalid(f"spec.ports[{i}].nodePort", np, "provided port is not in the valid range. "
                                    f"The range of valid ports is {self.lo}-{self.hi}"))
            elif np in ports:
                errs.append(invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated"))
            ports.add(np)
        if spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            hc = spec.get("healthCheckNodePort") or old_spec.get("healthCheckNodePort")
            if not hc:
                hc = self._next_port(ports)
            elif hc in ports and hc != old_spec.get("healthCheckNodePort"):
                errs.append(invalid("spec.healthCheckNodePort", hc, "provided port is already allocated"))
            spec["healthCheckNodePort"] = hc
        else:
            spec.pop("healthCheckNodePort", None)
        return errs

    def _next_ip(self, used: set[str]) -> str:
        for i in range(DYNAMIC_OFFSET, self.net.num_addresses - 1):
            ip = str(self.net.network_address + i)
            if ip not in used:
                return ip
        raise RuntimeError(f"service CIDR {self.net} is full")

    def _next_port(self, used: set[int]) -> int:
        for p in range(self.lo, self.hi + 1):
            if p not in used:
                return p
        raise RuntimeError("node port range is full")

"""What the proxy needs to know, taken out of Services and EndpointSlices (pure).

One ``ServicePort`` per Service port, with the frontends this node answers on (cluster
IP, its own node IPs on the nodePort, LoadBalancer IPs) and the endpoints each
frontend spreads over after the traffic policies are applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class Frontend:
    ip: str
    proto: str  # tcp | udp | sctp
    port: int
    external: bool  # reached from outside (node port, load balancer): traffic policies apply


@dataclass
class ServicePort:
    name: str  # "namespace/service:port" for comments
    frontends: dict[Frontend, list[tuple[str, int]]] = field(default_factory=dict)  # -> endpoints (ip, port)
    masquerade: set[Frontend] = field(default_factory=set)  # externalTrafficPolicy Cluster
    drop: set[Frontend] = field(default_factory=set)  # Local policy and no local endpoint
    reject: set[Frontend] = field(default_factory=set)  # no endpoint at all
    affinity: bool = False  # sessionAffinity ClientIP: a client keeps its endpoint
    health_port: int | None = None  # healthCheckNodePort (LoadBalancer, externalTrafficPolicy Local)
    local_endpoints: int = 0
    local_ips: set[str] = field(default_factory=set)  # endpoints on this node: only they can hairpin


def endpoints_by_port(slices: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(service port name, protocol) -> [{"ip", "port", "node", "ready"}] for one Service."""
    out: dict[tuple[str, str], list[dict]] = {}
    for s in slices:
        for p in s.get("ports") or []:
            key = (p.get("name") or "", p.get("protocol", "TCP"))
            for ep in s.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                ready = cond.get("ready", True) is not False and not cond.get("terminating", False)
                for ip in ep.get("addresses") or []:
                    out.setdefault(key, []).append({"ip": ip, "port": p.get("port"), "node": ep.get("nodeName"),
                                                    "ready": ready})
    return out


def service_ports(svc: dict, slices: list[dict], node: str, node_ips: list[str]) -> list[ServicePort]:
    spec = svc.get("spec", {})
    if spec.get("type") == "ExternalName" or spec.get("clusterIP") in (None, "", "None"):
        return []  # ExternalName and headless Services get no NAT
    by_port = endpoints_by_port(slices)
    etp_local = spec.get("externalTrafficPolicy") == "Local"
    itp_local = spec.get("internalTrafficPolicy") == "Local"
    lb_ips = [i["ip"] for i in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []) if i.get("ip")]
    out = []
    for p in spec.get("ports") or []:
        proto = PROTOCOLS.get(p.get("protocol", "TCP"), "tcp")
        eps = [e for e in by_port.get((p.get("name") or "", p.get("protocol", "TCP")), []) if e["ready"] and e["port"]]
        local = [e for e in eps if e["node"] == node]
        sp = ServicePort(f"{svc['metadata'].get('namespace', 'default')}/{svc['metadata']['name']}"
                         + (f":{p['name']}" if p.get("name") else ""),
                         affinity=spec.get("sessionAffinity") == "ClientIP",
                         health_port=spec.get("healthCheckNodePort") if etp_local else None,
                         local_endpoints=len(local), local_ips={e["ip"] for e in local})
        _add(sp, Frontend(spec["clusterIP"], proto, p["port"], False), local if itp_local else eps, eps, False)
        external = []
        if spec.get("type") in ("NodePort", "LoadBalancer") and p.get("nodePort"):
            external += [Frontend(ip, proto, p["nodePort"], True) for ip in node_ips]
        if spec.get("type") == "LoadBalancer":
            external += [Frontend(ip, proto, p["port"], True) for ip in lb_ips]
        for fe in external:
            _add(sp, fe, local if etp_local else eps, eps, not etp_local)
        out.append(sp)
    return out


def _add(sp: ServicePort, fe: Frontend, chosen: list[dict], all_eps: list[dict], masquerade: bool) -> None:
    if not all_eps:
        sp.reject.add(fe)
    elif not chosen:
        sp.drop.add(fe)
    else:
        sp.frontends[fe] = sorted({(e["ip"], int(e["port"])) for e in chosen})
        if masquerade:
            sp.masquerade.add(fe)

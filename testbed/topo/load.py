"""Topology files: YAML in, a validated and fully resolved Topology out.

Every error names the file and the field path, API-server style:
``topologies/x.yaml: The Topology "x" is invalid: nodes[0].segment: Not found: "lan2"``.
Addresses left out are picked here (routers from .1, nodes from .10, outside hosts
from .100 of their segment) so the runtime has nothing left to decide.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import deque
from pathlib import Path

import yaml

from testbed.errors import BadInput, FieldError, InvalidError, duplicate, invalid, required, unsupported
from testbed.topo.model import (
    BGP_MODES, IPIP_MODES, NETWORKS, PROXY_MODES, SWITCHES, BgpSettings, ClusterSettings, Host, Interface,
    IpipSettings, Route, Segment, Topology, VxlanSettings,
)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_HOST_NAME = 12  # host names become interface and process names: keep them short
FIRST_ADDRESS = {"router": 1, "node": 10, "host": 100}


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInput(f"cannot read topology: {e.strerror}", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadInput(f"invalid YAML: {e}", str(path)) from None
    return parse_topology(data, str(path))


def parse_topology(data: object, source: str, default_name: str = "") -> Topology:
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        raise BadInput("a topology must be a YAML mapping", source)
    name = data.get("name") or default_name or Path(source).stem
    _check_keys(data, {"name", "description", "cluster", "segments", "routers", "nodes", "hosts"}, "", errors)
    if not isinstance(name, str) or not DNS1123_LABEL.match(name):
        errors.append(invalid("name", name, "a lowercase RFC 1123 label must consist of lower case "
                              "alphanumeric characters or '-'"))
    cluster = _cluster(data.get("cluster") or {}, errors)
    segments = _segments(data.get("segments"), errors)
    hosts: dict[str, Host] = {}
    for role, key in (("router", "routers"), ("node", "nodes"), ("host", "hosts")):
        items = data.get(key) or []
        if not isinstance(items, list):
            errors.append(invalid(key, items, "must be a list"))
            continue
        for i, item in enumerate(items):
            host = _host(item, role, f"{key}[{i}]", segments, hosts, errors)
            if host:
                hosts[host.name] = host
    if not any(h.role == "node" for h in hosts.values()) and not errors:
        errors.append(required("nodes", "a topology needs at least one Kubernetes node"))
    if not errors:
        _assign_addresses(segments, hosts, errors)
    if not errors:
        _assign_pod_cidrs(cluster, hosts, errors)
        _check_bgp(cluster, hosts, errors)
    if errors:
        raise InvalidError("Topology", str(name), errors, source)
    _plan_routes(segments, hosts)
    return Topology(name=name, source=source, cluster=cluster, segments=segments, hosts=hosts)


def _check_keys(obj: dict, allowed: set[str], path: str, errors: list[FieldError]) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            errors.append(FieldError(where, "Unsupported value", key,
                                     "unknown field; known fields: " + ", ".join(sorted(allowed))))


def _cidr(value: object, path: str, errors: list[FieldError]) -> str | None:
    try:
        return str(ipaddress.ip_network(str(value), strict=True)) if value is not None else None
    except ValueError:
        errors.append(invalid(path, value, "must be a valid IPv4 CIDR like 10.0.0.0/24"))
        return None


def _int(value: object, path: str, lo: int, hi: int, errors: list[FieldError]) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        errors.append(invalid(path, value, f"must be an integer between {lo} and {hi}, inclusive"))
        return None
    return value


def _cluster(raw: object, errors: list[FieldError]) -> ClusterSettings:
    c = ClusterSettings()
    if not isinstance(raw, dict):
        errors.append(invalid("cluster", raw, "must be a mapping"))
        return c
    _check_keys(raw, {"domain", "podCIDR", "nodeCIDRMaskSize", "serviceCIDR", "nodePortRange", "network",
                      "proxyMode", "natOutgoing", "vxlan", "ipip", "bgp"}, "cluster", errors)
    c.domain = raw.get("domain", c.domain)
    c.pod_cidr = _cidr(raw.get("podCIDR", c.pod_cidr), "cluster.podCIDR", errors) or c.pod_cidr
    c.service_cidr = _cidr(raw.get("serviceCIDR", c.service_cidr), "cluster.serviceCIDR", errors) or c.service_cidr
    c.node_mask = _int(raw.get("nodeCIDRMaskSize", c.node_mask), "cluster.nodeCIDRMaskSize", 8, 30, errors) or c.node_mask
    if "nodePortRange" in raw:
        m = re.fullmatch(r"(\d+)-(\d+)", str(raw["nodePortRange"]))
        if not m or not 1 <= int(m[1]) < int(m[2]) <= 65535:
            errors.append(invalid("cluster.nodePortRange", raw["nodePortRange"], "must look like 30000-32767"))
        else:
            c.node_port_range = (int(m[1]), int(m[2]))
    c.network = raw.get("network", c.network)
    if c.network not in NETWORKS:
        errors.append(unsupported("cluster.network", c.network, list(NETWORKS)))
    c.proxy_mode = raw.get("proxyMode", c.proxy_mode)
    if c.proxy_mode not in PROXY_MODES:
        errors.append(unsupported("cluster.proxyMode", c.proxy_mode, list(PROXY_MODES)))
    if "natOutgoing" in raw:
        if not isinstance(raw["natOutgoing"], bool):
            errors.append(invalid("cluster.natOutgoing", raw["natOutgoing"], "must be true or false"))
        else:
            c.nat_outgoing = raw["natOutgoing"]
    vx = raw.get("vxlan") or {}
    _check_keys(vx, {"vni", "port"}, "cluster.vxlan", errors)
    c.vxlan = VxlanSettings(vni=_int(vx.get("vni", 1), "cluster.vxlan.vni", 1, 16777215, errors) or 1,
                            port=_int(vx.get("port", 4789), "cluster.vxlan.port", 1, 65535, errors) or 4789)
    ipip = raw.get("ipip") or {}
    _check_keys(ipip, {"mode"}, "cluster.ipip", errors)
    c.ipip = IpipSettings(mode=ipip.get("mode", "Always"))
    if c.ipip.mode not in IPIP_MODES:
        errors.append(unsupported("cluster.ipip.mode", c.ipip.mode, list(IPIP_MODES)))
    bgp = raw.get("bgp") or {}
    _check_keys(bgp, {"mode", "asNumber", "reflectors", "bfd"}, "cluster.bgp", errors)
    c.bgp = BgpSettings(mode=bgp.get("mode", "mesh"),
                        asn=_int(bgp.get("asNumber", 64512), "cluster.bgp.asNumber", 1, 4294967295, errors) or 64512,
                        reflectors=list(bgp.get("reflectors") or []), bfd=bool(bgp.get("bfd", False)))
    if c.bgp.mode not in BGP_MODES:
        errors.append(unsupported("cluster.bgp.mode", c.bgp.mode, list(BGP_MODES)))
    return c


def _segments(raw: object, errors: list[FieldError]) -> dict[str, Segment]:
    segments: dict[str, Segment] = {}
    if not isinstance(raw, list) or not raw:
        errors.append(required("segments", "at least one L2 segment with a cidr"))
        return segments
    for i, item in enumerate(raw):
        path = f"segments[{i}]"
        if not isinstance(item, dict):
            errors.append(invalid(path, item, "must be a mapping"))
            continue
        _check_keys(item, {"name", "cidr", "mtu", "switch"}, path, errors)
        name = item.get("name")
        if not isinstance(name, str) or not DNS1123_LABEL.match(name):
            errors.append(invalid(f"{path}.name", name, "must be a lowercase RFC 1123 label"))
            continue
        if name in segments:
            errors.append(duplicate(f"{path}.name", name))
            continue
        if "cidr" not in item:
            errors.append(required(f"{path}.cidr"))
            continue
        cidr = _cidr(item["cidr"], f"{path}.cidr", errors)
        mtu = _int(item.get("mtu", 1500), f"{path}.mtu", 576, 9000, errors)
        switch = item.get("switch", "macvlan")
        if switch not in SWITCHES:
            errors.append(unsupported(f"{path}.switch", switch, list(SWITCHES)))
        if cidr and mtu:
            segments[name] = Segment(name, cidr, mtu, switch)
    nets = [(s.name, s.network) for s in segments.values()]
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            if nets[a][1].overlaps(nets[b][1]):
                errors.append(invalid(f"segments[{b}].cidr", str(nets[b][1]), f"overlaps segment {nets[a][0]}"))
    return segments


def _host(item: object, role: str, path: str, segments: dict[str, Segment], hosts: dict[str, Host],
          errors: list[FieldError]) -> Host | None:
    if not isinstance(item, dict):
        errors.append(invalid(path, item, "must be a mapping"))
        return None
    allowed = {"name", "asNumber"} | ({"interfaces"} if role == "router" else {"segment", "address"})
    if role == "node":
        allowed |= {"labels"}
    _check_keys(item, allowed, path, errors)
    name = item.get("name")
    if not isinstance(name, str) or not DNS1123_LABEL.match(name) or len(name) > MAX_HOST_NAME:
        errors.append(invalid(f"{path}.name", name,
                              f"must be a lowercase RFC 1123 label of at most {MAX_HOST_NAME} characters"))
        return None
    if name in hosts:
        errors.append(duplicate(f"{path}.name", name))
        return None
    host = Host(name=name, role=role)
    if "asNumber" in item:
        host.asn = _int(item["asNumber"], f"{path}.asNumber", 1, 4294967295, errors)
    if role == "node":
        labels = item.get("labels") or {}
        if not isinstance(labels, dict):
            errors.append(invalid(f"{path}.labels", labels, "must be a mapping"))
        else:
            host.labels = {str(k): str(v) for k, v in labels.items()}
    wanted = item.get("interfaces") if role == "router" else [{"segment": item.get("segment"), "address": item.get("address")}]
    if role == "router" and (not isinstance(wanted, list) or not wanted):
        errors.append(required(f"{path}.interfaces", "a router needs at least one interface"))
        return host
    for i, want in enumerate(wanted):
        ipath = f"{path}.interfaces[{i}]" if role == "router" else path
        if not isinstance(want, dict):
            errors.append(invalid(ipath, want, "must be a mapping"))
            continue
        if role == "router":
            _check_keys(want, {"segment", "address"}, ipath, errors)
        seg = want.get("segment")
        if seg is None:
            errors.append(required(f"{ipath}.segment"))
            continue
        if seg not in segments:
            errors.append(FieldError(f"{ipath}.segment", "Not found", seg, has_value=True))
            continue
        if any(x.segment == seg for x in host.interfaces):
            errors.append(duplicate(f"{ipath}.segment", seg))
            continue
        address = want.get("address")
        if address is not None:
            try:
                ip = ipaddress.ip_address(str(address))
            except ValueError:
                errors.append(invalid(f"{ipath}.address", address, "must be a valid IPv4 address"))
                continue
            net = segments[seg].network
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                errors.append(invalid(f"{ipath}.address", address, f"must be a host address in {net}"))
                continue
        host.interfaces.append(Interface(name=f"eth{i}", segment=seg, address=str(address or ""),
                                         prefixlen=segments[seg].network.prefixlen, mac="",
                                         mtu=segments[seg].mtu))
    return host


def _assign_addresses(segments: dict[str, Segment], hosts: dict[str, Host], errors: list[FieldError]) -> None:
    taken: dict[str, dict[str, str]] = {s: {} for s in segments}
    for h in hosts.values():
        for ifc in h.interfaces:
            if ifc.address:
                if ifc.address in taken[ifc.segment]:
                    errors.append(duplicate(f"{h.name}.address", ifc.address))
                taken[ifc.segment][ifc.address] = h.name
    for h in hosts.values():
        for ifc in h.interfaces:
            ifc.mac = _mac(h.name, ifc.name)
            if ifc.address:
                continue
            hosts_of = list(segments[ifc.segment].network.hosts())
            for ip in hosts_of[FIRST_ADDRESS[h.role] - 1:] + hosts_of:
                if str(ip) not in taken[ifc.segment]:
                    ifc.address = str(ip)
                    taken[ifc.segment][ifc.address] = h.name
                    break
            else:
                errors.append(invalid(f"{h.name}.segment", ifc.segment, "the segment has no free address left"))


def _mac(host: str, ifname: str) -> str:
    digest = hashlib.sha256(f"{host}/{ifname}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])  # locally administered, unicast


def _assign_pod_cidrs(cluster: ClusterSettings, hosts: dict[str, Host], errors: list[FieldError]) -> None:
    pods = ipaddress.ip_network(cluster.pod_cidr)
    if cluster.node_mask < pods.prefixlen:
        errors.append(invalid("cluster.nodeCIDRMaskSize", cluster.node_mask,
                              f"must be at least the podCIDR prefix length /{pods.prefixlen}"))
        return
    if pods.overlaps(ipaddress.ip_network(cluster.service_cidr)):
        errors.append(invalid("cluster.serviceCIDR", cluster.service_cidr, "overlaps cluster.podCIDR"))
        return
    blocks = pods.subnets(new_prefix=cluster.node_mask)
    for h in hosts.values():
        if h.role == "node":
            h.pod_cidr = str(next(blocks, None) or "")
            h.rack = h.interfaces[0].segment if h.interfaces else None
            if not h.pod_cidr:
                errors.append(invalid("cluster.podCIDR", cluster.pod_cidr, "too small for one block per node"))
                return


def _check_bgp(cluster: ClusterSettings, hosts: dict[str, Host], errors: list[FieldError]) -> None:
    for i, name in enumerate(cluster.bgp.reflectors):
        if name not in hosts or hosts[name].role == "host":
            errors.append(FieldError(f"cluster.bgp.reflectors[{i}]", "Not found", name, "must name a node or router"))
    if cluster.network == "bgp" and cluster.bgp.mode == "tor":
        for h in hosts.values():
            if h.role in ("node", "router") and h.asn is None:
                errors.append(required(f"{h.role}s[{h.name}].asNumber", "bgp mode tor gives every node and router an AS"))


def _plan_routes(segments: dict[str, Segment], hosts: dict[str, Host]) -> None:
    """Static underlay routes: hosts and nodes default via the first router on their
    segment; routers reach the segments they are not on by the shortest path."""
    routers = [h for h in hosts.values() if h.role == "router"]
    on_seg: dict[str, list[tuple[Host, Interface]]] = {s: [] for s in segments}
    for r in routers:
        for ifc in r.interfaces:
            on_seg[ifc.segment].append((r, ifc))
    for h in hosts.values():
        if h.role != "router" and on_seg[h.iface.segment]:
            h.routes.append(Route("default", on_seg[h.iface.segment][0][1].address))
    for r in routers:
        # breadth-first over segments; remember the first hop address for each segment reached
        first_hop: dict[str, str | None] = {ifc.segment: None for ifc in r.interfaces}
        queue = deque(first_hop)
        while queue:
            seg = queue.popleft()
            for other, _ in on_seg[seg]:
                if other is r:
                    continue
                for oifc in other.interfaces:
                    if oifc.segment in first_hop:
                        continue
                    via = first_hop[seg] or next(i.address for o, i in on_seg[seg] if o is other)
                    first_hop[oifc.segment] = via
                    queue.append(oifc.segment)
        for seg, via in first_hop.items():
            if via:
                r.routes.append(Route(segments[seg].cidr, via))
        if not any(rt.dst == "default" for rt in r.routes):
            pass  # routers without a default route only know the lab's segments


def next_hop(router: Host, segment_cidr: str) -> str | None:
    """The address a router forwards to for a segment it is not on (None if it is on it)."""
    for rt in router.routes:
        if rt.dst == segment_cidr:
            return rt.via
    return None

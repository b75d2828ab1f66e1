"""The iptables ruleset of the service proxy, kube-proxy's iptables mode (pure).

KUBE-SERVICES matches each frontend and jumps to a chain per Service port
(KUBE-SVC-*, or KUBE-SVL-* for node-local endpoints), which picks an endpoint chain
(KUBE-SEP-*) with ``statistic --mode random`` probabilities and DNATs there. Every
sync restores the whole table: shown beside nftables so users can see why it does
not scale (rules are walked one by one, chains grow with Services and endpoints).
"""
from __future__ import annotations

import base64
import hashlib

from testbed.proxy.model import Frontend, ServicePort

MASQ = "0x4000"


def chain(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return f"{prefix}-{base64.b32encode(digest).decode()[:16]}"


def _match(fe: Frontend) -> str:
    return f"-d {fe.ip}/32 -p {fe.proto} -m {fe.proto} --dport {fe.port}"


def ruleset(ports: list[ServicePort], affinity_seconds: dict[str, int] | None = None) -> str:
    nat_chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat = ["-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
           "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
           "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
           f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ}",
           f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ}/{MASQ} -j RETURN",
           f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ}",
           "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE"]
    filt_chains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"]
    filt = ["-A INPUT -m conntrack --ctstate NEW -j KUBE-EXTERNAL-SERVICES",
            "-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES",
            "-A OUTPUT -m conntrack --ctstate NEW -j KUBE-SERVICES",
            "-A INPUT -m conntrack --ctstate NEW -j KUBE-SERVICES"]
    seen_eps: set[str] = set()
    for sp in ports:
        timeout = (affinity_seconds or {}).get(sp.name, 10800)
        by_eps: dict[tuple, str] = {}
        for fe, eps in sorted(sp.frontends.items(), key=lambda kv: (kv[0].external, kv[0].ip)):
            key = tuple(eps)
            if key not in by_eps:
                svc = chain("KUBE-SVC" if len(by_eps) == 0 else "KUBE-SVL", sp.name, *map(str, eps))
                by_eps[key] = svc
                nat_chains.append(svc)
                nat += _spread(sp, svc, eps, timeout, nat_chains, nat, seen_eps)
            comment = f"-m comment --comment \"{sp.name}{' external' if fe.external else ''}\""
            if fe in sp.masquerade:
                nat.append(f"-A KUBE-SERVICES {_match(fe)} {comment} -j KUBE-MARK-MASQ")
            nat.append(f"-A KUBE-SERVICES {_match(fe)} {comment} -j {by_eps[key]}")
        for fe in sorted(sp.reject, key=lambda f: f.ip):
            target = "KUBE-EXTERNAL-SERVICES" if fe.external else "KUBE-SERVICES"
            filt.append(f"-A {target} {_match(fe)} -m comment --comment \"{sp.name} has no endpoints\" "
                        "-j REJECT --reject-with icmp-port-unreachable")
        for fe in sorted(sp.drop, key=lambda f: f.ip):
            filt.append(f"-A KUBE-EXTERNAL-SERVICES {_match(fe)} -m comment --comment \"{sp.name} has no local "
                        "endpoints\" -j DROP")
    out = ["*nat"] + [f":{c} - [0:0]" for c in ["PREROUTING ACCEPT", "INPUT ACCEPT", "OUTPUT ACCEPT",
                                                "POSTROUTING ACCEPT"]] + [f":{c} - [0:0]" for c in nat_chains]
    out = [line.replace(" ACCEPT - ", " ACCEPT ") for line in out]
    out += nat + ["COMMIT", "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    out += [f":{c} - [0:0]" for c in filt_chains] + filt + ["COMMIT"]
    return "\n".join(out) + "\n"


def _spread(sp: ServicePort, svc: str, eps: list[tuple[str, int]], timeout: int, chains: list[str],
            rules: list[str], seen: set[str]) -> list[str]:
    """The Service chain's rules; endpoint chains are appended to ``rules`` as a side effect."""
    out = []
    n = len(eps)
    seps = [chain("KUBE-SEP", sp.name, ip, str(port)) for ip, port in eps]
    if sp.affinity:
        for sep in seps:
            out.append(f"-A {svc} -m recent --name {sep} --mask 255.255.255.255 --rsource --rcheck "
                       f"--seconds {timeout} --reap -j {sep}")
    for i, ((ip, port), sep) in enumerate(zip(eps, seps)):
        stat = f"-m statistic --mode random --probability {1 / (n - i):.11f} " if i < n - 1 else ""
        out.append(f"-A {svc} -m comment --comment \"{sp.name} -> {ip}:{port}\" {stat}-j {sep}")
        if sep in seen:
            continue
        seen.add(sep)
        chains.append(sep)
        proto = next(iter(sp.frontends)).proto
        rules.append(f"-A {sep} -s {ip}/32 -j KUBE-MARK-MASQ")  # hairpin
        if sp.affinity:
            rules.append(f"-A {sep} -p {proto} -m recent --name {sep} --mask 255.255.255.255 --rsource --set "
                         f"-m {proto} -j DNAT --to-destination {ip}:{port}")
        else:
            rules.append(f"-A {sep} -p {proto} -m {proto} -j DNAT --to-destination {ip}:{port}")
    return out

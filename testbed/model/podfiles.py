"""The /etc/resolv.conf and /etc/hosts kubelet writes for a pod (pure).

resolv.conf follows dnsPolicy: ClusterFirst points at the cluster DNS Service address
(the tenth of the service range, as kubeadm does) with the namespace search path and
``ndots:5``; Default takes the node's file; None takes only spec.dnsConfig, which the
other policies merge in too.
"""
from __future__ import annotations

import ipaddress

from testbed.topo.model import ClusterSettings

MAX_SEARCH = 32


def cluster_dns_ip(settings: ClusterSettings) -> str:
    return str(ipaddress.ip_network(settings.service_cidr).network_address + 10)


def resolv_conf(pod: dict, settings: ClusterSettings, node_resolv: str) -> str:
    spec = pod["spec"]
    policy = spec.get("dnsPolicy", "ClusterFirst")
    ns = pod["metadata"].get("namespace", "default")
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        d = settings.domain
        servers = [cluster_dns_ip(settings)]
        search = [f"{ns}.svc.{d}", f"svc.{d}", d]
        options = ["ndots:5"]
    elif policy == "Default":
        for line in node_resolv.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "nameserver":
                servers += words[1:2]
            elif words[0] in ("search", "domain"):
                search += words[1:]
            elif words[0] == "options":
                options += words[1:]
    cfg = spec.get("dnsConfig") or {}
    servers += [s for s in cfg.get("nameservers") or [] if s not in servers]
    search += [s for s in cfg.get("searches") or [] if s not in search]
    for opt in cfg.get("options") or []:
        text = opt["name"] + (f":{opt['value']}" if opt.get("value") not in (None, "") else "")
        options = [o for o in options if o.split(":")[0] != opt["name"]] + [text]
    lines = [f"nameserver {s}" for s in servers[:3]]
    if search:
        lines.append("search " + " ".join(search[:MAX_SEARCH]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_file(pod: dict, pod_ip: str, domain: str) -> str:
    spec, md = pod["spec"], pod["metadata"]
    hostname = spec.get("hostname") or md["name"]
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
    if spec.get("subdomain"):
        fqdn = f"{hostname}.{spec['subdomain']}.{md.get('namespace', 'default')}.svc.{domain}"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    for alias in spec.get("hostAliases") or []:
        lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"

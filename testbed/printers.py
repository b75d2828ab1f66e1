"""`get` output like kubectl: plain aligned tables, -o wide, -o json (a List for many), -o yaml."""
from __future__ import annotations

import json
import time
from calendar import timegm

import yaml


def age(ts: str | None, now: float | None = None) -> str:
    if not ts:
        return "<unknown>"
    secs = int((now or time.time()) - timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{(secs % 3600) // 60}m" if secs < 36000 else f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def _pod(o: dict, wide: bool, now) -> list[str]:
    st = o.get("status", {})
    n = len(o["spec"].get("containers", []))
    ready = n if _ready(o) else 0
    restarts = sum(c.get("restartCount", 0) for c in st.get("containerStatuses", []))
    status = st.get("phase", "Pending")
    for c in st.get("containerStatuses", []):  # kubectl shows why a container waits
        status = c.get("state", {}).get("waiting", {}).get("reason", status)
    row = [o["metadata"]["name"], f"{ready}/{n}", status, str(restarts),
           age(o["metadata"].get("creationTimestamp"), now)]
    if wide:
        row += [st.get("podIP", "<none>"), o["spec"].get("nodeName", "<none>")]
    return row


def _ports(spec: dict) -> str:
    out = []
    for p in spec.get("ports") or []:
        s = f"{p['port']}:{p['nodePort']}" if p.get("nodePort") else str(p["port"])
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc(o: dict, wide: bool, now) -> list[str]:
    spec = o["spec"]
    ext = [i.get("ip") or i.get("hostname") for i in o.get("status", {}).get("loadBalancer", {}).get("ingress") or []]
    external = ",".join(ext) or (spec.get("externalName") or ("<pending>" if spec.get("type") == "LoadBalancer"
                                                              else "<none>"))
    row = [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external,
           _ports(spec), age(o["metadata"].get("creationTimestamp"), now)]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>")
    return row


def _node(o: dict, wide: bool, now) -> list[str]:
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in o["status"].get("conditions", []))
    row = [o["metadata"]["name"], "Ready" if ready else "NotReady", "<none>",
           age(o["metadata"].get("creationTimestamp"), now), o["status"].get("nodeInfo", {}).get("kubeletVersion", "")]
    if wide:
        ip = next((a["address"] for a in o["status"].get("addresses", []) if a["type"] == "InternalIP"), "<none>")
        ann = o["metadata"].get("annotations", {})
        row += [ip, o["spec"].get("podCIDR", "<none>"), ann.get("testbed.io/network", ""),
                ann.get("testbed.io/nat-outgoing", "")]
    return row


def _workload(o: dict, wide: bool, now) -> list[str]:
    st, spec = o.get("status", {}), o["spec"]
    name, created = o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"), now)
    if o["kind"] == "Deployment":
        return [name, f"{st.get('readyReplicas', 0)}/{spec['replicas']}", str(st.get("updatedReplicas", 0)),
                str(st.get("availableReplicas", 0)), created]
    if o["kind"] == "ReplicaSet":
        return [name, str(spec["replicas"]), str(st.get("replicas", 0)), str(st.get("readyReplicas", 0)), created]
    return [name, f"{st.get('readyReplicas', 0)}/{spec['replicas']}", created]


def _endpoints(o: dict, wide: bool, now) -> list[str]:
    eps = [f"{a['ip']}:{p['port']}" for s in o.get("subsets") or [] for a in s.get("addresses") or []
           for p in s.get("ports") or [{"port": ""}]]
    shown = ",".join(eps[:3]) + (f" + {len(eps) - 3} more..." if len(eps) > 3 else "")
    return [o["metadata"]["name"], shown or "<none>", age(o["metadata"].get("creationTimestamp"), now)]


def _slice(o: dict, wide: bool, now) -> list[str]:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses", [])]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [o["metadata"]["name"], o.get("addressType", ""), ports, shown or "<unset>",
            age(o["metadata"].get("creationTimestamp"), now)]


def _namespace(o: dict, wide: bool, now) -> list[str]:
    return [o["metadata"]["name"], o.get("status", {}).get("phase", "Active"),
            age(o["metadata"].get("creationTimestamp"), now)]


def _generic(o: dict, wide: bool, now) -> list[str]:
    return [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"), now)]


COLUMNS = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _svc),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["INTERNAL-IP", "POD-CIDR", "NETWORK", "NAT-OUTGOING"],
             _node),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], [], _workload),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], [], _workload),
    "StatefulSet": (["NAME", "READY", "AGE"], [], _workload),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _slice),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _namespace),
}


def render(kind: str, objs: list[dict] | dict, output: str = "", all_namespaces: bool = False,
           now: float | None = None) -> str:
    single = isinstance(objs, dict)
    items = [objs] if single else list(objs)
    if output == "json":
        doc = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items,
                                       "metadata": {"resourceVersion": ""}}
        return json.dumps(doc, indent=4)
    if output == "yaml":
        doc = items[0] if single else {"apiVersion": "v1", "kind": "List", "items": items}
        return yaml.safe_dump(doc, sort_keys=False).rstrip()
    if not items:
        return ""
    head, extra, row = COLUMNS.get(kind, (["NAME", "AGE"], [], _generic))
    wide = output == "wide"
    header = head + (extra if wide else [])
    rows = [row(o, wide, now) for o in items]
    if all_namespaces:
        header = ["NAMESPACE"] + header
        rows = [[o["metadata"].get("namespace", "")] + r for o, r in zip(items, rows)]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["   ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    return "\n".join(lines)

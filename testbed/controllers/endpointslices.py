"""EndpointSlices and Endpoints for Services, as the two Kubernetes controllers make them.

Selector Services: one slice per set of resolved target ports (named targetPorts are
looked up per pod). Services without a selector: the user's Endpoints are mirrored
into a slice; slices the user gave are left alone.
"""
from __future__ import annotations

import hashlib

from testbed.controllers.workloads import is_ready
from testbed.model.validation import labels_match
from testbed.store import Store

SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME = "kubernetes.io/service-name"
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"


def resolve_port(svc_port: dict, pod: dict) -> int | None:
    tp = svc_port.get("targetPort", svc_port["port"])
    if isinstance(tp, int) or str(tp).isdigit():
        return int(tp)
    for c in pod["spec"].get("containers", []):
        for p in c.get("ports") or []:
            if p.get("name") == tp and p.get("protocol", "TCP") == svc_port.get("protocol", "TCP"):
                return p["containerPort"]
    return None


def _slice_name(svc: str, group: int, who: str) -> str:
    return f"{svc}-{hashlib.sha1(f'{who}/{svc}/{group}'.encode()).hexdigest()[:5]}"


def _put_if_changed(store: Store, obj: dict) -> None:
    old = store.get(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
    if old is None or any(old.get(k) != obj.get(k) for k in ("endpoints", "ports", "subsets", "addressType")) \
            or old["metadata"].get("labels") != obj["metadata"].get("labels"):
        store.put(obj)


def reconcile(store: Store) -> None:
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in store.list("Service")}
    wanted: set[tuple[str, str]] = set()
    wanted_ep: set[tuple[str, str]] = set()
    for (ns, name), svc in services.items():
        spec = svc["spec"]
        if spec.get("type") == "ExternalName":
            continue
        if spec.get("selector"):
            for s in _selector_slices(store, svc):
                wanted.add((ns, s["metadata"]["name"]))
                _put_if_changed(store, s)
            ep = _endpoints(store, svc)
            wanted_ep.add((ns, name))
            _put_if_changed(store, ep)
        else:
            user_ep = store.get("Endpoints", ns, name)
            if user_ep and user_ep["metadata"].get("labels", {}).get(SKIP_MIRROR) != "true":
                s = _mirror(svc, user_ep)
                wanted.add((ns, s["metadata"]["name"]))
                _put_if_changed(store, s)
    for s in store.list("EndpointSlice"):
        labels = s["metadata"].get("labels", {})
        if labels.get(MANAGED_BY) in (SLICE_CONTROLLER, MIRROR_CONTROLLER) and \
                (s["metadata"]["namespace"], s["metadata"]["name"]) not in wanted:
            store.delete(("EndpointSlice", s["metadata"]["namespace"], s["metadata"]["name"]))
    for ep in store.list("Endpoints"):
        key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
        if ep["metadata"].get("labels", {}).get(SKIP_MIRROR) == "true" and key not in wanted_ep:
            store.delete(("Endpoints", *key))


def _selected_pods(store: Store, svc: dict) -> list[dict]:
    ns = svc["metadata"]["namespace"]
    return [p for p in store.list("Pod", ns)
            if labels_match(svc["spec"]["selector"], p["metadata"].get("labels", {}))
            and p.get("status", {}).get("podIP")]


def _selector_slices(store: Store, svc: dict) -> list[dict]:
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    ports = svc["spec"].get("ports") or []
    groups: dict[tuple, list[dict]] = {}
    publish = svc["spec"].get("publishNotReadyAddresses", False)
    for pod in _selected_pods(store, svc):
        resolved = tuple((p.get("name", ""), resolve_port(p, pod), p.get("protocol", "TCP")) for p in ports)
        resolved = tuple(r for r in resolved if r[1] is not None)
        ready = is_ready(pod) or publish
        ep = {"addresses": [pod["status"]["podIP"]],
              "conditions": {"ready": ready, "serving": ready, "terminating": False},
              "nodeName": pod["spec"].get("nodeName"),
              "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": ns,
                            "uid": pod["metadata"]["uid"]}}
        if pod["spec"].get("hostname") and pod["spec"].get("subdomain") == name:
            ep["hostname"] = pod["spec"]["hostname"]
        groups.setdefault(resolved, []).append(ep)
    if not groups:
        groups[()] = []  # an empty slice, as Kubernetes keeps for a Service without endpoints
    slices = []
    for i, (resolved, eps) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
        slices.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": _slice_name(name, i, SLICE_CONTROLLER), "namespace": ns,
                         "labels": {SERVICE_NAME: name, MANAGED_BY: SLICE_CONTROLLER},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                              "uid": svc["metadata"]["uid"], "controller": True}]},
            "addressType": "IPv4",
            "endpoints": sorted(eps, key=lambda e: e["addresses"][0]),
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in resolved],
        })
    return slices


def _endpoints(store: Store, svc: dict) -> dict:
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    subsets: dict[tuple, dict] = {}
    for pod in _selected_pods(store, svc):
        ports = tuple((p.get("name", ""), resolve_port(p, pod), p.get("protocol", "TCP"))
                      for p in svc["spec"].get("ports") or [])
        ports = tuple(x for x in ports if x[1] is not None)
        sub = subsets.setdefault(ports, {"ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]})
        addr = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": ns}}
        sub.setdefault("addresses" if is_ready(pod) else "notReadyAddresses", []).append(addr)
    for sub in subsets.values():
        for k in ("addresses", "notReadyAddresses"):
            if k in sub:
                sub[k].sort(key=lambda a: a["ip"])
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": {SKIP_MIRROR: "true"}},
            "subsets": [subsets[k] for k in sorted(subsets, key=str)]}


def _mirror(svc: dict, ep: dict) -> dict:
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    endpoints, ports = [], []
    for sub in ep.get("subsets") or []:
        ports = [{"name": p.get("name", ""), "port": p["port"], "protocol": p.get("protocol", "TCP")}
                 for p in sub.get("ports") or []]
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in sub.get(key) or []:
                endpoints.append({"addresses": [a["ip"]],
                                  "conditions": {"ready": ready, "serving": ready, "terminating": False},
                                  **({"nodeName": a["nodeName"]} if a.get("nodeName") else {})})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": _slice_name(name, 0, MIRROR_CONTROLLER), "namespace": ns,
                         "labels": {SERVICE_NAME: name, MANAGED_BY: MIRROR_CONTROLLER}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}

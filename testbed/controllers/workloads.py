"""Deployments -> ReplicaSets -> Pods, and StatefulSets -> Pods, with status.

Names as Kubernetes makes them: ReplicaSet ``<deploy>-<pod-template-hash>``, its pods
``<rs>-<5 chars>``; StatefulSet pods ``<name>-0`` .. ``<name>-N-1``.
"""
from __future__ import annotations

import copy
import json
import random
import zlib

from testbed.model.validation import selector_matches
from testbed.store import Store

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' safe-encoding alphabet
_rand = random.Random()


def safe_encode(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(ALPHABET[n % len(ALPHABET)])
        n //= len(ALPHABET)
    return "".join(out)


def template_hash(template: dict) -> str:
    return safe_encode(zlib.crc32(json.dumps(template, sort_keys=True).encode()), 10).rstrip("b") or "b"


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict, owner: dict) -> bool:
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences", []))


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def pod_from_template(owner: dict, name: str, extra_labels: dict | None = None) -> dict:
    tpl = owner["spec"]["template"]
    md = tpl.get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                     "labels": {**(md.get("labels") or {}), **(extra_labels or {})},
                     "annotations": dict(md.get("annotations") or {}),
                     "ownerReferences": [owner_ref(owner)]},
        "spec": copy.deepcopy(tpl["spec"]),
        "status": {"phase": "Pending"},
    }


def reconcile_deployments(store: Store) -> None:
    for d in store.list("Deployment"):
        h = template_hash(d["spec"]["template"])
        rs_name = f"{d['metadata']['name']}-{h}"
        ns = d["metadata"]["namespace"]
        for rs in store.list("ReplicaSet", ns):
            if owned_by(rs, d) and rs["metadata"]["name"] != rs_name:
                store.delete(("ReplicaSet", ns, rs["metadata"]["name"]))  # a new template replaces it
        tpl = copy.deepcopy(d["spec"]["template"])
        tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = h
        old = store.get("ReplicaSet", ns, rs_name)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": rs_name, "namespace": ns, "labels": dict(tpl["metadata"]["labels"]),
                           "ownerReferences": [owner_ref(d)]},
              "spec": {"replicas": d["spec"]["replicas"], "selector": selector, "template": tpl},
              "status": (old or {}).get("status", {"replicas": 0})}
        store.put(rs)
        pods = [p for p in store.list("Pod", ns) if p["metadata"].get("labels", {}).get("pod-template-hash") == h
                and any(r.get("name") == rs_name for r in p["metadata"].get("ownerReferences", []))]
        _set_status(store, d, pods, updated=len(pods))


def reconcile_replicasets(store: Store) -> None:
    for rs in store.list("ReplicaSet"):
        ns = rs["metadata"]["namespace"]
        pods = [p for p in store.list("Pod", ns) if owned_by(p, rs)]
        want = rs["spec"]["replicas"]
        h = rs["metadata"].get("labels", {}).get("pod-template-hash")
        while len(pods) < want:
            name = f"{rs['metadata']['name']}-{''.join(_rand.choice(ALPHABET) for _ in range(5))}"
            if store.get("Pod", ns, name):
                continue
            store.put(pod_from_template(rs, name, {"pod-template-hash": h} if h else None))
            pods.append(store.get("Pod", ns, name))
        if len(pods) > want:
            # not-ready pods go first, then the newest, as the ReplicaSet controller does
            pods.sort(key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
            for p in pods[: len(pods) - want]:
                store.delete(("Pod", ns, p["metadata"]["name"]))
            pods = pods[len(pods) - want:]
        _set_status(store, rs, pods)


def reconcile_statefulsets(store: Store) -> None:
    for sts in store.list("StatefulSet"):
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        want = sts["spec"]["replicas"]
        for i in range(want):
            pod_name = f"{name}-{i}"
            if not store.get("Pod", ns, pod_name):
                pod = pod_from_template(sts, pod_name, {"statefulset.kubernetes.io/pod-name": pod_name,
                                                        "apps.kubernetes.io/pod-index": str(i)})
                pod["spec"]["hostname"] = pod_name
                if sts["spec"].get("serviceName"):
                    pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
                store.put(pod)
        pods = []
        for p in store.list("Pod", ns):
            if owned_by(p, sts):
                idx = p["metadata"]["name"].rsplit("-", 1)[-1]
                if idx.isdigit() and int(idx) >= want:
                    store.delete(("Pod", ns, p["metadata"]["name"]))
                else:
                    pods.append(p)
        _set_status(store, sts, pods, updated=len(pods))


def _set_status(store: Store, owner: dict, pods: list[dict], updated: int | None = None) -> None:
    ready = sum(1 for p in pods if is_ready(p))
    status = {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
              "observedGeneration": owner["metadata"].get("generation", 1)}
    if updated is not None:
        status["updatedReplicas"] = updated
    if owner["kind"] == "Deployment":
        cond = "True" if ready >= owner["spec"]["replicas"] else "False"
        status["conditions"] = [{"type": "Available", "status": cond}]
    if owner.get("status") != status:
        new = dict(owner)
        new["status"] = status
        store.put(new)


def garbage_collect(store: Store) -> None:
    """Delete objects whose controller owner is gone (the garbage collector)."""
    uids = {o["metadata"]["uid"] for o in store.objects.values()}
    for key, obj in list(store.objects.items()):
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(r.get("uid") in uids for r in refs):
            store.delete(key)


def matches(selector: dict, labels: dict) -> bool:
    return selector_matches(selector, labels)

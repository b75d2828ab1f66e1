"""The scheduler: binds each pending pod to a node (nodeName, nodeSelector, spreading)."""
from __future__ import annotations

import copy

from testbed.store import Store, now


def schedule(store: Store) -> None:
    nodes = store.list("Node")
    load = {n["metadata"]["name"]: 0 for n in nodes}
    pending = []
    for pod in store.list("Pod"):
        node = pod["spec"].get("nodeName")
        if node:
            load[node] = load.get(node, 0) + 1
        else:
            pending.append(pod)
    for pod in pending:
        selector = pod["spec"].get("nodeSelector") or {}
        fits = [n["metadata"]["name"] for n in nodes
                if all(n["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        pod = copy.deepcopy(pod)
        status = pod.setdefault("status", {})
        status.setdefault("phase", "Pending")
        if not fits:
            msg = (f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) didn't match Pod's node "
                   "affinity/selector.")
            status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": msg, "lastTransitionTime": now()}]
            store.put(pod)
            continue
        best = min(fits, key=lambda n: (load[n], n))
        load[best] += 1
        pod["spec"]["nodeName"] = best
        status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]
        store.put(pod)

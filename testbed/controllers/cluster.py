"""The cluster: the store plus the controllers, behind an API-server-like front.

apply() is all or nothing: every object is checked (including against what the store
holds: allocated ports and IPs, immutable fields, namespaces) before anything is
stored; then the controllers run to a fixed point and watchers hear of the changes.
"""
from __future__ import annotations

import copy
import ipaddress

from testbed.controllers import endpointslices, scheduler, workloads
from testbed.controllers.ipam import ServiceAllocator
from testbed.errors import BadInput, FieldError, InvalidError, TestbedError, forbidden, invalid
from testbed.model.kinds import KINDS, lookup
from testbed.store import Store, key_of, now
from testbed.topo.model import ClusterSettings

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CONTROLLERS = (workloads.reconcile_deployments, workloads.reconcile_replicasets,
               workloads.reconcile_statefulsets, workloads.garbage_collect, scheduler.schedule,
               endpointslices.reconcile)


class NotFound(TestbedError):
    exit_code = 1


class Cluster:
    def __init__(self, settings: ClusterSettings):
        self.settings = settings
        self.store = Store()
        self.ipam = ServiceAllocator(settings.service_cidr, settings.node_port_range)
        for ns in SYSTEM_NAMESPACES:
            self.store.put(_namespace(ns))
        first = str(ipaddress.ip_network(settings.service_cidr).network_address + 1)
        self.store.put({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "kubernetes", "namespace": "default",
                                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
                        "spec": {"type": "ClusterIP", "clusterIP": first, "clusterIPs": [first],
                                 "ports": [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}],
                                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}})
        self.store.flush()

    # ---- reading -------------------------------------------------------------------------

    def watch(self, callback) -> None:
        self.store.watch(callback)

    def resolve_kind(self, word: str) -> str:
        k = lookup(word)
        if k is None:
            raise BadInput(f'the server doesn\'t have a resource type "{word}"')
        return k.kind

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        ns = namespace if KINDS[kind].namespaced else ""
        if ns is None:
            for (k, _, n), obj in self.store.objects.items():
                if k == kind and n == name:
                    return copy.deepcopy(obj)
            return None
        obj = self.store.get(kind, ns, name)
        return copy.deepcopy(obj) if obj else None

    def list(self, kind: str, namespace: str | None = None, selector: dict | None = None) -> list[dict]:
        ns = namespace if KINDS[kind].namespaced else None
        objs = self.store.list(kind, ns)
        if selector:
            objs = [o for o in objs if all(o["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        return copy.deepcopy(objs)

    # ---- writing -------------------------------------------------------------------------

    def add_node(self, name: str, internal_ip: str, pod_cidr: str, labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None) -> None:
        self.store.put({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                         "annotations": dict(annotations or {})},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": internal_ip},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "lastTransitionTime": now()}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0-testbed", "operatingSystem": "linux",
                                    "architecture": "amd64", "containerRuntimeVersion": "testbed://0.1"}},
        })
        self._settle()

    def apply(self, objs: list[dict], source: str) -> list[str]:
        snap = self.store.snapshot()
        try:
            lines = []
            for o in objs:  # stored one by one so later objects see earlier allocations
                obj = self._admit(copy.deepcopy(o), source)
                verb = self.store.put(obj)
                lines.append(f"{_resource(obj)}/{obj['metadata']['name']} {verb}")
            self._run_controllers()
        except BaseException:
            self.store.restore(snap)
            raise
        self.store.flush()
        return lines

    def delete(self, objs: list[dict], source: str) -> list[str]:
        lines, missing = [], []
        for obj in objs:
            key = key_of(obj)
            if self.store.objects.get(key) is None:
                missing.append(f'{KINDS[obj["kind"]].plural} "{key[2]}" not found')
                continue
            self.store.delete(key)
            if obj["kind"] == "Namespace":
                for k in [k for k in self.store.objects if k[1] == key[2]]:
                    self.store.delete(k)
            lines.append(f'{_resource(obj)} "{key[2]}" deleted')
        self._settle()
        if missing:
            raise NotFound("\n".join(lines + [f'Error from server (NotFound): error when deleting "{source}": {m}'
                                              for m in missing]))
        return lines

    def set_pod_status(self, namespace: str, name: str, status: dict) -> None:
        self.set_pod_statuses([(namespace, name, status)])

    def set_pod_statuses(self, updates: list[tuple[str, str, dict]]) -> None:
        """Merge many status updates, then run the controllers once (what node agents report)."""
        for namespace, name, status in updates:
            pod = self.store.get("Pod", namespace, name)
            if pod is None:
                continue
            pod = copy.deepcopy(pod)
            pod.setdefault("status", {}).update(status)
            self.store.put(pod)
        self._settle()

    def set_service_status(self, namespace: str, name: str, status: dict) -> None:
        svc = self.store.get("Service", namespace, name)
        if svc is not None:
            svc = copy.deepcopy(svc)
            svc["status"] = status
            self.store.put(svc)
            self._settle()

    # ---- internals -----------------------------------------------------------------------

    def _settle(self) -> None:
        self._run_controllers()
        self.store.flush()

    def _run_controllers(self) -> None:
        for _ in range(20):
            before = self.store.version
            for controller in CONTROLLERS:
                controller(self.store)
            if self.store.version == before:
                return
        raise RuntimeError("controllers did not settle")

    def _admit(self, obj: dict, source: str) -> dict:
        """Checks that need the store; fills in allocations. Raises InvalidError."""
        kind, md = obj["kind"], obj["metadata"]
        ns = md.get("namespace")
        errs: list[FieldError] = []
        if ns and not self.store.get("Namespace", "", ns):
            raise InvalidError(message=f'namespaces "{ns}" not found', source=source)
        old = self.store.get(kind, ns, md["name"])
        if kind == "Service":
            if old is None or "status" not in obj:
                obj["status"] = obj.get("status") or (old or {}).get("status") or {"loadBalancer": {}}
            errs += self.ipam.allocate(obj, old, self.store.list("Service"))
        elif kind == "Pod" and old is not None:
            keep = {k: v for k, v in old["spec"].items() if k != "nodeName"}
            if {k: v for k, v in obj["spec"].items() if k != "nodeName"} != keep:
                errs.append(forbidden("spec", "pod updates may not change fields other than `spec.containers[*]."
                                      "image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                                      "`spec.tolerations` (only additions to existing tolerations) or "
                                      "`spec.terminationGracePeriodSeconds`"))
            obj["spec"] = copy.deepcopy(old["spec"])
            obj["status"] = copy.deepcopy(old.get("status", {}))
        elif kind in ("Deployment", "StatefulSet", "ReplicaSet") and old is not None:
            if old["spec"]["selector"] != obj["spec"]["selector"]:
                errs.append(invalid("spec.selector", obj["spec"]["selector"], "field is immutable"))
            obj["status"] = old.get("status", {})
        elif kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        if errs:
            raise InvalidError(kind, md["name"], errs, source)
        return obj


def _namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def _resource(obj: dict) -> str:
    return KINDS[obj["kind"]].resource

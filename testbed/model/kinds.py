"""The kinds the testbed knows: API group/version, plural, short names, scope."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    short: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def resource(self) -> str:
        """kubectl's name for it in messages: 'deployment.apps', 'service'."""
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        return f"{self.kind.lower()}.{group}" if group else self.kind.lower()


KINDS = {k.kind: k for k in [
    Kind("Namespace", "v1", "namespaces", ("ns",), namespaced=False),
    Kind("Node", "v1", "nodes", ("no",), namespaced=False),
    Kind("Pod", "v1", "pods", ("po",)),
    Kind("Service", "v1", "services", ("svc",)),
    Kind("Endpoints", "v1", "endpoints", ("ep",)),
    Kind("ConfigMap", "v1", "configmaps", ("cm",)),
    Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
    Kind("Deployment", "apps/v1", "deployments", ("deploy",)),
    Kind("ReplicaSet", "apps/v1", "replicasets", ("rs",)),
    Kind("StatefulSet", "apps/v1", "statefulsets", ("sts",)),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", ("ing",)),
]}


def lookup(word: str) -> Kind | None:
    """Resolve what a user types after `get`: 'po', 'pods', 'pod', 'Pod', 'svc', 'deployments.apps'."""
    w = word.lower().split(".")[0]
    for k in KINDS.values():
        if w in (k.kind.lower(), k.plural, *k.short):
            return k
    return None

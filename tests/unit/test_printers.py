"""`get` output: kubectl-like tables (golden), a List for many objects in JSON."""
import calendar
import json
import time
from pathlib import Path

import pytest

from testbed.controllers.cluster import Cluster
from testbed.model.manifests import load_manifests
from testbed.printers import render
from testbed.topo.model import ClusterSettings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "printers"


@pytest.fixture
def cluster():
    c = Cluster(ClusterSettings())
    for i in range(3):
        c.add_node(f"node{i + 1}", f"192.168.10.{10 + i}", f"10.244.{i}.0/24", {"tier": "app"} if i < 2 else {})
    c.apply(load_manifests((ROOT / "examples" / "hdls.yaml").read_text(), "hdls.yaml"), "hdls.yaml")
    c.apply(load_manifests("apiVersion: v1\nkind: Service\nmetadata: {name: np}\n"
                           "spec: {type: NodePort, selector: {app: hdls}, ports: [{port: 80, targetPort: 8000}]}\n",
                           "np.yaml"), "np.yaml")
    for i, p in enumerate(c.list("Pod", "default")):
        c.set_pod_status("default", p["metadata"]["name"], {
            "phase": "Running", "podIP": f"10.244.0.{i + 2}",
            "conditions": [{"type": "Ready", "status": "True"}]})
    return c


def stable(objs):
    """Names with random suffixes and timestamps made fixed, so the tables are golden."""
    out = []
    for i, o in enumerate(sorted(objs, key=lambda o: o["metadata"]["name"])):
        o = json.loads(json.dumps(o))
        if o["metadata"]["name"].startswith("hdls-") and o["kind"] in ("Pod", "ReplicaSet", "EndpointSlice"):
            o["metadata"]["name"] = f"hdls-{o['kind'].lower()}-{i}"
        o["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        out.append(o)
    return out


NOW = calendar.timegm(time.strptime("2026-01-01T00:05:30Z", "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize("kind,output", [("Pod", ""), ("Pod", "wide"), ("Service", ""), ("Service", "wide"),
                                         ("Node", "wide"), ("Deployment", ""), ("EndpointSlice", ""),
                                         ("Endpoints", "")])
def test_tables_match_golden(cluster, kind, output, golden):
    text = render(kind, stable(cluster.list(kind, "default")), output, now=NOW) + "\n"
    golden(GOLDEN / f"{kind.lower()}{'-' + output if output else ''}.txt", text)


def test_all_namespaces_adds_the_column(cluster):
    first = render("Service", stable(cluster.list("Service")), all_namespaces=True, now=NOW).splitlines()[0]
    assert first.split()[:2] == ["NAMESPACE", "NAME"]


def test_json_is_a_list_for_many_and_the_object_for_one(cluster):
    many = json.loads(render("Pod", cluster.list("Pod", "default"), "json"))
    assert many["kind"] == "List" and len(many["items"]) == 4
    one = json.loads(render("Service", cluster.get("Service", "default", "hdls"), "json"))
    assert one["kind"] == "Service" and one["spec"]["ports"][0]["port"] == 8080

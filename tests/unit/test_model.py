"""Manifests and the API model: defaulting, API-server errors, all-or-nothing apply."""
import copy
import textwrap
from pathlib import Path

import pytest

from testbed.controllers.cluster import Cluster
from testbed.errors import BadInput, InvalidError
from testbed.model.env import service_env
from testbed.model.manifests import load_manifests
from testbed.topo.model import ClusterSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    c = Cluster(ClusterSettings())
    for i in range(3):
        c.add_node(f"node{i + 1}", f"192.168.10.{10 + i}", f"10.244.{i}.0/24", {"tier": "app"} if i < 2 else {})
    return c


def apply(cluster, text, source="m.yaml"):
    return cluster.apply(load_manifests(textwrap.dedent(text), source), source)


def state(cluster):
    return copy.deepcopy(cluster.store.objects)


SVC = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: %s}]
"""


def test_node_port_out_of_range_is_refused_with_the_api_server_words(cluster):
    before = state(cluster)
    with pytest.raises(InvalidError) as e:
        apply(cluster, SVC % 80, "svc.yaml")
    assert str(e.value) == ('svc.yaml: The Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: '
                            "provided port is not in the valid range. The range of valid ports is 30000-32767")
    assert e.value.exit_code == 2
    assert state(cluster) == before


def test_node_port_already_allocated(cluster):
    apply(cluster, SVC % 30080)
    before = state(cluster)
    with pytest.raises(InvalidError) as e:
        apply(cluster, (SVC % 30080).replace("name: web", "name: web2"), "two.yaml")
    assert 'spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated' in str(e.value)
    assert state(cluster) == before


def test_a_file_with_one_bad_object_applies_nothing(cluster):
    before = state(cluster)
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: good}
    spec: {selector: {app: x}, ports: [{port: 80}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: Bad_Name}
    spec: {selector: {app: x}, ports: [{port: 80}]}
    """
    with pytest.raises(InvalidError) as e:
        apply(cluster, text)
    assert 'metadata.name: Invalid value: "Bad_Name": a DNS-1035 label must consist' in str(e.value)
    assert state(cluster) == before


def test_bad_yaml_names_file_and_line():
    with pytest.raises(BadInput) as e:
        load_manifests("kind: Service\nmetadata:\n  name: [x\n", "broken.yaml")
    assert str(e.value).startswith("broken.yaml: error parsing YAML: line ")
    assert e.value.exit_code == 2


def test_unknown_kind():
    with pytest.raises(BadInput) as e:
        load_manifests("apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n", "g.yaml")
    assert str(e.value) == ('g.yaml: resource mapping not found for name: "g" namespace: "" from "g.yaml": '
                            'no matches for kind "Gizmo" in version "v1"')


def test_port_out_of_range():
    with pytest.raises(InvalidError) as e:
        load_manifests("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n", "s.yaml")
    assert "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive" in str(e.value)


def test_duplicate_object_in_one_file():
    doc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
    with pytest.raises(BadInput) as e:
        load_manifests(doc + "---\n" + doc, "dup.yaml")
    assert str(e.value) == 'dup.yaml: Service "s" appears twice in the file (documents 1 and 2)'


def test_deployment_selector_must_match_template():
    text = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: d}
    spec:
      selector: {matchLabels: {app: a}}
      template:
        metadata: {labels: {app: b}}
        spec: {containers: [{name: c}]}
    """
    with pytest.raises(InvalidError) as e:
        load_manifests(textwrap.dedent(text), "d.yaml")
    assert ('spec.template.metadata.labels: Invalid value: map[string]string{"app":"b"}: '
            "`selector` does not match template `labels`") in str(e.value)


def test_unknown_namespace_is_refused(cluster):
    with pytest.raises(InvalidError) as e:
        apply(cluster, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nope}\nspec: {ports: [{port: 80}]}\n")
    assert 'namespaces "nope" not found' in str(e.value)


def test_hdls_example_creates_named_pods_spread_on_app_nodes(cluster):
    lines = cluster.apply(load_manifests((ROOT / "examples" / "hdls.yaml").read_text(), "hdls.yaml"), "hdls.yaml")
    assert lines == ["deployment.apps/hdls created", "service/hdls created", "pod/client created"]
    pods = [p for p in cluster.list("Pod", "default") if p["metadata"].get("labels", {}).get("app") == "hdls"]
    assert len(pods) == 3
    rs = cluster.list("ReplicaSet", "default")[0]["metadata"]["name"]
    for p in pods:
        assert p["metadata"]["name"].startswith(rs + "-") and len(p["metadata"]["name"]) == len(rs) + 6
        assert p["spec"]["nodeName"] in ("node1", "node2")
    assert {p["spec"]["nodeName"] for p in pods} == {"node1", "node2"}  # spread
    svc = cluster.get("Service", "default", "hdls")
    assert svc["spec"]["ports"][0]["targetPort"] == 8000
    assert svc["spec"]["clusterIP"].startswith("10.")


def test_endpointslices_follow_pod_readiness(cluster):
    apply(cluster, (ROOT / "examples" / "hdls.yaml").read_text())
    pods = [p for p in cluster.list("Pod", "default") if p["metadata"].get("labels", {}).get("app") == "hdls"]
    for i, p in enumerate(pods):
        cluster.set_pod_status("default", p["metadata"]["name"], {
            "podIP": f"10.244.0.{i + 2}", "conditions": [{"type": "Ready", "status": "True" if i else "False"}]})
    (s,) = cluster.list("EndpointSlice", "default", {"kubernetes.io/service-name": "hdls"})
    assert s["ports"] == [{"name": "", "port": 8000, "protocol": "TCP"}]
    assert sorted(e["conditions"]["ready"] for e in s["endpoints"]) == [False, True, True]
    ep = cluster.get("Endpoints", "default", "hdls")
    assert len(ep["subsets"][0]["addresses"]) == 2 and len(ep["subsets"][0]["notReadyAddresses"]) == 1
    assert cluster.get("Deployment", "default", "hdls")["status"]["readyReplicas"] == 2


def test_named_target_port_resolves_per_pod(cluster):
    apply(cluster, """
    apiVersion: v1
    kind: Pod
    metadata: {name: p, labels: {app: n}}
    spec: {containers: [{name: c, ports: [{name: web, containerPort: 9090}]}]}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: n}
    spec: {selector: {app: n}, ports: [{port: 80, targetPort: web}]}
    """)
    cluster.set_pod_status("default", "p", {"podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "True"}]})
    (s,) = cluster.list("EndpointSlice", "default", {"kubernetes.io/service-name": "n"})
    assert s["ports"][0]["port"] == 9090


def test_statefulset_pods_are_numbered(cluster):
    apply(cluster, """
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec:
      serviceName: db
      replicas: 3
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec: {containers: [{name: c}]}
    """)
    pods = sorted(p["metadata"]["name"] for p in cluster.list("Pod", "default"))
    assert pods == ["db-0", "db-1", "db-2"]
    assert cluster.get("Pod", "default", "db-1")["spec"]["hostname"] == "db-1"
    assert cluster.get("Pod", "default", "db-1")["spec"]["subdomain"] == "db"


def test_selectorless_service_uses_the_users_endpoints(cluster):
    apply(cluster, """
    apiVersion: v1
    kind: Service
    metadata: {name: hdls}
    spec:
      ports:
      - port: 8080
        targetPort: 8000
    ---
    apiVersion: v1
    kind: Endpoints
    metadata: {name: hdls}
    subsets:
    - addresses: [{ip: 1.2.3.4}]
      ports: [{port: 8000}]
    """)
    (s,) = cluster.list("EndpointSlice", "default", {"kubernetes.io/service-name": "hdls"})
    assert s["endpoints"][0]["addresses"] == ["1.2.3.4"] and s["ports"][0]["port"] == 8000


def test_deleting_a_deployment_removes_its_pods(cluster):
    text = (ROOT / "examples" / "hdls.yaml").read_text()
    apply(cluster, text)
    objs = load_manifests(text, "hdls.yaml")
    cluster.delete([o for o in objs if o["kind"] == "Deployment"], "hdls.yaml")
    assert [p["metadata"]["name"] for p in cluster.list("Pod", "default")] == ["client"]


def test_service_env_like_the_seed_listing(cluster):
    apply(cluster, """
    apiVersion: v1
    kind: Service
    metadata: {name: redis-test}
    spec: {selector: {app: r}, clusterIP: 10.96.0.12, ports: [{port: 6379}]}
    """)
    env = service_env(cluster.list("Service", "default"))
    assert env["REDIS_TEST_SERVICE_HOST"] == "10.96.0.12"
    assert env["REDIS_TEST_SERVICE_PORT"] == "6379"
    assert env["REDIS_TEST_PORT"] == "tcp://10.96.0.12:6379"
    assert env["REDIS_TEST_PORT_6379_TCP_ADDR"] == "10.96.0.12"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_seed_examples_apply_as_written(cluster):
    """The seed articles' Service YAML (valid as printed) loads and applies."""
    apply(cluster, "apiVersion: v1\nkind: Namespace\nmetadata: {name: redis-standalone}\n")
    apply(cluster, "apiVersion: v1\nkind: Namespace\nmetadata: {name: sysadmin}\n")
    seeds = ROOT.parent / "shared" / "seeds"
    if not seeds.is_dir():
        pytest.skip("shared/seeds not beside the repository")
    text = (seeds / "002_24a976b486e73788.txt").read_text()
    for start, end in (("apiVersion: v1\nkind: Service\nmetadata:\n  name: redis-test-clusterip", "  • Access"),
                       ("apiVersion: v1\nkind: Service\nmetadata:\n  name: my-external-service", "\nIngress!")):
        i = text.index(start)
        apply(cluster, text[i:text.index(end, i)], "seed.yaml")
    assert cluster.get("Service", "redis-standalone", "redis-test-clusterip")
    assert cluster.get("Service", "sysadmin", "my-external-service")["spec"]["type"] == "ExternalName"


def test_services_in_one_file_get_distinct_cluster_ips_and_ports(cluster):
    docs = "---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{type: NodePort, ports: [{{port: 80}}]}}\n"
        for i in range(5))
    apply(cluster, docs)
    svcs = [cluster.get("Service", "default", f"s{i}") for i in range(5)]
    assert len({s["spec"]["clusterIP"] for s in svcs}) == 5
    assert len({s["spec"]["ports"][0]["nodePort"] for s in svcs}) == 5


def test_pod_resolv_conf_and_hosts_follow_dns_policy():
    from testbed.model.podfiles import hosts_file, resolv_conf

    settings = ClusterSettings()
    pod = {"metadata": {"name": "web-0", "namespace": "shop"},
           "spec": {"dnsPolicy": "ClusterFirst", "hostname": "web-0", "subdomain": "web"}}
    assert resolv_conf(pod, settings, "") == ("nameserver 10.96.0.10\n"
                                              "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                                              "options ndots:5\n")
    assert "10.244.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0" in hosts_file(pod, "10.244.0.5", "cluster.local")
    default = {"metadata": {"name": "p"}, "spec": {"dnsPolicy": "Default"}}
    assert resolv_conf(default, settings, "nameserver 9.9.9.9\nsearch lab\n") == "nameserver 9.9.9.9\nsearch lab\n"
    none = {"metadata": {"name": "p"}, "spec": {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}]}}}
    assert resolv_conf(none, settings, "") == "nameserver 1.1.1.1\nsearch a.b\noptions ndots:2\n"

"""Service NAT with real connections: one lab on the flat topology for the module."""
import json
import subprocess
import time
from pathlib import Path

import pytest

from testbed.lab import Lab

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {tier: app}
      containers:
      - name: echo
        ports: [{name: http, containerPort: 8000}, {name: dns, containerPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node3
  containers: [{name: c, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready, labels: {app: web}}
spec:
  nodeName: node3
  containers: [{name: c, command: [sleep, infinity], ports: [{name: http, containerPort: 8000}]}]
"""

COUNT = """
import collections, json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
seen = collections.Counter()
for _ in range(n):
    with urllib.request.urlopen(url, timeout=3) as r:
        seen[json.load(r)["pod"]] += 1
print(json.dumps(seen))
"""


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def lab(request):
    with Lab.start(ROOT / "topologies" / "flat.yaml", name=f"proxy-{request.param}", proxy=request.param) as lab:
        lab.apply_text(MANIFESTS, "proxy.yaml")
        deadline = time.monotonic() + 20
        while len([p for p in lab.get("pods") if _ready(p)]) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield lab


def _ready(p):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def wait_ready(lab, pod: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not _ready(lab.get("pod", pod)):
        assert time.monotonic() < deadline, f"pod {pod} not ready"
        time.sleep(0.05)


def svc_ip(lab, name):
    return lab.get("svc", name)["spec"]["clusterIP"]


def curl(lab, target, url, timeout=3):
    return lab.exec(target, ["curl", "-s", "-m", str(timeout), url])


def test_cluster_ip_from_a_pod_and_from_a_node(lab):
    for target in ("pod/client", "node/node3"):
        r = curl(lab, target, f"http://{svc_ip(lab, 'web')}/x")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["path"] == "/x"


def test_pod_source_address_is_kept_inside_the_cluster(lab):
    client_ip = lab.get("pod", "client")["status"]["podIP"]
    r = curl(lab, "pod/client", f"http://{svc_ip(lab, 'web')}/")
    assert json.loads(r.stdout)["client"].split(":")[0] == client_ip


def test_udp_port_of_a_multi_port_service(lab):
    r = lab.exec("pod/client", ["python3", "-c", (
        "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3);"
        f"s.sendto(b'hi', ('{svc_ip(lab, 'web')}', 53)); print(s.recv(4096).decode())")])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["podIP"].startswith("10.244.")


def test_requests_spread_over_ready_endpoints_only(lab):
    r = lab.exec("pod/client", ["python3", "-c", COUNT, f"http://{svc_ip(lab, 'web')}/", "1000"], timeout=120)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert len(seen) == 3 and "never-ready" not in seen
    for pod, n in seen.items():
        assert 250 <= n <= 420, seen


def test_node_port_from_an_outside_host_on_every_node(lab):
    for node in ("node1", "node2", "node3"):
        ip = lab.host_ip(node)
        r = curl(lab, "host/remote", f"http://{ip}:30080/")
        assert r.returncode == 0, (node, r.stderr)
        # externalTrafficPolicy Cluster: the pod sees a node address, so replies return through it
        seen = json.loads(r.stdout)["client"].split(":")[0]
        assert seen in {lab.host_ip(n) for n in ("node1", "node2", "node3")}


def test_external_traffic_policy_local_keeps_the_client_address(lab):
    pods = lab.get("pods")
    with_local = {p["spec"]["nodeName"] for p in pods if p["metadata"].get("labels", {}).get("app") == "web" and _ready(p)}
    for node in ("node1", "node2", "node3"):
        r = curl(lab, "host/client", f"http://{lab.host_ip(node)}:30081/", timeout=2)
        if node in with_local:
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["client"].split(":")[0] == lab.host_ip("client")
            assert json.loads(r.stdout)["node"] == node
        else:
            assert r.returncode != 0  # no local endpoint: dropped


def test_a_service_without_endpoints_rejects_at_once(lab):
    t = time.monotonic()
    r = curl(lab, "pod/client", f"http://{svc_ip(lab, 'nobody')}/", timeout=5)
    assert r.returncode == 7  # connection refused, not a time-out
    assert time.monotonic() - t < 2


def test_hairpin_a_pod_reaches_itself_through_its_service(lab):
    lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: loner, labels: {app: loner}}
spec: {nodeName: node1, containers: [{name: c, ports: [{containerPort: 8000}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: loner}
spec: {selector: {app: loner}, ports: [{port: 80, targetPort: 8000}]}
""", "loner.yaml")
    wait_ready(lab, "loner")
    r = curl(lab, "pod/loner", f"http://{svc_ip(lab, 'loner')}/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pod"] == "loner"


def rules(lab, node="node1") -> str:
    if lab.topology.cluster.proxy_mode == "iptables":
        return lab.exec(f"node/{node}", ["iptables-save"]).stdout
    return lab.exec(f"node/{node}", ["nft", "list", "table", "ip", "testbed-proxy"]).stdout


def test_headless_service_gets_no_nat(lab):
    assert lab.get("svc", "web-headless")["spec"]["clusterIP"] == "None"
    table = rules(lab)
    assert "web-headless" not in table and "default/web:http" in table


def test_selectorless_service_reaches_an_outside_host(lab):
    remote = lab.host_ip("remote")
    server = subprocess.Popen(lab.ns("remote").argv(["python3", "-m", "http.server", "8000", "--bind", remote]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lab.apply_text(f"""
apiVersion: v1
kind: Service
metadata: {{name: outside}}
spec:
  ports:
  - port: 8080
    targetPort: 8000
---
apiVersion: v1
kind: Endpoints
metadata: {{name: outside}}
subsets:
- addresses: [{{ip: {remote}}}]
  ports: [{{port: 8000}}]
""", "outside.yaml")
        deadline = time.monotonic() + 10
        while True:
            r = lab.exec("pod/client", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2",
                                        f"http://{svc_ip(lab, 'outside')}:8080/"])
            if r.stdout == "200" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.stdout == "200"
    finally:
        server.kill()
        server.wait()


def test_load_balancer_ingress_ip_is_served_like_a_node_port(lab):
    lab.apply_text("""
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000}]
status:
  loadBalancer:
    ingress: [{ip: 192.168.10.240}]
""", "lb.yaml")
    r = lab.exec("host/client", ["ip", "route", "replace", "192.168.10.240/32", "via", lab.host_ip("node1")])
    assert r.returncode == 0, r.stderr
    r = curl(lab, "host/client", "http://192.168.10.240/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/"


def test_readable_rules_on_the_node(lab):
    table = rules(lab)
    if lab.topology.cluster.proxy_mode == "iptables":
        assert "-A KUBE-SERVICES -d " in table and "--mode random --probability" in table
        assert '"default/web:http"' in table
    else:
        assert 'comment "default/web:http"' in table
        assert "vmap @dispatch" in table and "meta mark set numgen random mod 3" in table


def test_session_affinity_client_ip_keeps_the_endpoint(lab):
    lab.apply_text("""
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{port: 80, targetPort: 8000}]
""", "sticky.yaml")
    time.sleep(0.3)
    r = lab.exec("pod/client", ["python3", "-c", COUNT, f"http://{svc_ip(lab, 'sticky')}/", "30"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 1  # every request of this client went to one pod


def test_health_check_node_port_answers_per_node(lab):
    lab.apply_text("""
apiVersion: v1
kind: Service
metadata: {name: lb-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8000}]
""", "lb-local.yaml")
    port = lab.get("svc", "lb-local")["spec"]["healthCheckNodePort"]
    pods = lab.get("pods")
    with_local = {p["spec"]["nodeName"] for p in pods if p["metadata"].get("labels", {}).get("app") == "web"
                  and _ready(p)}
    time.sleep(0.3)
    for node in ("node1", "node2", "node3"):
        r = lab.exec("host/client", ["curl", "-s", "-m", "2", "-w", "\n%{http_code}",
                                     f"http://{lab.host_ip(node)}:{port}/healthz"])
        body, code = r.stdout.rsplit("\n", 1)
        count = json.loads(body)["localEndpoints"]
        if node in with_local:
            assert code == "200" and count >= 1
        else:
            assert code == "503" and count == 0


def test_pods_get_service_environment_variables(lab):
    lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: env-reader}
spec:
  nodeName: node2
  containers: [{name: c, command: [sh, -c, "env > /tmp/env-reader.txt; sleep infinity"]}]
""", "env.yaml")
    deadline = time.monotonic() + 10
    while not Path("/tmp/env-reader.txt").exists() or "WEB_SERVICE_HOST" not in Path("/tmp/env-reader.txt").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    env = dict(line.split("=", 1) for line in Path("/tmp/env-reader.txt").read_text().splitlines() if "=" in line)
    Path("/tmp/env-reader.txt").unlink()
    ip = svc_ip(lab, "web")
    assert env["WEB_SERVICE_HOST"] == ip
    assert env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_PORT_53_UDP"] == f"udp://{ip}:53"


def test_udp_clients_move_on_when_their_endpoint_goes(lab):
    """Stale conntrack entries are flushed, so the next datagram reaches a live endpoint."""
    lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: udp-a, labels: {app: udp}}
spec: {nodeName: node1, containers: [{name: c, ports: [{containerPort: 5353, protocol: UDP}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: udp}
spec: {selector: {app: udp}, ports: [{port: 53, targetPort: 5353, protocol: UDP}]}
""", "udp.yaml")
    wait_ready(lab, "udp-a")
    ask = ("import json,socket,sys,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 40000));"
           "s.settimeout(1); out=[]\n"
           "for i in range(int(sys.argv[2])):\n"
           "    s.sendto(b'x', (sys.argv[1], 53))\n"
           "    try: out.append(json.loads(s.recv(4096))['pod'])\n"
           "    except OSError: out.append(None)\n"
           "print(json.dumps(out))")
    ip = svc_ip(lab, "udp")
    first = json.loads(lab.exec("pod/client", ["python3", "-c", ask, ip, "1"]).stdout)
    assert first == ["udp-a"]
    lab.apply_text("""
apiVersion: v1
kind: Pod
metadata: {name: udp-b, labels: {app: udp}}
spec: {nodeName: node2, containers: [{name: c, ports: [{containerPort: 5353, protocol: UDP}]}]}
""", "udp-b.yaml")
    wait_ready(lab, "udp-b")
    lab.delete_text("apiVersion: v1\nkind: Pod\nmetadata: {name: udp-a}\n", "del.yaml")
    time.sleep(0.3)
    after = json.loads(lab.exec("pod/client", ["python3", "-c", ask, ip, "2"]).stdout)
    assert after[-1] == "udp-b", after


def test_internal_traffic_policy_local_uses_only_this_nodes_endpoints(lab):
    lab.apply_text("""
apiVersion: v1
kind: Service
metadata: {name: web-itp}
spec:
  selector: {app: web}
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: Pod
metadata: {name: probe-node1}
spec: {nodeName: node1, containers: [{name: c, command: [sleep, infinity]}]}
""", "itp.yaml")
    wait_ready(lab, "probe-node1")
    ip = svc_ip(lab, "web-itp")
    for _ in range(5):
        r = curl(lab, "pod/probe-node1", f"http://{ip}/")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["node"] == "node1"  # never a pod of another node
    # node3 has no ready web pod: its pods' traffic to the Service goes nowhere
    assert curl(lab, "pod/client", f"http://{ip}/", timeout=1).returncode != 0


def test_exec_into_a_pod_has_its_service_variables(lab):
    r = lab.exec("pod/client", ["sh", "-c", "echo $WEB_SERVICE_HOST $HOSTNAME"])
    assert r.stdout.split() == [svc_ip(lab, "web"), "client"]

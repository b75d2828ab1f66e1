"""The commands of DESIGN.md section 3, driven as a user types them."""
import ipaddress
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from testbed.runtime import state

from .conftest import ROOT, SEED_HDLS, tb

pytestmark = pytest.mark.root


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_ready(lab: str, count: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(tb("--lab", lab, "get", "pods", "-o", "json").stdout)["items"]
        if len(pods) == count and all(ready(p) for p in pods):
            return pods
        assert time.monotonic() < deadline, f"pods not ready: {pods}"
        time.sleep(0.1)


def holders(lab: str) -> list[tuple[int, int]]:
    return [(h["pid"], h["start"]) for h in state.read_state(lab)["hosts"].values()]


def processes_in(inodes: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_up_apply_get_exec_delete_down(lab_name, hdls_file):
    r = tb("up", "topologies/flat.yaml", "--name", lab_name)
    assert r.returncode == 0, r.stderr
    assert "is up" in r.stdout
    r = tb("--lab", lab_name, "apply", "-f", hdls_file)
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/hdls created" in r.stdout and "service/hdls created" in r.stdout
    pods = wait_ready(lab_name, 4)

    # every pod's IP lies in its node's block; hostIP is the node's InternalIP
    nodes = {n["metadata"]["name"]: n for n in json.loads(tb("--lab", lab_name, "get", "nodes", "-o", "json").stdout)["items"]}
    assert set(nodes) == {"node1", "node2", "node3"}
    for p in pods:
        node = nodes[p["spec"]["nodeName"]]
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(node["spec"]["podCIDR"])
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert p["status"]["hostIP"] in internal
        assert p["status"]["phase"] == "Running"

    # the client pod (node3) reaches an hdls pod on another node; the echo server answers JSON
    client = next(p for p in pods if p["metadata"]["name"] == "client")
    target = next(p for p in pods if p["metadata"]["name"] != "client")
    assert target["spec"]["nodeName"] != client["spec"]["nodeName"]
    r = tb("--lab", lab_name, "exec", "pod/client", "--", "curl", "-s", "-m", "3",
           f"http://{target['status']['podIP']}:8000/hello")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["pod"] == target["metadata"]["name"] and answer["path"] == "/hello"
    assert answer["client"].startswith(client["status"]["podIP"] + ":")

    # tables like kubectl's
    table = tb("--lab", lab_name, "get", "svc").stdout
    assert "hdls" in table and "8080/TCP" in table and "CLUSTER-IP" in table
    table = tb("--lab", lab_name, "get", "pods", "-o", "wide").stdout
    assert "NODE" in table and target["status"]["podIP"] in table

    # exit codes pass through; options may follow the target
    assert tb("exec", "node/node1", "--lab", lab_name, "--", "sh", "-c", "exit 7").returncode == 7
    assert tb("--lab", lab_name, "exec", "host/router", "--", "true").returncode == 0
    # the segment's switch namespace: its macvlan parent carries every frame of the segment
    assert "seg0" in tb("--lab", lab_name, "exec", "segment/lan", "--", "ip", "-br", "link").stdout

    # delete: the pods, their namespaces and their host-side interfaces go
    pod_holders = [(h["pid"], h["start"]) for k, h in state.read_state(lab_name)["hosts"].items()
                   if k.startswith("pod/")]
    assert len(pod_holders) == 4
    r = tb("--lab", lab_name, "delete", "-f", hdls_file)
    assert r.returncode == 0, r.stderr
    assert 'deployment.apps "hdls" deleted' in r.stdout
    deadline = time.monotonic() + 10
    while json.loads(tb("--lab", lab_name, "get", "pods", "-o", "json").stdout)["items"]:
        assert time.monotonic() < deadline, "pods still there"
        time.sleep(0.1)
    for node in nodes:
        links = tb("--lab", lab_name, "exec", f"node/{node}", "--", "ip", "-o", "link").stdout
        assert "cali" not in links, links
        routes = tb("--lab", lab_name, "exec", f"node/{node}", "--", "ip", "route").stdout
        assert "cali" not in routes, routes
    deadline = time.monotonic() + 5
    while any(state.is_same_process(p, s) for p, s in pod_holders):
        assert time.monotonic() < deadline, "pod namespaces still held"
        time.sleep(0.05)

    # down: every namespace goes, the state too
    left = holders(lab_name)
    r = tb("down", lab_name)
    assert r.returncode == 0, r.stderr
    assert not state.lab_dir(lab_name).exists()
    assert not any(state.is_same_process(p, s) for p, s in left)


def test_apply_reads_standard_input(lab_name):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    r = tb("--lab", lab_name, "apply", "-f", "-", input=SEED_HDLS)
    assert r.returncode == 0, r.stderr
    assert "service/hdls created" in r.stdout
    r = tb("--lab", lab_name, "get", "svc", "hdls", "-o", "json")
    svc = json.loads(r.stdout)
    assert svc["kind"] == "Service" and svc["spec"]["ports"][0]["targetPort"] == 8000
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    r = tb("--lab", lab_name, "get", "svc", "nothere")
    assert r.returncode == 1 and "NotFound" in r.stderr


def test_bad_manifest_exits_2_and_changes_nothing(lab_name, hdls_file, tmp_path):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    assert tb("--lab", lab_name, "apply", "-f", hdls_file).returncode == 0
    wait_ready(lab_name, 4)
    bad = tmp_path / "bad.yaml"
    # a good Service first, then a bad one: the whole file is refused
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: fine}\nspec: {ports: [{port: 80}]}\n---\n"
                   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                   "spec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}\n")
    before = {k: json.loads(tb("--lab", lab_name, "get", k, "-A", "-o", "json").stdout)
              for k in ("svc", "pods", "deployments", "endpointslices")}
    r = tb("--lab", lab_name, "apply", "-f", str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith("error: ")
    assert "spec.ports[0].nodePort: Invalid value: 80" in r.stderr and str(bad) in r.stderr
    after = {k: json.loads(tb("--lab", lab_name, "get", k, "-A", "-o", "json").stdout) for k in before}
    assert before == after
    # not YAML at all
    r = tb("--lab", lab_name, "apply", "-f", "-", input="kind: [unclosed\n")
    assert r.returncode == 2 and "error:" in r.stderr
    # an unknown kind to get
    r = tb("--lab", lab_name, "get", "widgets")
    assert r.returncode == 2 and "widgets" in r.stderr


def test_up_refuses_a_running_name(lab_name):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    # the control socket and the state are root's alone
    assert stat.S_IMODE(os.stat(state.lab_dir(lab_name) / "lab.sock").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state.lab_dir(lab_name)).st_mode) == 0o700
    pid = state.read_state(lab_name)["pid"]
    r = tb("up", "topologies/flat.yaml", "--name", lab_name)
    assert r.returncode == 2
    assert f"testbed down {lab_name}" in r.stderr
    assert state.read_state(lab_name)["pid"] == pid and state.is_running(lab_name)


def test_lab_must_be_named_when_several_run(lab_name):
    other = lab_name + "-2"
    try:
        assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
        assert tb("up", "topologies/two-racks.yaml", "--name", other).returncode == 0
        r = tb("get", "nodes")
        assert r.returncode == 2 and "--lab" in r.stderr
        listed = tb("list").stdout
        assert lab_name in listed and other in listed
        r = tb("--lab", other, "get", "nodes", "-o", "json")
        assert {n["metadata"]["name"] for n in json.loads(r.stdout)["items"]} == {"node1", "node2", "node3", "node4"}
        r = tb("--lab", "no-such-lab", "get", "nodes")
        assert r.returncode == 2 and "no-such-lab" in r.stderr
    finally:
        tb("down", other)


def test_up_a_scenario_applies_its_manifests(lab_name):
    r = tb("up", "scenarios/quickstart.yaml", "--name", lab_name)
    assert r.returncode == 0, r.stderr
    svcs = json.loads(tb("--lab", lab_name, "get", "svc", "-o", "json").stdout)["items"]
    assert "hdls" in {s["metadata"]["name"] for s in svcs}
    # exec into a pod runs with the pod's environment, Service variables included
    ip = next(s["spec"]["clusterIP"] for s in svcs if s["metadata"]["name"] == "hdls")
    r = tb("--lab", lab_name, "exec", "pod/client", "--", "sh", "-c", "echo $HDLS_SERVICE_HOST")
    assert r.stdout.strip() == ip, r.stderr


def test_a_killed_lab_leaves_nothing_clean_cannot_remove(lab_name, hdls_file):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    assert tb("--lab", lab_name, "apply", "-f", hdls_file).returncode == 0
    wait_ready(lab_name, 4)
    st = state.read_state(lab_name)
    left = holders(lab_name)
    inodes = {h["netns"] for h in st["hosts"].values()}
    # a process a user left inside a namespace, not a child of the lab
    stray = subprocess.Popen(["nsenter", "-t", str(st["hosts"]["node1"]["pid"]), "-n", "--", "sleep", "300"],
                             start_new_session=True)
    deadline = time.monotonic() + 5
    while stray.pid not in processes_in(inodes):
        assert time.monotonic() < deadline, "the stray process did not enter the namespace"
        time.sleep(0.01)
    os.kill(st["pid"], signal.SIGKILL)
    time.sleep(0.5)
    assert "dead" in tb("list").stdout
    r = tb("clean")
    assert r.returncode == 0, r.stderr
    assert lab_name in r.stdout
    assert stray.wait(timeout=10) == -signal.SIGKILL
    assert not any(state.is_same_process(p, s) for p, s in left)
    assert not processes_in(inodes)
    assert not state.lab_dir(lab_name).exists()
    assert "nothing to clean" in tb("clean").stdout or lab_name not in tb("clean").stdout


def test_run_writes_reports(tmp_path):
    r = tb("run", "scenarios/quickstart.yaml", "--name", "e2e-reports", "--json", str(tmp_path / "r.json"),
           "--junit", str(tmp_path / "r.xml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed, 0 failed" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] == 5 and report["failed"] == 0
    assert "<testsuite" in (tmp_path / "r.xml").read_text()
    assert not state.lab_dir("e2e-reports").exists()


def test_run_keep_leaves_the_lab_for_exec(lab_name):
    r = tb("run", "scenarios/quickstart.yaml", "--keep", "--name", lab_name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state.is_running(lab_name)
    r = tb("--lab", lab_name, "exec", "pod/client", "--", "curl", "-s", "-m", "3", "http://hdls:8080/x")
    if r.returncode != 0:  # no DNS in this lab: by the Service's address instead
        ip = json.loads(tb("--lab", lab_name, "get", "svc", "hdls", "-o", "json").stdout)["spec"]["clusterIP"]
        r = tb("--lab", lab_name, "exec", "pod/client", "--", "curl", "-s", "-m", "3", f"http://{ip}:8080/x")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "/x"
    assert tb("down", lab_name).returncode == 0
    assert not state.lab_dir(lab_name).exists()


def test_sigterm_during_run_tears_down(tmp_path):
    sc = tmp_path / "slow.yaml"
    sc.write_text(f"""name: e2e-slow
topology: {ROOT / 'topologies' / 'flat.yaml'}
steps:
  - name: takes a while
    exec: {{target: host/client, command: [sleep, "30"]}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "testbed", "run", str(sc)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not state.is_running("e2e-slow"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        left = holders("e2e-slow")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
        assert not state.lab_dir("e2e-slow").exists()
        assert not any(state.is_same_process(p, s) for p, s in left)
    finally:
        if proc.poll() is None:
            proc.kill()
        tb("down", "e2e-slow")


def test_a_failing_check_exits_1(tmp_path):
    sc = tmp_path / "fail.yaml"
    sc.write_text(f"""name: e2e-failing
topology: {ROOT / 'topologies' / 'flat.yaml'}
steps:
  - name: this check cannot pass
    exec: {{target: host/client, command: [sh, -c, "exit 3"]}}
""")
    r = tb("run", str(sc))
    assert r.returncode == 1
    assert "0 passed, 1 failed" in r.stdout
    assert not state.lab_dir("e2e-failing").exists()


def test_bad_scenario_exits_2(tmp_path):
    sc = tmp_path / "bad.yaml"
    sc.write_text("name: bad\ntopology: nowhere.yaml\nsteps: [{exec: {target: pods/x, command: [true]}}]\n")
    r = tb("run", str(sc))
    assert r.returncode == 2
    assert 'steps[0].exec.target: Invalid value: "pods/x"' in r.stderr
    assert "topology: Invalid value" in r.stderr


def test_bad_topology_and_options_exit_2(tmp_path):
    r = tb("up", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr
    r = tb("up", "topologies/flat.yaml", "--name", "e2e-badnet", "--network", "carrier-pigeon")
    assert r.returncode == 2 and "--network" in r.stderr and "carrier-pigeon" in r.stderr
    assert not state.lab_dir("e2e-badnet").exists()


def test_up_a_scenario_with_an_inline_topology(lab_name, tmp_path):
    sc = tmp_path / "inline.yaml"
    sc.write_text("""name: inline
topology:
  segments: [{name: lan, cidr: 192.168.50.0/24}]
  nodes: [{name: node1, segment: lan}, {name: node2, segment: lan}]
  hosts: [{name: client, segment: lan}]
steps:
  - name: nodes ready
    wait: {pods: {namespace: default}, timeout: 10}
""")
    r = tb("up", str(sc), "--name", lab_name)
    assert r.returncode == 0, r.stderr
    nodes = json.loads(tb("--lab", lab_name, "get", "nodes", "-o", "json").stdout)["items"]
    assert {n["metadata"]["name"] for n in nodes} == {"node1", "node2"}
    r = tb("--lab", lab_name, "exec", "host/client", "--", "ip", "-j", "addr")
    assert "192.168.50." in r.stdout
    assert tb("down", lab_name).returncode == 0
    assert not state.lab_dir(lab_name).exists()


def test_sigterm_during_up_tears_down(lab_name):
    proc = subprocess.Popen([sys.executable, "-m", "testbed", "up", "topologies/two-racks.yaml", "--name", lab_name,
                             "--network", "bgp"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (state.lab_dir(lab_name) / "lab.log").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.005)
        time.sleep(0.1)  # the lab process is building
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
        assert "interrupted" in proc.stderr.read()
        assert not state.lab_dir(lab_name).exists()
    finally:
        if proc.poll() is None:
            proc.kill()

"""The commands of DESIGN.md section 3, driven as a user types them."""
import ipaddress
import json
import os
import signal
import time

import pytest

from testbed.runtime import state

from .conftest import ROOT, tb

HDLS = str(ROOT / "examples" / "hdls.yaml")


def test_up_apply_get_exec_delete_down(lab_name):
    r = tb("up", "topologies/flat.yaml", "--name", lab_name)
    assert r.returncode == 0, r.stderr
    assert "is up" in r.stdout
    r = tb("--lab", lab_name, "apply", "-f", HDLS)
    assert r.returncode == 0, r.stderr
    assert "service/hdls created" in r.stdout
    deadline = time.monotonic() + 20
    while True:
        pods = json.loads(tb("--lab", lab_name, "get", "pods", "-o", "json").stdout)["items"]
        if all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
               for p in pods):
            break
        assert time.monotonic() < deadline, "pods not ready"
        time.sleep(0.1)
    nodes = {n["metadata"]["name"]: n for n in json.loads(tb("--lab", lab_name, "get", "nodes", "-o", "json").stdout)["items"]}
    for p in pods:
        block = ipaddress.ip_network(nodes[p["spec"]["nodeName"]]["spec"]["podCIDR"])
        assert ipaddress.ip_address(p["status"]["podIP"]) in block
        assert p["status"]["hostIP"] == nodes[p["spec"]["nodeName"]]["status"]["addresses"][0]["address"]
    target = next(p for p in pods if p["metadata"]["name"] != "client")
    r = tb("--lab", lab_name, "exec", "pod/client", "--", "curl", "-s", "-m", "3",
           f"http://{target['status']['podIP']}:8000/hello")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["pod"] == target["metadata"]["name"] and answer["path"] == "/hello"
    table = tb("--lab", lab_name, "get", "svc").stdout
    assert "hdls" in table and "8080/TCP" in table and "CLUSTER-IP" in table
    r = tb("--lab", lab_name, "exec", "node/node1", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7
    r = tb("--lab", lab_name, "delete", "-f", HDLS)
    assert r.returncode == 0, r.stderr
    assert "pods" not in tb("--lab", lab_name, "get", "pods").stdout
    links = tb("--lab", lab_name, "exec", "node/node1", "--", "ip", "-o", "link").stdout
    assert "cali" not in links
    r = tb("down", lab_name)
    assert r.returncode == 0, r.stderr
    assert not state.lab_dir(lab_name).exists()


def test_bad_manifest_exits_2_and_changes_nothing(lab_name, tmp_path):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                   "spec: {type: NodePort, ports: [{port: 80, nodePort: 80}]}\n")
    before = tb("--lab", lab_name, "get", "svc", "-o", "json").stdout
    r = tb("--lab", lab_name, "apply", "-f", str(bad))
    assert r.returncode == 2
    assert "spec.ports[0].nodePort: Invalid value: 80" in r.stderr and str(bad) in r.stderr
    after = tb("--lab", lab_name, "get", "svc", "-o", "json").stdout
    assert json.loads(before) == json.loads(after)


def test_up_refuses_a_running_name(lab_name):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    r = tb("up", "topologies/flat.yaml", "--name", lab_name)
    assert r.returncode == 2
    assert f"testbed down {lab_name}" in r.stderr


def test_a_killed_lab_leaves_nothing_clean_cannot_remove(lab_name):
    assert tb("up", "topologies/flat.yaml", "--name", lab_name).returncode == 0
    assert tb("--lab", lab_name, "apply", "-f", HDLS).returncode == 0
    st = state.read_state(lab_name)
    holders = [(h["pid"], h["start"]) for h in st["hosts"].values()]
    os.kill(st["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(state.is_same_process(p, s) for p, s in holders):
        time.sleep(0.05)
    r = tb("clean")
    assert r.returncode == 0, r.stderr
    assert not any(state.is_same_process(p, s) for p, s in holders)
    assert not state.lab_dir(lab_name).exists()


def test_run_writes_reports(tmp_path):
    r = tb("run", "scenarios/quickstart.yaml", "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed, 0 failed" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] == 5 and report["failed"] == 0
    assert "<testsuite" in (tmp_path / "r.xml").read_text()
    assert not state.lab_dir("quickstart").exists()


def test_a_failing_check_exits_1(tmp_path):
    sc = tmp_path / "fail.yaml"
    sc.write_text(f"""name: failing
topology: {ROOT / 'topologies' / 'flat.yaml'}
steps:
  - name: this check cannot pass
    exec: {{target: host/client, command: [sh, -c, "exit 3"]}}
""")
    r = tb("run", str(sc))
    assert r.returncode == 1
    assert "0 passed, 1 failed" in r.stdout


def test_bad_scenario_exits_2(tmp_path):
    sc = tmp_path / "bad.yaml"
    sc.write_text("name: bad\ntopology: nowhere.yaml\nsteps: [{exec: {target: pods/x, command: [true]}}]\n")
    r = tb("run", str(sc))
    assert r.returncode == 2
    assert 'steps[0].exec.target: Invalid value: "pods/x"' in r.stderr
    assert "topology: Invalid value" in r.stderr

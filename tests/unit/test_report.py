"""A scenario run against a stand-in lab, and its reports against golden files."""
import io
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from testbed.errors import InvalidError
from testbed.report import print_result, to_dict, write_junit
from testbed.scenario import parse_scenario, run_scenario

GOLDEN = Path(__file__).parent / "golden" / "scenario"
PODS = ["hdls-0", "hdls-1", "hdls-2"]


class FakeLab:
    """Stands in for the lab: pods are ready, curl answers round-robin like the echo server."""

    def __init__(self):
        self.calls = []
        self.turn = 0

    def info(self):
        return {"topology": "flat", "network": "routed", "proxy": "nftables"}

    def apply_text(self, text, source):
        self.calls.append(("apply", source))
        return ["deployment.apps/extra created"]

    def get(self, kind, name=None, namespace="default", all_namespaces=False):
        if kind == "svc":
            return {"spec": {"clusterIP": "10.96.0.16"}}
        ready = [{"type": "Ready", "status": "True"}]
        return [{"metadata": {"name": p, "labels": {"app": "hdls"}}, "status": {"conditions": ready}} for p in PODS]

    def exec(self, target, argv, namespace="default", timeout=60):
        self.calls.append((target, tuple(argv)))
        if argv[0] == "false":
            return subprocess.CompletedProcess(argv, 1, "", "boom\n")
        pod = PODS[self.turn % 3]
        self.turn += 1
        body = {"pod": pod, "namespace": "default", "podIP": "10.244.1.5", "node": "node2",
                "client": "10.244.2.7:40000", "path": "/", "host": argv[-1].split("/")[2]}
        return subprocess.CompletedProcess(argv, 0, json.dumps(body) + "\n", "")


SCENARIO = {
    "name": "demo",
    "topology": {"hosts": {}},
    "steps": [
        {"name": "pods ready", "wait": {"pods": {"selector": {"app": "hdls"}, "count": 3}, "timeout": 1}},
        {"name": "one more", "applyInline": "kind: Deployment\n"},
        {"name": "service answers", "check": "pod/client -- curl -s http://{{ svc hdls spec.clusterIP }}:8080/",
         "expect": {"json": {"namespace": "default", "host": "10.96.0.16:8080"}}},
        {"name": "spreads", "exec": {"target": "pod/client", "command": ["curl", "-s", "http://h:8080/"]},
         "repeat": 30, "expect": {"distinct": {"field": "pod", "count": 3, "of": 30}}},
        {"name": "expected to fail", "exec": {"target": "node/node1", "command": ["false"]}},
    ],
}


@pytest.fixture
def result(tmp_path):
    lab = FakeLab()
    res = run_scenario(parse_scenario(SCENARIO, tmp_path / "demo.yaml"), lab)
    assert ("pod/client", ("curl", "-s", "http://10.96.0.16:8080/")) in lab.calls  # placeholder filled
    for s in res.steps:
        s.seconds = 0.25  # timings vary: the golden files fix them
    res.seconds = 1.5
    return res


def test_run_statuses(result):
    assert [s.status for s in result.steps] == ["passed", "passed", "passed", "passed", "failed"]
    assert "30 answers from 3 pods (hdls-0: 10, hdls-1: 10, hdls-2: 10)" in result.steps[3].detail
    assert result.steps[4].detail == "exit code 1, expected 0: boom"


def test_console_report(result, golden):
    out = io.StringIO()
    print_result(result, Console(file=out, width=110, color_system=None, force_terminal=False))
    text = out.getvalue()
    assert text.splitlines()[-1] == "4 passed, 1 failed"
    golden(GOLDEN / "console.txt", text)


def test_json_report(result, golden):
    golden(GOLDEN / "report.json", json.dumps(to_dict(result), indent=2) + "\n")


def test_junit_report(result, tmp_path, golden):
    write_junit(result, tmp_path / "junit.xml")
    golden(GOLDEN / "junit.xml", (tmp_path / "junit.xml").read_text())


def test_check_without_expectations_and_bad_shorthand(tmp_path):
    data = {"topology": {"hosts": {}}, "steps": [{"check": {"target": "pod/a", "command": ["true"]}},
                                                 {"exec": "pod/a curl"}]}
    with pytest.raises(InvalidError) as e:
        parse_scenario(data, tmp_path / "s.yaml")
    assert "steps[0].expect: Required value" in str(e.value)
    assert 'steps[1].exec: Invalid value: "pod/a curl"' in str(e.value)


def test_docs_example_is_a_valid_scenario():
    """The first example in docs/scenarios.md parses (as if it sat in scenarios/)."""
    import re

    import yaml

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "scenarios.md").read_text()
    text = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    sc = parse_scenario(yaml.safe_load(text), root / "scenarios" / "example.yaml")
    assert [s.action for s in sc.steps] == ["wait", "exec", "check", "exec"]
    assert sc.steps[2].arg["command"][-1] == "http://{{ svc hdls spec.clusterIP }}:8080/"
    assert sc.steps[3].expect["distinct"] == {"field": "pod", "count": 3, "of": 30}

"""Scenario files, expectations and reports (no lab needed: a stand-in answers)."""
import json
import subprocess
from pathlib import Path

import pytest

from testbed.checks import evaluate, field_value
from testbed.errors import InvalidError
from testbed.report import to_dict, write_junit
from testbed.scenario import Result, StepResult, expand, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def answer(stdout: str, rc: int = 0) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], rc, stdout, "")


def test_quickstart_scenario_loads():
    sc = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert sc.name == "quickstart"
    assert sc.topology == (ROOT / "topologies" / "flat.yaml").resolve()
    assert [s.action for s in sc.steps] == ["wait", "exec", "exec", "exec", "exec"]
    assert sc.steps[-1].repeat == 30


def test_invalid_scenario_names_every_bad_field(tmp_path):
    data = {"name": "bad", "topology": "nowhere.yaml", "colour": 1,
            "steps": [{"exec": {"target": "pods/x", "command": ["true"]}},
                      {"name": "two actions", "apply": "a.yaml", "delete": "b.yaml"},
                      {"exec": {"target": "pod/x", "command": ["true"]}, "expect": {"exitcode": 0}}]}
    with pytest.raises(InvalidError) as e:
        parse_scenario(data, tmp_path / "bad.yaml")
    msg = str(e.value)
    assert msg.startswith(f'{tmp_path / "bad.yaml"}: The Scenario "bad" is invalid: [')
    for part in ('topology: Invalid value: "nowhere.yaml"', "colour: Unsupported value",
                 'steps[0].exec.target: Invalid value: "pods/x"', "steps[1]: Invalid value",
                 'steps[2].expect.exitcode: Unsupported value'):
        assert part in msg


def test_expectations():
    ok = answer('{"pod": "a", "client": "10.0.0.1:5"}')
    assert evaluate({"exitCode": 0, "json": {"pod": "a"}}, [ok])[0]
    assert not evaluate({"json": {"pod": "b"}}, [ok])[0]
    assert not evaluate({"contains": "zzz"}, [ok])[0]
    assert evaluate({"matches": r'"client": "10\.0\.0\.1:\d+"'}, [ok])[0]
    assert not evaluate({}, [answer("", rc=7)])[0]
    spread = [answer(json.dumps({"pod": p})) for p in "abcab"]
    passed, detail = evaluate({"distinct": {"field": "pod", "count": 3}}, spread)
    assert passed and "a: 2, b: 2, c: 1" in detail
    assert not evaluate({"distinct": {"field": "pod", "count": 2}}, spread)[0]


def test_field_paths():
    obj = {"spec": {"ports": [{"nodePort": 30080}]}}
    assert field_value(obj, "spec.ports[0].nodePort") == 30080


class FakeLab:
    """Answers `get` and `host_ip` the way a lab would, for placeholder tests."""

    def get(self, kind, name=None, namespace="default", all_namespaces=False):
        return {"svc": {"spec": {"clusterIP": "10.96.0.16"}}, "pod": {"status": {"podIP": "10.244.0.2"}}}[kind]

    def host_ip(self, name):
        return {"client": "192.168.10.100"}[name]


def test_placeholders_read_live_objects():
    lab = FakeLab()
    assert expand("http://{{ svc hdls spec.clusterIP }}:8080/", lab) == "http://10.96.0.16:8080/"
    assert expand("{{ pod x status.podIP }} {{ host client ip }}", lab) == "10.244.0.2 192.168.10.100"


def test_reports(tmp_path):
    result = Result("demo", "flat", "routed", "nftables",
                    [StepResult("ok", "exec", "passed", 0.1, "fine"), StepResult("bad", "exec", "failed", 0.2, "no")],
                    0.3)
    assert to_dict(result)["passed"] == 1 and to_dict(result)["failed"] == 1
    write_junit(result, tmp_path / "r.xml")
    xml = (tmp_path / "r.xml").read_text()
    assert 'tests="2"' in xml and 'failures="1"' in xml and '<failure message="no">' in xml

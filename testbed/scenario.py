"""Scenario files: a topology, manifests and ordered steps with checks.

    name: quickstart
    topology: ../topologies/flat.yaml        # a path (relative to this file) or an inline mapping
    manifests: [../examples/hdls.yaml]      # applied in order once the lab is up
    steps:
      - name: the hdls pods are ready
        wait: {pods: {selector: {app: hdls}, count: 3}, timeout: 30}
      - name: the Service answers from a pod on another node
        exec: {target: pod/client, command: [curl, -s, "http://{{ svc hdls spec.clusterIP }}:8080/"]}
        expect: {exitCode: 0, json: {namespace: default}}
      - name: requests spread over the three pods
        exec: {target: pod/client, command: [curl, -s, "http://{{ svc hdls spec.clusterIP }}:8080/"]}
        repeat: 30
        expect: {distinct: {field: pod, count: 3}}

Step actions: apply, delete (a file), applyInline (YAML text), exec, wait. Placeholders
``{{ KIND NAME FIELD.PATH }}`` read live objects (``svc``, ``pod``, ``node``... with
``NAMESPACE/NAME`` when not in default); ``{{ host NAME ip }}`` is an underlay address.
"""
from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.checks import evaluate, field_value
from testbed.errors import BadInput, FieldError, InvalidError, invalid, required, unsupported

ACTIONS = ("apply", "delete", "applyInline", "exec", "check", "wait")
TARGET = re.compile(r"^(pod|node|host)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PLACEHOLDER = re.compile(r"\{\{\s*([\w-]+)\s+([\w./-]+)\s+([\w.\[\]-]+)\s*\}\}")
EXPECT_KEYS = {"exitCode", "contains", "notContains", "matches", "json", "distinct"}


@dataclass
class Step:
    name: str
    action: str
    arg: Any
    expect: dict = field(default_factory=dict)
    repeat: int = 1
    timeout: float = 30.0


@dataclass
class Scenario:
    name: str
    path: Path
    description: str
    topology: Any  # a Path or an inline mapping
    manifests: list[Path]
    steps: list[Step]


@dataclass
class StepResult:
    name: str
    action: str
    status: str  # passed | failed | error
    seconds: float
    detail: str = ""


@dataclass
class Result:
    scenario: str
    topology: str
    network: str
    proxy: str
    steps: list[StepResult]
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(1 for s in self.steps if s.status == "passed")

    @property
    def failed(self) -> int:
        return len(self.steps) - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise BadInput(f"cannot read scenario: {e.strerror}", str(path)) from None
    except yaml.YAMLError as e:
        raise BadInput(f"invalid YAML: {e}", str(path)) from None
    return parse_scenario(data, path)


def parse_scenario(data: object, path: Path) -> Scenario:
    if not isinstance(data, dict):
        raise BadInput("a scenario must be a YAML mapping", str(path))
    errs: list[FieldError] = []
    name = str(data.get("name") or path.stem)
    for key in data:
        if key not in ("name", "description", "topology", "manifests", "steps"):
            errs.append(FieldError(str(key), "Unsupported value", key, "unknown field; known fields: description, "
                                   "manifests, name, steps, topology"))
    topo = data.get("topology")
    if topo is None:
        errs.append(required("topology", "a topology file path or an inline topology"))
    elif isinstance(topo, str):
        topo = (path.parent / topo).resolve()
        if not topo.is_file():
            errs.append(invalid("topology", data["topology"], f"no such file (looked for {topo})"))
    elif not isinstance(topo, dict):
        errs.append(invalid("topology", topo, "must be a file path or a mapping"))
    manifests = []
    for i, m in enumerate(data.get("manifests") or []):
        p = (path.parent / str(m)).resolve()
        if not p.is_file():
            errs.append(invalid(f"manifests[{i}]", m, f"no such file (looked for {p})"))
        manifests.append(p)
    steps = []
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        errs.append(invalid("steps", raw_steps, "must be a list"))
        raw_steps = []
    for i, raw in enumerate(raw_steps):
        step = _step(raw, f"steps[{i}]", path, errs)
        if step:
            steps.append(step)
    if errs:
        raise InvalidError("Scenario", name, errs, str(path))
    return Scenario(name, path, str(data.get("description", "")), topo, manifests, steps)


def _step(raw: object, where: str, path: Path, errs: list[FieldError]) -> Step | None:
    if not isinstance(raw, dict):
        errs.append(invalid(where, raw, "must be a mapping"))
        return None
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        errs.append(required(where, "exactly one of: " + ", ".join(ACTIONS)) if not actions else
                    invalid(where, ", ".join(actions), "give one action per step"))
        return None
    action = actions[0]
    for key in raw:
        if key not in (action, "name", "expect", "repeat", "timeout"):
            errs.append(FieldError(f"{where}.{key}", "Unsupported value", key,
                                   "unknown field; known fields: name, expect, repeat, timeout and one action"))
    arg = raw[action]
    if action in ("apply", "delete"):
        p = (path.parent / str(arg)).resolve()
        if not p.is_file():
            errs.append(invalid(f"{where}.{action}", arg, f"no such file (looked for {p})"))
        arg = p
    elif action in ("exec", "check"):
        if isinstance(arg, str):  # shorthand "pod/client -- curl -s http://..." (split like a shell, never run by one)
            target, sep, cmd = arg.partition(" -- ")
            arg = {"target": target.strip(), "command": _split(cmd)} if sep else arg
        if not isinstance(arg, dict):
            errs.append(invalid(f"{where}.exec", arg, "must be a mapping with target and command"))
            return None
        if not TARGET.match(str(arg.get("target", ""))):
            errs.append(invalid(f"{where}.exec.target", arg.get("target"), "must be pod/NAME, node/NAME or host/NAME"))
        cmd = arg.get("command")
        if not isinstance(cmd, list) or not cmd:
            errs.append(required(f"{where}.exec.command", "a list: the program and its arguments"))
    elif action == "wait":
        if not isinstance(arg, dict) or not ({"pods", "seconds"} & set(arg)):
            errs.append(invalid(f"{where}.wait", arg, "must have pods: {selector, namespace, count} or seconds: N"))
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict):
        errs.append(invalid(f"{where}.expect", expect, "must be a mapping"))
        expect = {}
    for key in expect:
        if key not in EXPECT_KEYS:
            errs.append(unsupported(f"{where}.expect.{key}", key, sorted(EXPECT_KEYS)))
    distinct = expect.get("distinct")
    if distinct is not None and not (isinstance(distinct, dict) and isinstance(distinct.get("field"), str)):
        errs.append(required(f"{where}.expect.distinct.field", "the JSON field whose distinct values are counted"))
    if expect and action not in ("exec", "check"):
        errs.append(invalid(f"{where}.expect", expect, "only exec and check steps have expectations"))
    if action == "check" and not expect:
        errs.append(required(f"{where}.expect", "a check needs expectations (use exec for a plain command)"))
    repeat = raw.get("repeat", 1)
    if not isinstance(repeat, int) or repeat < 1:
        errs.append(invalid(f"{where}.repeat", repeat, "must be a positive integer"))
    timeout = raw.get("timeout", arg.get("timeout", 30) if isinstance(arg, dict) else 30)
    name = str(raw.get("name") or f"{action} {arg if not isinstance(arg, dict) else arg.get('target', '')}")
    return Step(name, action, arg, expect, repeat if isinstance(repeat, int) else 1, float(timeout))


def _split(cmd: str) -> list[str]:
    """shlex.split that keeps ``{{ svc hdls spec.clusterIP }}`` placeholders whole."""
    found = [m.group(0) for m in PLACEHOLDER.finditer(cmd)]
    for i, text in enumerate(found):
        cmd = cmd.replace(text, f"\0{i}\0", 1)
    words = shlex.split(cmd)
    for i, text in enumerate(found):
        words = [w.replace(f"\0{i}\0", text) for w in words]
    return words


def run_scenario(scenario: Scenario, lab, console=None, progress=None) -> Result:
    """Run every step against ``lab`` (the in-process Lab or a RemoteLab).

    ``console`` (a rich Console) gets one line per finished step; ``progress`` is
    called with each step before it runs."""
    started = time.perf_counter()
    results = []
    for step in scenario.steps:
        if progress:
            progress(step)
        t = time.perf_counter()
        try:
            status, detail = _run_step(step, lab)
        except Exception as e:  # a step that could not run is reported, the rest still run
            status, detail = "error", f"{type(e).__name__}: {e}"
        results.append(StepResult(step.name, step.action, status, time.perf_counter() - t, detail))
        if console is not None:
            colour = "green" if status == "passed" else "red"
            console.print(f"[{colour}]{status:>6}[/] {step.name} [dim]({results[-1].seconds:.2f} s)[/]",
                          highlight=False)
    info = lab.info() if hasattr(lab, "info") else {}
    return Result(scenario.name, str(info.get("topology", "")), str(info.get("network", "")),
                  str(info.get("proxy", "")), results, time.perf_counter() - started)


def _run_step(step: Step, lab) -> tuple[str, str]:
    if step.action == "apply":
        return "passed", "; ".join(lab.apply_file(step.arg))
    if step.action == "delete":
        return "passed", "; ".join(lab.delete_file(step.arg))
    if step.action == "applyInline":
        return "passed", "; ".join(lab.apply_text(str(step.arg), f"<{step.name}>"))
    if step.action == "wait":
        return _wait(step, lab)
    target = step.arg["target"]
    ns = step.arg.get("namespace", "default")
    argv = [expand(str(a), lab) for a in step.arg["command"]]
    answers = []
    for _ in range(step.repeat):
        answers.append(lab.exec(target, argv, namespace=ns, timeout=step.timeout))
    ok, detail = evaluate(_expand_expect(step.expect, lab), answers)
    return ("passed" if ok else "failed"), detail


def _expand_expect(expect: dict, lab) -> dict:
    out = dict(expect)
    for key in ("contains", "notContains", "matches"):
        if isinstance(out.get(key), str):
            out[key] = expand(out[key], lab)
    if isinstance(out.get("json"), dict):
        out["json"] = {k: expand(v, lab) if isinstance(v, str) else v for k, v in out["json"].items()}
    return out


def _wait(step: Step, lab) -> tuple[str, str]:
    spec = step.arg
    if "seconds" in spec:
        time.sleep(float(spec["seconds"]))
        return "passed", f"waited {spec['seconds']} s"
    want = spec.get("pods") or {}
    ns = want.get("namespace", "default")
    selector = want.get("selector") or {}
    deadline = time.monotonic() + step.timeout
    while True:
        pods = [p for p in lab.get("pods", namespace=ns)
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        ready = [p for p in pods if _ready(p)]
        count = want.get("count", len(pods))
        if pods and len(ready) >= count:
            return "passed", f"{len(ready)} pods ready"
        if time.monotonic() > deadline:
            return "failed", f"{len(ready)}/{count} pods ready after {step.timeout:g} s"
        time.sleep(0.05)


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


def expand(text: str, lab) -> str:
    """Fill ``{{ KIND NAME PATH }}`` placeholders from the live lab."""
    def one(m: re.Match) -> str:
        kind, name, path = m.groups()
        if kind == "host" and path == "ip":
            return lab.host_ip(name)
        ns, _, short = name.rpartition("/")
        obj = lab.get(kind, short, namespace=ns or "default")
        value = field_value(obj, path)
        return value if isinstance(value, str) else json.dumps(value)
    return PLACEHOLDER.sub(one, text)

"""Scenario results as a console table, a JSON report and JUnit XML."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from testbed.scenario import Result

STYLE = {"passed": "green", "failed": "red", "error": "red"}


def print_result(result: Result, console: Console) -> None:
    table = Table(title=f"scenario {result.scenario}  ({result.network or '?'} network, "
                        f"{result.proxy or '?'} proxy)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("action")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("detail", overflow="fold", max_width=70)
    for i, s in enumerate(result.steps, 1):
        table.add_row(str(i), s.name, s.action, f"[{STYLE[s.status]}]{s.status}[/]", f"{s.seconds:.2f}", s.detail)
    console.print(table)
    console.print(f"{result.passed} passed, {result.failed} failed", highlight=False)


def to_dict(result: Result) -> dict:
    return {"scenario": result.scenario, "topology": result.topology, "network": result.network,
            "proxy": result.proxy, "passed": result.passed, "failed": result.failed,
            "seconds": round(result.seconds, 3),
            "steps": [{**asdict(s), "seconds": round(s.seconds, 3)} for s in result.steps]}


def write_json(result: Result, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(result), indent=2) + "\n")


def write_junit(result: Result, path: str | Path) -> None:
    suite = ET.Element("testsuite", name=result.scenario, tests=str(len(result.steps)),
                       failures=str(sum(1 for s in result.steps if s.status == "failed")),
                       errors=str(sum(1 for s in result.steps if s.status == "error")),
                       time=f"{result.seconds:.3f}")
    for s in result.steps:
        case = ET.SubElement(suite, "testcase", classname=f"{result.scenario}.{s.action}", name=s.name,
                             time=f"{s.seconds:.3f}")
        if s.status == "failed":
            ET.SubElement(case, "failure", message=s.detail).text = s.detail
        elif s.status == "error":
            ET.SubElement(case, "error", message=s.detail).text = s.detail
    ET.indent(suite)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)

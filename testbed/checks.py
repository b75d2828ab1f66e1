"""Expectations on command answers: exit code, text, JSON fields, distinct answerers."""
from __future__ import annotations

import json
import re
import subprocess


def field_value(obj: object, path: str) -> object:
    """``spec.ports[0].nodePort`` out of a JSON object (KeyError when absent)."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            obj = obj[int(part[1:-1])]  # type: ignore[index]
        else:
            obj = obj[part]  # type: ignore[index]
    return obj


def evaluate(expect: dict, answers: list[subprocess.CompletedProcess]) -> tuple[bool, str]:
    """(passed, detail) for one exec step that ran ``len(answers)`` times."""
    want_rc = expect.get("exitCode", 0)
    for a in answers:
        if a.returncode != want_rc:
            err = (a.stderr or a.stdout or "").strip().splitlines()
            return False, f"exit code {a.returncode}, expected {want_rc}" + (f": {err[-1]}" if err else "")
        out = a.stdout
        if "contains" in expect and str(expect["contains"]) not in out:
            return False, f"output does not contain {expect['contains']!r}: {_short(out)}"
        if "notContains" in expect and str(expect["notContains"]) in out:
            return False, f"output contains {expect['notContains']!r}"
        if "matches" in expect and not re.search(str(expect["matches"]), out):
            return False, f"output does not match {expect['matches']!r}: {_short(out)}"
        if "json" in expect:
            try:
                doc = json.loads(out)
            except ValueError:
                return False, f"output is not JSON: {_short(out)}"
            for path, value in expect["json"].items():
                try:
                    got = field_value(doc, path)
                except (KeyError, IndexError, TypeError):
                    return False, f"{path} missing in {_short(out)}"
                if got != value:
                    return False, f"{path} is {got!r}, expected {value!r}"
    if "distinct" in expect:
        spec = expect["distinct"]
        seen: dict[str, int] = {}
        for a in answers:
            try:
                key = str(field_value(json.loads(a.stdout), spec["field"]))
            except (ValueError, KeyError, IndexError, TypeError):
                return False, f"answer without {spec['field']}: {_short(a.stdout)}"
            seen[key] = seen.get(key, 0) + 1
        if "of" in spec and len(answers) != spec["of"]:
            return False, f"{len(answers)} answers, expected {spec['of']} (set repeat: {spec['of']})"
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
        if "count" in spec and len(seen) != spec["count"]:
            return False, f"{len(seen)} distinct {spec['field']}, expected {spec['count']} ({spread})"
        if "min" in spec and len(seen) < spec["min"]:
            return False, f"{len(seen)} distinct {spec['field']}, expected at least {spec['min']} ({spread})"
        return True, f"{len(answers)} answers from {len(seen)} {spec['field']}s ({spread})"
    return True, _short(answers[-1].stdout) if answers else ""


def _short(text: str, n: int = 90) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 3] + "..."

"""Where a lab records what it made, so `down`, `clean` and `exec` find it by handle.

/run/testbed/<lab>/
  lab.json     {"name", "pid", "pid_start", "topology", "socket", "hosts": {name: {"pid", "start", "netns"}}}
  lab.sock     the lab process's control socket (root only)
`hosts` covers every namespace the lab made: nodes, routers, outside hosts, segment
switches and pods (pods as "pod/<namespace>/<name>"). Each entry names the holder
process by pid *and* start time, so a recycled pid is never mistaken for ours, and the
network-namespace inode, so processes left inside can be found without matching names.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

STATE_ROOT = Path(os.environ.get("TESTBED_STATE_DIR", "/run/testbed"))


def lab_dir(name: str) -> Path:
    return STATE_ROOT / name


def process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # exited, only waiting to be reaped
    return int(fields[19])


def is_same_process(pid: int, start: int | None) -> bool:
    return start is not None and process_start(pid) == start


def write_state(name: str, state: dict) -> None:
    d = lab_dir(name)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = d / "lab.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, d / "lab.json")


def read_state(name: str) -> dict | None:
    try:
        return json.loads((lab_dir(name) / "lab.json").read_text())
    except (OSError, ValueError):
        return None


def lab_names() -> list[str]:
    if not STATE_ROOT.is_dir():
        return []
    return sorted(p.name for p in STATE_ROOT.iterdir() if p.is_dir())


def is_running(name: str) -> bool:
    state = read_state(name)
    return bool(state) and is_same_process(state["pid"], state.get("pid_start"))

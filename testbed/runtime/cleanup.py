"""Remove what labs left behind, by handle: recorded pids (checked against their start
time) and processes still inside the lab's recorded namespaces (by inode). Nothing is
ever matched by name."""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time

from testbed.runtime import state


def processes_in(inodes: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes and int(entry) != os.getpid():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def kill_in_namespaces(inodes: set[int], holders: set[int] = frozenset()) -> int:
    """SIGKILL every process inside these network namespaces except the holders."""
    inodes = inodes - {os.stat("/proc/self/ns/net").st_ino}  # never our own namespace
    pids = [p for p in processes_in(inodes) if p not in holders]
    for pid in pids:
        _kill(pid)
    return len(pids)


def clean_lab(name: str) -> dict:
    """Stop everything lab ``name`` recorded and remove its state. Returns what it removed:
    {"lab", "processes": pids killed, "namespaces": recorded namespaces still held, "recorded", "dir"}."""
    st = state.read_state(name) or {}
    killed = []
    if st.get("pid") and state.is_same_process(st["pid"], st.get("pid_start")):
        _kill(st["pid"])  # its children die with it (parent-death signal)
        killed.append(st["pid"])
    hosts = st.get("hosts", {})
    inodes = {h["netns"] for h in hosts.values() if h.get("netns")}
    inodes.discard(os.stat("/proc/self/ns/net").st_ino)  # never the namespace we run in
    held = {os.stat(f"/proc/{pid}/ns/net").st_ino for pid in processes_in(inodes) if _exists(pid)}
    for h in hosts.values():
        if state.is_same_process(h["pid"], h.get("start")):
            _kill(h["pid"])
            killed.append(h["pid"])
    for pid in processes_in(inodes):  # whatever else is inside: found by namespace, not by name
        _kill(pid)
        killed.append(pid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes_in(inodes):
        time.sleep(0.05)
    shutil.rmtree(state.lab_dir(name), ignore_errors=True)
    for extra in (f"{name}.log", f"{name}.topology.yaml"):  # an older log place; a scenario's inline topology
        (state.STATE_ROOT / extra).unlink(missing_ok=True)
    return {"lab": name, "processes": sorted(set(killed)), "namespaces": len(held), "recorded": len(inodes),
            "dir": str(state.lab_dir(name))}


def _exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}/ns/net")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def starting(name: str) -> bool:
    """A lab still being brought up: no lab.json yet, and its lab process still holds the log
    that `up` locked for it (the lock lives as long as some process has the file open)."""
    d = state.lab_dir(name)
    if (d / "lab.json").exists():
        return False
    try:
        with open(d / "lab.log", "rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def clean() -> list[dict]:
    """Clean every lab whose lab process is gone."""
    return [clean_lab(n) for n in state.lab_names() if not state.is_running(n) and not starting(n)]

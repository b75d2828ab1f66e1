"""Remove what labs left behind, by handle: recorded pids (checked against their start
time) and processes still inside the lab's recorded namespaces (by inode). Nothing is
ever matched by name."""
from __future__ import annotations

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


def clean_lab(name: str) -> dict:
    """Stop everything lab ``name`` recorded and remove its state. Returns counts."""
    st = state.read_state(name) or {}
    killed = 0
    if st.get("pid") and state.is_same_process(st["pid"], st.get("pid_start")):
        os.kill(st["pid"], signal.SIGKILL)  # its children die with it (parent-death signal)
        killed += 1
    hosts = st.get("hosts", {})
    inodes = {h["netns"] for h in hosts.values() if h.get("netns")}
    own = os.stat("/proc/self/ns/net").st_ino
    inodes.discard(own)  # never the namespace we run in
    for h in hosts.values():
        if state.is_same_process(h["pid"], h.get("start")):
            _kill(h["pid"])
            killed += 1
    for pid in processes_in(inodes):
        _kill(pid)
        killed += 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes_in(inodes):
        time.sleep(0.05)
    shutil.rmtree(state.lab_dir(name), ignore_errors=True)
    return {"lab": name, "processes": killed, "namespaces": len(inodes)}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def clean() -> list[dict]:
    """Clean every lab whose lab process is gone."""
    return [clean_lab(n) for n in state.lab_names() if not state.is_running(n)]

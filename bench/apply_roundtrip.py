"""apply -> get round trip on a running lab: one Deployment of 10 pods on 3 nodes.

    sudo .venv/bin/python bench/apply_roundtrip.py [--rounds 5] [--replicas 10]

Brings a lab up with `testbed up` (the background lab process, as a user does), then
per round: time from sending the Deployment until `get pods` shows all of them Ready,
then delete it and wait until the pods are gone. Measured two ways:
  socket: the client library (RemoteLab), i.e. what the scenario runner does;
  cli:    the real commands, `testbed apply -f FILE` then `testbed get pods -o json`
          repeated, each a fresh Python process (what a shell script sees).
Bar (issue 3): all Ready within 1 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.common import deployments  # noqa: E402
from testbed.client import RemoteLab  # noqa: E402

LAB = "bench-roundtrip"
console = Console(width=120)


def tb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True, text=True, cwd=ROOT)


def ready(pods: list[dict]) -> int:
    return sum(any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions", []))
               for p in pods)


def wait_gone(lab: RemoteLab, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while lab.get("pods"):
        if time.monotonic() > deadline:
            raise TimeoutError("pods still there after delete")
        time.sleep(0.02)


def via_socket(lab: RemoteLab, text: str, replicas: int) -> float:
    t = time.perf_counter()
    lab.apply_text(text, "bench")
    while ready(lab.get("pods")) < replicas:
        if time.perf_counter() - t > 30:
            raise TimeoutError("pods not ready in 30 s")
        time.sleep(0.005)
    took = time.perf_counter() - t
    lab.delete_text(text, "bench")
    wait_gone(lab)
    return took


def via_cli(lab: RemoteLab, path: str, replicas: int) -> float:
    t = time.perf_counter()
    r = tb("--lab", LAB, "apply", "-f", path)
    assert r.returncode == 0, r.stderr
    while ready(json.loads(tb("--lab", LAB, "get", "pods", "-o", "json").stdout)["items"]) < replicas:
        if time.perf_counter() - t > 30:
            raise TimeoutError("pods not ready in 30 s")
    took = time.perf_counter() - t
    assert tb("--lab", LAB, "delete", "-f", path).returncode == 0
    wait_gone(lab)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--topology", default=str(ROOT / "topologies" / "flat.yaml"))
    args = ap.parse_args()

    text = deployments(1, args.replicas, prefix="roundtrip")
    r = tb("up", args.topology, "--name", LAB)
    if r.returncode != 0:
        console.print(r.stderr)
        return r.returncode
    try:
        lab = RemoteLab(LAB)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(text)
            f.flush()
            sock = [via_socket(lab, text, args.replicas) for _ in range(args.rounds)]
            cli = [via_cli(lab, f.name, args.replicas) for _ in range(args.rounds)]
    finally:
        tb("down", LAB)

    table = Table(title=f"apply -> all {args.replicas} pods Ready (3-node lab, {args.rounds} rounds; bar <= 1 s)")
    for col in ("path", "median s", "min s", "max s", "bar"):
        table.add_column(col, justify="right")
    for label, xs in (("socket (RemoteLab)", sock), ("cli (apply + get -o json)", cli)):
        med = statistics.median(xs)
        table.add_row(label, f"{med:.3f}", f"{min(xs):.3f}", f"{max(xs):.3f}", "ok" if med <= 1 else "MISSED")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

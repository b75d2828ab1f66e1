"""`apply` to all Ready through a running lab, as a user sees it from the command line.

    sudo .venv/bin/python bench/apply_roundtrip.py [--replicas 10] [--runs 3]

Brings up the flat topology with `testbed up`, then times `testbed apply -f` of one
Deployment of N pods until `testbed get pods -o json` shows all of them Ready
(bar: <= 1 s for 10 pods on 3 nodes), and deletes it again between runs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = "bench-roundtrip"


def tb(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed", *args], input=input, capture_output=True, text=True,
                          cwd=ROOT, check=True)


def deployment(replicas: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: rt}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: rt}}}}
  template:
    metadata: {{labels: {{app: rt}}}}
    spec: {{containers: [{{name: echo, ports: [{{containerPort: 8000}}]}}]}}
"""


def ready(pods: list[dict]) -> int:
    return sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in p["status"].get("conditions", [])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tb("up", "topologies/flat.yaml", "--name", LAB)
    try:
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            tb("--lab", LAB, "apply", "-f", "-", input=deployment(args.replicas))
            while True:
                items = json.loads(tb("--lab", LAB, "get", "pods", "-o", "json").stdout)["items"]
                pods = [p for p in items if p["metadata"].get("labels", {}).get("app") == "rt"]
                if len(pods) == args.replicas and ready(pods) == args.replicas:
                    break
            times.append(time.perf_counter() - t)
            tb("--lab", LAB, "delete", "-f", "-", input=deployment(args.replicas))
        print(f"apply -> all {args.replicas} pods Ready (3 nodes): " + ", ".join(f"{x:.2f} s" for x in times)
              + f"; median {sorted(times)[len(times) // 2]:.2f} s (bar <= 1 s)")
    finally:
        subprocess.run([sys.executable, "-m", "testbed", "down", LAB], cwd=ROOT, capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

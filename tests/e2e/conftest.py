import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.runtime import state

ROOT = Path(__file__).resolve().parents[2]

# The seed article's hdls Service, exactly as written there (comments and all), in front
# of a Deployment whose pods serve the built-in echo server on containerPort 8000, and a
# client pod pinned to the node without hdls pods.
SEED_HDLS = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: hdls
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hdls
  template:
    metadata:
      labels:
        app: hdls
    spec:
      nodeSelector:
        tier: app
      containers:
      - name: hdls-container
        ports:
        - containerPort: 8000
---
apiVersion: v1
kind: Service
metadata:
  name: hdls
spec:
  ports:
  - port: 8080   # Service 的虚拟端口
    targetPort: 8000  # 指定后端 Pod 的端口号
  selector:  # Label 选择器
    app: hdls
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: node3
  containers:
  - name: shell
    command: ["sleep", "infinity"]
"""


def tb(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "testbed", *args], input=input, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def hdls_file(tmp_path) -> str:
    path = tmp_path / "hdls.yaml"
    path.write_text(SEED_HDLS)
    return str(path)


@pytest.fixture
def lab_name(request):
    name = "e2e-" + request.node.name.replace("test_", "")[:20].replace("_", "-").strip("-")
    yield name
    if state.lab_dir(name).exists():
        tb("down", name)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.root)

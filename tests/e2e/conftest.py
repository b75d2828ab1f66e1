import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tb(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "testbed", *args], input=input, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def lab_name(request):
    name = "e2e-" + request.node.name.replace("test_", "")[:20].replace("_", "-").strip("-")
    yield name
    tb("down", name)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.root)
    if os.geteuid() != 0:
        return

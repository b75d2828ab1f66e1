"""Pod-network backends; importing this package registers every backend by name."""
import importlib

from testbed.podnet.base import Backend, backend_names, create, register

for _module in ("routed", "vxlan", "ipip", "bgp"):
    try:
        importlib.import_module(f"testbed.podnet.{_module}")
    except ModuleNotFoundError as e:  # a backend still being written
        if e.name != f"testbed.podnet.{_module}":
            raise

__all__ = ["Backend", "backend_names", "create", "register"]

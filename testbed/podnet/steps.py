"""Kernel changes as plain data, applied in order and rolled back on failure.

A backend plans a list of steps (pure, golden-tested); ``apply`` runs them over netlink
in the node's namespace and, if one fails, undoes the ones already done in reverse.
"""
from __future__ import annotations

from dataclasses import dataclass

RTNH_F_ONLINK = 4


@dataclass(frozen=True)
class Step:
    kind: str  # "neigh" | "fdb" | "route"
    dev: str
    dst: str  # neighbour IP, FDB remote IP, route destination CIDR
    lladdr: str = ""  # MAC for neigh and fdb
    via: str = ""  # route gateway
    onlink: bool = False

    def __str__(self) -> str:
        if self.kind == "neigh":
            return f"neigh replace {self.dst} lladdr {self.lladdr} dev {self.dev} nud permanent"
        if self.kind == "fdb":
            return f"fdb append {self.lladdr} dev {self.dev} dst {self.dst}"
        return f"route replace {self.dst} via {self.via} dev {self.dev}" + (" onlink" if self.onlink else "")


def _do(ipr, step: Step, undo: bool = False) -> None:
    idx = ipr.link_lookup(ifname=step.dev)[0]
    if step.kind == "neigh":
        if undo:
            ipr.neigh("del", dst=step.dst, lladdr=step.lladdr, ifindex=idx)
        else:
            ipr.neigh("replace", dst=step.dst, lladdr=step.lladdr, ifindex=idx, state="permanent")
    elif step.kind == "fdb":
        ipr.fdb("del" if undo else "append", ifindex=idx, lladdr=step.lladdr, dst=step.dst)
    elif step.kind == "route":
        args = {"dst": step.dst, "gateway": step.via, "oif": idx}
        if step.onlink:
            args["flags"] = RTNH_F_ONLINK
        ipr.route("del" if undo else "replace", **args)
    else:
        raise ValueError(step.kind)


def apply(ipr, steps: list[Step]) -> None:
    done: list[Step] = []
    try:
        for step in steps:
            _do(ipr, step)
            done.append(step)
    except Exception:
        for step in reversed(done):
            try:
                _do(ipr, step, undo=True)
            except Exception:
                pass  # best effort: the first error is the one to report
        raise


def undo(ipr, steps: list[Step]) -> None:
    for step in reversed(steps):
        try:
            _do(ipr, step, undo=True)
        except Exception:
            pass

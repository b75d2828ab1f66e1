"""A topology as a picture: Graphviz DOT text (pure), rendered to SVG or PNG by `dot`.

Segments are boxes with their CIDR, routers diamonds, Kubernetes nodes blue with their
pod block, outside hosts grey; each edge carries the interface address.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testbed.errors import MachineError
from testbed.topo.model import Topology

NL = "\\n"  # a line break inside a Graphviz label

STYLE = {
    "router": 'shape=diamond, style=filled, fillcolor="#fde2b3"',
    "node": 'shape=box, style="rounded,filled", fillcolor="#cfe3fb"',
    "host": 'shape=box, style="rounded,filled", fillcolor="#e6e6e6"',
}


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def to_dot(topo: Topology) -> str:
    c = topo.cluster
    title = (f"{topo.name}: {c.network} network, {c.proxy_mode} proxy, pods {c.pod_cidr}, "
             f"services {c.service_cidr}")
    lines = [f"graph {_q(topo.name)} {{", f"  label={_q(title)}; labelloc=t; fontname=Helvetica;",
             "  node [fontname=Helvetica, fontsize=11]; edge [fontname=Helvetica, fontsize=9];", "  layout=dot;"]
    for seg in topo.segments.values():
        lines.append(f'  {_q("seg:" + seg.name)} [shape=box, style="filled", fillcolor="#d9f2d9", '
                     f"label={_q(seg.name + NL + seg.cidr)}, width=2.5];")
    for h in topo.hosts.values():
        label = h.name
        if h.pod_cidr:
            label += f"{NL}pods {h.pod_cidr}"
        if h.asn:
            label += f"{NL}AS {h.asn}"
        lines.append(f"  {_q(h.name)} [{STYLE[h.role]}, label={_q(label)}];")
    for h in topo.hosts.values():
        for i in h.interfaces:
            lines.append(f"  {_q(h.name)} -- {_q('seg:' + i.segment)} [label={_q(f'{i.name} {i.address}')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(topo: Topology, out: Path) -> Path:
    """Write ``out`` (.svg or .png) with Graphviz."""
    if not shutil.which("dot"):
        raise MachineError("drawing needs Graphviz: `sudo apt-get install graphviz` or `sudo scripts/bootstrap.sh`")
    fmt = out.suffix.lstrip(".") or "svg"
    subprocess.run(["dot", f"-T{fmt}", "-o", str(out)], input=to_dot(topo), text=True, check=True)
    return out

"""BIRD 2 as a daemon: render the whole config from the model, dry-run it, start it.

The config is a pure function of the topology (golden-tested); ``check`` runs
``bird -p``; ``start`` runs BIRD in the foreground inside the host's namespaces so it
dies with the lab; ``birdc`` talks to it on its own control socket.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from testbed.netns import Namespace

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("testbed.daemons", "templates"), trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


@dataclass
class Peer:
    name: str  # protocol name in BIRD (letters, digits, _)
    address: str
    asn: int
    description: str
    rr_client: bool = False
    next_hop_self: bool = False
    local: str = ""  # our address towards the peer (BFD over multihop iBGP needs it)


@dataclass
class BirdConfig:
    host: str
    role: str
    mode: str
    router_id: str
    asn: int
    pod_supernet: str
    pod_cidr: str | None = None
    peers: list[Peer] = field(default_factory=list)
    bfd: bool = False
    allow_local_as: bool = False

    def render(self) -> str:
        return _ENV.get_template("bird.conf.j2").render(**self.__dict__)


class BirdError(RuntimeError):
    pass


class Bird:
    def __init__(self, host: str, config: str, run_dir: Path):
        self.host = host
        self.config = config
        self.dir = run_dir / "bird"
        self.conf = self.dir / f"{host}.conf"
        self.sock = self.dir / f"{host}.ctl"
        self.log = self.dir / f"{host}.log"
        self.proc: subprocess.Popen | None = None

    def write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.config)

    def check(self) -> None:
        self.write()
        r = subprocess.run(["bird", "-p", "-c", str(self.conf)], capture_output=True, text=True)
        if r.returncode != 0:
            raise BirdError(f"{self.host}: bird -p rejected {self.conf}: {r.stderr.strip()}")

    def start(self, ns: Namespace) -> None:
        self.check()
        with open(self.log, "ab") as log:
            self.proc = ns.popen(["bird", "-f", "-c", str(self.conf), "-s", str(self.sock)],
                                 stdout=log, stderr=subprocess.STDOUT, mount=False)

    def birdc(self, *args: str) -> str:
        r = subprocess.run(["birdc", "-s", str(self.sock), *args], capture_output=True, text=True, timeout=10)
        return r.stdout

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

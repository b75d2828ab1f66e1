"""Network namespaces held by a process: enter them, talk netlink, run programs inside.

This module and its siblings are the only code that touches the kernel. A namespace
is named by the pid of the process that holds it (a Mininet host's process); programs
run inside through ``nsenter``, netlink sockets are opened inside by entering the
namespace in the calling thread for the moment the socket is made.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def die_with_parent() -> None:
    """preexec_fn: the child is killed when the thread that started it ends.

    Every process the testbed starts uses it, so a crashed lab takes its processes
    (and so its namespaces) with it. Start long-lived processes from a long-lived thread.
    """
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# The same as die_with_parent, as an argv prefix: no preexec_fn lets Python use vfork.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"]


def ns_inode(pid: int, kind: str = "net") -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


class Namespace:
    """The network and mount namespaces of one host process."""

    def __init__(self, pid: int, name: str = "", uts: bool = False):
        self.pid = pid
        self.uts = uts  # pods have a UTS namespace (their hostname) too
        self.name = name or str(pid)
        self._fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.inode = os.fstat(self._fd).st_ino
        self._ipr = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Namespace({self.name}, pid={self.pid})"

    @property
    def net_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    @property
    def fd(self) -> int:
        return self._fd

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body in this network namespace (this thread only)."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self._fd)
            try:
                yield
            finally:
                setns(back)
        finally:
            os.close(back)

    def ipr(self):
        """A pyroute2 IPRoute whose netlink socket lives in this namespace (cached)."""
        with self._lock:
            if self._ipr is None:
                from pyroute2 import IPRoute

                with self.entered():
                    self._ipr = IPRoute()
            return self._ipr

    def argv(self, argv: Sequence[str], mount: bool = True) -> list[str]:
        """The argv that runs ``argv`` inside this host's namespaces."""
        ns = (["-n", "-m"] + (["-u"] if self.uts else [])) if mount else ["-n"]
        return ["nsenter", "-t", str(self.pid), *ns, "--", *argv]

    def run(self, argv: Sequence[str], input: str | None = None, check: bool = True,
            timeout: float = 60, mount: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(argv, mount), input=input, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CommandFailed(self.name, list(argv), proc.returncode, proc.stderr or proc.stdout)
        return proc

    def popen(self, argv: Sequence[str], mount: bool = True, **kwargs) -> subprocess.Popen:
        """Start a long-lived process inside; it dies with the calling thread."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)  # Ctrl-C reaches the lab, which stops it
        return subprocess.Popen(DIE_WITH_PARENT + self.argv(argv, mount), **kwargs)

    def sysctl(self, settings: dict[str, str | int]) -> None:
        """Write sysctls of this namespace, e.g. {"net.ipv4.ip_forward": 1}."""
        with self.entered():
            for key, value in settings.items():
                with open(_sysctl_path(key), "w") as f:
                    f.write(str(value))

    def has_sysctl(self, key: str) -> bool:
        """Whether this namespace has the sysctl (some come with a module, e.g. br_netfilter)."""
        with self.entered():
            return os.path.exists(_sysctl_path(key))

    def read_sysctl(self, key: str) -> str:
        with self.entered():
            with open(_sysctl_path(key)) as f:
                return f.read().strip()

    def nft(self, ruleset: str, check_only: bool = False) -> None:
        """Load an nft script as one atomic transaction."""
        self.run(["nft", "-c", "-f", "-"] if check_only else ["nft", "-f", "-"], input=ruleset, mount=False)

    def close_netlink(self) -> None:
        with self._lock:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

    def close(self) -> None:
        self.close_netlink()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class CommandFailed(Exception):
    def __init__(self, where: str, argv: list[str], code: int, output: str):
        self.where, self.argv, self.code, self.output = where, argv, code, output
        super().__init__(f"{where}: {' '.join(argv)} exited {code}: {output.strip()}")


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")

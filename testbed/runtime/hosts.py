"""Mininet hosts whose process is a tiny holder instead of an interactive bash.

Each host is a ``mininet.node.Node`` started by ``mnexec -cdn`` (new network and mount
namespaces, mounts private). The process only holds the namespaces; commands run
inside through ``nsenter`` (testbed.netns), and configuration goes over netlink, so
no shell prompt has to be read back. This is what makes 500 pods cheap: one
``sleep`` per pod instead of one bash, and no pty round trips.
"""
from __future__ import annotations

import os
import subprocess
import time

from mininet.node import Node

from testbed.netns import DIE_WITH_PARENT, Namespace
from testbed.runtime.state import process_start


_OWN_NET = os.stat("/proc/self/ns/net").st_ino


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


# A pod's holder first names its UTS namespace and bind-mounts the pod's own
# resolv.conf and hosts (its mounts are private), then becomes `sleep`. The script is
# constant; the values arrive as arguments, never pasted into it.
POD_SETUP = ('hostname "$1" && mount --bind "$2" /etc/resolv.conf && mount --bind "$3" /etc/hosts '
             '&& exec sleep infinity')


class LabHost(Node):
    """A Mininet host held by ``mnexec -cdn sleep infinity``; it dies with the lab.

    With ``hostname``, ``resolv`` and ``hosts`` params it is a pod: it also gets a UTS
    namespace with that hostname and its own /etc/resolv.conf and /etc/hosts."""

    def startShell(self, mnopts=None):  # noqa: N802 (Mininet's name)
        pod = self.params.get("hostname")
        hold = ["sleep", "infinity"]
        if pod:
            hold = ["unshare", "--uts", "sh", "-c", POD_SETUP, "pod-setup", pod, str(self.params["resolv"]),
                    str(self.params["hosts"])]
        # setpriv sets PR_SET_PDEATHSIG without a preexec_fn, so Python can use vfork:
        # several times faster than fork for a process of the lab's size.
        self.shell = subprocess.Popen(
            [*DIE_WITH_PARENT, "mnexec", "-cdn", *hold],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.uts = bool(pod)
        self.pid = self.shell.pid
        self.execed = False
        self.waiting = False
        self._ns: Namespace | None = None

    def wait_unshared(self, timeout: float = 10.0) -> None:
        """Wait until mnexec has made the new namespaces: before that, /proc/PID/ns/net
        is still the lab's own namespace, and configuring it would touch the host. A pod's
        holder is also waited for until its set-up script has become `sleep`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if os.stat(f"/proc/{self.pid}/ns/net").st_ino != _OWN_NET and (
                        not self.uts or _comm(self.pid) == "sleep"):
                    return
            except FileNotFoundError:
                pass
            if self.shell.poll() is not None:
                raise RuntimeError(f"{self.name}: its namespace holder exited at start "
                                   f"(code {self.shell.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no new network namespace after {timeout} s")
            time.sleep(0.001)

    @property
    def ns(self) -> Namespace:
        if self._ns is None:
            self.wait_unshared()
            self._ns = Namespace(self.pid, self.name, uts=self.uts)
        return self._ns

    def record(self) -> dict:
        """What state.py keeps about this host so `clean` can find it by handle."""
        return {"pid": self.pid, "start": process_start(self.pid), "netns": self.ns.inode, "uts": self.uts}

    def stop(self) -> None:
        if self._ns is not None:
            self._ns.close()
        if self.shell and self.shell.poll() is None:
            self.shell.kill()
            self.shell.wait()

    # Mininet's own shell helpers expect bash; they are not used for these hosts.
    def terminate(self):
        self.stop()

"""Talk to a lab process over its Unix socket, with the in-process Lab's methods.

`exec` does not go through the socket: it enters the host's namespaces directly with
nsenter, using the holder pid the lab recorded, so a terminal and the exit code pass
straight through.
"""
from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from testbed.errors import BadInput, InvalidError, MachineError, TestbedError
from testbed.runtime import state


class LabGone(TestbedError):
    exit_code = 1


def pick_lab(name: str | None) -> str:
    """The lab to talk to: the one named, or the only one running."""
    # labs run in-process by a test or a script have no socket: nothing to talk to
    running = [n for n in state.lab_names() if state.is_running(n) and (state.lab_dir(n) / "lab.sock").exists()]
    if name:
        if name not in running:
            raise BadInput(f'no lab named "{name}" is running' + (f" (running: {', '.join(running)})" if running else ""))
        return name
    if len(running) == 1:
        return running[0]
    if not running:
        raise BadInput("no lab is running: start one with `testbed up TOPOLOGY`")
    raise BadInput(f"several labs are running ({', '.join(running)}): pick one with --lab NAME")


class RemoteLab:
    def __init__(self, name: str):
        self.name = name

    def call(self, op: str, timeout: float = 600, **args):
        path = state.lab_dir(self.name) / "lab.sock"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            raise LabGone(f'lab "{self.name}" does not answer ({e.strerror or e}); `testbed clean` removes '
                          "what a dead lab left") from None
        finally:
            s.close()
        if not data:
            raise LabGone(f'lab "{self.name}" closed the connection')
        reply = json.loads(data)
        if "error" in reply:
            code = reply.get("exit_code", 1)
            err = {2: InvalidError, 3: MachineError}.get(code, TestbedError)
            e = err(message=reply["error"]) if err is InvalidError else err(reply["error"])
            e.exit_code = code
            raise e
        return reply.get("result")

    # the in-process Lab's API
    def apply_text(self, text: str, source: str = "-") -> list[str]:
        return self.call("apply", text=text, source=source)

    def apply_file(self, path) -> list[str]:
        return self.apply_text(_read(path), str(path))

    def delete_text(self, text: str, source: str = "-") -> list[str]:
        return self.call("delete", text=text, source=source)

    def delete_file(self, path) -> list[str]:
        return self.delete_text(_read(path), str(path))

    def get(self, kind: str, name: str | None = None, namespace: str | None = "default",
            all_namespaces: bool = False):
        return self.call("get", kind=kind, name=name, namespace=namespace, all_namespaces=all_namespaces)

    def host_ip(self, name: str) -> str:
        return self.call("host_ip", name=name)

    def info(self) -> dict:
        return self.call("info")

    def status(self) -> dict:
        """info() plus the lab process's pid and how many pods there are and are Ready."""
        return self.call("status")

    def wait_pods_ready(self, timeout: float = 30) -> None:
        self.call("wait", timeout=timeout)

    def stop(self) -> None:
        """Ask the lab process to tear the lab down and exit (returns at once)."""
        self.call("down")

    def exec_argv(self, target: str, argv: list[str], namespace: str = "default") -> list[str]:
        st = state.read_state(self.name) or {}
        hosts = st.get("hosts", {})
        kind, _, name = target.partition("/")
        key = {"pod": f"pod/{namespace}/{name}", "segment": f"sw-{name}"}.get(kind, name)
        entry = hosts.get(key)
        if (kind not in ("pod", "node", "host", "segment") or not entry
                or (kind in ("node", "host") and key.startswith("sw-"))):
            raise BadInput(f'no {kind} "{name}"' + (f' in namespace "{namespace}"' if kind == "pod" else "")
                           + f' in lab "{self.name}"; targets are node/NAME, pod/NAME (-n NAMESPACE), host/NAME '
                           "or segment/NAME")
        roles = st.get("roles", {})
        if kind in ("node", "host") and roles.get(name) and (roles[name] == "node") != (kind == "node"):
            raise BadInput(f'"{name}" is a {roles[name]}: use ' + ("node/" if roles[name] == "node" else "host/") + name)
        if not state.is_same_process(entry["pid"], entry.get("start")):
            raise LabGone(f"{target} is gone")
        if kind == "pod" and entry.get("env"):
            from testbed.lab import with_env

            argv = with_env(entry["env"], argv)
        uts = ["-u"] if entry.get("uts") else []  # a pod's own hostname
        return ["nsenter", "-t", str(entry["pid"]), "-n", "-m", *uts, "--", *argv]

    def exec(self, target: str, argv: list[str], namespace: str = "default", timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_argv(target, argv, namespace), input=input, capture_output=True, text=True,
                              timeout=timeout)


def _read(path) -> str:
    if str(path) == "-":
        import sys

        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as e:
        raise BadInput(f"cannot read file: {e.strerror}", str(path)) from None

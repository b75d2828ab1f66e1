"""A running lab: the underlay, the Kubernetes model and controllers, and the node agents.

One worker thread does everything that touches the kernel or starts a process, in
order: builds, pod wiring, proxy syncs. Every process the lab starts is a child of
that thread with PR_SET_PDEATHSIG, so if the lab process dies, its holders, daemons and
so its namespaces go with it. Public methods may be called from any thread.
"""
from __future__ import annotations

import ipaddress
import os
import queue
import resource
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from testbed import podnet
from testbed.errors import BadInput, MachineError
from testbed.runtime import state
from testbed.runtime.cleanup import kill_in_namespaces
from testbed.runtime.hosts import LabHost
from testbed.runtime.network import Underlay
from testbed.runtime.pods import host_veth_name, spawn_pod, wire_pod
from testbed.topo.load import load_topology
from testbed.topo.model import NETWORKS, PROXY_MODES, Topology

REQUIRED_PROGRAMS = {"mnexec": "mininet", "nsenter": "util-linux", "ip": "iproute2", "nft": "nftables",
                     "sleep": "coreutils"}
TICK = 0.02  # seconds between looks at readiness and processes when idle


def check_machine(extra: dict[str, str] | None = None) -> None:
    """Raise MachineError (exit 3) with the fix when this machine cannot run a lab."""
    if os.geteuid() != 0:
        raise MachineError("testbed needs root to make namespaces: run it with sudo")
    missing = {p: pkg for p, pkg in {**REQUIRED_PROGRAMS, **(extra or {})}.items() if not shutil.which(p)}
    if missing:
        progs = ", ".join(sorted(missing))
        pkgs = " ".join(sorted(set(missing.values())))
        raise MachineError(f"missing programs: {progs}; install them with `sudo apt-get install {pkgs}` "
                           "or run `sudo scripts/bootstrap.sh`")


@dataclass
class PodRuntime:
    """What the node agent made for one pod."""

    namespace: str
    name: str
    node: str
    ip: str
    host: LabHost
    veth: str
    ports: list[tuple[int, str]]  # (port, protocol) the pod must listen on to be Ready
    echo: bool
    processes: list[subprocess.Popen | None] = field(default_factory=list)  # None: waiting to restart
    commands: list[tuple[list[str], dict]] = field(default_factory=list)  # (argv, env) to restart
    ready: bool = False
    restarts: int = 0
    env: dict = field(default_factory=dict)
    restart_policy: str = "Always"
    restart_at: dict[int, float] = field(default_factory=dict)  # process index -> when to start it again
    exit_codes: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class Lab:
    def __init__(self, topology: Topology, name: str):
        self.topology = topology
        self.name = name
        self.run_dir = state.lab_dir(name)
        self.underlay = Underlay(topology)
        self.backend: podnet.Backend | None = None
        self.cluster = None
        self.echo = None
        self.proxies: dict[str, object] = {}
        self.pods: dict[str, PodRuntime] = {}
        self._free_ips: dict[str, list[str]] = {}
        self._jobs: queue.Queue = queue.Queue()
        self._events: list[tuple[str, dict]] = []
        self._lock = threading.RLock()
        self._proxy_dirty = True
        self._state_dirty = True
        self._updates: list[tuple[str, str, dict]] = []  # pod statuses to report in one go
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name=f"lab-{name}", daemon=True)

    # ---- life cycle -------------------------------------------------------------------

    @classmethod
    def start(cls, topology: Topology | str | Path, name: str | None = None, network: str | None = None,
              proxy: str | None = None, manifests: tuple[str, ...] = ()) -> "Lab":
        topo = topology if isinstance(topology, Topology) else load_topology(topology)
        if network:
            if network not in NETWORKS:
                raise BadInput(f'--network: Unsupported value: "{network}": supported values: '
                               + ", ".join(f'"{n}"' for n in NETWORKS))
            topo.cluster.network = network
            if network == "bgp" and topo.cluster.bgp.mode == "tor" and not all(
                    h.asn for h in topo.nodes + topo.routers):
                topo.cluster.bgp.mode = "mesh"
        if proxy:
            if proxy not in PROXY_MODES:
                raise BadInput(f'--proxy: Unsupported value: "{proxy}": supported values: '
                               + ", ".join(f'"{p}"' for p in PROXY_MODES))
            topo.cluster.proxy_mode = proxy
        extra = {"bird": "bird2"} if topo.cluster.network == "bgp" else {}
        if topo.cluster.proxy_mode == "iptables":
            extra["iptables-restore"] = "iptables"
        check_machine(extra)
        _raise_fd_limit()
        name = name or topo.name
        if state.is_running(name):
            raise BadInput(f'a lab named "{name}" is already running: stop it with `testbed down {name}` '
                           "or pick another name with --name")
        lab = cls(topo, name)
        lab._worker.start()
        try:
            lab._call(lab._build)
            for path in manifests:
                lab.apply_file(path)
        except BaseException:
            lab.stop()
            raise
        return lab

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        try:
            if self._worker.is_alive():
                self._call(self._teardown)
        finally:
            self._jobs.put(None)
            self._worker.join(timeout=30)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # ---- public API (any thread) --------------------------------------------------------

    def apply_text(self, text: str, source: str = "-") -> list[str]:
        from testbed.model.manifests import load_manifests

        objs = load_manifests(text, source)
        return self._call(lambda: self.cluster.apply(objs, source))

    def apply_file(self, path: str | Path) -> list[str]:
        return self.apply_text(_read(path), str(path))

    def delete_text(self, text: str, source: str = "-") -> list[str]:
        from testbed.model.manifests import load_manifests

        objs = load_manifests(text, source, for_delete=True)
        return self._call(lambda: self.cluster.delete(objs, source))

    def delete_file(self, path: str | Path) -> list[str]:
        return self.delete_text(_read(path), str(path))

    def get(self, kind: str, name: str | None = None, namespace: str | None = "default",
            all_namespaces: bool = False):
        def read():
            k = self.cluster.resolve_kind(kind)
            ns = None if all_namespaces else namespace
            if name:
                obj = self.cluster.get(k, ns, name)
                if obj is None:
                    raise NotFound(k, name)
                return obj
            return self.cluster.list(k, ns)

        return self._call(read)

    def exec(self, target: str, argv: list[str], namespace: str = "default", timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess:
        host = self.target(target, namespace)
        pod = self.pods.get(f"{namespace}/{target.partition('/')[2]}") if target.startswith("pod/") else None
        if pod and pod.env:
            argv = with_env(pod.env, argv)
        return subprocess.run(host.ns.argv(argv), input=input, capture_output=True, text=True, timeout=timeout)

    def target(self, target: str, namespace: str = "default") -> LabHost:
        kind, _, name = target.partition("/")
        if kind == "pod":
            pod = self.pods.get(f"{namespace}/{name}")
            if not pod:
                raise BadInput(f'pod "{name}" not found in namespace "{namespace}" (or it has no sandbox yet)')
            return pod.host
        if kind in ("node", "host") and name in self.underlay.hosts:
            role = self.topology.hosts[name].role
            if (kind == "node") == (role == "node"):
                return self.underlay.hosts[name]
        raise BadInput(f'unknown target "{target}": use node/NAME, pod/NAME (with -n NAMESPACE) or host/NAME')

    def host_ip(self, name: str) -> str:
        if name not in self.topology.hosts:
            raise BadInput(f'no host "{name}" in topology {self.topology.name}')
        return self.topology.hosts[name].ip

    def info(self) -> dict:
        return {"name": self.name, "topology": self.topology.name, "network": self.backend.describe()
                if self.backend else self.topology.cluster.network, "proxy": self.topology.cluster.proxy_mode}

    def ns(self, host: str):
        return self.underlay.hosts[host].ns

    def pod_ns(self, namespace: str, name: str):
        return self.pods[f"{namespace}/{name}"].host.ns

    def wait_pods_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pods = self.get("pods", all_namespaces=True)
            if all(_is_ready(p) for p in pods):
                return
            if time.monotonic() > deadline:
                waiting = [p["metadata"]["name"] for p in pods if not _is_ready(p)]
                raise TimeoutError(f"pods not ready after {timeout} s: {', '.join(waiting[:10])}")
            time.sleep(0.02)

    # ---- worker ---------------------------------------------------------------------------

    def _call(self, fn):
        if threading.current_thread() is self._worker:
            return fn()
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=TICK)
            except queue.Empty:
                job = False
            if job is None:
                return
            if job:
                fn, fut = job
                try:
                    fut.set_result(self._run_and_reconcile(fn))
                except BaseException as e:  # handed to the caller
                    fut.set_exception(e)
            elif self.cluster is not None and not self._stopping:
                try:
                    self._reconcile()
                except Exception as e:  # keep the lab alive; the next tick retries
                    print(f"lab {self.name}: reconcile failed: {e}", flush=True)

    def _run_and_reconcile(self, fn):
        with self._lock:
            result = fn()
            if self.cluster is not None and not self._stopping:
                self._reconcile()
            return result

    # ---- build and teardown (worker thread) ----------------------------------------------

    def _build(self) -> None:
        from testbed.controllers.cluster import Cluster
        from testbed.echo.control import EchoServer

        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write_state()
        self.underlay.build()
        self._write_state()
        c = self.topology.cluster
        self.backend = podnet.create(c.network, self.topology, self.ns, self.run_dir)
        self.backend.start()
        self.cluster = Cluster(c)
        self.cluster.watch(lambda ev, obj: self._events.append((ev, obj)))
        for node in self.topology.nodes:
            block = ipaddress.ip_network(node.pod_cidr)
            # .0 is the VXLAN/tunnel address of the node, .1 left free like a CNI gateway
            self._free_ips[node.name] = [str(ip) for ip in list(block.hosts())[1:]]
            labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                      "topology.kubernetes.io/zone": node.rack or "", **node.labels}
            annotations = {"testbed.io/network": self.backend.describe(),
                           "testbed.io/nat-outgoing": str(c.masquerade_outgoing).lower()}
            self.cluster.add_node(node.name, node.ip, node.pod_cidr, labels, annotations)
        self.echo = EchoServer()
        self.echo.start()
        self._start_proxies()

    def _start_proxies(self) -> None:
        from testbed.proxy.agent import ProxyAgent

        for node in self.topology.nodes:
            self.proxies[node.name] = ProxyAgent(node, self.ns(node.name), self.topology.cluster.proxy_mode)

    def _teardown(self) -> None:
        for pod in list(self.pods.values()):
            self._stop_pod_processes(pod, sweep=False)
        for agent in self.proxies.values():
            try:
                agent.stop()
            except Exception:
                pass
        if self.backend:
            try:
                self.backend.stop()
            except Exception:
                pass
        if self.echo:
            self.echo.stop()
        # processes left in pods, nodes and hosts (a shell's children, `exec ... &`), by namespace
        kill_in_namespaces({p.host.ns.inode for p in self.pods.values()}
                           | {h.ns.inode for h in self.underlay.all_hosts().values() if h.pid})
        for pod in list(self.pods.values()):
            pod.host.stop()
        self.pods.clear()
        self.underlay.stop()

    # ---- node agents (worker thread) -------------------------------------------------------

    def _reconcile(self) -> None:
        events, self._events = self._events, []
        created: list[dict] = []
        for ev, obj in events:
            kind = obj.get("kind")
            if kind == "Pod":
                key = f"{obj['metadata'].get('namespace', 'default')}/{obj['metadata']['name']}"
                if ev == "DELETED":
                    if key in self.pods:
                        self._delete_pod(self.pods.pop(key))
                elif obj["spec"].get("nodeName") and key not in self.pods:
                    created.append(obj)
            elif kind in ("Service", "EndpointSlice", "Node"):
                self._proxy_dirty = True
        if created:
            self._create_pods(created)
        self._probe_pods()
        if self._proxy_dirty:
            self._proxy_dirty = False
            services = self.cluster.list("Service", None)
            slices = self.cluster.list("EndpointSlice", None)
            for agent in self.proxies.values():
                agent.sync(services, slices)
        if self._state_dirty:
            self._write_state()

    def _create_pods(self, objs: list[dict]) -> None:
        from testbed.model.env import service_env

        spawned = []
        for obj in objs:
            md, spec = obj["metadata"], obj["spec"]
            ns, name, node = md.get("namespace", "default"), md["name"], spec["nodeName"]
            if node not in self._free_ips:
                continue
            if not self._free_ips[node]:
                self._updates.append((ns, name, {"phase": "Pending", "reason": "NoIPAddress"}))
                continue
            ip = self._free_ips[node].pop(0)
            resolv, hosts = self._pod_files(obj, ip)
            spawned.append((obj, ip, spawn_pod(ns, name, spec.get("hostname") or name, resolv, hosts)))
        for obj, ip, holder in spawned:
            md, spec = obj["metadata"], obj["spec"]
            ns, name, node = md.get("namespace", "default"), md["name"], spec["nodeName"]
            veth = host_veth_name(ns, name)
            mtu = self.backend.pod_mtu(self.topology.hosts[node])
            wire_pod(self.underlay.hosts[node], holder, veth, ip, mtu)
            pod = PodRuntime(ns, name, node, ip, holder, veth, ports=[], echo=False,
                             restart_policy=spec.get("restartPolicy", "Always"))
            self.pods[pod.key] = pod
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
                   "HOSTNAME": name, "KUBERNETES_NODE_NAME": node, "POD_IP": ip}
            env.update(service_env([s for s in self.cluster.list("Service", ns)]))
            pod.env = env  # `exec pod/...` runs with it too, as kubectl exec does
            echo_ports = []
            for c in spec.get("containers", []):
                ports = [(p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", [])]
                pod.ports += ports
                argv = list(c.get("command") or []) + list(c.get("args") or [])
                if c.get("command"):
                    cenv = dict(env)
                    cenv.update({e["name"]: str(e.get("value", "")) for e in c.get("env", []) if "name" in e})
                    pod.commands.append((argv, cenv))
                else:
                    echo_ports += ports
            for argv, cenv in pod.commands:
                pod.processes.append(self._start_process(pod, argv, cenv))
            if echo_ports:
                pod.echo = True
                self.echo.add(pod.key, name, ns, ip, node, holder.ns.net_path,
                              [{"port": p, "protocol": proto} for p, proto in echo_ports])
            self._updates.append((ns, name, {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "hostIP": self.topology.hosts[node].ip, "startTime": _now(),
                "conditions": _conditions(False),
            }))
            self._state_dirty = True
        self._probe_pods()

    def _pod_files(self, obj: dict, ip: str) -> tuple[Path, Path]:
        """Write the pod's resolv.conf and hosts; its holder bind-mounts them."""
        from testbed.model.podfiles import hosts_file, resolv_conf

        md = obj["metadata"]
        d = self.run_dir / "pods" / f"{md.get('namespace', 'default')}_{md['name']}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(resolv_conf(obj, self.topology.cluster, _host_resolv()))
        (d / "hosts").write_text(hosts_file(obj, ip, self.topology.cluster.domain))
        return d / "resolv.conf", d / "hosts"

    def _start_process(self, pod: PodRuntime, argv: list[str], env: dict) -> subprocess.Popen:
        log = self.run_dir / "pods" / f"{pod.namespace}_{pod.name}" / "log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return pod.host.ns.popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def _probe_pods(self) -> None:
        """A pod is Ready when its processes run and every declared port listens. A
        process that exits is restarted per restartPolicy with kubelet's back-off
        (10 s doubling to 5 min); a pod whose processes are all done Succeeds or Fails."""
        now = time.monotonic()
        for pod in self.pods.values():
            for i, proc in enumerate(pod.processes):
                if proc is None:
                    if now >= pod.restart_at[i]:
                        argv, env = pod.commands[i]
                        pod.processes[i] = self._start_process(pod, argv, env)
                    continue
                code = proc.poll()
                if code is None:
                    continue
                pod.processes[i] = None
                pod.exit_codes[i] = code
                if pod.restart_policy == "Never" or (pod.restart_policy == "OnFailure" and code == 0):
                    pod.restart_at[i] = float("inf")
                else:
                    pod.restarts += 1
                    pod.restart_at[i] = now + min(10 * 2 ** (pod.restarts - 1), 300)
                pod.ready = False
                self._updates.append((pod.namespace, pod.name, self._status(pod)))
            if pod.ready or any(p is None for p in pod.processes):
                continue
            if pod.echo or not pod.ports or all(self._listening(pod, p) for p in pod.ports):
                pod.ready = True
                self._updates.append((pod.namespace, pod.name, self._status(pod)))
        if self._updates:
            updates, self._updates = self._updates, []
            self.cluster.set_pod_statuses(updates)

    @staticmethod
    def _status(pod: PodRuntime) -> dict:
        finished = bool(pod.processes) and not pod.echo and all(
            p is None and pod.restart_at.get(i) == float("inf") for i, p in enumerate(pod.processes))
        if finished:
            phase = "Succeeded" if all(c == 0 for c in pod.exit_codes.values()) else "Failed"
            state = {"terminated": {"exitCode": max(pod.exit_codes.values()), "finishedAt": _now()}}
        elif any(p is None for p in pod.processes):
            phase, state = "Running", {"waiting": {"reason": "CrashLoopBackOff"}}
        else:
            phase, state = "Running", {"running": {"startedAt": _now()}}
        return {"phase": phase, "conditions": _conditions(pod.ready),
                "containerStatuses": [{"name": "c", "ready": pod.ready, "restartCount": pod.restarts,
                                       "state": state}]}

    def _listening(self, pod: PodRuntime, port: tuple[int, str]) -> bool:
        number, proto = port
        if proto != "TCP":
            return True  # a UDP socket cannot be probed without an answer; count it as up
        with pod.host.ns.entered():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.05)
        try:
            return s.connect_ex((pod.ip, number)) == 0
        finally:
            s.close()

    def _stop_pod_processes(self, pod: PodRuntime, sweep: bool = True) -> None:
        for proc in pod.processes:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if sweep:  # what those processes started themselves (a shell's children), by namespace
            kill_in_namespaces({pod.host.ns.inode})
        if pod.echo and self.echo:
            self.echo.remove(pod.key)

    def _delete_pod(self, pod: PodRuntime) -> None:
        self._stop_pod_processes(pod)
        pod.host.stop()  # the namespace goes, and with it both ends of the veth
        self._free_ips[pod.node].append(pod.ip)
        self._state_dirty = True

    def _write_state(self) -> None:
        self._state_dirty = False
        hosts = {name: h.record() for name, h in self.underlay.all_hosts().items() if h.pid}
        hosts.update({f"pod/{p.key}": {**p.host.record(), "env": p.env} for p in self.pods.values()})
        old = state.read_state(self.name) or {}
        old.update({"name": self.name, "pid": os.getpid(), "pid_start": state.process_start(os.getpid()),
                    "topology": self.topology.source, "network": self.topology.cluster.network,
                    "proxy": self.topology.cluster.proxy_mode, "hosts": hosts,
                    "roles": {h.name: h.role for h in self.topology.hosts.values()}})
        state.write_state(self.name, old)


class NotFound(BadInput):
    def __init__(self, kind: str, name: str):
        super().__init__(f'Error from server (NotFound): {kind.lower()}s "{name}" not found')
        self.exit_code = 1


def _raise_fd_limit() -> None:
    """Hundreds of namespaces mean thousands of descriptors (netlink sockets, ns handles)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def with_env(env: dict, argv: list[str]) -> list[str]:
    """argv run with exactly the pod's environment (env -i K=V ... CMD)."""
    return ["env", "-i", *[f"{k}={v}" for k, v in sorted(env.items())], *argv]


def _host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise BadInput(f"cannot read file: {e.strerror}", str(path)) from None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _conditions(ready: bool) -> list[dict]:
    t = _now()
    flag = "True" if ready else "False"
    return [{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": t},
            {"type": "Ready", "status": flag, "lastTransitionTime": t}]


def _is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))

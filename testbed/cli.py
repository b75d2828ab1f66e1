"""The command line: run, up, apply, delete, get, exec, down, clean, list."""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console

from testbed.errors import BadInput, MachineError, TestbedError
from testbed.runtime import state

err = Console(stderr=True, soft_wrap=True)  # messages stay whole lines for scripts
out = Console(width=None if sys.stdout.isatty() else 120)


def build_parser(command_after_dashes: bool = False) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="testbed", description="An emulated Kubernetes network in namespaces.")
    ap.add_argument("--lab", help="the lab to talk to (may be left out while one lab runs)")
    sub = ap.add_subparsers(dest="command", required=True)
    lab_opt = argparse.ArgumentParser(add_help=False)
    lab_opt.add_argument("--lab", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    p = sub.add_parser("run", parents=[lab_opt], help="build, apply, check, report, tear down")
    p.add_argument("scenario")
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--junit", metavar="FILE")
    p.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    p.add_argument("--name", help="lab name (default: the scenario's name)")
    _overrides(p)

    p = sub.add_parser("up", parents=[lab_opt], help="build a lab and leave it running")
    p.add_argument("source", metavar="TOPOLOGY_OR_SCENARIO")
    p.add_argument("--name", help="lab name (default: the topology's or scenario's name)")
    _overrides(p)

    for verb in ("apply", "delete"):
        p = sub.add_parser(verb, parents=[lab_opt], help=f"{verb} manifests in a running lab")
        p.add_argument("-f", "--filename", action="append", required=True, help="a file, or - for standard input")

    p = sub.add_parser("get", parents=[lab_opt], help="list objects like kubectl")
    p.add_argument("kind")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["wide", "json", "yaml"], default="")

    p = sub.add_parser("exec", parents=[lab_opt], help="run a command in node/N, pod/N, host/N or segment/N")
    p.add_argument("target")
    p.add_argument("-n", "--namespace", default="default")
    if not command_after_dashes:  # `exec T CMD...` without `--`: everything after the target
        p.add_argument("argv", nargs=argparse.REMAINDER)

    p = sub.add_parser("down", parents=[lab_opt], help="stop a lab and remove everything it made")
    p.add_argument("name", nargs="?")
    sub.add_parser("clean", help="remove what crashed labs left behind")
    sub.add_parser("list", help="the labs that are running")

    p = sub.add_parser("draw", help="draw a topology (or a scenario's) as SVG or PNG")
    p.add_argument("source", metavar="TOPOLOGY_OR_SCENARIO")
    p.add_argument("-o", "--output", help="file to write (.svg or .png; default: NAME.svg)")
    return ap


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", help="pod network backend: routed, vxlan, ipip, bgp")
    p.add_argument("--proxy", help="service proxy mode: nftables, iptables")


def parse_args(argv: list[str]) -> argparse.Namespace:
    command = None
    if "--" in argv and "exec" in argv[:argv.index("--")]:
        # everything after `--` is the command, so options may come after the target
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    args = build_parser(command is not None).parse_args(argv)
    if command is not None:
        args.argv = command
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for given in (getattr(args, "lab", None), getattr(args, "name", None) if args.command != "get" else None):
            if given is not None:
                check_lab_name(given)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return 130
    except TestbedError as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        return e.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)


LAB_NAME = re.compile(r"[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?")


def check_lab_name(name: str) -> str:
    """Lab names become paths under /run/testbed: lower-case letters, digits, '-', '_', '.'."""
    if not LAB_NAME.fullmatch(name) or ".." in name:
        raise BadInput(f'lab name "{name}" is invalid: use lower-case letters, digits, "-", "_" and "." '
                       "(at most 63, starting and ending with a letter or digit)")
    return name


def need_root() -> None:
    if os.geteuid() != 0:
        raise MachineError("testbed needs root: run it with sudo")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: tear down what we started, exit 130."""


def _on_sigterm(*_) -> None:
    raise Terminated()


# ---- lab life cycle -------------------------------------------------------------------------

def start_lab(name: str, topology: str | dict, network: str | None, proxy: str | None, manifests: list[str]) -> None:
    """Start the background lab process and wait until it says the lab is ready."""
    from testbed.lab import check_machine

    check_machine()
    if state.is_running(name):
        raise BadInput(f'a lab named "{name}" is already running: stop it with `testbed down {name}` '
                       "or pick another name with --name")
    if state.lab_dir(name).exists():
        from testbed.runtime.cleanup import clean_lab

        clean_lab(name)  # what a crashed lab of that name left
    state.STATE_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.lab_dir(name).mkdir(mode=0o700)
    log = state.lab_dir(name) / "lab.log"
    if isinstance(topology, dict):
        inline = state.lab_dir(name) / "topology.yaml"
        inline.write_text(yaml.safe_dump(topology))
        topology = str(inline)
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "testbed.labd", "--name", name, "--topology", topology, "--ready-fd", str(w)]
    cmd += ["--network", network] if network else []
    cmd += ["--proxy", proxy] if proxy else []
    for m in manifests:
        cmd += ["--manifest", m]
    with open(log, "ab") as logf:
        # the lock lives as long as labd holds its stdout: `clean` leaves a lab that is still starting alone
        fcntl.flock(logf, fcntl.LOCK_EX)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=(w,),
                                start_new_session=True)
    os.close(w)
    try:
        with os.fdopen(r) as ready, err.status(f"bringing up lab {name} ..."):
            line = ready.readline()
    except KeyboardInterrupt:
        # the lab process has its own session, so Ctrl-C did not reach it: stop it by its handle
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the teardown finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with err.status(f"interrupted: tearing down lab {name} ..."):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            from testbed.runtime.cleanup import clean_lab

            clean_lab(name)
        raise
    if not line:
        proc.wait()
        tail = log.read_text(errors="replace").strip().splitlines()[-5:] if log.exists() else []
        from testbed.runtime.cleanup import clean_lab

        clean_lab(name)
        raise TestbedError(f"the lab process exited (code {proc.returncode}) before the lab was ready:\n"
                           + "\n".join(tail))
    msg = json.loads(line)
    if "error" in msg:
        proc.wait()
        shutil.rmtree(state.lab_dir(name), ignore_errors=True)  # only the log is left; the error says it all
        e = TestbedError(msg["error"])
        e.exit_code = msg.get("exit_code", 1)
        raise e


def stop_lab(name: str) -> None:
    from testbed.client import LabGone, RemoteLab
    from testbed.runtime.cleanup import clean_lab

    st = state.read_state(name) or {}
    pid = st.get("pid")
    try:
        RemoteLab(name).stop()
        deadline = time.monotonic() + 60
        with err.status(f"tearing down lab {name} ..."):
            while time.monotonic() < deadline and pid and state.is_same_process(pid, st.get("pid_start")):
                time.sleep(0.05)
    except LabGone:
        pass
    clean_lab(name)  # whatever is left, by handle
    (state.STATE_ROOT / f"{name}.topology.yaml").unlink(missing_ok=True)


def resolve_source(source: str, name: str | None) -> tuple[str, str | dict, list[str]]:
    """(lab name, topology file or a scenario's inline topology, manifests) for `up` of a
    topology or a scenario file."""
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise BadInput(f"cannot read file: {e.strerror}", source) from None
    except yaml.YAMLError as e:
        raise BadInput(f"invalid YAML: {e}", source) from None
    if isinstance(data, dict) and "steps" in data or isinstance(data, dict) and "manifests" in data:
        from testbed.scenario import load_scenario

        sc = load_scenario(path)
        lab = check_lab_name(name or sc.name)
        topo = sc.topology
        if isinstance(topo, dict):  # written into the lab's directory by start_lab
            return lab, {"name": lab, **topo}, [str(m) for m in sc.manifests]
        return lab, str(topo), [str(m) for m in sc.manifests]
    from testbed.topo.load import load_topology

    topo = load_topology(path)  # bad topologies fail here, with exit 2
    return check_lab_name(name or topo.name), str(path.resolve()), []


# ---- commands --------------------------------------------------------------------------------

def cmd_up(args) -> int:
    need_root()
    name, topo, manifests = resolve_source(args.source, args.name)
    start_lab(name, topo, args.network, args.proxy, manifests)
    from testbed.client import RemoteLab

    info = RemoteLab(name).info()
    out.print(f"lab [bold]{name}[/] is up: {info['network']} network, {info['proxy']} proxy. "
              f"Talk to it with `testbed get pods -A`; stop it with `testbed down {name}`.")
    return 0


def cmd_run(args) -> int:
    from testbed.client import RemoteLab
    from testbed.report import print_result, write_json, write_junit
    from testbed.scenario import load_scenario, run_scenario

    need_root()
    sc = load_scenario(args.scenario)
    name, topo, manifests = resolve_source(args.scenario, args.name)
    started = time.perf_counter()
    start_lab(name, topo, args.network, args.proxy, manifests)
    up_seconds = time.perf_counter() - started
    keep = args.keep
    try:
        lab = RemoteLab(name)
        with err.status("running steps ...") as status:
            result = run_scenario(sc, lab, progress=lambda step: status.update(f"step: {step.name}"))
        out.print(f"lab up in {up_seconds:.2f} s", highlight=False)
        print_result(result, out)
        if args.json:
            write_json(result, args.json)
        if args.junit:
            write_junit(result, args.junit)
    except KeyboardInterrupt:
        keep = False  # interrupted: never leave a half-run lab behind
        raise
    finally:
        if not keep:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the teardown finish
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            stop_lab(name)
    if keep:
        out.print(f"lab {name} is still up: `testbed --lab {name} exec TARGET -- CMD`, then `testbed down {name}`",
                  highlight=False)
    return 0 if result.ok else 1


def _files(args) -> list[tuple[str, str]]:
    from testbed.client import _read

    return [(_read(f), f) for f in args.filename]


def _send_manifests(args, verb: str) -> int:
    from testbed.client import RemoteLab, pick_lab

    need_root()
    files = _files(args)  # bad input first, before looking for the lab
    lab = RemoteLab(pick_lab(args.lab))
    send = lab.apply_text if verb == "apply" else lab.delete_text
    for text, source in files:
        with err.status(f"{verb.rstrip('e')}ing {source} ..."):
            lines = send(text, source)
        for line in lines:
            out.print(line, highlight=False)
    return 0


def cmd_apply(args) -> int:
    return _send_manifests(args, "apply")


def cmd_delete(args) -> int:
    return _send_manifests(args, "delete")


def cmd_get(args) -> int:
    from testbed.client import RemoteLab, pick_lab
    from testbed.model.kinds import lookup
    from testbed.printers import render

    need_root()
    kind = lookup(args.kind)
    if kind is None:
        raise BadInput(f'the server doesn\'t have a resource type "{args.kind}"')
    lab = RemoteLab(pick_lab(args.lab))
    objs = lab.get(kind.kind, args.name, args.namespace, args.all_namespaces)
    text = render(kind.kind, objs, args.output, all_namespaces=args.all_namespaces and kind.namespaced)
    if not text:
        where = "" if args.all_namespaces or not kind.namespaced else f" in {args.namespace} namespace"
        err.print(f"No resources found{where}.", highlight=False)
        return 0
    print(text)
    return 0


def cmd_exec(args) -> int:
    from testbed.client import RemoteLab, pick_lab

    need_root()
    argv = args.argv
    if not argv:
        raise BadInput("exec needs a command: testbed exec TARGET -- CMD ARGS...")
    if not shutil.which("nsenter"):
        raise MachineError("missing program: nsenter; install it with `sudo apt-get install util-linux` "
                           "or run `sudo scripts/bootstrap.sh`")
    full = RemoteLab(pick_lab(args.lab)).exec_argv(args.target, argv, args.namespace)
    sys.stdout.flush()
    os.execvp(full[0], full)  # the terminal and the exit code pass straight through


def cmd_down(args) -> int:
    from testbed.runtime.cleanup import starting

    need_root()
    name = args.name or args.lab
    if name is None:
        from testbed.client import pick_lab

        name = pick_lab(None)
    if not state.lab_dir(name).exists():
        raise BadInput(f'no lab named "{name}"')
    if state.is_running(name) and not (state.lab_dir(name) / "lab.sock").exists() and not starting(name):
        pid = (state.read_state(name) or {}).get("pid")
        raise BadInput(f'lab "{name}" runs inside process {pid}, not started by `testbed up`: stop it there')
    stop_lab(name)
    out.print(f"lab {name} is down")
    return 0


def cmd_clean(args) -> int:
    from rich.table import Table

    from testbed.runtime.cleanup import clean

    need_root()
    done = clean()
    for extra in state.STATE_ROOT.glob("*.topology.yaml") if state.STATE_ROOT.exists() else []:
        if not state.is_running(extra.name.split(".topology.yaml")[0]):
            extra.unlink()
    if not done:
        out.print("nothing to clean")
        return 0
    table = Table(title="removed", title_justify="left")
    for col in ("lab", "namespaces still held", "processes killed", "state removed"):
        table.add_column(col)
    for d in done:
        pids = d["processes"]
        table.add_row(d["lab"], f"{d['namespaces']} of {d['recorded']}",
                      f"{len(pids)}" + (f" ({', '.join(map(str, pids[:8]))}{', ...' if len(pids) > 8 else ''})" if pids else ""),
                      d["dir"])
    out.print(table)
    return 0


def cmd_list(args) -> int:
    from rich.table import Table

    from testbed.runtime.cleanup import starting

    table = Table()
    for col in ("lab", "topology", "network", "proxy", "hosts", "state"):
        table.add_column(col)
    for name in state.lab_names():
        st = state.read_state(name) or {}
        table.add_row(name, Path(str(st.get("topology", ""))).name, str(st.get("network", "")),
                      str(st.get("proxy", "")), str(len(st.get("hosts", {}))),
                      ("running" if (state.lab_dir(name) / "lab.sock").exists() else "running in-process")
                      if state.is_running(name) else "starting" if starting(name)
                      else "dead (run `testbed clean`)")
    out.print(table)
    return 0


def cmd_draw(args) -> int:
    from testbed.topo.draw import render
    from testbed.topo.load import load_topology, parse_topology

    _, topo, _ = resolve_source(args.source, None)
    topology = parse_topology(topo, args.source) if isinstance(topo, dict) else load_topology(topo)
    out = render(topology, Path(args.output or f"{topology.name}.svg"))
    out_console = Console()
    out_console.print(f"wrote {out}")
    return 0


COMMANDS = {"run": cmd_run, "up": cmd_up, "apply": cmd_apply, "delete": cmd_delete, "get": cmd_get,
            "exec": cmd_exec, "down": cmd_down, "clean": cmd_clean, "list": cmd_list, "draw": cmd_draw}

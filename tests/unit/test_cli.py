"""The command line's own logic, without root: argument parsing, exit codes and messages,
picking the lab, exec targets, and clean by handle (on processes this test starts)."""
import fcntl
import io
import json
import os
import signal
import subprocess
import time

import pytest

from testbed import cli, client
from testbed.runtime import cleanup, state


@pytest.fixture
def state_root(tmp_path, monkeypatch):
    root = tmp_path / "run"
    root.mkdir()
    monkeypatch.setattr(state, "STATE_ROOT", root)
    return root


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def fake_lab(root, name: str, pid: int | None = None, start: int | None = None, hosts: dict | None = None,
             roles: dict | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    start = state.process_start(pid) if start is None else start
    (root / name).mkdir()
    (root / name / "lab.sock").touch()
    (root / name / "lab.json").write_text(json.dumps({"name": name, "pid": pid, "pid_start": start,
                                                      "hosts": hosts or {}, "roles": roles or {}}))


# ---- parsing -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, target, namespace, lab, command", [
    (["exec", "pod/web", "--", "curl", "-s", "-m", "3", "x"], "pod/web", "default", None, ["curl", "-s", "-m", "3", "x"]),
    (["exec", "pod/web", "-n", "prod", "--", "ip", "-j", "a"], "pod/web", "prod", None, ["ip", "-j", "a"]),
    (["exec", "-n", "prod", "pod/web", "--lab", "l1", "--", "sh", "-c", "exit 7"], "pod/web", "prod", "l1",
     ["sh", "-c", "exit 7"]),
    (["--lab", "l1", "exec", "node/node1", "--", "ip", "--", "x"], "node/node1", "default", "l1", ["ip", "--", "x"]),
    (["exec", "node/node1", "ip", "-o", "link"], "node/node1", "default", None, ["ip", "-o", "link"]),
])
def test_exec_arguments(argv, target, namespace, lab, command):
    args = cli.parse_args(argv)
    assert (args.target, args.namespace, args.lab, args.argv) == (target, namespace, lab, command)


def test_other_arguments():
    args = cli.parse_args(["get", "pods", "-A", "-o", "wide", "--lab", "x"])
    assert (args.kind, args.all_namespaces, args.output, args.lab) == ("pods", True, "wide", "x")
    args = cli.parse_args(["apply", "-f", "a.yaml", "-f", "-"])
    assert args.filename == ["a.yaml", "-"]
    args = cli.parse_args(["run", "s.yaml", "--json", "r.json", "--junit", "r.xml", "--keep", "--network", "vxlan",
                           "--proxy", "iptables", "--name", "lab1"])
    assert (args.json, args.junit, args.keep, args.network, args.proxy, args.name) == (
        "r.json", "r.xml", True, "vxlan", "iptables", "lab1")
    with pytest.raises(SystemExit):
        cli.parse_args(["get", "pods", "-o", "table"])


# ---- exit codes and messages ---------------------------------------------------------------

def test_not_root_exits_3_with_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for argv in (["up", "topologies/flat.yaml"], ["get", "pods"], ["clean"], ["down", "x"]):
        assert cli.main(argv) == 3
        assert "error: testbed needs root: run it with sudo" in capsys.readouterr().err


def test_missing_programs_exit_3_naming_the_package(monkeypatch, capsys, as_root, state_root):
    import shutil

    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda p: None if p in ("mnexec", "nft") else real(p))
    assert cli.main(["up", "topologies/flat.yaml", "--name", "t1"]) == 3
    msg = capsys.readouterr().err
    assert "mnexec" in msg and "mininet" in msg and "nftables" in msg and "scripts/bootstrap.sh" in msg
    assert not (state_root / "t1").exists()  # nothing was built


def test_exec_without_nsenter_exits_3(monkeypatch, capsys, as_root, state_root):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda p: None)
    assert cli.main(["exec", "node/node1", "--", "true"]) == 3
    assert "util-linux" in capsys.readouterr().err
    assert cli.main(["exec", "node/node1"]) == 2  # no command


def test_bad_input_exits_2_before_building(capsys, as_root, state_root, tmp_path):
    assert cli.main(["up", str(tmp_path / "nowhere.yaml")]) == 2
    assert "nowhere.yaml: cannot read file" in capsys.readouterr().err
    bad = tmp_path / "topo.yaml"
    bad.write_text("name: t\nnodes: [{name: Node_1}]\n")
    assert cli.main(["up", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert cli.main(["apply", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read file" in capsys.readouterr().err
    assert list(state_root.iterdir()) == []


@pytest.mark.parametrize("name", ["../etc", "a/b", "Upper", "x-", "", "x" * 64])
def test_lab_names_are_checked(name, capsys, as_root, state_root):
    assert cli.main(["down", name]) == 2
    assert "lab name" in capsys.readouterr().err
    assert cli.main(["--lab", name, "get", "pods"]) == 2


# ---- picking the lab -----------------------------------------------------------------------

def test_pick_lab(state_root):
    with pytest.raises(client.BadInput, match="no lab is running"):
        client.pick_lab(None)
    fake_lab(state_root, "one")
    fake_lab(state_root, "dead", pid=os.getpid(), start=1)  # a recycled pid is not our lab
    assert client.pick_lab(None) == "one"
    assert state.is_running("one") and not state.is_running("dead")
    fake_lab(state_root, "inproc")
    (state_root / "inproc" / "lab.sock").unlink()  # a Lab run in-process by a test: nothing to talk to
    assert client.pick_lab(None) == "one"
    fake_lab(state_root, "two")
    with pytest.raises(client.BadInput, match="--lab NAME"):
        client.pick_lab(None)
    assert client.pick_lab("two") == "two"
    with pytest.raises(client.BadInput, match='no lab named "dead" is running'):
        client.pick_lab("dead")


def test_list_shows_running_and_dead(state_root, capsys):
    fake_lab(state_root, "one")
    fake_lab(state_root, "dead", start=1)
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "running" in out and "dead" in out


# ---- exec targets --------------------------------------------------------------------------

def test_exec_argv(state_root):
    me = {"pid": os.getpid(), "start": state.process_start(os.getpid()), "netns": 1}
    fake_lab(state_root, "l", hosts={"node1": me, "router": me, "pod/prod/web": me, "sw-lan": me},
             roles={"node1": "node", "router": "router"})
    lab = client.RemoteLab("l")
    pid = str(os.getpid())
    assert lab.exec_argv("pod/web", ["ip", "a"], "prod") == ["nsenter", "-t", pid, "-n", "-m", "--", "ip", "a"]
    assert lab.exec_argv("node/node1", ["true"])[:3] == ["nsenter", "-t", pid]
    assert lab.exec_argv("host/router", ["true"])[-1] == "true"
    with pytest.raises(client.BadInput, match='no pod "web" in namespace "default"'):
        lab.exec_argv("pod/web", ["true"])
    with pytest.raises(client.BadInput, match="use host/router"):
        lab.exec_argv("node/router", ["true"])
    with pytest.raises(client.BadInput, match="use node/node1"):
        lab.exec_argv("host/node1", ["true"])
    assert lab.exec_argv("segment/lan", ["true"])[:3] == ["nsenter", "-t", pid]
    with pytest.raises(client.BadInput, match="targets are"):
        lab.exec_argv("pods/web", ["true"])
    with pytest.raises(client.BadInput, match='no host "sw-lan"'):
        lab.exec_argv("host/sw-lan", ["true"])
    with pytest.raises(client.BadInput, match='no segment "wan"'):
        lab.exec_argv("segment/wan", ["true"])


def test_exec_runs_the_command_and_passes_the_exit_code(state_root):
    me = {"pid": os.getpid(), "start": state.process_start(os.getpid()), "netns": 1}
    fake_lab(state_root, "l", hosts={"node1": me}, roles={"node1": "node"})
    lab = client.RemoteLab("l")
    argv = lab.exec_argv("node/node1", ["sh", "-c", "exit 7"])
    assert argv[-3:] == ["sh", "-c", "exit 7"]
    r = subprocess.run(argv[argv.index("--") + 1:])  # the command part, as nsenter runs it
    assert r.returncode == 7


def test_a_lab_that_does_not_answer(state_root):
    fake_lab(state_root, "l")
    with pytest.raises(client.LabGone, match="testbed clean"):
        client.RemoteLab("l").get("pods")


def test_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Pod\n"))
    assert client._read("-") == "kind: Pod\n"


# ---- clean, by handle ------------------------------------------------------------------------

def test_clean_kills_only_what_matches_pid_and_start_time(state_root):
    holder = subprocess.Popen(["sleep", "60"])
    time.sleep(0.05)
    other = subprocess.Popen(["sleep", "60"])
    time.sleep(0.05)
    own_netns = os.stat("/proc/self/ns/net").st_ino
    hosts = {
        "node1": {"pid": holder.pid, "start": state.process_start(holder.pid), "netns": own_netns},
        # the same pid with another start time: a recycled pid, never ours
        "node2": {"pid": other.pid, "start": state.process_start(other.pid) + 1, "netns": own_netns},
    }
    fake_lab(state_root, "crashed", pid=999999, start=1, hosts=hosts)
    try:
        done = cleanup.clean()
        assert [d["lab"] for d in done] == ["crashed"]
        assert holder.wait(timeout=5) == -signal.SIGKILL
        assert other.poll() is None  # neither the recycled pid nor our own namespace was touched
        assert not (state_root / "crashed").exists()
    finally:
        other.kill()
        other.wait()
        holder.kill()


def test_clean_leaves_running_and_starting_labs_alone(state_root):
    fake_lab(state_root, "running")
    (state_root / "starting").mkdir()
    log = open(state_root / "starting" / "lab.log", "ab")
    fcntl.flock(log, fcntl.LOCK_EX)  # what `up` does for the lab process it starts
    (state_root / "leftover").mkdir()
    (state_root / "leftover" / "lab.log").write_text("crashed before it wrote lab.json\n")
    try:
        assert cleanup.starting("starting") and not cleanup.starting("leftover")
        assert [d["lab"] for d in cleanup.clean()] == ["leftover"]
        assert (state_root / "running").exists() and (state_root / "starting").exists()
    finally:
        log.close()
    assert not cleanup.starting("starting")


def test_clean_prints_a_table(state_root, capsys, as_root):
    fake_lab(state_root, "gone", pid=999999, start=1)
    assert cli.main(["clean"]) == 0
    out = capsys.readouterr().out
    assert "gone" in out and "processes" in out
    assert cli.main(["clean"]) == 0
    assert "nothing to clean" in capsys.readouterr().out

"""A lab changes nothing in the machine's root network namespace: links, addresses,
routes, rules, nftables and iptables rules, and every readable net sysctl are the same
before a lab and after `down` (and after a whole `run`)."""
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import tb

pytestmark = pytest.mark.root


def snapshot() -> dict:
    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True).stdout

    snap = {
        "links": run("ip", "-j", "link"),
        "addrs": run("ip", "-j", "addr"),
        "routes": run("ip", "-j", "route", "show", "table", "all"),
        "routes6": run("ip", "-6", "-j", "route", "show", "table", "all"),
        "rules": run("ip", "-j", "rule"),
        "rules6": run("ip", "-6", "-j", "rule"),
        "nft": run("nft", "list", "ruleset"),
        "iptables": _strip_counters(run("iptables-save")),
        "ip6tables": _strip_counters(run("ip6tables-save")),
        "netns": run("ip", "netns", "list"),
    }
    sysctls = {}
    for path in Path("/proc/sys/net").rglob("*"):
        if path.is_file() and os.access(path, os.R_OK) and "stable_secret" not in path.name:
            try:
                sysctls[str(path)] = path.read_text()
            except OSError:
                pass
    snap["sysctls"] = sysctls
    return snap


def _strip_counters(text: str) -> str:
    # comment lines carry the time of the dump
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def _volatile(key: str) -> bool:
    # values the kernel moves on its own (conntrack and socket statistics, random seeds)
    return any(part in key for part in ("nf_conntrack_count", "/random", "tcp_mem", "udp_mem", "netfilter/nf_log",
                                        "core/netdev_rss_key", "fib_multipath_hash_seed"))


def assert_same(before: dict, after: dict) -> None:
    for key in before:
        if key == "sysctls":
            changed = {k: (v, after["sysctls"].get(k)) for k, v in before["sysctls"].items()
                       if after["sysctls"].get(k) != v and not _volatile(k)}
            assert not changed, changed
            assert set(after["sysctls"]) == set(before["sysctls"])
        else:
            assert before[key] == after[key], key


def test_root_namespace_is_the_same_after_up_and_down(hdls_file):
    before = snapshot()
    name = "e2e-root-untouched"
    try:
        assert tb("up", "topologies/two-racks.yaml", "--name", name, "--network", "vxlan",
                  "--proxy", "iptables").returncode == 0
        assert tb("--lab", name, "apply", "-f", hdls_file).returncode == 0
        r = tb("--lab", name, "exec", "host/client", "--", "ip", "-j", "addr")
        assert r.returncode == 0, r.stderr
        assert tb("--lab", name, "delete", "-f", hdls_file).returncode == 0
    finally:
        r = tb("down", name)
    assert r.returncode == 0, r.stderr
    assert_same(before, snapshot())


def test_root_namespace_is_the_same_after_a_run():
    before = snapshot()
    r = tb("run", "scenarios/quickstart.yaml", "--name", "e2e-root-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same(before, snapshot())

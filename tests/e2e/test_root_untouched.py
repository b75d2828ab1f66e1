"""A lab changes nothing in the machine's root network namespace."""
import os
import subprocess
from pathlib import Path

from .conftest import tb


def snapshot() -> dict:
    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True).stdout

    snap = {
        "links": run("ip", "-j", "link"),
        "addrs": run("ip", "-j", "addr"),
        "routes": run("ip", "-j", "route", "show", "table", "all"),
        "rules": run("ip", "-j", "rule"),
        "neigh_count": len(run("ip", "neigh").splitlines()) > -1,
        "nft": run("nft", "list", "ruleset"),
        "iptables": _strip_counters(run("iptables-save")),
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
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def test_root_namespace_is_the_same_after_a_lab():
    before = snapshot()
    r = tb("run", "scenarios/quickstart.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    after = snapshot()
    for key in before:
        if key == "sysctls":
            changed = {k: (v, after["sysctls"].get(k)) for k, v in before["sysctls"].items()
                       if after["sysctls"].get(k) != v and not _volatile(k)}
            assert not changed, changed
        else:
            assert before[key] == after[key], key


def _volatile(key: str) -> bool:
    # counters the kernel moves on its own (conntrack and socket statistics, random seeds)
    return any(part in key for part in ("nf_conntrack_count", "/random", "tcp_mem", "udp_mem", "netfilter/nf_log",
                                        "core/netdev_rss_key", "fib_multipath_hash_seed"))

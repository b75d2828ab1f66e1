"""The echo server with real namespaces: one process, sockets made inside each pod."""
import json
import os
import subprocess
import time

import pytest

from testbed.echo.control import EchoError, EchoServer
from testbed.netns import Namespace, die_with_parent

pytestmark = pytest.mark.root


OWN_NET = os.stat("/proc/self/ns/net").st_ino


def holder() -> subprocess.Popen:
    """A namespace holder, returned once mnexec has unshared (before that its
    /proc/PID/ns/net is still ours, and configuring it would touch the host)."""
    p = subprocess.Popen(["mnexec", "-cdn", "sleep", "infinity"], preexec_fn=die_with_parent)
    deadline = time.monotonic() + 10
    while os.stat(f"/proc/{p.pid}/ns/net").st_ino == OWN_NET:
        assert time.monotonic() < deadline and p.poll() is None, "no new namespace"
        time.sleep(0.001)
    return p


@pytest.fixture
def pair():
    """A "pod" (10.0.0.1) and a "client" (10.0.0.2) joined by a veth pair."""
    procs = [holder(), holder()]
    pod, client = (Namespace(p.pid) for p in procs)
    try:
        ipr = pod.ipr()
        ipr.link("add", ifname="eth0", kind="veth", peer="peer0")
        ipr.link("set", index=ipr.link_lookup(ifname="peer0")[0], net_ns_fd=client.net_path)
        for ns, ip, name in ((pod, "10.0.0.1", "eth0"), (client, "10.0.0.2", "peer0")):
            r = ns.ipr()
            for ifname in ("lo", name):
                idx = r.link_lookup(ifname=ifname)[0]
                r.link("set", index=idx, state="up")
            r.addr("add", index=r.link_lookup(ifname=name)[0], address=ip, prefixlen=24)
        echo = EchoServer()
        echo.start()
        yield echo, pod, client
        echo.stop()
    finally:
        for ns in (pod, client):
            ns.close()
        for p in procs:
            p.kill()
            p.wait()


PORTS = [{"port": 8000, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]


def add(echo, pod, name="web-1", ports=PORTS):
    echo.add(f"default/{name}", name, "default", "10.0.0.1", "node1", pod.net_path, ports)


def test_http_answers_with_pod_identity_and_client(pair):
    echo, pod, client = pair
    add(echo, pod)
    out = client.run(["curl", "-s", "-H", "Host: hdls.example", "http://10.0.0.1:8000/some/path"]).stdout
    got = json.loads(out)
    assert got["pod"] == "web-1" and got["namespace"] == "default" and got["podIP"] == "10.0.0.1"
    assert got["node"] == "node1" and got["path"] == "/some/path" and got["host"] == "hdls.example"
    assert got["client"].startswith("10.0.0.2:")
    # the socket lives in the pod's namespace only: nothing listens in the client's
    assert client.run(["curl", "-s", "http://127.0.0.1:8000/"], check=False).returncode != 0


def test_keep_alive_post_and_connection_close(pair):
    echo, pod, client = pair
    add(echo, pod)
    # two requests on one connection (curl reuses it), the first with a body
    out = client.run(["curl", "-s", "-d", "x" * 1000, "http://10.0.0.1:8000/a", "--next",
                      "http://10.0.0.1:8000/b", "-w", "%{num_connects}"]).stdout
    first, second, connects = out.splitlines()
    assert json.loads(first)["path"] == "/a" and json.loads(second)["path"] == "/b"
    assert connects == "0"  # the second request reused the first connection
    out = client.run(["curl", "-si", "-H", "Connection: close", "http://10.0.0.1:8000/"]).stdout
    assert "Connection: close" in out


PIECES = """
import json, socket, time
s = socket.create_connection(("10.0.0.1", 8000))
s.settimeout(5)
f = s.makefile("rb")
def response():
    status = f.readline()
    length = 0
    while (line := f.readline()) != b"\\r\\n":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status.decode().strip(), json.loads(f.read(length))["path"]
# the body comes in two pieces, and its second piece looks like a request line
s.sendall(b"POST /slow HTTP/1.1\\r\\nHost: h\\r\\nContent-Length: 16\\r\\n\\r\\nGET / ")
time.sleep(0.3)
s.sendall(b"HTTP/1.1\\r\\n")
print(*response())
s.sendall(b"GET /next HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n")
print(*response())
"""


def test_a_body_in_pieces_is_read_before_the_answer(pair):
    echo, pod, client = pair
    add(echo, pod)
    out = client.run(["python3", "-c", PIECES]).stdout
    assert out.splitlines() == ["HTTP/1.1 200 OK /slow", "HTTP/1.1 200 OK /next"]


def test_non_http_tcp_and_udp(pair):
    echo, pod, client = pair
    add(echo, pod)
    tcp = client.run(["socat", "-t2", "-", "TCP:10.0.0.1:8000"], input="hello\n").stdout
    assert json.loads(tcp)["path"] == "" and json.loads(tcp)["pod"] == "web-1"
    udp = client.run(["socat", "-t2", "-", "UDP:10.0.0.1:53"], input="ping\n").stdout
    got = json.loads(udp)
    assert got["pod"] == "web-1" and got["path"] == "" and got["host"] == ""
    assert got["client"].startswith("10.0.0.2:")


def test_remove_closes_and_errors_are_reported(pair):
    echo, pod, client = pair
    add(echo, pod)
    with pytest.raises(EchoError, match="Address already in use"):
        add(echo, pod, name="web-2", ports=[{"port": 8000, "protocol": "TCP"}])
    echo.remove("default/web-1")
    assert client.run(["curl", "-s", "-m2", "http://10.0.0.1:8000/"], check=False).returncode != 0
    add(echo, pod, name="web-3")  # the ports are free again
    assert json.loads(client.run(["curl", "-s", "http://10.0.0.1:8000/"]).stdout)["pod"] == "web-3"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_memory_per_pod_is_small(pair, capsys):
    """200 pods, each its own namespace with a TCP and a UDP socket, in one process."""
    echo, _, _ = pair
    procs = [holder() for _ in range(200)]
    try:
        before = rss_kib(echo.proc.pid)
        for i, p in enumerate(procs):
            echo.add(f"default/p{i}", f"p{i}", "default", "10.0.0.1", "node1", f"/proc/{p.pid}/ns/net", PORTS)
        per_pod = (rss_kib(echo.proc.pid) - before) / len(procs)
        with capsys.disabled():
            print(f"\necho server RSS growth per pod: {per_pod:.1f} KiB")
        assert per_pod < 100  # KiB; the bar is 5 MiB per idle pod in all
    finally:
        for p in procs:
            p.kill()
            p.wait()

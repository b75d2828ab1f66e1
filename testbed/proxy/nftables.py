"""The nftables ruleset of the service proxy, built as text (pure).

Every Service lives in set and map elements, because on this kernel chains are what
cost (10,000 chains: 11 s; 160,000 elements: 3 s), and every lookup is an exact-match
hash lookup, so a new connection costs the same with 10 Services or 10,000, and loading
10,000 Services takes about 1 s (an interval map over all endpoints took 5-6 s: the
kernel keeps each interval as the prefixes covering it). A verdict map jumps from a
frontend to the chain for its number of endpoints N, which puts a random number 0..N-1
(or a hash of the client address, for sessionAffinity ClientIP) in the packet mark,
plus the masquerade bit for frontends that masquerade; then frontend . mark is looked up
in one map of endpoints. There is one such chain per kind in use, made when first
needed: a handful, whatever the number of Services. A Service is a handful of elements;
adding one is one small transaction.
"""
from __future__ import annotations

from testbed.proxy.model import ServicePort

TABLE = "testbed-proxy"
# the top bit: endpoint numbers (0..N-1 below it) can never reach it
MASQ_MARK = "0x80000000"
FRONTEND = "ip daddr . meta l4proto . th dport"

SETS = ("dispatch", "endpoints", "no_endpoints", "drop_local", "hairpin")

SKELETON = f"""\
table ip {TABLE} {{
\t# frontend (service IP . protocol . port) -> the chain that picks one of its endpoints
\tmap dispatch {{
\t\ttypeof {FRONTEND} : verdict
\t}}
\t# frontend . endpoint number (the packet mark, with the masquerade bit where set) -> endpoint
\tmap endpoints {{
\t\ttypeof {FRONTEND} . meta mark : ip daddr . th dport
\t}}
\t# Services without ready endpoints: rejected at once
\tset no_endpoints {{
\t\ttypeof {FRONTEND}
\t}}
\t# externalTrafficPolicy Local on a node without a local endpoint: dropped
\tset drop_local {{
\t\ttypeof {FRONTEND}
\t}}
\t# endpoint . endpoint: a pod reaching itself through its Service (hairpin)
\tset hairpin {{
\t\ttypeof ip saddr . ip daddr
\t}}

\tchain services {{
\t\tmeta l4proto {{ tcp, udp, sctp }} {FRONTEND} vmap @dispatch
\t\tmeta l4proto {{ tcp, udp, sctp }} dnat ip to {FRONTEND} . meta mark map @endpoints
\t}}
\t# The checks sit in the nat chains, which see only the first packet of a connection:
\t# filter chains with "ct state new" would be the same rules at a per-packet cost on
\t# every forwarded packet (about 4% of pod-to-pod throughput here).
\tchain nat_prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tjump endpoints_check
\t\tjump services
\t}}
\tchain nat_output {{
\t\ttype nat hook output priority -100; policy accept;
\t\tjump endpoints_check
\t\tjump services
\t}}
\tchain nat_postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & {MASQ_MARK} == {MASQ_MARK} masquerade
\t\tct status dnat ip saddr . ip daddr @hairpin masquerade
\t}}
\tchain endpoints_check {{
\t\t{FRONTEND} @no_endpoints reject
\t\t{FRONTEND} @drop_local drop
\t}}
}}
"""


def pick_chain(endpoints: int, affinity: bool, masquerade: bool) -> str:
    return f"pick_{endpoints}" + ("_affinity" if affinity else "") + ("_masq" if masquerade else "")


def chain_definition(name: str) -> str:
    """A pick chain: endpoint number 0..N-1 into the mark, by chance or by the client
    address. (It names no map: nft 1.0.6 cannot add a rule naming the endpoints map to
    an existing table, "conflicting protocols specified: tcp vs. th".)"""
    n = int(name.split("_")[1])
    draw = "jhash ip saddr" if "_affinity" in name else "numgen random"
    offset = f" offset {MASQ_MARK}" if name.endswith("_masq") else ""
    return f"add chain ip {TABLE} {name}\nadd rule ip {TABLE} {name} meta mark set {draw} mod {n}{offset}"


def chains_needed(elems: dict[str, set[str]]) -> set[str]:
    """The pick chains the dispatch elements jump to."""
    return {e.rsplit(" jump ", 1)[1] for e in elems.get("dispatch", ())}


def elements(sp: ServicePort) -> dict[str, set[str]]:
    """The set and map elements one Service port needs, per set name."""
    out: dict[str, set[str]] = {name: set() for name in SETS}
    note = f'comment "{sp.name}"'
    for fe, eps in sp.frontends.items():
        key = f"{fe.ip} . {fe.proto} . {fe.port}"
        masquerade = fe in sp.masquerade
        out["dispatch"].add(f"{key} {note} : jump {pick_chain(len(eps), sp.affinity, masquerade)}")
        base = int(MASQ_MARK, 16) if masquerade else 0
        for i, (ip, port) in enumerate(eps):
            out["endpoints"].add(f"{key} . {base + i} : {ip} . {port}")
            if ip in sp.local_ips:
                out["hairpin"].add(f"{ip} . {ip}")
    for name, frontends in (("no_endpoints", sp.reject), ("drop_local", sp.drop)):
        for fe in frontends:
            out[name].add(f"{fe.ip} . {fe.proto} . {fe.port} {note}")
    return out


def full_ruleset(all_elements: dict[str, set[str]]) -> str:
    """The whole table: skeleton, the pick chains in use, every element (the first sync)."""
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}", SKELETON]
    lines += [chain_definition(c) for c in sorted(chains_needed(all_elements))]
    lines += _element_lines("add", all_elements)
    return "\n".join(lines) + "\n"


def delta(added: dict[str, set[str]], removed: dict[str, set[str]], new_chains: set[str] = frozenset()) -> str:
    """One transaction with only what changed: new pick chains, deletions, then additions.
    Pick chains stay once made: there are at most a few dozen."""
    lines = [chain_definition(c) for c in sorted(new_chains)]
    return "\n".join(lines + _element_lines("delete", removed) + _element_lines("add", added)) + "\n"


def _element_lines(verb: str, elems: dict[str, set[str]]) -> list[str]:
    lines = []
    for name in SETS:
        items = sorted(elems.get(name, ()))
        if verb == "delete":
            # deleting takes the key alone: no comment, no mapped value
            items = sorted({i.split(" comment ")[0].split(" : ")[0] for i in items})
        # nft 1.0.6 runs out of netlink buffer on very long element lists: statements of
        # 100 elements in the same transaction are fine
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            lines.append(f"{verb} element ip {TABLE} {name} {{ " + ", ".join(chunk) + " }")
    return lines
